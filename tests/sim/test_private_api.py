"""The simulator's signed Binance API, driven by ccxt's real binance client with keys.

Every call a spot engine makes (load_markets with keys, balances, orders,
cancels, lookups, trades) against the simulator, Binance's errors mapped by
ccxt to the exception classes it raises against the real exchange, matching
of resting orders along the replayed price path, and exact balances.
The candle slice starts on 2017-01-01; rows used below (time, o, h, l, c):

    [3]  00:03  967.37 967.40 967.37 967.39   (bullish: o, l, h, c by quarters)
    [7]  00:09  967.34 967.34 966.77 966.77   (bearish: o, h, l, c)
    [8]  00:11  965.79 965.79 965.79 965.79   (00:10 has no candle)
    [9]  00:12  965.79 965.79 965.79 965.79
    [10] 00:13  965.73 965.73 965.03 965.03
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from ccxt.base.errors import (
    AuthenticationError,
    BadRequest,
    DDoSProtection,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    OrderImmediatelyFillable,
    OrderNotFound,
)
from sim_support import MINUTE, FakeClock, start_at

from hean_sim.exchange import ApiKey, Balance, SimConfig, SimExchange, Status, generate_key_pair

D = Decimal
SYMBOL = "BTC/USDT"
START = 7  # 00:09, price 967.34


async def _trading(
    start_sim: Callable[..., Any],
    client: Callable[..., Any],
    clock: FakeClock,
    candle_rows: Any,
    **fields: Any,
) -> tuple[SimExchange, Any, ApiKey]:
    """A step-mode simulator at row START with one account, and a signed ccxt client."""
    path, rows = candle_rows
    key = generate_key_pair()
    settings: dict[str, Any] = {"speed": None, "start": start_at(rows, START), **fields}
    sim = await start_sim(data=path, clock=clock, keys=[key], **settings)
    exchange = client(sim, key, clock)
    await exchange.load_markets()
    return sim, exchange, key


def _sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


async def _raw(
    sim: SimExchange,
    method: str,
    path: str,
    *,
    key: ApiKey | None,
    query: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    sign: bool = True,
    secret: str | None = None,
) -> tuple[int, Any]:
    """A request signed by hand: Binance's totalParams = query string + body."""
    query_text = urlencode(query or {})
    body_text = urlencode(body or {})
    if sign and key is not None:
        signature = _sign(secret or key.secret, query_text + body_text)
        if body:
            body_text += f"&signature={signature}"
        else:
            query_text += ("&" if query_text else "") + f"signature={signature}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if key is not None:
        headers["X-MBX-APIKEY"] = key.api_key
    url = f"{sim.url}{path}" + (f"?{query_text}" if query_text else "")
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=body_text or None, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


# -- the calls a spot engine makes ----------------------------------------------


async def test_every_private_call_through_ccxt(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, client, clock, candle_rows)
    # load_markets with keys also fetched currencies (capital/config/getall).
    assert {"BTC", "USDT"} <= set(exchange.currencies)
    assert exchange.currencies["BTC"]["name"] == "Bitcoin"
    assert await exchange.fetch_time() == int(clock.now * 1000)

    balance = await exchange.fetch_balance()
    assert balance["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0}
    assert balance["BTC"]["total"] == 0.0

    bought = await exchange.create_order(SYMBOL, "market", "buy", 0.5)
    assert bought["status"] == "closed"
    assert bought["info"]["fills"] == [
        {
            "price": "967.34000000",
            "qty": "0.50000000",
            "commission": "0.00050000",
            "commissionAsset": "BTC",
            "tradeId": 1,
        }
    ]
    assert bought["info"]["cummulativeQuoteQty"] == "483.67000000"
    assert bought["clientOrderId"].startswith("x-")  # ccxt's broker prefix

    resting = await exchange.create_order(
        SYMBOL, "limit", "buy", 0.3, 950, {"clientOrderId": "rest-1"}
    )
    assert (resting["status"], resting["clientOrderId"], resting["filled"]) == ("open", "rest-1", 0)
    by_id = await exchange.fetch_order(resting["id"], SYMBOL)
    by_client = await exchange.fetch_order(None, SYMBOL, {"clientOrderId": "rest-1"})
    assert by_id["info"] == by_client["info"]
    assert set(by_id["info"]) == {
        "symbol",
        "orderId",
        "orderListId",
        "clientOrderId",
        "price",
        "origQty",
        "executedQty",
        "cummulativeQuoteQty",
        "status",
        "timeInForce",
        "type",
        "side",
        "stopPrice",
        "icebergQty",
        "time",
        "updateTime",
        "isWorking",
        "workingTime",
        "origQuoteOrderQty",
        "selfTradePreventionMode",
    }
    assert [o["id"] for o in await exchange.fetch_open_orders(SYMBOL)] == [resting["id"]]
    balance = await exchange.fetch_balance()
    assert balance["USDT"]["used"] == 285.0  # 0.3 x 950 locked

    trades = await exchange.fetch_my_trades(SYMBOL)
    assert [(t["order"], t["side"], t["takerOrMaker"]) for t in trades] == [
        (bought["id"], "buy", "taker")
    ]
    assert trades[0]["fee"] == {"currency": "BTC", "cost": 0.0005}
    since = await exchange.fetch_my_trades(SYMBOL, since=trades[0]["timestamp"] + 1)
    assert since == []
    by_order = await exchange.fetch_my_trades(SYMBOL, params={"orderId": bought["id"]})
    assert len(by_order) == 1

    cancelled = await exchange.cancel_order(None, SYMBOL, {"clientOrderId": "rest-1"})
    assert cancelled["status"] == "canceled"
    assert cancelled["info"]["origClientOrderId"] == "rest-1"
    second = await exchange.create_order(SYMBOL, "limit", "sell", 0.1, 990)
    third = await exchange.create_order(SYMBOL, "limit", "sell", 0.1, 991)
    assert (await exchange.cancel_order(second["id"], SYMBOL))["status"] == "canceled"
    everything = await exchange.cancel_all_orders(SYMBOL)
    assert [o["id"] for o in everything] == [third["id"]]
    assert await exchange.fetch_open_orders(SYMBOL) == []

    orders = await exchange.fetch_orders(SYMBOL)
    assert [o["status"] for o in orders] == ["closed", "canceled", "canceled", "canceled"]
    assert [o["id"] for o in orders] == ["1", "2", "3", "4"]
    # The simulator's view agrees.
    assert [o.status for o in sim.orders(key.api_key)] == [
        Status.FILLED,
        Status.CANCELED,
        Status.CANCELED,
        Status.CANCELED,
    ]
    assert sim.balance(key.api_key, "USDT") == Balance(D("9516.33"), D(0))
    assert sim.balance(key.api_key, "BTC") == Balance(D("0.4995"), D(0))


async def test_order_response_types(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    _, exchange, _ = await _trading(start_sim, client, clock, candle_rows)
    ack = await exchange.create_order(
        SYMBOL, "market", "buy", 0.01, None, {"newOrderRespType": "ACK"}
    )
    assert set(ack["info"]) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    result = await exchange.create_order(
        SYMBOL, "market", "buy", 0.01, None, {"newOrderRespType": "RESULT"}
    )
    assert "fills" not in result["info"] and result["info"]["status"] == "FILLED"
    full = await exchange.create_order(SYMBOL, "market", "buy", 0.01)
    assert len(full["info"]["fills"]) == 1


async def test_quote_order_qty_market_buy(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, client, clock, candle_rows)
    order = await exchange.create_order(SYMBOL, "market", "buy", None, None, {"cost": 100})
    # The most whole steps (1e-8) that 100 USDT buys at 967.34.
    qty = (D(100) / D("967.34")).quantize(D("0.00000001"), rounding="ROUND_FLOOR")
    assert D(order["info"]["executedQty"]) == qty
    assert D(order["info"]["origQuoteOrderQty"]) == D(100)
    assert sim.balance(key.api_key, "USDT").free == D(10000) - qty * D("967.34")


# -- authentication ---------------------------------------------------------------


async def test_wrong_secret_is_an_authentication_error_1022(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, _, key = await _trading(start_sim, client, clock, candle_rows)
    wrong = client(sim, ApiKey(key.api_key, "not-the-secret"), clock)
    with pytest.raises(AuthenticationError, match="-1022") as caught:
        await wrong.fetch_balance()
    assert "Signature for this request is not valid." in str(caught.value)


async def test_unknown_and_missing_api_keys(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, _, key = await _trading(start_sim, client, clock, candle_rows)
    stranger = client(sim, generate_key_pair(), clock)
    with pytest.raises(AuthenticationError, match="-2015"):
        await stranger.load_markets()  # the currencies need a valid key
    status, body = await _raw(sim, "GET", "/api/v3/account", key=None)
    assert (status, body["code"]) == (401, -2014)
    assert body["msg"] == "API-key format invalid."
    query = {"timestamp": int(clock.now * 1000)}
    status, body = await _raw(sim, "GET", "/api/v3/account", key=key, query=query, sign=False)
    assert (status, body["code"]) == (400, -1102)
    assert "'signature'" in body["msg"]


async def test_timestamp_outside_recv_window_is_1021(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, _, key = await _trading(start_sim, client, clock, candle_rows)
    late = FakeClock(clock.now - 10.5)  # ccxt's default recvWindow is 10 s
    stale = client(sim, key, late)
    with pytest.raises(InvalidNonce, match="-1021"):
        await stale.fetch_balance()
    early = client(sim, key, FakeClock(clock.now + 1.0))  # 1000 ms ahead: refused
    with pytest.raises(InvalidNonce, match="ahead of the server"):
        await early.fetch_balance()
    just = client(sim, key, FakeClock(clock.now + 0.999))
    await just.fetch_balance()
    # Binance's default window (5000 ms) when the client sends none.
    now = int(clock.now * 1000)
    status, body = await _raw(
        sim, "GET", "/api/v3/account", key=key, query={"timestamp": now - 5001}
    )
    assert (status, body["code"]) == (400, -1021)
    status, _ = await _raw(sim, "GET", "/api/v3/account", key=key, query={"timestamp": now - 5000})
    assert status == 200
    status, body = await _raw(
        sim, "GET", "/api/v3/account", key=key, query={"timestamp": now, "recvWindow": 60001}
    )
    assert (status, body["code"]) == (400, -1131)


async def test_signature_covers_query_then_body_and_the_query_wins(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, _, key = await _trading(start_sim, client, clock, candle_rows)
    now = int(clock.now * 1000)
    # symbol in the query string, the rest in the body: signed as query + body.
    status, body = await _raw(
        sim,
        "POST",
        "/api/v3/order",
        key=key,
        query={"symbol": "BTCUSDT"},
        body={"side": "BUY", "type": "MARKET", "quantity": "0.01", "timestamp": now},
    )
    assert status == 200, body
    assert body["status"] == "FILLED"
    status, body = await _raw(
        sim,
        "POST",
        "/api/v3/order",
        key=key,
        query={"symbol": "BTCUSDT"},
        body={"side": "BUY", "type": "MARKET", "quantity": "0.01", "timestamp": now},
        secret="x" * 64,
    )
    assert (status, body["code"]) == (400, -1022)


# -- Binance's refusals, as ccxt raises them --------------------------------------


async def test_filters_reject_with_1013(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(
        start_sim,
        client,
        clock,
        candle_rows,
        min_qty=D("0.001"),
        step_size=D("0.0001"),
        min_notional=D(10),
    )
    with pytest.raises(InvalidOrder, match="Filter failure: LOT_SIZE"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.0005, 950)
    # ccxt rounds amounts to the step itself: off-step quantities come from
    # clients that do not.
    body = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01105"}
    status, answer = await _raw(
        sim, "POST", "/api/v3/order", key=key, body={**body, "timestamp": int(clock.now * 1000)}
    )
    assert (status, answer) == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    with pytest.raises(InvalidOrder, match="Filter failure: PRICE_FILTER"):
        await exchange.create_order(SYMBOL, "limit", "sell", 0.01, 2_000_000)
    # ccxt maps NOTIONAL (by its code, -1013) to BadRequest, as against Binance.
    with pytest.raises(BadRequest, match="Filter failure: NOTIONAL"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950)  # 9.50 < 10
    with pytest.raises(BadRequest, match="Filter failure: NOTIONAL"):
        await exchange.create_order(SYMBOL, "market", "buy", 0.01)  # 9.6734 < 10
    await exchange.create_order(SYMBOL, "market", "buy", 0.011)


async def test_min_notional_filter_when_configured(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    _, exchange, _ = await _trading(
        start_sim, client, clock, candle_rows, notional_filter="MIN_NOTIONAL", min_notional=D(10)
    )
    with pytest.raises(BadRequest, match="Filter failure: MIN_NOTIONAL"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950)


async def test_insufficient_balance(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, client, clock, candle_rows)
    # ccxt maps this -2010 by its message (the code alone means InvalidOrder).
    with pytest.raises(InsufficientFunds, match="insufficient balance"):
        await exchange.create_order(SYMBOL, "market", "sell", 0.01)  # no BTC
    with pytest.raises(InsufficientFunds):
        await exchange.create_order(SYMBOL, "limit", "buy", 11, 950)  # 10450 > 10000
    # A limit buy is checked at its own price, even when marketable.
    with pytest.raises(InsufficientFunds):
        await exchange.create_order(SYMBOL, "limit", "buy", 10, 1001)
    await exchange.create_order(SYMBOL, "limit", "buy", 10, 1000)  # fills at 967.34
    assert sim.balance(key.api_key, "USDT").free == D(10000) - D("9673.4")
    assert sim.orders(key.api_key) != []
    assert len(sim.orders(key.api_key)) == 1  # refused orders leave nothing behind


async def test_unknown_orders(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, _ = await _trading(start_sim, client, clock, candle_rows)
    with pytest.raises(OrderNotFound, match="-2011"):
        await exchange.cancel_order("12345", SYMBOL)
    with pytest.raises(OrderNotFound, match="-2013"):
        await exchange.fetch_order("12345", SYMBOL)
    with pytest.raises(OrderNotFound, match=r"Order does not exist\."):
        await exchange.fetch_order(None, SYMBOL, {"clientOrderId": "nope"})
    filled = await exchange.create_order(SYMBOL, "market", "buy", 0.01)
    with pytest.raises(OrderNotFound, match=r"Unknown order sent\."):
        await exchange.cancel_order(filled["id"], SYMBOL)  # not open any more
    with pytest.raises(OrderNotFound, match="-2011"):
        await exchange.cancel_all_orders(SYMBOL)  # nothing open
    # Another account's order is unknown too.
    other = sim.add_account()
    stranger = client(sim, other, clock)
    with pytest.raises(OrderNotFound):
        await stranger.fetch_order(filled["id"], SYMBOL)
    assert sim.balances(other.api_key)["USDT"] == Balance(D(10000), D(0))


async def test_duplicate_client_id_refused_only_while_the_order_is_open(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, client, clock, candle_rows)
    tag = {"clientOrderId": "my-order-1"}
    await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950, tag)
    with pytest.raises(InvalidOrder, match=r"Duplicate order sent\.") as refused:
        await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950, tag)
    assert "-2010" in str(refused.value)
    await exchange.cancel_order(None, SYMBOL, tag)
    # A cancelled order's client id may be reused...
    await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950, tag)
    await exchange.cancel_order(None, SYMBOL, tag)
    # ...and so may a filled one's: the trap a blind retry falls into.
    once = {"clientOrderId": "buy-once"}
    await exchange.create_order(SYMBOL, "market", "buy", 0.01, None, once)
    again = await exchange.create_order(SYMBOL, "market", "buy", 0.01, None, once)
    assert again["status"] == "closed"
    assert [o.client_order_id for o in sim.orders(key.api_key)].count("buy-once") == 2
    # Lookups by client id find the latest order with it.
    assert (await exchange.fetch_order(None, SYMBOL, once))["id"] == again["id"]
    assert sim.order(key.api_key, client_order_id="buy-once").order_id == int(again["id"])
    # Another account may use the same id while this one's is open.
    await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950, tag)
    other = client(sim, sim.add_account(), clock)
    await other.create_order(SYMBOL, "limit", "buy", 0.01, 950, tag)


async def test_ioc_expires_and_limit_maker_refuses_to_take(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, client, clock, candle_rows)
    expired = await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950, {"timeInForce": "IOC"})
    assert expired["status"] == "expired"
    assert sim.balance(key.api_key, "USDT") == Balance(D(10000), D(0))
    with pytest.raises(OrderImmediatelyFillable, match="immediately match and take"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 970, {"postOnly": True})
    maker = await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950, {"postOnly": True})
    assert maker["info"]["type"] == "LIMIT_MAKER" and maker["status"] == "open"


async def test_parameters_checked_as_binance_checks_them(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, _, key = await _trading(start_sim, client, clock, candle_rows)
    now = int(clock.now * 1000)
    order = {"symbol": "BTCUSDT", "side": "BUY", "timestamp": now}
    cases: list[tuple[dict[str, Any], int]] = [
        ({**order, "type": "LIMIT", "quantity": "0.01", "price": "950"}, -1102),  # timeInForce
        ({**order, "type": "MARKET"}, -1102),  # quantity or quoteOrderQty
        ({**order, "type": "MARKET", "quantity": "0.01", "price": "950"}, -1106),
        ({**order, "type": "MARKET", "quantity": "0.000000001"}, -1111),
        ({**order, "type": "MARKET", "quantity": "1e-3"}, -1100),
        ({**order, "type": "LIMIT_BUY", "quantity": "0.01"}, -1116),
        ({**order, "type": "STOP_LOSS", "quantity": "0.01"}, -1020),
        ({**order, "side": "UP", "type": "MARKET", "quantity": "0.01"}, -1117),
        ({**order, "type": "MARKET", "quantity": "0.01", "bogus": "1"}, -1104),
        ({**order, "symbol": "ETHBTC", "type": "MARKET", "quantity": "0.01"}, -1121),
        ({**order, "type": "MARKET", "quantity": "0.01", "newClientOrderId": "a b"}, -1100),
    ]
    for body, code in cases:
        status, answer = await _raw(sim, "POST", "/api/v3/order", key=key, body=body)
        assert (status, answer["code"]) == (400, code), (body, answer)
    query = {"symbol": "BTCUSDT", "timestamp": now}
    status, answer = await _raw(sim, "GET", "/api/v3/order", key=key, query=query)
    assert (status, answer["code"]) == (400, -1102)
    day = 86_400_000
    window = {**query, "startTime": now - day - 1, "endTime": now}
    status, answer = await _raw(sim, "GET", "/api/v3/myTrades", key=key, query=window)
    assert (status, answer["code"]) == (400, -1127)
    status, answer = await _raw(
        sim, "GET", "/api/v3/myTrades", key=key, query={**query, "fromId": 1, "startTime": now}
    )
    assert (status, answer["code"]) == (400, -1128)
    assert sim.orders(key.api_key) == []


async def test_order_rate_limit_is_1015(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    _, exchange, _ = await _trading(start_sim, client, clock, candle_rows)
    clock.now = (clock.now // 10 + 1) * 10  # the start of a 10-second window
    for _ in range(100):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950)
    assert exchange.last_response_headers["X-MBX-ORDER-COUNT-10S"] == "100"
    with pytest.raises(DDoSProtection, match="-1015"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950)
    clock.tick(10)
    await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 950)
    assert exchange.last_response_headers["X-MBX-ORDER-COUNT-10S"] == "1"
    assert exchange.last_response_headers["X-MBX-ORDER-COUNT-1D"] == "101"


# -- matching along the price path ------------------------------------------------


async def test_limit_order_rests_then_fills_when_the_market_trades_through(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, client, clock, candle_rows)
    _, rows = candle_rows
    offset = sim.market.offset_ms
    through = await exchange.create_order(SYMBOL, "limit", "buy", 0.3, 966)
    at_low = await exchange.create_order(SYMBOL, "limit", "buy", 0.1, "965.79")
    assert sim.balance(key.api_key, "USDT") == Balance(D("9613.621"), D("386.379"))

    # Step mode: each market-data request reveals one more candle. The first
    # finishes 00:09 (low 966.77: above both limits).
    await exchange.fetch_ticker(SYMBOL)
    assert (await exchange.fetch_order(through["id"], SYMBOL))["status"] == "open"
    # The next reveals 00:11 at 965.79: through 966, only AT 965.79 (no fill).
    await exchange.fetch_ticker(SYMBOL)
    filled = await exchange.fetch_order(through["id"], SYMBOL)
    assert filled["status"] == "closed"
    assert filled["info"]["updateTime"] == rows[8].ts + offset  # the candle's open
    assert (await exchange.fetch_order(at_low["id"], SYMBOL))["status"] == "open"
    (trade,) = await exchange.fetch_my_trades(SYMBOL, params={"orderId": through["id"]})
    assert (trade["price"], trade["amount"], trade["takerOrMaker"]) == (966.0, 0.3, "maker")
    assert trade["timestamp"] == rows[8].ts + offset

    # The next finishes 00:12 (still 965.79), which opens 00:13 at 965.73:
    # through 965.79, at the instant 00:13 opened.
    await exchange.fetch_ticker(SYMBOL)
    done = await exchange.fetch_order(at_low["id"], SYMBOL)
    assert done["status"] == "closed"
    assert done["lastTradeTimestamp"] == rows[10].ts + offset
    # Locked quote spent exactly; base received less the maker commission.
    assert sim.balance(key.api_key, "USDT") == Balance(D("9613.621"), D(0))
    assert sim.balance(key.api_key, "BTC") == Balance(D("0.3996"), D(0))


async def test_resting_orders_fill_in_timed_mode_at_the_point_that_went_through(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, client, clock, candle_rows, speed=60.0)
    _, rows = candle_rows
    offset = sim.market.offset_ms
    await exchange.create_order(SYMBOL, "market", "buy", 0.5)
    sell = await exchange.create_order(SYMBOL, "limit", "sell", 0.2, "967.5")
    buy = await exchange.create_order(SYMBOL, "limit", "buy", 0.1, 966)
    # 00:09 opens at 967.34 and stays there for its first quarter, then goes
    # to its high (967.34) and its low (966.77): never above 967.5.
    clock.tick(0.75)  # 45 data seconds
    assert (await exchange.fetch_order(sell["id"], SYMBOL))["status"] == "open"
    clock.tick(1.5)  # into 00:11 (965.79): the buy went through at 00:11:00
    assert sim.order(key.api_key, int(buy["id"])).status is Status.FILLED
    (trade,) = [t for t in sim.trades(key.api_key) if t.order_id == int(buy["id"])]
    assert trade.time == rows[8].ts + offset
    assert (trade.price, trade.is_maker) == (D(966), True)
    assert sim.order(key.api_key, int(sell["id"])).status is Status.NEW


async def test_a_sell_limit_fills_when_the_price_goes_above(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    # From 00:00 (966.61) the market rises to 967.79 by 00:05.
    sim, exchange, key = await _trading(
        start_sim, client, clock, candle_rows, start=start_at(candle_rows[1], 0)
    )
    await exchange.create_order(SYMBOL, "market", "buy", 1)
    sell = await exchange.create_order(SYMBOL, "limit", "sell", "0.5", "967.39")
    sim.market.step(4)  # 00:03 reached 967.40 at its high; 00:04 is AT 967.39
    order = sim.order(key.api_key, int(sell["id"]))
    assert order.status is Status.FILLED
    (fill,) = order.fills
    assert fill.time == candle_rows[1][3].ts + 30_000 + sim.market.offset_ms  # the high quarter
    assert fill.commission == D("0.483695") and fill.commission_asset == "USDT"


async def test_a_marketable_limit_fills_at_once_as_taker_at_the_current_price(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    _, exchange, _ = await _trading(start_sim, client, clock, candle_rows)
    order = await exchange.create_order(SYMBOL, "limit", "buy", 0.1, 1000)
    assert order["status"] == "closed"
    assert order["info"]["fills"][0]["price"] == "967.34000000"
    assert order["price"] == 1000 and order["average"] == 967.34
    (trade,) = await exchange.fetch_my_trades(SYMBOL)
    assert trade["takerOrMaker"] == "taker"


async def test_balances_exact_after_a_sequence_of_trades(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(
        start_sim, client, clock, candle_rows, maker_fee=D("0.0002"), taker_fee=D("0.00075")
    )
    usdt, btc = D(10000), D(0)
    # 1. Market buy 0.12345678 at 967.34: commission 0.12345678 x 0.00075
    #    = 0.0000925925850 BTC, rounded half-even to 0.00009259.
    await exchange.create_order(SYMBOL, "market", "buy", 0.12345678)
    usdt -= D("0.12345678") * D("967.34")  # 119.4246815652, never rounded
    btc += D("0.12345678") - D("0.00009259")
    # 2. Limit buy 0.3 at 966 rests (290 locked), fills as maker at 00:11.
    await exchange.create_order(SYMBOL, "limit", "buy", 0.3, 966)
    # 3. Limit sell 0.1 at 968 rests (0.1 BTC locked).
    sell = await exchange.create_order(SYMBOL, "limit", "sell", 0.1, 968)
    assert sim.balance(key.api_key, "USDT") == Balance(usdt - D("289.8"), D("289.8"))
    assert sim.balance(key.api_key, "BTC") == Balance(btc - D("0.1"), D("0.1"))
    sim.market.step(2)  # to the end of 00:11 (965.79)
    usdt -= D("289.8")
    btc += D("0.3") - D("0.00006")  # 0.3 x 0.0002
    # 4. Market sell 0.05 at 965.79: 48.2895, commission 0.03621712 (of 0.036217125).
    await exchange.create_order(SYMBOL, "market", "sell", 0.05)
    usdt += D("48.2895") - D("0.03621712")
    btc -= D("0.05")
    # 5. Cancel the sell: 0.1 BTC back.
    await exchange.cancel_order(sell["id"], SYMBOL)
    assert sim.balance(key.api_key, "USDT") == Balance(usdt, D(0))
    assert sim.balance(key.api_key, "BTC") == Balance(btc, D(0))
    assert usdt == D("9639.0286013148") and btc == D("0.37330419")
    info = (await exchange.fetch_balance())["info"]
    assert {b["asset"]: b["free"] for b in info["balances"]} == {
        "BTC": "0.37330419",
        "USDT": "9639.0286013148",
    }
    fees = [(t.commission, t.commission_asset) for t in sim.trades(key.api_key)]
    assert fees == [(D("0.00009259"), "BTC"), (D("0.00006"), "BTC"), (D("0.03621712"), "USDT")]


# -- test and operations hooks ----------------------------------------------------


async def test_hooks_adjust_balance_and_partial_fills(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, key = await _trading(start_sim, client, clock, candle_rows)
    assert sim.adjust_balance(key.api_key, "usdt", D("-2500.5")) == Balance(D("7499.5"), D(0))
    assert sim.adjust_balance(key.api_key, "ETH", 3) == Balance(D(3), D(0))
    assert (await exchange.fetch_balance())["ETH"]["free"] == 3.0
    with pytest.raises(ValueError, match="negative"):
        sim.adjust_balance(key.api_key, "BTC", D("-0.1"))

    order = await exchange.create_order(SYMBOL, "limit", "buy", 1, 900)
    partial = sim.fill_order(key.api_key, int(order["id"]), D("0.25"))
    assert (partial.status, partial.executed_qty) == (Status.PARTIALLY_FILLED, D("0.25"))
    seen = await exchange.fetch_order(order["id"], SYMBOL)
    assert (seen["status"], seen["filled"], seen["remaining"]) == ("open", 0.25, 0.75)
    assert seen["info"]["status"] == "PARTIALLY_FILLED"
    cancelled = await exchange.cancel_order(order["id"], SYMBOL)
    assert (cancelled["status"], cancelled["filled"]) == ("canceled", 0.25)
    assert sim.balance(key.api_key, "USDT") == Balance(D("7499.5") - D(225), D(0))
    assert sim.balance(key.api_key, "BTC").free == D("0.25") - D("0.00025")
    with pytest.raises(KeyError):
        sim.balances("no-such-key")


def test_price_steps_are_the_path_last_price_shows(
    clock: FakeClock, candle_rows: Any, trade_rows: Any
) -> None:
    """Matching walks `price_steps`; they must be exactly what `last_price` reveals."""
    for path, rows, symbol in ((*candle_rows, "BTC/USDT"), (*trade_rows, "BNT/ETH")):
        sim = SimExchange(SimConfig(data=path, symbol=symbol, clock=clock, speed=None))
        market = sim.market
        begin = market.data_now_ms()
        market.advance(40 * MINUTE)
        end = market.data_now_ms()
        steps = list(market.price_steps(begin, end))
        assert steps, symbol
        times = [t for t, _ in steps]
        assert times == sorted(times) and begin < times[0] and times[-1] <= end
        # Trades sharing a millisecond are all points; the last is the price then.
        last = dict(steps)
        moments = sorted(last)
        for t, nxt in zip(moments, [*moments[1:], end + 1], strict=True):
            assert market.price_at(t) == last[t]
            assert market.price_at(nxt - 1) == last[t]  # constant until the next point
        if symbol == "BNT/ETH":
            visible = [r for r in rows if begin < r.ts <= end]
            assert [(t, str(p)) for t, p in steps] == [(r.ts, str(D(r.fields[1]))) for r in visible]
        else:
            o, h, lo, c = (D(x) for x in rows[0].fields[:4])
            # The first candle (flat at 966.61) has points at 15 s, 30 s, 45 s.
            assert steps[:3] == [(rows[0].ts + q * 15_000, o) for q in (1, 2, 3)]
            assert (h, lo, c) == (o, o, o)
