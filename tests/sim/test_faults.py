"""Fault injection: the spec grammar, seeded draws, and what ccxt sees for each kind.

Forced faults make every case deterministic; the one test that needs a real
client timeout uses a 200 ms one. Latency is recorded, not slept.

Mind aiohttp (under ccxt): a GET or DELETE whose connection is closed or
reset without a response is sent once more, transparently. So a reset GET
usually succeeds on its second try, and a dropped cancel comes back as
-2011 (OrderNotFound) from its retry, although it did cancel: the tests
below pin both, since that is what an engine meets in production.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import ccxt
import pytest
from ccxt.base.errors import (
    DDoSProtection,
    ExchangeNotAvailable,
    InvalidOrder,
    NetworkError,
    OperationFailed,
    OrderNotFound,
    RequestTimeout,
)
from sim_support import FakeClock

from hean_sim.exchange import Fault, FaultPlan, FaultSpecError, SimExchange, Status

SYMBOL = "BTC/USDT"
ORDER = ("POST", "/api/v3/order")


async def _trading(
    start_sim: Callable[..., Any],
    client: Callable[..., Any],
    clock: FakeClock,
    candle_rows: Any,
    **ccxt_config: Any,
) -> tuple[SimExchange, Any, str]:
    path, _ = candle_rows
    sim = await start_sim(data=path, clock=clock, speed=None)
    key = sim.add_account()
    exchange = client(sim, key, clock, **ccxt_config)
    await exchange.load_markets()
    return sim, exchange, key.api_key


# -- the spec -------------------------------------------------------------------------


def test_the_spec_grammar() -> None:
    plan = FaultPlan.parse(
        "latency=20ms~10ms, 5xx=0.06,429=0.01:3,reset=2%,timeout=0.01:2s,drop=0.05", seed=1
    )
    assert (plan.latency, plan.jitter, plan.burst, plan.hold, plan.seed) == (
        0.02,
        0.01,
        3,
        2.0,
        1,
    )
    assert plan.rates == pytest.approx(
        {
            Fault.E500: 0.02,
            Fault.E502: 0.02,
            Fault.E503: 0.02,
            Fault.TOO_MANY: 0.01,
            Fault.RESET: 0.02,
            Fault.TIMEOUT: 0.01,
            Fault.DROP: 0.05,
        }
    )
    assert FaultPlan.parse("latency=1.5s").latency == 1.5
    assert FaultPlan.parse("503=1").rates == {Fault.E503: 1.0}
    empty = FaultPlan.parse("")
    assert not empty.active and empty.draw("GET", "/", False) is None


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("latency=20", "'latency=20': bad duration '20'"),
        ("latency=5ms~x", "bad duration 'x'"),
        ("5xx=2", "'5xx=2': probability '2' is not between 0 and 1"),
        ("reset=lots", "'reset=lots': bad probability 'lots'"),
        ("429=0.1:0", "'429=0.1:0': bad burst length '0'"),
        ("drop=0.1:3", "'drop=0.1:3': drop takes no ':' part"),
        ("timeout=0.1:2x", "'timeout=0.1:2x': bad duration '2x'"),
        ("nope=0.1", "'nope=0.1': unknown fault 'nope'"),
        ("reset", "'reset': expected KIND=VALUE"),
        ("drop=0.1,drop=0.2", "'drop=0.2': drop is given twice"),
        ("reset=0.1,,drop=0.1", "empty item"),
        ("5xx=0.3,500=0.1", "either 5xx or 500/502/503"),
        ("reset=0.6,drop=0.6", "add up to 1.2"),
    ],
)
def test_bad_specs_name_the_bad_part(spec: str, named: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        FaultPlan.parse(spec)
    assert named in str(caught.value)


def test_the_same_seed_injects_the_same_faults() -> None:
    spec = "5xx=0.1,429=0.05:2,reset=0.05,timeout=0.05,drop=0.2"
    requests = [ORDER if i % 3 == 0 else ("GET", "/api/v3/klines") for i in range(2000)]

    def run(seed: int) -> list[Fault | None]:
        plan = FaultPlan.parse(spec, seed=seed)
        return [plan.draw(m, p, (m, p) == ORDER) for m, p in requests]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    # drop only on the order endpoint; everything in roughly its proportion.
    assert all(f is not Fault.DROP for f, r in zip(first, requests, strict=True) if r != ORDER)
    assert 0.03 < first.count(Fault.RESET) / len(first) < 0.07
    assert first.count(None) > len(first) / 2


def test_a_429_burst_takes_the_next_requests_without_drawing() -> None:
    plan = FaultPlan(rates={Fault.TOO_MANY: 0.3}, burst=3, seed=5)
    replica = random.Random(5)
    draws = [plan.draw("GET", "/api/v3/time", False) for _ in range(40)]
    expected: list[Fault | None] = []
    left = 0
    for _ in range(40):
        if left:
            left -= 1
            expected.append(Fault.TOO_MANY)
        elif replica.random() < 0.3:
            left = 2
            expected.append(Fault.TOO_MANY)
        else:
            expected.append(None)
    assert draws == expected
    assert plan.injected[Fault.TOO_MANY] == expected.count(Fault.TOO_MANY)


def test_forcing() -> None:
    plan = FaultPlan(seed=1)
    plan.force("drop")
    plan.force(Fault.RESET, 2, method="get", path="/api/v3/account")
    assert plan.pending == 3
    assert plan.draw("GET", "/api/v3/time", False) is None  # neither matches
    assert plan.draw("GET", "/api/v3/account", False) is Fault.RESET
    assert plan.draw("POST", "/api/v3/order", True) is Fault.DROP
    assert plan.draw("GET", "/api/v3/account", False) is Fault.RESET
    assert plan.pending == 0
    assert dict(plan.injected) == {Fault.RESET: 2, Fault.DROP: 1}
    with pytest.raises(ValueError, match="latency"):
        plan.force("latency")
    with pytest.raises(ValueError, match="'bogus' is not a valid Fault"):
        plan.force("bogus")


# -- what ccxt sees ---------------------------------------------------------------


async def test_latency_delays_every_request_by_the_seeded_amount(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, _ = await _trading(start_sim, client, clock, candle_rows)
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds)

    sim.sleep = record
    sim.faults = FaultPlan.parse("latency=20ms~10ms", seed=3)
    for _ in range(5):
        await exchange.fetch_time()
    replica = random.Random(3)
    assert delays == [0.02 + replica.uniform(0, 0.01) for _ in range(5)]
    assert all(0.02 <= d <= 0.03 for d in delays)
    assert sim.faults.injected[Fault.LATENCY] == 5


async def test_server_errors_are_not_executed(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, api_key = await _trading(start_sim, client, clock, candle_rows)
    # Binance's JSON errors are mapped by their code: -1000 and -1001 are
    # OperationFailed, the base class of NetworkError (a retry policy that
    # catches only NetworkError misses them); a gateway's 502 page by status.
    sim.faults.force("500", method="POST", path="/api/v3/order")
    with pytest.raises(OperationFailed, match="-1000") as caught:
        await exchange.create_order(SYMBOL, "market", "buy", 0.01)
    assert not isinstance(caught.value, NetworkError)
    sim.faults.force("502")
    with pytest.raises(ExchangeNotAvailable, match="502 Bad Gateway"):
        await exchange.create_order(SYMBOL, "market", "buy", 0.01)
    sim.faults.force("503")
    with pytest.raises(OperationFailed, match="-1001"):
        await exchange.create_order(SYMBOL, "market", "buy", 0.01)
    assert exchange.last_response_headers["Retry-After"] == "1"
    assert sim.orders(api_key) == []
    assert sim.faults.injected == {Fault.E500: 1, Fault.E502: 1, Fault.E503: 1}


async def test_forced_429s_then_service_resumes(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, _ = await _trading(start_sim, client, clock, candle_rows)
    sim.faults.force("429", 3)
    for _ in range(3):
        with pytest.raises(DDoSProtection, match="-1003"):
            await exchange.fetch_balance()
        assert exchange.last_response_headers["Retry-After"] == "1"
    await exchange.fetch_balance()
    # The weight limiter knows nothing of them: no back-off, no ban.
    assert sim.limiter.used("127.0.0.1") < 100


async def test_reset_is_a_network_error_and_not_executed(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, api_key = await _trading(start_sim, client, clock, candle_rows)
    sim.faults.force("reset", method="POST", path="/api/v3/order")
    with pytest.raises(ExchangeNotAvailable) as caught:
        await exchange.create_order(SYMBOL, "market", "buy", 0.01)
    assert "reset by peer" in str(caught.value.__cause__)
    assert sim.orders(api_key) == []
    await exchange.create_order(SYMBOL, "market", "buy", 0.01)  # a new connection
    assert len(sim.orders(api_key)) == 1
    # A GET is retried once by aiohttp: one reset goes unnoticed, two do not.
    sim.faults.force("reset", method="GET")
    await exchange.fetch_balance()
    sim.faults.force("reset", 2, method="GET")
    with pytest.raises(ExchangeNotAvailable):
        await exchange.fetch_balance()
    assert sim.faults.injected == {Fault.RESET: 4}


async def test_timeout_holds_then_closes_without_executing(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, api_key = await _trading(start_sim, client, clock, candle_rows, timeout=200)
    sim.faults.force("timeout", method="POST")  # held for 30 s by default
    began = time.monotonic()
    with pytest.raises(RequestTimeout):
        await exchange.create_order(SYMBOL, "market", "buy", 0.01)
    assert time.monotonic() - began < 5
    assert sim.orders(api_key) == []
    # A hold shorter than the client's timeout: the connection just closes.
    sim.faults.hold = 0
    sim.faults.force("timeout")
    with pytest.raises(ExchangeNotAvailable) as caught:
        await exchange.create_order(SYMBOL, "market", "buy", 0.01)
    assert "Server disconnected" in str(caught.value.__cause__)
    assert sim.orders(api_key) == []
    began = time.monotonic()
    await sim.stop()  # releases the request still held
    assert time.monotonic() - began < 5


async def test_drop_executes_then_hangs_up_the_classic_duplicate(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, api_key = await _trading(start_sim, client, clock, candle_rows)
    sim.faults.force("drop")
    await exchange.fetch_balance()  # reads are never dropped: the drop waits
    assert sim.faults.pending == 1
    with pytest.raises(ExchangeNotAvailable):
        await exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "buy-1"})
    (placed,) = sim.orders(api_key)
    assert (placed.client_order_id, placed.status) == ("buy-1", Status.FILLED)
    # A blind retry with the same client id is accepted (the first is no
    # longer open): two buys for one intent.
    await exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "buy-1"})
    assert [o.client_order_id for o in sim.orders(api_key)] == ["buy-1", "buy-1"]
    # A resting order's retry is refused, and the lookup finds the original.
    sim.faults.force("drop")
    with pytest.raises(ExchangeNotAvailable):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 900, {"clientOrderId": "l-1"})
    with pytest.raises(InvalidOrder, match="Duplicate order sent"):
        await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 900, {"clientOrderId": "l-1"})
    found = await exchange.fetch_order(None, SYMBOL, {"clientOrderId": "l-1"})
    assert found["status"] == "open"
    # A dropped cancel cancelled; aiohttp resent the DELETE, whose answer is
    # "Unknown order sent." (the order is no longer open).
    sim.faults.force("drop", method="DELETE")
    with pytest.raises(OrderNotFound, match="-2011"):
        await exchange.cancel_order(found["id"], SYMBOL)
    assert sim.order(api_key, int(found["id"])).status is Status.CANCELED
    assert sim.faults.injected == {Fault.DROP: 3}


async def test_random_faults_through_ccxt_are_counted(
    start_sim: Callable[..., Any], client: Callable[..., Any], clock: FakeClock, candle_rows: Any
) -> None:
    sim, exchange, api_key = await _trading(start_sim, client, clock, candle_rows)
    sim.faults = FaultPlan.parse("5xx=0.3,429=0.1,reset=0.1,drop=0.1", seed=11)
    raised: list[ccxt.BaseError] = []
    for _ in range(60):  # new orders: POSTs, which nothing retries
        try:
            await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 900)
        except ccxt.BaseError as exc:
            raised.append(exc)
    assert all(isinstance(exc, OperationFailed) for exc in raised)  # and NetworkError
    seen = Counter(type(exc).__name__ for exc in raised)
    injected = sim.faults.injected
    assert seen["DDoSProtection"] == injected[Fault.TOO_MANY]
    assert seen["ExchangeNotAvailable"] == (
        injected[Fault.RESET] + injected[Fault.E502] + injected[Fault.DROP]
    )
    assert seen["OperationFailed"] == injected[Fault.E500] + injected[Fault.E503]
    assert sum(injected.values()) == len(raised)
    assert all(injected[kind] > 0 for kind in Fault if kind not in (Fault.LATENCY, Fault.TIMEOUT))
    # Every request that got an answer, and every dropped one, placed its order.
    assert len(sim.orders(api_key)) == 60 - len(raised) + injected[Fault.DROP]
