"""The simulator's public Binance API, driven by ccxt's real binance client.

Slices of the shared recorded files are written to tmp_path so each test
starts in milliseconds; a fake wall clock moves market time (no sleeps).
Fixtures: conftest.py; helpers: sim_support.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from ccxt.base.errors import BadRequest, BadSymbol, DDoSProtection
from sim_support import CANDLES, MINUTE, WALL0, FakeClock, Row
from sim_support import start_at as _start_at

from hean_engine.data.files import read_candles
from hean_sim.exchange import SimConfig, SimExchange, point_ccxt_at


def _minute_candles(rows: list[Row]) -> Iterator[tuple[int, list[float]]]:
    """(data ts, [o, h, l, c, v]) for every minute from the first row, gaps flat."""
    by_ts = {row.ts: row for row in rows}
    t = rows[0].ts
    close = 0.0
    while t <= rows[-1].ts:
        row = by_ts.get(t)
        if row is None:
            yield t, [close, close, close, close, 0.0]
        else:
            values = [float(x) for x in row.fields]
            close = values[3]
            yield t, values
        t += MINUTE


async def test_load_markets_shows_symbol_with_precision_and_limits(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, _ = candle_rows
    sim = await start_sim(data=path, symbol="BTC/USDT", clock=clock, min_notional=Decimal(10))
    exchange = client(sim)
    markets = await exchange.load_markets()
    assert list(markets) == ["BTC/USDT"]
    market = markets["BTC/USDT"]
    assert market["id"] == "BTCUSDT"
    assert (market["base"], market["quote"]) == ("BTC", "USDT")
    assert market["spot"] and market["active"]
    # Derived from the data: 2-decimal prices, 8-decimal volumes.
    assert market["precision"]["price"] == 0.01
    assert market["precision"]["amount"] == 1e-08
    assert market["limits"]["amount"]["min"] == 1e-08
    assert market["limits"]["cost"]["min"] == 10.0
    assert market["limits"]["price"]["min"] == 0.01


async def test_exchange_info_symbol_filter_and_bad_symbol(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, _ = candle_rows
    sim = await start_sim(data=path, symbol="ETH/BTC", clock=clock, tick_size=Decimal("0.5"))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.url}/api/v3/exchangeInfo?symbol=ETHBTC") as resp:
            info = await resp.json()
            assert resp.status == 200
        assert [s["symbol"] for s in info["symbols"]] == ["ETHBTC"]
        price_filter = info["symbols"][0]["filters"][0]
        assert price_filter == {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.50000000",
            "maxPrice": "1000000.00000000",
            "tickSize": "0.50000000",
        }
        url = f"{sim.url}/api/v3/exchangeInfo?symbols=%5B%22ETHBTC%22%5D"
        async with session.get(url) as resp:
            assert resp.status == 200
        async with session.get(f"{sim.url}/api/v3/exchangeInfo?symbol=BTCUSDT") as resp:
            assert resp.status == 400
            assert await resp.json() == {"code": -1121, "msg": "Invalid symbol."}


async def test_fetch_time_is_wall_time(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, _ = candle_rows
    sim = await start_sim(data=path, clock=clock, speed=60.0)
    exchange = client(sim)
    assert await exchange.fetch_time() == int(WALL0 * 1000)
    clock.tick(2.5)
    assert await exchange.fetch_time() == int(WALL0 * 1000) + 2500


async def test_fetch_ohlcv_1m_equals_the_file_rebased(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, rows = candle_rows
    sim = await start_sim(data=path, clock=clock, speed=60.0, start=_start_at(rows, 2000))
    offset = sim.market.offset_ms
    assert sim.market.now_ms() == int(WALL0 * 1000)  # served time is wall time at start
    exchange = client(sim)
    minutes = list(_minute_candles(rows))
    since = minutes[300][0] + offset
    ohlcv = await exchange.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=200)
    expected = [[t + offset, *values] for t, values in minutes[300:500]]
    assert ohlcv == expected


async def test_fetch_ohlcv_5m_aggregates_and_honours_limit(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, rows = candle_rows
    sim = await start_sim(data=path, clock=clock, speed=60.0, start=_start_at(rows, 3000))
    offset = sim.market.offset_ms
    exchange = client(sim)
    # A 5m kline aggregates the recorded minutes in it (it opens at its first
    # trade); a five-minute stretch without any is flat at the previous close.
    buckets: dict[int, list[list[float]]] = {}
    for row in rows:
        bucket = (row.ts + offset) // 300_000 * 300_000
        buckets.setdefault(bucket, []).append([float(x) for x in row.fields])
    since = min(buckets) + 10 * 300_000
    ohlcv = await exchange.fetch_ohlcv("BTC/USDT", "5m", since=since, limit=60)
    assert [c[0] for c in ohlcv] == [since + k * 300_000 for k in range(60)]
    close = 0.0
    flat = 0
    for candle in ohlcv:
        group = buckets.get(candle[0])
        if group is None:
            flat += 1
            assert candle[1:] == [close, close, close, close, 0.0]
            continue
        # Volumes are summed exactly (Decimal) on the server; compare as decimals.
        volume = sum((Decimal(repr(v[4])) for v in group), Decimal(0))
        assert candle[1:5] == [
            group[0][0],
            max(v[1] for v in group),
            min(v[2] for v in group),
            group[-1][3],
        ]
        assert Decimal(repr(candle[5])) == volume
        close = group[-1][3]
    assert 0 < flat < 60  # this stretch of the file has gaps of five minutes and more


async def test_last_kline_is_open_then_closes_with_final_values(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, rows = candle_rows
    index = 1500
    sim = await start_sim(data=path, clock=clock, speed=60.0, start=_start_at(rows, index))
    offset = sim.market.offset_ms
    exchange = client(sim)
    o, h, lo, c, v = (float(x) for x in rows[index].fields)
    opened = rows[index].ts + offset

    ohlcv = await exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert ohlcv[-1] == [opened, o, o, o, o, 0.0]  # just opened: the open only
    assert ohlcv[-2][0] == opened - MINUTE
    assert sim.market.last_price() == Decimal(rows[index].fields[0])

    clock.tick(0.5)  # 30 data seconds: half-way along open -> first extreme -> second
    ohlcv = await exchange.fetch_ohlcv("BTC/USDT", "1m", limit=1)
    assert ohlcv[0][0] == opened
    assert ohlcv[0][2:4] == [h, lo]
    assert ohlcv[0][4] == (h if c >= o else lo)

    clock.tick(0.6)  # past the minute: the candle is closed, a new one is open
    ohlcv = await exchange.fetch_ohlcv("BTC/USDT", "1m", since=opened, limit=5)
    assert ohlcv[0] == [opened, o, h, lo, c, v]
    assert len(ohlcv) == 2
    assert ohlcv[1][0] == opened + MINUTE


async def test_step_mode_advances_one_record_per_request(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, rows = candle_rows
    sim = await start_sim(data=path, clock=clock, speed=None, start=_start_at(rows, 10))
    exchange = client(sim)
    offset = sim.market.offset_ms
    await exchange.load_markets()  # exchangeInfo does not move the market
    assert sim.market.data_now_ms() == rows[10].ts
    first = await exchange.fetch_ohlcv("BTC/USDT", "1m", limit=2)
    # The request completed candle 10 and opened the next minute.
    assert first[0] == [rows[10].ts + offset, *(float(x) for x in rows[10].fields)]
    assert first[1][0] == rows[10].ts + offset + MINUTE
    await exchange.fetch_ticker("BTC/USDT")
    assert sim.market.data_now_ms() == rows[11].ts + MINUTE


async def test_fetch_trades_from_trades_file(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, trade_rows: Any
) -> None:
    path, rows = trade_rows
    sim = await start_sim(
        data=path, symbol="BNT/ETH", clock=clock, speed=1.0, start=_start_at(rows, 2000)
    )
    offset = sim.market.offset_ms
    exchange = client(sim)
    visible = [r for r in rows if r.ts <= sim.market.data_now_ms()]
    trades = await exchange.fetch_trades("BNT/ETH", limit=50)
    # ccxt sorts by timestamp only; several trades can share a millisecond.
    trades.sort(key=lambda t: (t["timestamp"], int(t["id"])))
    assert len(trades) == 50
    for trade, row in zip(trades, visible[-50:], strict=True):
        side, price, amount = row.fields
        assert trade["timestamp"] == row.ts + offset
        assert (trade["side"], trade["price"], trade["amount"]) == (
            side,
            float(price),
            float(amount),
        )
    ids = [int(t["id"]) for t in trades]
    assert ids == list(range(len(visible) - 50, len(visible)))  # ids are row numbers

    # since: aggTrades from a start time (ccxt adds endTime = since + 1h).
    since = visible[100].ts + offset
    later = await exchange.fetch_trades("BNT/ETH", since=since, limit=10)
    expected = [r.ts + offset for r in visible if r.ts + offset >= since][:10]
    assert sorted(t["timestamp"] for t in later) == expected

    recent = await exchange.fetch_trades("BNT/ETH", limit=5, params={"method": "publicGetTrades"})
    assert [t["timestamp"] for t in recent] == [r.ts + offset for r in visible[-5:]]
    last_price, last_amount = (Decimal(x) for x in visible[-1].fields[1:])
    assert Decimal(recent[-1]["info"]["quoteQty"]) == last_price * last_amount


async def test_klines_from_trades(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, trade_rows: Any
) -> None:
    path, rows = trade_rows
    sim = await start_sim(
        data=path, symbol="BNT/ETH", clock=clock, speed=1.0, start=_start_at(rows, 2000)
    )
    offset = sim.market.offset_ms
    exchange = client(sim)
    ohlcv = await exchange.fetch_ohlcv("BNT/ETH", "1h", limit=3)
    now = sim.market.now_ms()
    assert ohlcv[-1][0] == now // 3_600_000 * 3_600_000
    hour = ohlcv[-2][0]
    inside = [r for r in rows if hour <= r.ts + offset < hour + 3_600_000]
    assert inside, "the slice must have trades in the last closed hour"
    prices = [float(r.fields[1]) for r in inside]
    assert ohlcv[-2][1:5] == [prices[0], max(prices), min(prices), prices[-1]]
    volume = sum((Decimal(r.fields[2]) for r in inside), Decimal(0))
    assert Decimal(repr(ohlcv[-2][5])) == volume


async def test_fetch_ticker_and_order_book(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, trade_rows: Any
) -> None:
    path, rows = trade_rows
    sim = await start_sim(
        data=path, symbol="BNT/ETH", clock=clock, speed=1.0, start=_start_at(rows, 2500)
    )
    exchange = client(sim)
    data_now = sim.market.data_now_ms()
    day = [r for r in rows if data_now - 86_400_000 < r.ts <= data_now]
    prices = [float(r.fields[1]) for r in day]
    ticker = await exchange.fetch_ticker("BNT/ETH")
    assert ticker["last"] == prices[-1]
    assert ticker["open"] == prices[0]
    assert ticker["high"] == max(prices)
    assert ticker["low"] == min(prices)
    assert Decimal(repr(ticker["baseVolume"])) == sum(
        (Decimal(r.fields[2]) for r in day), Decimal(0)
    )
    assert ticker["bid"] < ticker["last"] < ticker["ask"]

    book = await exchange.fetch_order_book("BNT/ETH", limit=20)
    assert len(book["bids"]) == len(book["asks"]) == 20
    assert book["bids"][0][0] < prices[-1] < book["asks"][0][0]
    assert [b[0] for b in book["bids"]] == sorted((b[0] for b in book["bids"]), reverse=True)
    assert [a[0] for a in book["asks"]] == sorted(a[0] for a in book["asks"])

    price = await exchange.publicGetTickerPrice({"symbol": "BNTETH"})
    assert price == {"symbol": "BNTETH", "price": f"{Decimal(day[-1].fields[1]):.8f}"}
    book_ticker = await exchange.publicGetTickerBookTicker({"symbol": "BNTETH"})
    assert Decimal(book_ticker["bidPrice"]) < Decimal(price["price"])


async def test_bad_symbol_and_bad_params(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, _ = candle_rows
    sim = await start_sim(data=path, clock=clock)
    exchange = client(sim)
    with pytest.raises(BadSymbol):
        await exchange.publicGetKlines({"symbol": "NOPEUSDT", "interval": "1m"})
    with pytest.raises(BadRequest, match="-1120"):
        await exchange.publicGetKlines({"symbol": "BTCUSDT", "interval": "7m"})
    async with aiohttp.ClientSession() as session:
        cases = {
            "/api/v3/klines?interval=1m": (400, -1102),
            "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=abc": (400, -1100),
            "/api/v3/depth?symbol=BTCUSDT&limit=0": (400, -1130),
            "/api/v3/nothing": (404, -1020),
        }
        for path_query, (status, code) in cases.items():
            async with session.get(sim.url + path_query) as resp:
                assert resp.status == status, path_query
                assert (await resp.json())["code"] == code, path_query
                assert "X-MBX-USED-WEIGHT-1M" in resp.headers


async def test_weight_limit_429_retry_after_then_418_ban(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, _ = candle_rows
    clock.now = WALL0 + 10  # 50 s left in this minute's window
    sim = await start_sim(data=path, clock=clock, weight_limit=30, ban_seconds=120.0)
    exchange = client(sim)
    await exchange.load_markets()  # weight 20
    assert exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "20"
    for _ in range(5):  # klines: weight 2 each
        await exchange.fetch_ohlcv("BTC/USDT", "1m", limit=5)
    assert exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "30"

    with pytest.raises(DDoSProtection, match="429") as refused:
        await exchange.fetch_ohlcv("BTC/USDT", "1m", limit=5)
    assert "-1003" in str(refused.value)
    assert exchange.last_response_headers["Retry-After"] == "50"

    # Calling again while told to back off: banned.
    clock.tick(5)
    with pytest.raises(DDoSProtection, match="418"):
        await exchange.fetch_time()
    assert exchange.last_response_headers["Retry-After"] == "120"
    clock.tick(100)  # a new minute, but still banned
    with pytest.raises(DDoSProtection, match="418"):
        await exchange.fetch_time()
    assert exchange.last_response_headers["Retry-After"] == "20"

    clock.tick(21)
    assert await exchange.fetch_time() == int(clock.now * 1000)
    assert exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "1"


async def test_backing_off_after_429_is_not_banned(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, _ = candle_rows
    sim = await start_sim(data=path, clock=clock, weight_limit=3)
    exchange = client(sim)
    for _ in range(3):
        await exchange.fetch_time()
    with pytest.raises(DDoSProtection, match="429"):
        await exchange.fetch_time()
    clock.tick(int(exchange.last_response_headers["Retry-After"]))
    assert await exchange.fetch_time() == int(clock.now * 1000)


def test_point_ccxt_at_rewrites_nested_urls() -> None:
    fake = SimpleNamespace(
        urls={
            "api": {
                "public": "https://api.binance.com/api/v3",
                "nested": {"x": "https://fapi.binance.com/fapi/v1", "ws": "wss://stream"},
            }
        }
    )
    point_ccxt_at(fake, "http://127.0.0.1:9/")
    assert fake.urls["api"] == {
        "public": "http://127.0.0.1:9/api/v3",
        "nested": {"x": "http://127.0.0.1:9/fapi/v1", "ws": "wss://stream"},
    }


@pytest.mark.slow
def test_full_candle_file_starts_lazily() -> None:
    """Startup reads one chunk; a start late in the file reads the file up to it.
    (What it costs is for benchmarks/, not for a test: timings vary 3x between machines.)"""
    sim = SimExchange(SimConfig(data=CANDLES, clock=FakeClock()))
    assert len(sim.market.store) < 100_000

    rows = sum(1 for _ in read_candles(CANDLES))
    late = datetime(2018, 12, 31, 12, tzinfo=UTC)
    sim = SimExchange(SimConfig(data=CANDLES, clock=FakeClock(), start=late))
    assert len(sim.market.store) == rows
    assert sim.market.last_price() > 0


async def test_candles_file_synthesises_one_trade_per_finished_candle(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, rows = candle_rows
    sim = await start_sim(data=path, clock=clock, speed=60.0, start=_start_at(rows, 1000))
    offset = sim.market.offset_ms
    exchange = client(sim)
    clock.tick(0.5)  # half-way through candle 1000: it has no trade yet
    trades = await exchange.fetch_trades("BTC/USDT", limit=3)
    finished = [r for r in rows[:1000] if float(r.fields[4]) > 0][-3:]
    assert [t["timestamp"] for t in trades] == [r.ts + offset + MINUTE - 1 for r in finished]
    for trade, row in zip(trades, finished, strict=True):
        o, _, _, c, v = (float(x) for x in row.fields)
        assert (trade["price"], trade["amount"]) == (c, v)
        assert trade["side"] == ("buy" if c >= o else "sell")


async def test_every_public_endpoint_answers_in_binance_shape(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    path, rows = candle_rows
    sim = await start_sim(data=path, clock=clock, speed=60.0, start=_start_at(rows, 2000))
    clock.tick(0.3)  # mid-candle
    sym = "symbol=BTCUSDT"
    async with aiohttp.ClientSession() as session:

        async def get(path_query: str) -> Any:
            async with session.get(sim.url + path_query) as resp:
                assert resp.status == 200, (path_query, await resp.text())
                return await resp.json()

        assert await get("/api/v3/ping") == {}
        assert (await get("/api/v3/time"))["serverTime"] == int(clock.now * 1000)
        ui = await get(f"/api/v3/uiKlines?{sym}&interval=15m&limit=2")
        assert len(ui) == 2 and len(ui[0]) == 12
        avg = await get(f"/api/v3/avgPrice?{sym}")
        assert avg["mins"] == 5 and Decimal(avg["price"]) > 0
        full = await get(f"/api/v3/ticker/24hr?{sym}")
        assert full["symbol"] == "BTCUSDT" and full["count"] > 0
        assert Decimal(full["bidPrice"]) < Decimal(full["lastPrice"]) < Decimal(full["askPrice"])
        assert Decimal(full["lastPrice"]) == sim.market.last_price()
        listed = await get("/api/v3/ticker/24hr?type=MINI")
        assert isinstance(listed, list) and "priceChange" not in listed[0]
        rolling = await get(f"/api/v3/ticker?{sym}&windowSize=4h")
        assert rolling["closeTime"] - rolling["openTime"] == 4 * 3_600_000
        prices = await get('/api/v3/ticker/price?symbols=["BTCUSDT"]')
        assert prices == [{"symbol": "BTCUSDT", "price": full["lastPrice"]}]
        book = await get(f"/api/v3/ticker/bookTicker?{sym}")
        assert book["bidPrice"] == full["bidPrice"]
        depth = await get(f"/api/v3/depth?{sym}&limit=5")
        assert len(depth["bids"]) == 5 and depth["lastUpdateId"] > 0
        trades = await get(f"/api/v3/trades?{sym}&limit=2")
        assert set(trades[0]) == {
            "id",
            "price",
            "qty",
            "quoteQty",
            "time",
            "isBuyerMaker",
            "isBestMatch",
        }
        agg = await get(f"/api/v3/aggTrades?{sym}&fromId=5&limit=2")
        assert [a["a"] for a in agg] == [5, 6]


async def test_agg_trades_rejects_more_than_an_hour(
    start_sim: Callable[..., Any], clock: FakeClock, trade_rows: Any
) -> None:
    path, _ = trade_rows
    sim = await start_sim(data=path, symbol="BNT/ETH", clock=clock)
    url = f"{sim.url}/api/v3/aggTrades?symbol=BNTETH&startTime=0&endTime=3600001"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == -1127


def test_market_state_helpers_for_other_code(clock: FakeClock, trade_rows: Any) -> None:
    path, rows = trade_rows
    sim = SimExchange(SimConfig(data=path, symbol="BNT/ETH", clock=clock, speed=None))
    market = sim.market
    assert market.last_price() == Decimal(rows[0].fields[1])
    market.step(2)
    assert market.data_now_ms() == rows[2].ts
    assert market.now_ms() == rows[2].ts + market.offset_ms
    market.advance(3_600_000)
    assert market.data_now_ms() == rows[2].ts + 3_600_000
    assert not market.finished
