"""The simulator's OKX protocol, through ccxt's real okx client and by hand.

Signing is checked as OKX checks it (so ccxt's own signing code is what
passes), error bodies are OKX's (so ccxt raises what it raises against OKX),
client order ids follow OKX's rules, and the per-endpoint rate limits hold.
Time is a fake wall clock that ccxt also signs with: no sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async
import pytest
from sim_support import FakeClock, start_at

from hean_sim.exchange import ApiKey, FaultPlan, SimExchange, generate_key_pair, point_ccxt_at
from hean_sim.exchange.okx import bill_id
from hean_sim.exchange.okx_auth import signature

D = Decimal
SYMBOL = "BTC/USDT"
START = 7


def _okx(sim: SimExchange, key: ApiKey | None, clock: FakeClock, **config: Any) -> Any:
    settings: dict[str, Any] = {
        "enableRateLimit": False,
        "options": {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
        **config,
    }
    if key is not None:
        settings.update({"apiKey": key.api_key, "secret": key.secret, "password": key.passphrase})
    exchange = ccxt_async.okx(settings)
    exchange.milliseconds = lambda: int(clock() * 1000)
    point_ccxt_at(exchange, sim.url)
    return exchange


async def _trading(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any, **fields: Any
) -> tuple[SimExchange, Any, ApiKey]:
    path, rows = candle_rows
    key = generate_key_pair()
    settings: dict[str, Any] = {"speed": None, "start": start_at(rows, START), **fields}
    sim = await start_sim(data=path, clock=clock, keys=[key], protocol="okx", **settings)
    exchange = _okx(sim, key, clock)
    await exchange.load_markets()
    return sim, exchange, key


def _stamp(clock: FakeClock) -> str:
    when = datetime.fromtimestamp(clock(), tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


async def _raw(
    sim: SimExchange,
    clock: FakeClock,
    method: str,
    path: str,
    *,
    key: ApiKey | None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """A request signed by hand, as OKX documents it."""
    text = json.dumps(body) if body is not None else ""
    sent = dict(headers or {})
    if key is not None:
        stamp = _stamp(clock)
        sent.update(
            {
                "OK-ACCESS-KEY": key.api_key,
                "OK-ACCESS-PASSPHRASE": key.passphrase,
                "OK-ACCESS-TIMESTAMP": stamp,
                "OK-ACCESS-SIGN": signature(key.secret, stamp + method + path + text),
                "Content-Type": "application/json",
            }
        )
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, sim.url + path, data=text or None, headers=sent) as response,
    ):
        return response.status, await response.json()


async def test_ccxt_loads_the_market_and_reads_candles_and_the_ticker(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, _ = await _trading(start_sim, clock, candle_rows)
    market = exchange.market(SYMBOL)
    filters = sim.matching.filters
    assert market["id"] == "BTC-USDT" and market["spot"]
    assert D(str(market["precision"]["amount"])) == filters.step_size
    assert D(str(market["limits"]["amount"]["min"])) == filters.min_qty
    # OKX spot: a minimum size, no minimum notional.
    assert market["limits"]["cost"]["min"] is None and filters.min_notional == 0
    candles = await exchange.fetch_ohlcv(SYMBOL, "1m", limit=5)
    assert candles and [c[0] for c in candles] == sorted(c[0] for c in candles)
    ticker = await exchange.fetch_ticker(SYMBOL)
    assert D(str(ticker["last"])) == sim.market.last_price()


async def test_orders_fill_exactly_and_are_found_by_client_id(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, clock, candle_rows)
    price = sim.market.last_price()
    placed = await exchange.create_order(SYMBOL, "market", "buy", "0.5", None, {"clOrdId": "a1"})
    found = await exchange.fetch_order(None, SYMBOL, {"clOrdId": "a1"})
    assert found["id"] == placed["id"] and found["status"] == "closed"
    assert found["clientOrderId"] == "a1" and D(str(found["filled"])) == D("0.5")
    fee = D("0.5") * D("0.001")
    assert D(str(found["fee"]["cost"])) == fee and found["fee"]["currency"] == "BTC"
    balances = sim.balances(key.api_key)
    assert balances["BTC"].total == D("0.5") - fee
    assert balances["USDT"].total == D(10_000) - price * D("0.5")
    (trade,) = await exchange.fetch_my_trades(SYMBOL, None, 10)
    assert trade["order"] == placed["id"] and trade["takerOrMaker"] == "taker"
    # Fills are paged by bill id, which is not the trade id.
    assert trade["info"]["billId"] == str(bill_id(sim.trades(key.api_key)[0]))
    assert trade["info"]["billId"] != trade["id"]


async def test_fills_page_after_a_bill_id_oldest_first_within_the_page(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, clock, candle_rows)
    for n in range(5):
        await exchange.create_order(SYMBOL, "market", "buy", "0.01", None, {"clOrdId": f"f{n}"})
    bills = [bill_id(t) for t in sim.trades(key.api_key)]
    page = await exchange.fetch_my_trades(SYMBOL, None, 2, {"before": str(bills[1])})
    assert [int(t["info"]["billId"]) for t in page] == bills[2:4]
    newest = await exchange.fetch_my_trades(SYMBOL, None, 1)
    assert [int(t["info"]["billId"]) for t in newest] == bills[-1:]


async def test_a_client_id_of_a_pending_order_is_refused_and_reusable_once_it_is_done(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, clock, candle_rows)
    low = str((sim.market.last_price() / 2).quantize(D("0.01")))
    first = await exchange.create_order(SYMBOL, "limit", "buy", "0.1", low, {"clOrdId": "dup1"})
    with pytest.raises(ccxt.InvalidOrder, match='"sCode": "51016"'):
        await exchange.create_order(SYMBOL, "limit", "buy", "0.1", low, {"clOrdId": "dup1"})
    assert len(sim.orders(key.api_key)) == 1
    await exchange.cancel_order(first["id"], SYMBOL)
    with pytest.raises(ccxt.OrderNotFound, match='"sCode": "51401"'):
        await exchange.cancel_order(first["id"], SYMBOL)
    second = await exchange.create_order(SYMBOL, "limit", "buy", "0.1", low, {"clOrdId": "dup1"})
    # A lookup by client id finds the latest order with it.
    found = await exchange.fetch_order(None, SYMBOL, {"clOrdId": "dup1"})
    assert found["id"] == second["id"] != first["id"]


async def test_error_bodies_are_okxs_and_ccxt_raises_what_it_raises_against_okx(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, clock, candle_rows, min_qty=D("0.001"))
    with pytest.raises(ccxt.OrderNotFound, match='"code": "51603"'):
        await exchange.fetch_order(None, SYMBOL, {"clOrdId": "never"})
    with pytest.raises(ccxt.InsufficientFunds, match='"sCode": "51008"'):
        await exchange.create_order(SYMBOL, "market", "buy", "1000", None, {"clOrdId": "big"})
    # Binance's ids have dashes: OKX refuses them.
    with pytest.raises(ccxt.BadRequest, match='"sCode": "51000"'):
        await exchange.create_order(SYMBOL, "market", "buy", "0.01", None, {"clOrdId": "a-b"})
    with pytest.raises(ccxt.InvalidOrder, match='"sCode": "51020"'):
        await exchange.create_order(SYMBOL, "market", "buy", "0.0005", None, {"clOrdId": "s1"})
    status, body = await _raw(sim, clock, "GET", "/api/v5/no/such", key=None)
    assert status == 404 and body["code"] == "50005"
    assert not sim.orders(key.api_key)


@pytest.mark.parametrize(
    ("change", "code", "error"),
    [
        ({"secret": "a-wrong-secret"}, "50113", ccxt.AuthenticationError),
        ({"password": "a-wrong-passphrase"}, "50105", ccxt.AuthenticationError),
        ({"apiKey": "an-unknown-key"}, "50111", ccxt.AuthenticationError),
    ],
)
async def test_a_request_signed_wrongly_is_refused_without_quoting_any_secret(
    start_sim: Callable[..., Any],
    clock: FakeClock,
    candle_rows: Any,
    change: dict[str, str],
    code: str,
    error: type[Exception],
) -> None:
    sim, exchange, key = await _trading(start_sim, clock, candle_rows)
    for name, value in change.items():
        setattr(exchange, name, value)
    with pytest.raises(error, match=f'"code": "{code}"') as info:
        await exchange.create_order(SYMBOL, "market", "buy", "0.01", None, {"clOrdId": "x1"})
    assert not sim.orders(key.api_key)
    text = str(info.value)
    assert key.secret not in text and key.passphrase not in text
    assert "a-wrong" not in text


async def test_a_timestamp_more_than_30_seconds_off_is_refused(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    _, exchange, _ = await _trading(start_sim, clock, candle_rows)
    exchange.milliseconds = lambda: int(clock() * 1000) - 30_001
    with pytest.raises(ccxt.InvalidNonce, match='"code": "50102"'):
        await exchange.fetch_balance()
    exchange.milliseconds = lambda: int(clock() * 1000) - 29_000
    assert (await exchange.fetch_balance())["total"]["USDT"] == 10_000


async def test_an_order_past_its_exp_time_is_never_executed(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, _, key = await _trading(start_sim, clock, candle_rows)
    order = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market"}
    now_ms = int(clock() * 1000)
    late = {"expTime": str(now_ms - 1)}
    path = "/api/v5/trade/order"
    status, body = await _raw(
        sim,
        clock,
        "POST",
        path,
        key=key,
        body={**order, "sz": "0.01", "clOrdId": "e1"},
        headers=late,
    )
    assert status == 200 and body["code"] == "1"
    assert body["data"][0]["sCode"] == "50037"
    assert not sim.orders(key.api_key)
    in_time = {"expTime": str(now_ms + 1)}
    status, body = await _raw(
        sim,
        clock,
        "POST",
        path,
        key=key,
        body={**order, "sz": "0.01", "clOrdId": "e2"},
        headers=in_time,
    )
    assert body["code"] == "0" and [o.client_order_id for o in sim.orders(key.api_key)] == ["e2"]


async def test_missing_headers_are_refused_with_okxs_codes(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, _, _ = await _trading(start_sim, clock, candle_rows)
    status, body = await _raw(sim, clock, "GET", "/api/v5/account/balance", key=None)
    assert (status, body["code"]) == (401, "50103")


async def test_each_endpoint_has_its_own_limit_per_window(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    _, exchange, _ = await _trading(start_sim, clock, candle_rows)
    clock.now = float((int(clock.now / 2) + 1) * 2)  # the start of the next 2 s window
    for _ in range(10):  # account/balance: 10 requests per 2 s per account
        await exchange.fetch_balance()
    with pytest.raises(ccxt.RateLimitExceeded, match='"code": "50011"'):
        await exchange.fetch_balance()
    # Another endpoint's limit is its own; the refused request was not counted.
    assert await exchange.fetch_open_orders(SYMBOL) == []
    clock.tick(2.0)
    await exchange.fetch_balance()


async def test_injected_faults_come_in_okxs_shapes_and_a_drop_executes_the_order(
    start_sim: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, clock, candle_rows)
    sim.faults = FaultPlan()
    sim.faults.force("500", 1, path="/api/v5/account/balance")
    with pytest.raises(ccxt.ExchangeNotAvailable, match='"code": "50026"'):
        await exchange.fetch_balance()
    sim.faults.force("429", 1, path="/api/v5/account/balance")
    with pytest.raises(ccxt.RateLimitExceeded, match='"code": "50011"'):
        await exchange.fetch_balance()
    # ccxt's create_order posts to trade/batch-orders: a state-changing endpoint.
    sim.faults.force("drop", 1, method="POST", path="/api/v5/trade/batch-orders")
    with pytest.raises(ccxt.NetworkError):
        await exchange.create_order(SYMBOL, "market", "buy", "0.01", None, {"clOrdId": "lost1"})
    assert [o.client_order_id for o in sim.orders(key.api_key)] == ["lost1"]
