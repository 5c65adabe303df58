"""The paper feed: closed candles once each, trades once each, retries through outages."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from engine_support import FakeClock
from hean_engine.data.exchange_feed import ExchangeFeed, FeedSettings
from hean_engine.net.retry import RetryPolicy

MIN = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % MIN


def clock_at(ms: int) -> FakeClock:
    return FakeClock(ms / 1000)


class ScriptedClient:
    """Answers fetch_ohlcv/fetch_trades from queued responses (or raises queued errors)."""

    def __init__(self) -> None:
        self.ohlcv: list[Any] = []
        self.trades: list[Any] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.last_response_headers: dict[str, str] = {}

    async def fetch_ohlcv(self, symbol: str, timeframe: str, **kw: Any) -> Any:
        self.calls.append(("fetch_ohlcv", {"symbol": symbol, "timeframe": timeframe, **kw}))
        return self._next(self.ohlcv)

    async def fetch_trades(self, symbol: str, **kw: Any) -> Any:
        self.calls.append(("fetch_trades", {"symbol": symbol, **kw}))
        return self._next(self.trades)

    def _next(self, queue: list[Any]) -> Any:
        item = queue.pop(0)
        if isinstance(item, Exception):
            if isinstance(item, ccxt.RateLimitExceeded):
                self.last_response_headers = {"Retry-After": "9"}
            raise item
        return item


def row(minute: int, close: float = 100.0) -> list[Any]:
    return [T0 + minute * MIN, 100.0, max(101.0, close), min(99.0, close), close, 1.5]


def make_feed(client: ScriptedClient, clock: FakeClock, **settings: Any) -> ExchangeFeed:
    return ExchangeFeed(
        client,
        "BTC/USDT",
        timeframe="1m",
        timeframe_ms=MIN,
        settings=FeedSettings(poll_interval=5.0, close_grace=2.0, **settings),
        policy=RetryPolicy(max_attempts=None, base_delay=1.0, max_delay=4.0),
        clock=clock,
    )


async def take(stream: Any, n: int) -> list[Any]:
    out = []
    async for item in stream:
        out.append(item)
        if len(out) == n:
            break
    return out


async def test_history_leaves_out_the_open_candle() -> None:
    clock = clock_at(T0 + 3 * MIN + 10_000)  # 10 s into minute 3
    client = ScriptedClient()
    client.ohlcv = [[row(0), row(1), row(2), row(3)]]
    feed = make_feed(client, clock, history=3)
    candles = await feed.candle_history()
    assert [c.ts for c in candles] == [T0, T0 + MIN, T0 + 2 * MIN]
    assert client.calls[0][1]["limit"] == 4
    assert feed.health.last_ok == clock.now()
    assert feed.health.last_event_ts == T0 + 2 * MIN


async def test_history_is_exactly_its_count_when_every_row_has_closed() -> None:
    """history + 1 rows are asked for (the last is usually still open); when all have
    closed the oldest goes: a strategy always warms up on `history` candles, the count a
    Backtest's warm-up uses (hean_contract.backtest.ENGINE_WARMUP)."""
    clock = clock_at(T0 + 5 * MIN + 3_000)  # minutes 3 and 4 have closed too
    client = ScriptedClient()
    client.ohlcv = [[row(0), row(1), row(2), row(3)], [row(4)]]
    feed = make_feed(client, clock, history=3)
    assert [c.ts for c in await feed.candle_history()] == [T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN]
    # the oldest is dropped, not skipped: the live candles go on after the last one
    assert [c.ts for c in await take(feed.candles(), 1)] == [T0 + 4 * MIN]


async def test_each_closed_candle_is_delivered_once_and_only_when_closed() -> None:
    clock = clock_at(T0 + 2 * MIN + 10_000)
    client = ScriptedClient()
    client.ohlcv = [
        [row(0), row(1), row(2)],  # history: 0 and 1 are closed
        [row(1), row(2, close=105.0)],  # minute 2 still open (10 s in + 5 s poll)
        [row(2, close=106.0), row(3)],  # now 2 is closed (a later candle exists)
    ]
    feed = make_feed(client, clock)
    assert [c.ts for c in await feed.candle_history()] == [T0, T0 + MIN]
    live = await take(feed.candles(), 1)
    assert [(c.ts, c.close) for c in live] == [(T0 + 2 * MIN, 106.0)]
    since = [kw.get("since") for name, kw in client.calls[1:]]
    assert since == [T0 + MIN + 1, T0 + MIN + 1]


async def test_last_candle_counts_as_closed_after_its_end_plus_grace() -> None:
    clock = clock_at(T0 + MIN + 2_001)
    client = ScriptedClient()
    client.ohlcv = [[row(0)]]
    feed = make_feed(client, clock)
    assert [c.ts for c in await feed.candle_history()] == [T0]


async def test_gaps_and_bad_rows_do_not_break_the_feed() -> None:
    clock = clock_at(T0 + 10 * MIN)
    client = ScriptedClient()
    bad_high = [T0 + 4 * MIN, 100.0, 90.0, 95.0, 99.0, 1.0]  # high below open
    client.ohlcv = [[row(0), row(3), bad_high, [T0 + 5 * MIN, None, 1, 1, 1, 1], row(7)]]
    feed = make_feed(client, clock)
    assert [(c.ts - T0) // MIN for c in await feed.candle_history()] == [0, 3, 7]


async def test_outages_are_retried_with_the_servers_retry_after() -> None:
    clock = clock_at(T0 + 2 * MIN + 10_000)
    client = ScriptedClient()
    client.ohlcv = [
        ccxt.RequestTimeout("timed out"),
        ccxt.RateLimitExceeded("429 too many requests"),
        [row(0), row(1), row(2)],
    ]
    feed = make_feed(client, clock)
    candles = await feed.candle_history()
    assert len(candles) == 2
    assert clock.sleeps[0] <= 1.0
    assert clock.sleeps[1] == 9.0
    assert feed.health.failures == 2
    assert feed.health.last_error is None


async def test_a_permanent_error_stops_the_feed() -> None:
    clock = clock_at(T0)
    client = ScriptedClient()
    client.ohlcv = [ccxt.BadSymbol("binance does not have market symbol BTC/XYZ")]
    feed = make_feed(client, clock)
    with pytest.raises(ccxt.BadSymbol):
        await feed.candle_history()


def trade_row(ms: int, tid: int, price: float = 10.0, side: str = "buy") -> dict[str, Any]:
    return {"id": str(tid), "timestamp": T0 + ms, "price": price, "amount": 0.5, "side": side}


async def test_trades_are_delivered_once_even_when_sharing_a_millisecond() -> None:
    clock = clock_at(T0 + MIN)
    client = ScriptedClient()
    client.trades = [
        [trade_row(5, 1), trade_row(7, 2), trade_row(7, 3)],
        # the next page starts at the last millisecond again: 2 and 3 come back
        [trade_row(7, 2), trade_row(7, 3), trade_row(7, 4, side="sell"), trade_row(9, 5)],
        [trade_row(9, 5)],
        [trade_row(9, 5), trade_row(12, 6)],
    ]
    feed = make_feed(client, clock)
    history = await feed.trade_history()
    assert [t.ts - T0 for t in history] == [5, 7, 7]
    live = await take(feed.trades(), 3)
    assert [(t.ts - T0, t.buyer_taker) for t in live] == [(7, False), (9, True), (12, True)]
    assert [kw.get("since") for _, kw in client.calls[1:]] == [T0 + 7, T0 + 9, T0 + 9]
