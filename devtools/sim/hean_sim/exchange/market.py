"""The replayed market: what the exchange knows at the current market time.

`MarketState` answers every public query (klines, trades, 24h statistics,
the last price) from the records at or before the replay clock's data time,
in served (rebased) timestamps; the private half of the simulator asks it the
current price and time to match orders.

Candles files. A one-minute candle is revealed over its minute along a fixed
path, so that the current kline is a real still-open candle and the last price
moves within the minute without inventing prices: open for the first quarter;
then the extreme the candle reached first (the low when it closed at or above
its open, the high otherwise); then the other extreme; in the last quarter the
close. Its volume grows by quarters (0, 1/4, 1/2, 3/4) and is whole once the
minute has passed. Public trades are synthesised as one trade per finished
candle with volume: at its close price, for its whole volume, time-stamped at
the minute's last millisecond, id = the candle's row number, the taker a buyer
when the candle closed at or above its open. Quote volumes are close x volume.

Trades files. Every recorded trade is one public trade and one aggregate
trade (id = row number), klines are aggregated from the trades.

Klines exist for every interval from the one holding the first record to the
one holding "now", as on Binance: an interval without data (a gap in the
recording, or after its end) is a flat zero-volume kline at the previous close.
Open, high, low and close are the recorded values (first, max, min, last; no
arithmetic), volumes are exact `Decimal` sums.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from hean_sim.exchange.clock import ReplayClock
from hean_sim.exchange.config import SimConfig
from hean_sim.exchange.data import RecordStore
from hean_sim.exchange.filters import SymbolFilters, derive_filters
from hean_sim.exchange.numbers import ZERO, dec
from hean_sim.exchange.times import MINUTE_MS

INTERVALS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}
DAY_MS = INTERVALS["1d"]
_QUARTER_MS = MINUTE_MS // 4
_CACHE_LIMIT = 100_000
_SAMPLE = 1000


@dataclass(frozen=True, slots=True)
class Bar:
    """OHLCV of a span of data; prices are recorded doubles, volumes exact."""

    open: float
    high: float
    low: float
    close: float
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_volume: Decimal
    taker_buy_quote_volume: Decimal
    first_id: int = -1
    last_id: int = -1

    @staticmethod
    def flat(price: float) -> Bar:
        return Bar(price, price, price, price, ZERO, ZERO, 0, ZERO, ZERO)


@dataclass(frozen=True, slots=True)
class Kline:
    open_time: int
    close_time: int
    bar: Bar


@dataclass(frozen=True, slots=True)
class PublicTrade:
    id: int
    time: int
    price: float
    qty: float
    buyer_maker: bool


@dataclass(frozen=True, slots=True)
class WindowStats:
    """A rolling window's statistics (the 24h ticker's numbers)."""

    open_time: int
    close_time: int
    bar: Bar | None  # None: no data in the window
    last_price: float
    last_qty: float
    prev_close: float | None


def _path(o: float, h: float, lo: float, c: float) -> tuple[float, float, float, float]:
    """The prices a candle takes in its four quarters (the path `_partial` reveals)."""
    return (o, lo, h, c) if c >= o else (o, h, lo, c)


def _partial(
    o: float, h: float, lo: float, c: float, elapsed_ms: int
) -> tuple[float, float, float, float, int]:
    """A candle `elapsed_ms` into its minute: (open, high, low, close, quarters of volume)."""
    quarter = elapsed_ms // _QUARTER_MS
    if quarter <= 0:
        return o, o, o, o, 0
    bullish = c >= o
    if quarter == 1:
        return (o, o, lo, lo, 1) if bullish else (o, h, o, h, 1)
    if quarter == 2:
        return (o, h, lo, h, 2) if bullish else (o, h, lo, lo, 2)
    return o, h, lo, c, 3


class MarketState:
    """One symbol's replayed market at the replay clock's current time."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.store = RecordStore(config.data)
        first = self.store.ts[0]
        start = first
        if config.start is not None:
            start = max(first, int(config.start.timestamp() * 1000))
        self.clock = ReplayClock(config.clock, config.speed, start)
        self.store.ensure(self.clock.data_start_ms)
        sample = slice(0, _SAMPLE)
        if self.store.is_candles:
            prices = [
                *self.store.open[sample],
                *self.store.high[sample],
                *self.store.low[sample],
                *self.store.close[sample],
            ]
        else:
            prices = list(self.store.close[sample])
        amounts = [v for v in self.store.volume[sample] if v > 0]
        self.filters: SymbolFilters = derive_filters(config, prices, amounts)
        self.typical_qty: Decimal = self._typical_qty(amounts)
        self._cache: dict[tuple[int, int], Kline] = {}
        self.updates = 0  # bumped on every step: the book's lastUpdateId

    # -- time ---------------------------------------------------------------

    @property
    def offset_ms(self) -> int:
        """Served time minus data time (a whole number of minutes)."""
        return self.clock.offset_ms

    def now_ms(self) -> int:
        """The market's current time, served (rebased) epoch ms."""
        return self.clock.served_now()

    def data_now_ms(self) -> int:
        """The market's current time in the recording's own epoch ms."""
        return self.clock.data_now()

    def wall_ms(self) -> int:
        """Exchange (server) time: wall clock ms."""
        return self.clock.wall_ms()

    def advance(self, ms: int) -> None:
        """Jump the replay forward by `ms` of data time (tests, fast-forward)."""
        self.clock.advance(ms)

    def step(self, records: int = 1) -> None:
        """Advance to the next record's event, `records` times.

        The event of a trade is its time; of a candle, the end of its minute
        (the candle becomes complete). At the end of the data this does nothing.
        """
        for _ in range(records):
            now = self._sync()
            target = self._next_event(now)
            if target is None:
                return
            self.clock.advance_to(target)

    def on_data_request(self) -> None:
        """Called per market-data request: in step mode, moves one record on."""
        self.updates += 1
        if self.clock.stepping:
            self.step()

    @property
    def finished(self) -> bool:
        """True once every record of the file has been revealed."""
        now = self._sync()
        return self.store.exhausted and self._next_event(now) is None

    def _next_event(self, now: int) -> int | None:
        s = self.store
        i = bisect_right(s.ts, now)
        if s.is_candles:
            if i > 0 and s.ts[i - 1] + MINUTE_MS > now:
                return s.ts[i - 1] + MINUTE_MS
            return s.ts[i] + MINUTE_MS if i < len(s) else None
        return s.ts[i] if i < len(s) else None

    def _sync(self) -> int:
        """The data time now, with every record up to it loaded."""
        now = self.clock.data_now()
        self.store.ensure(now)
        return now

    def _visible(self, now: int) -> int:
        """How many records have started by data time `now`."""
        return bisect_right(self.store.ts, now)

    # -- prices -------------------------------------------------------------

    def last_price(self) -> Decimal:
        """The current price: the last trade, or the current candle's close so far."""
        return dec(self._last_price_float())

    def price_at(self, data_ms: int) -> Decimal:
        """The price at data time `data_ms` (not after now): as `last_price` was then."""
        return dec(self._price_at(data_ms))

    def _last_price_float(self) -> float:
        return self._price_at(self._sync())

    def _price_at(self, data_ms: int) -> float:
        s = self.store
        s.ensure(data_ms)
        i = max(self._visible(data_ms) - 1, 0)
        if s.is_candles and s.ts[i] + MINUTE_MS > data_ms:
            return _partial(s.open[i], s.high[i], s.low[i], s.close[i], data_ms - s.ts[i])[3]
        return s.close[i]

    def price_steps(self, after_ms: int, upto_ms: int) -> Iterator[tuple[int, Decimal]]:
        """Every price the market took in data time (after_ms, upto_ms], oldest first.

        Yields (data ms, price) at each point where `last_price` changes value or
        is set again: a trade of a trades file; each quarter of a candle (its
        open, first extreme, second extreme, close). Order matching walks these,
        so a resting order fills exactly when the revealed path goes through it,
        however far the market moved between two requests.
        """
        if upto_ms <= after_ms:
            return
        s = self.store
        s.ensure(upto_ms)
        hi = bisect_right(s.ts, upto_ms)
        if not s.is_candles:
            for i in range(bisect_right(s.ts, after_ms), hi):
                yield s.ts[i], dec(s.close[i])
            return
        # A candle's last point is 3 quarters after its start: earlier candles
        # have nothing after `after_ms`.
        for i in range(bisect_right(s.ts, after_ms - 3 * _QUARTER_MS), hi):
            start = s.ts[i]
            path = _path(s.open[i], s.high[i], s.low[i], s.close[i])
            for quarter, price in enumerate(path):
                t = start + quarter * _QUARTER_MS
                if after_ms < t <= upto_ms:
                    yield t, dec(price)

    def _typical_qty(self, amounts: list[float]) -> Decimal:
        if self.config.book_levels_qty is not None:
            return self.config.book_levels_qty
        if not amounts:
            return self.filters.min_qty * 100
        mean = sum((dec(a) for a in amounts), ZERO) / len(amounts)
        return max(self.filters.floor_qty(mean), self.filters.min_qty)

    # -- aggregation --------------------------------------------------------

    def _aggregate(self, lo: int, hi: int, now: int) -> Bar | None:
        """The bar of records [lo, hi), all started by data time `now`."""
        if lo >= hi:
            return None
        if self.store.is_candles:
            return self._aggregate_candles(lo, hi, now)
        return self._aggregate_trades(lo, hi)

    def _aggregate_trades(self, lo: int, hi: int) -> Bar:
        s = self.store
        prices = s.close[lo:hi]
        volume = quote = buy_volume = buy_quote = ZERO
        for i in range(lo, hi):
            qty = dec(s.volume[i])
            value = dec(s.close[i]) * qty
            volume += qty
            quote += value
            if s.buyer_taker[i]:
                buy_volume += qty
                buy_quote += value
        return Bar(
            prices[0],
            max(prices),
            min(prices),
            prices[-1],
            volume,
            quote,
            hi - lo,
            buy_volume,
            buy_quote,
            lo,
            hi - 1,
        )

    def _aggregate_candles(self, lo: int, hi: int, now: int) -> Bar:
        s = self.store
        last = hi - 1
        o, h, low, c = s.open[last], s.high[last], s.low[last], s.close[last]
        quarters = 4
        if s.ts[last] + MINUTE_MS > now:
            o, h, low, c, quarters = _partial(o, h, low, c, now - s.ts[last])
        if last > lo:
            h = max(h, max(s.high[lo:last]))
            low = min(low, min(s.low[lo:last]))
        volume = quote = buy_volume = buy_quote = ZERO
        trades = 0
        first_id = last_id = -1
        for i in range(lo, hi):
            raw = s.volume[i]
            qty = dec(raw)
            close, opened = s.close[i], s.open[i]
            if i == last and quarters < 4:
                qty = qty * quarters / 4
                close = c
            elif raw > 0:
                trades += 1
                last_id = i
                if first_id < 0:
                    first_id = i
            value = dec(close) * qty
            volume += qty
            quote += value
            if close >= opened:
                buy_volume += qty
                buy_quote += value
        return Bar(
            s.open[lo],
            h,
            low,
            c,
            volume,
            quote,
            trades,
            buy_volume,
            buy_quote,
            first_id,
            last_id,
        )

    # -- klines -------------------------------------------------------------

    def klines(
        self, interval_ms: int, start: int | None, end: int | None, limit: int
    ) -> list[Kline]:
        """Binance's klines (served times): from `start` forward, else back from `end`/now."""
        now = self._sync()
        off = self.offset_ms
        served_now = now + off
        first_bucket = (self.store.ts[0] + off) // interval_ms * interval_ms
        last_bucket = served_now // interval_ms * interval_ms
        if end is not None:
            last_bucket = min(last_bucket, end // interval_ms * interval_ms)
        if start is not None:
            begin = max(first_bucket, -(-start // interval_ms) * interval_ms)
            last_bucket = min(last_bucket, begin + (limit - 1) * interval_ms)
        else:
            begin = max(first_bucket, last_bucket - (limit - 1) * interval_ms)
        visible = self._visible(now)
        return [
            self._kline(bucket, interval_ms, now, visible)
            for bucket in range(begin, last_bucket + 1, interval_ms)
        ]

    def _kline(self, bucket: int, interval_ms: int, now: int, visible: int) -> Kline:
        off = self.offset_ms
        closed = bucket + interval_ms <= now + off
        key = (interval_ms, bucket)
        if closed:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        ts = self.store.ts
        lo = bisect_left(ts, bucket - off)
        hi = min(bisect_left(ts, bucket + interval_ms - off), visible)
        bar = self._aggregate(lo, hi, now)
        if bar is None:
            bar = Bar.flat(self.store.close[lo - 1])
        kline = Kline(bucket, bucket + interval_ms - 1, bar)
        if closed:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = kline
        return kline

    # -- statistics ---------------------------------------------------------

    def window_stats(self, window_ms: int) -> WindowStats:
        """Statistics of the records in the last `window_ms` (rolling, as the ticker)."""
        now = self._sync()
        s = self.store
        visible = self._visible(now)
        lo = bisect_right(s.ts, now - window_ms)
        bar = self._aggregate(lo, visible, now)
        last_qty = 0.0
        trade = self._last_trades(1, now)
        if trade:
            last_qty = trade[0].qty
        return WindowStats(
            open_time=now - window_ms + self.offset_ms,
            close_time=now + self.offset_ms,
            bar=bar,
            last_price=self._last_price_float(),
            last_qty=last_qty,
            prev_close=s.close[lo - 1] if lo > 0 else None,
        )

    # -- public trades ------------------------------------------------------

    def _trade(self, i: int) -> PublicTrade | None:
        s = self.store
        if s.is_candles:
            if s.volume[i] <= 0:
                return None
            return PublicTrade(
                i,
                s.ts[i] + MINUTE_MS - 1 + self.offset_ms,
                s.close[i],
                s.volume[i],
                s.close[i] < s.open[i],
            )
        return PublicTrade(
            i, s.ts[i] + self.offset_ms, s.close[i], s.volume[i], not s.buyer_taker[i]
        )

    def _trade_count(self, now: int) -> int:
        """Rows whose public trade has happened by data time `now`."""
        if self.store.is_candles:
            return bisect_right(self.store.ts, now - MINUTE_MS)
        return self._visible(now)

    def _trade_row_at(self, served_ms: int) -> int:
        """The first row whose trade time is at or after `served_ms`."""
        data_ms = served_ms - self.offset_ms
        if self.store.is_candles:
            data_ms -= MINUTE_MS - 1
        return bisect_left(self.store.ts, data_ms)

    def _collect(self, rows: Iterator[int], limit: int) -> list[PublicTrade]:
        found: list[PublicTrade] = []
        for i in rows:
            trade = self._trade(i)
            if trade is not None:
                found.append(trade)
                if len(found) >= limit:
                    break
        return found

    def _last_trades(self, limit: int, now: int) -> list[PublicTrade]:
        count = self._trade_count(now)
        trades = self._collect(iter(range(count - 1, -1, -1)), limit)
        trades.reverse()
        return trades

    def recent_trades(self, limit: int) -> list[PublicTrade]:
        """The latest `limit` public trades, oldest first."""
        return self._last_trades(limit, self._sync())

    def agg_trades(
        self, from_id: int | None, start: int | None, end: int | None, limit: int
    ) -> list[PublicTrade]:
        """Aggregate trades by id and/or served time range (Binance's aggTrades rules)."""
        now = self._sync()
        lo, hi = 0, self._trade_count(now)
        if from_id is not None:
            lo = max(lo, from_id)
        if start is not None:
            lo = max(lo, self._trade_row_at(start))
        if end is not None:
            hi = min(hi, self._trade_row_at(end + 1))
        if from_id is None and start is None:
            trades = self._collect(iter(range(hi - 1, lo - 1, -1)), limit)
            trades.reverse()
            return trades
        return self._collect(iter(range(lo, hi)), limit)
