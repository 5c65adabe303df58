"""The replay clock: which data time the market is at, and how data times are served.

Two modes:

- Timed (`speed` a positive number): data time = start + (wall - wall at
  creation) * speed, read from the injected clock on every query, never
  going backwards (a wall clock that steps back holds the market still).
- Step (`speed=None`): the market only moves when told to; the market advances
  it by one record per market-data request (see `MarketState.step`), so a
  client polling as fast as it can walks through the file record by record.

Rebasing: clients compute `since = now - 500 minutes` from their own wall
clock, and Binance's `serverTime` is wall time (signed requests are checked
against it), so served timestamps must be near wall time too. Every data
timestamp is shifted by one constant `offset_ms` chosen so that, at creation,
served market time equals wall time exactly. The offset is a whole number of
minutes, so one-minute candles stay on minute boundaries and klines of every
interval are aligned in served time exactly as Binance aligns them. At speed 1
the served market time stays equal to wall time; at other speeds it drifts
away from `serverTime` by (speed - 1) * elapsed, which is the honest meaning
of a fast replay.
"""

from __future__ import annotations

from hean_sim.exchange.config import WallSeconds
from hean_sim.exchange.times import MINUTE_MS


class ReplayClock:
    def __init__(self, clock: WallSeconds, speed: float | None, start_ms: int) -> None:
        self.clock = clock
        self.speed = speed
        wall_ms = int(clock() * 1000)
        # The first data time >= start with wall time's position within the
        # minute: then offset (wall - data) is a whole number of minutes.
        self.data_start_ms = start_ms + (wall_ms - start_ms) % MINUTE_MS
        self.offset_ms = wall_ms - self.data_start_ms
        self._wall_start = clock()
        self._extra_ms = 0
        self._last_ms = self.data_start_ms

    @property
    def stepping(self) -> bool:
        return self.speed is None

    def data_now(self) -> int:
        """The market's current data time (epoch ms as recorded)."""
        now = self.data_start_ms + self._extra_ms
        if self.speed is not None:
            now += int((self.clock() - self._wall_start) * self.speed * 1000)
        if now > self._last_ms:
            self._last_ms = now
        return self._last_ms

    def served_now(self) -> int:
        """The market's current time as served (rebased onto wall time)."""
        return self.data_now() + self.offset_ms

    def wall_ms(self) -> int:
        """Exchange time (`serverTime`): the wall clock, as clients sign with it."""
        return int(self.clock() * 1000)

    def advance(self, ms: int) -> None:
        """Move data time forward by `ms` on top of whatever the clock does."""
        if ms < 0:
            raise ValueError("the replay never goes backwards")
        self._extra_ms += ms

    def advance_to(self, data_ms: int) -> None:
        """Move data time forward to `data_ms` (no-op if already there)."""
        now = self.data_now()
        if data_ms > now:
            self._extra_ms += data_ms - now
