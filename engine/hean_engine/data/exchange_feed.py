"""Live public market data from an exchange through ccxt (paper mode; no keys).

The feed polls the REST endpoints (OHLCV or trades) and turns the answers
into the same `Candle` and `Trade` records a replay reads from a file, so the
kernel cannot tell paper from replay:
- candles: each candle is delivered once, when it is closed (a later candle
  exists, or its end is more than `close_grace` seconds in the past);
  exchanges answer with the still-open candle last, and a strategy acting on
  it would act on a price that is still moving.
- trades: each trade once, in time order, de-duplicated by id (several trades
  can share a millisecond, so the timestamp alone does not do).

Every request goes through the engine's one retry policy; the feed keeps
going through outages (the policy retries for ever) and says so in its
`health` for /readyz and the metrics.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from hean_engine.model.clock import SYSTEM_CLOCK, Clock, now_ms
from hean_engine.model.market import Candle, Trade
from hean_engine.net.retry import RetryPolicy, call_with_retry, parse_retry_after


@dataclass(slots=True)
class FeedHealth:
    """What /readyz and /metrics report about the feed."""

    polls: int = 0
    failures: int = 0
    last_ok: float | None = None  # wall time of the last successful poll
    last_error: str | None = None
    last_event_ts: int | None = None  # market time of the newest delivered event


@dataclass(frozen=True, slots=True)
class FeedSettings:
    poll_interval: float = 5.0
    close_grace: float = 2.0
    # candles (or trades) fetched once for the strategy's warm-up: exactly this many
    # when the exchange has them (a Backtest's default warm-up is the same number,
    # hean_contract.backtest.ENGINE_WARMUP)
    history: int = 200
    page_limit: int = 500


class ExchangeFeed:
    def __init__(
        self,
        client: Any,
        symbol: str,
        *,
        timeframe: str,
        timeframe_ms: int,
        settings: FeedSettings = FeedSettings(),
        policy: RetryPolicy = RetryPolicy(max_attempts=None),  # noqa: B008
        clock: Clock = SYSTEM_CLOCK,
        on_retry: Callable[[str, int, BaseException, float], None] | None = None,
    ) -> None:
        self._client = client
        self._symbol = symbol
        self._timeframe = timeframe
        self._tf_ms = timeframe_ms
        self._settings = settings
        self._policy = policy
        self._clock = clock
        self._on_retry = on_retry
        self.health = FeedHealth()
        self._last_candle_ts = -1
        self._last_trade_ts = -1
        # Ids of the trades delivered at `_last_trade_ts`: the next page starts at
        # that millisecond (`since` is inclusive), so only those can come again.
        self._ids_at_last_ts: set[str] = set()

    async def _fetch(self, what: str, call: Callable[[], Any]) -> Any:
        self.health.polls += 1

        def retried(name: str, attempt: int, exc: BaseException, delay: float) -> None:
            self.health.failures += 1
            self.health.last_error = f"{type(exc).__name__}"
            if self._on_retry is not None:
                self._on_retry(name, attempt, exc, delay)

        result = await call_with_retry(
            call,
            policy=self._policy,
            what=what,
            clock=self._clock,
            retry_after=lambda: parse_retry_after(
                getattr(self._client, "last_response_headers", None), self._clock.now()
            ),
            on_retry=retried,
        )
        self.health.last_ok = self._clock.now()
        self.health.last_error = None
        return result

    # -- candles -------------------------------------------------------------
    async def candle_history(self) -> list[Candle]:
        """The latest closed candles, for warming the strategy up; marks them seen."""
        rows = await self._fetch(
            "fetch_ohlcv",
            lambda: self._client.fetch_ohlcv(
                self._symbol, self._timeframe, limit=self._settings.history + 1
            ),
        )
        closed = self._closed_candles(rows)
        # One more row was asked for than kept: the last is usually still open;
        # when it has closed too, the oldest goes, so that a strategy always warms
        # up on the same number of candles (a Backtest's warm-up counts the same).
        return closed[-self._settings.history :] if self._settings.history else []

    async def candles(self) -> AsyncIterator[Candle]:
        """Closed candles after the history, each once, for ever."""
        while True:
            since = self._last_candle_ts + 1 if self._last_candle_ts >= 0 else None
            rows = await self._fetch(
                "fetch_ohlcv",
                functools.partial(
                    self._client.fetch_ohlcv,
                    self._symbol,
                    self._timeframe,
                    since=since,
                    limit=self._settings.page_limit,
                ),
            )
            for candle in self._closed_candles(rows):
                yield candle
            await self._clock.sleep(self._settings.poll_interval)

    def _closed_candles(self, rows: list[list[Any]]) -> list[Candle]:
        now = now_ms(self._clock)
        grace_ms = int(self._settings.close_grace * 1000)
        rows = sorted((row for row in rows if row and row[0] is not None), key=lambda r: r[0])
        closed: list[Candle] = []
        for index, row in enumerate(rows):
            ts = int(row[0])
            if ts <= self._last_candle_ts:
                continue
            is_last = index == len(rows) - 1
            if is_last and ts + self._tf_ms + grace_ms > now:
                break  # still open
            candle = _candle(row)
            if candle is None:
                continue
            closed.append(candle)
            self._last_candle_ts = ts
        if closed:
            self.health.last_event_ts = closed[-1].ts
        return closed

    # -- trades --------------------------------------------------------------
    async def trade_history(self) -> list[Trade]:
        rows = await self._fetch(
            "fetch_trades",
            lambda: self._client.fetch_trades(self._symbol, limit=self._settings.history),
        )
        return self._new_trades(rows)

    async def trades(self) -> AsyncIterator[Trade]:
        while True:
            since = self._last_trade_ts if self._last_trade_ts >= 0 else None
            rows = await self._fetch(
                "fetch_trades",
                functools.partial(
                    self._client.fetch_trades,
                    self._symbol,
                    since=since,
                    limit=self._settings.page_limit,
                ),
            )
            for trade in self._new_trades(rows):
                yield trade
            await self._clock.sleep(self._settings.poll_interval)

    def _new_trades(self, rows: list[dict[str, Any]]) -> list[Trade]:
        fresh: list[Trade] = []
        rows = sorted(
            (r for r in rows if r.get("timestamp") is not None), key=lambda r: r["timestamp"]
        )
        for row in rows:
            ts = int(row["timestamp"])
            trade_id = str(row.get("id") or f"{ts}:{row.get('price')}:{row.get('amount')}")
            if ts < self._last_trade_ts or trade_id in self._ids_at_last_ts:
                continue
            trade = _trade(row)
            if trade is None:
                continue
            if ts > self._last_trade_ts:
                self._last_trade_ts = ts
                self._ids_at_last_ts = set()
            self._ids_at_last_ts.add(trade_id)
            fresh.append(trade)
        if fresh:
            self.health.last_event_ts = fresh[-1].ts
        return fresh


def _candle(row: list[Any]) -> Candle | None:
    """A ccxt OHLCV row as a Candle; rows with missing or impossible prices are skipped."""
    try:
        ts, op, hi, lo, cl = int(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4])
        vol = float(row[5]) if len(row) > 5 and row[5] is not None else 0.0
    except (TypeError, ValueError, IndexError):
        return None
    if not (0.0 < lo <= min(op, cl) and max(op, cl) <= hi):
        return None
    return Candle(ts, op, hi, lo, cl, vol)


def _trade(row: dict[str, Any]) -> Trade | None:
    try:
        price = float(row["price"])
        amount = float(row["amount"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (price > 0 and amount > 0):
        return None
    return Trade(int(row["timestamp"]), row.get("side") == "buy", price, amount)
