"""The risk engine: every rejection reason, risk states, automatic halts, and properties."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine_support import (
    MINUTE,
    T0,
    ScriptedStrategy,
    build_scripted_engine,
    candle,
    run_session,
    session_specs,
    session_steps,
    spec_dict,
    trade,
)
from hean_contract.spec import parse_spec
from hean_engine.app.assembly import Engine
from hean_engine.kernel.engine import KernelEvent
from hean_engine.model.orders import (
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    RiskState,
    Side,
)
from hean_engine.portfolio.ledger import Ledger
from hean_engine.risk.engine import RiskEngine

D = Decimal


def _engine(**overrides: Any) -> tuple[Engine, ScriptedStrategy]:
    """A scripted engine (no fees) that has seen one candle at 100."""
    overrides.setdefault("paper", {}).setdefault("feeRate", "0")
    engine, scripted = build_scripted_engine(spec_dict(**overrides))
    engine.kernel.on_candle(candle(0, 100.0))
    return engine, scripted


def _buy(quantity: str, price: str | None = None) -> OrderIntent:
    if price is None:
        return OrderIntent(Side.BUY, D(quantity))
    return OrderIntent(Side.BUY, D(quantity), OrderType.LIMIT, D(price))


def _sell(quantity: str, price: str | None = None) -> OrderIntent:
    if price is None:
        return OrderIntent(Side.SELL, D(quantity))
    return OrderIntent(Side.SELL, D(quantity), OrderType.LIMIT, D(price))


# -- one minimal case per rejection reason ------------------------------------------------


def test_paused_rejects_everything() -> None:
    engine, _ = _engine(paused=True, paper={"startingBalances": {"USD": "1000", "BTC": "1"}})
    assert engine.kernel.submit(_buy("1")) is None
    assert engine.kernel.submit(_sell("1")) is None
    assert engine.risk.rejections == Counter({"paused": 2})
    engine.kernel.resume()
    assert engine.kernel.submit(_sell("1")) is not None


def test_halted_rejects_everything() -> None:
    engine, _ = _engine(halt=True, paper={"startingBalances": {"USD": "1000", "BTC": "1"}})
    assert engine.risk.state is RiskState.HALTED
    assert engine.risk.state_reason == "spec.halt"
    assert engine.kernel.submit(_buy("1")) is None
    assert engine.kernel.submit(_sell("1", "120")) is None
    assert engine.risk.rejections == Counter({"halted": 2})


def test_reducing_allows_sells_only() -> None:
    engine, _ = _engine(paper={"startingBalances": {"USD": "1000", "BTC": "1"}})
    engine.kernel.set_risk_state(RiskState.REDUCING, "test")
    assert engine.kernel.submit(_buy("0.1")) is None
    assert engine.kernel.submit(_buy("0.1", "90")) is None
    assert engine.risk.rejections == Counter({"reducing": 2})
    order = engine.kernel.submit(_sell("0.4"))
    assert order is not None and order.side is Side.SELL
    assert engine.kernel.submit(_sell("0.6", "150")) is not None
    assert engine.risk.rejections == Counter({"reducing": 2})


def test_max_order_notional() -> None:
    engine, _ = _engine(risk={"maxOrderNotional": "100"})
    assert engine.kernel.submit(_buy("1.01")) is None  # 101 at the last close
    assert engine.kernel.submit(_buy("2", "50.01")) is None  # a limit uses its own price
    assert engine.risk.rejections == Counter({"max_order_notional": 2})
    assert engine.kernel.submit(_buy("1")) is not None  # exactly 100
    assert engine.kernel.submit(_buy("2", "50")) is not None


def test_exits_are_never_blocked_by_size_limits() -> None:
    engine, _ = _engine(
        risk={"maxOrderNotional": "10", "maxPositionNotional": "10"},
        paper={"startingBalances": {"USD": "0", "BTC": "5"}},
    )
    assert engine.kernel.submit(_sell("5")) is not None  # 500 of notional
    assert not engine.risk.rejections


def test_max_position_notional_counts_the_position_and_working_buys() -> None:
    engine, _ = _engine(
        risk={"maxPositionNotional": "250"},
        paper={"startingBalances": {"USD": "1000", "BTC": "1"}},
    )
    assert engine.kernel.submit(_buy("1.51")) is None  # (1 + 1.51) x 100 > 250
    assert engine.kernel.submit(_buy("1", "80")) is not None  # (1 + 1) x 80 = 160
    assert engine.kernel.submit(_buy("0.51")) is None  # (1 + 1 + 0.51) x 100 > 250
    assert engine.risk.rejections == Counter({"max_position_notional": 2})


def test_max_position_notional_boundary_is_inclusive() -> None:
    engine, _ = _engine(
        risk={"maxPositionNotional": "250"},
        paper={"startingBalances": {"USD": "1000", "BTC": "1"}},
    )
    assert engine.kernel.submit(_buy("1.5")) is not None  # (1 + 1.5) x 100 = 250
    assert not engine.risk.rejections


def test_max_open_orders() -> None:
    engine, _ = _engine(risk={"maxOpenOrders": 2})
    assert engine.kernel.submit(_buy("1", "90")) is not None
    assert engine.kernel.submit(_buy("1", "80")) is not None
    assert engine.kernel.submit(_buy("1", "70")) is None
    assert engine.risk.rejections == Counter({"max_open_orders": 1})
    engine.kernel.cancel(next(iter(engine.kernel.open)))
    assert engine.kernel.submit(_buy("1", "70")) is not None


def test_max_orders_per_minute_is_an_event_time_window_of_60_seconds() -> None:
    engine, _ = build_scripted_engine(spec_dict(risk={"maxOrdersPerMinute": 2}))
    kernel = engine.kernel
    kernel.on_trade(trade(0, 100.0))
    assert kernel.submit(_buy("0.1", "90")) is not None  # at t = 0
    kernel.on_trade(trade(1_000, 100.0))
    assert kernel.submit(_buy("0.1", "90")) is not None  # at t = 1 s
    kernel.on_trade(trade(59_999, 100.0))
    assert kernel.submit(_buy("0.1", "90")) is None  # two in (t - 60 s, t]
    assert engine.risk.rejections == Counter({"max_orders_per_minute": 1})
    kernel.on_trade(trade(60_000, 100.0))
    assert kernel.submit(_buy("0.1", "90")) is not None  # the t = 0 order left the window
    assert kernel.submit(_buy("0.1", "90")) is None  # t = 1 s and t = 60 s
    kernel.on_trade(trade(61_000, 100.0))
    assert kernel.submit(_buy("0.1", "90")) is not None
    assert engine.risk.rejections == Counter({"max_orders_per_minute": 2})
    assert kernel.orders_submitted == 4


def test_rejected_orders_do_not_count_against_the_rate_limit() -> None:
    engine, _ = build_scripted_engine(
        spec_dict(risk={"maxOrdersPerMinute": 1, "maxOrderNotional": "50"})
    )
    engine.kernel.on_trade(trade(0, 100.0))
    assert engine.kernel.submit(_buy("1")) is None  # max_order_notional
    assert engine.kernel.submit(_buy("0.1")) is not None
    assert engine.risk.rejections == Counter({"max_order_notional": 1})


def test_insufficient_balance_for_buys_includes_fees_and_working_buys() -> None:
    engine, _ = _engine(paper={"startingBalances": {"USD": "100"}, "feeRate": "0.001"})
    assert engine.kernel.submit(_buy("1")) is None  # 100 x 1.001 > 100
    order = engine.kernel.submit(_buy("0.999"))  # 99.9 x 1.001 = 99.9999
    assert order is not None
    assert engine.kernel.submit(_buy("0.5", "1")) is None  # 0.5 + 99.9 (working) with fees
    assert engine.risk.rejections == Counter({"insufficient_balance": 2})


def test_insufficient_balance_for_sells_includes_working_sells() -> None:
    engine, _ = _engine(paper={"startingBalances": {"USD": "0", "BTC": "0.5"}})
    assert engine.kernel.submit(_sell("0.6")) is None
    assert engine.kernel.submit(_sell("0.3", "120")) is not None
    assert engine.kernel.submit(_sell("0.3")) is None  # 0.3 + 0.3 working > 0.5
    assert engine.kernel.submit(_sell("0.2")) is not None
    assert engine.risk.rejections == Counter({"insufficient_balance": 2})


@pytest.mark.parametrize("quantity", ["0", "-1", "-0.00000001"])
def test_invalid_quantity(quantity: str) -> None:
    engine, _ = _engine(paper={"startingBalances": {"USD": "1000", "BTC": "1"}})
    assert engine.kernel.submit(_buy(quantity)) is None
    assert engine.kernel.submit(_sell(quantity, "100")) is None
    assert engine.risk.rejections == Counter({"invalid_quantity": 2})


def test_no_price_before_any_market_data() -> None:
    engine, _ = build_scripted_engine(spec_dict())
    assert engine.kernel.submit(_buy("1")) is None
    assert engine.risk.rejections == Counter({"no_price": 1})
    # A limit order carries its own reference price.
    assert engine.kernel.submit(_buy("1", "100")) is not None
    assert engine.risk.rejections == Counter({"no_price": 1})


# -- states and automatic halts --------------------------------------------------------------


def test_entering_reducing_cancels_working_buys_only() -> None:
    engine, scripted = _engine(paper={"startingBalances": {"USD": "1000", "BTC": "1"}})
    kernel = engine.kernel
    buy = kernel.submit(_buy("1", "90"))
    sell = kernel.submit(_sell("1", "110"))
    assert buy is not None and sell is not None
    kernel.set_risk_state(RiskState.REDUCING, "operator")
    assert buy.status is OrderStatus.CANCELED
    assert sell.status is OrderStatus.OPEN
    assert list(kernel.open) == [sell.id]
    assert scripted.closed == [buy]
    assert kernel.recent_events[-1] == KernelEvent(T0, "risk_state", "REDUCING: operator")


def _holding_engine(**risk: str) -> tuple[Engine, ScriptedStrategy]:
    """One BTC bought at 100 (no fee), 900 USD left; a resting sell and a resting buy."""
    engine, scripted = build_scripted_engine(
        spec_dict(
            risk={"maxDailyLoss": "1000000", "maxDrawdownPct": "100", **risk},
            paper={"startingBalances": {"USD": "1000"}, "feeRate": "0"},
        )
    )
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    assert kernel.submit(_buy("1")) is not None
    kernel.on_candle(candle(1, 100.0))
    assert engine.ledger.position == 1 and engine.ledger.quote == 900
    assert kernel.submit(_sell("0.5", "150")) is not None
    assert kernel.submit(_buy("0.5", "50")) is not None
    return engine, scripted


def test_breaching_max_daily_loss_halts_and_cancels_open_orders() -> None:
    engine, scripted = _holding_engine(maxDailyLoss="10")
    kernel = engine.kernel
    kernel.on_candle(candle(2, 100.0, close=90.01))  # loss 9.99
    assert engine.risk.state is RiskState.ACTIVE
    assert len(kernel.open) == 2
    kernel.on_candle(candle(3, 90.0))  # loss 10
    assert engine.risk.state is RiskState.HALTED
    assert engine.risk.state_reason == "max_daily_loss"
    assert kernel.open == {}
    assert [o.status for o in scripted.closed] == [OrderStatus.CANCELED] * 2
    assert KernelEvent(T0 + 3 * MINUTE, "risk_state", "HALTED: max_daily_loss") in (
        kernel.recent_events
    )
    assert kernel.submit(_sell("1")) is None
    assert engine.risk.rejections == Counter({"halted": 1})


def test_breaching_max_drawdown_halts_and_cancels_open_orders() -> None:
    engine, _ = _holding_engine(maxDrawdownPct="5")
    kernel = engine.kernel
    kernel.on_candle(candle(2, 100.0, close=120.0))  # peak 1020
    kernel.on_candle(candle(3, 120.0, close=69.01))  # 969.01: 4.999 % below the peak
    assert engine.risk.state is RiskState.ACTIVE
    kernel.on_candle(candle(4, 69.0))  # 969 = 1020 x 0.95
    assert engine.risk.state is RiskState.HALTED
    assert engine.risk.state_reason == "max_drawdown"
    assert kernel.open == {}


def test_a_fill_that_breaches_a_limit_halts_at_once() -> None:
    engine, scripted = build_scripted_engine(
        spec_dict(
            risk={"maxDailyLoss": "1"},
            paper={"startingBalances": {"USD": "1000"}, "feeRate": "0.02"},
        )
    )
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    assert kernel.submit(_buy("1")) is not None
    resting = kernel.submit(_buy("0.1", "10"))
    assert resting is not None
    # Filled at the open (100) with a fee of 2: equity 998 breaches the daily loss at the
    # fill; by the close (103) equity is 1001, so only the fill can have halted.
    kernel.on_candle(candle(1, 100.0, high=104.0, low=99.0, close=103.0))
    assert kernel.fills[0].fee == D(2)
    assert engine.ledger.equity == D(1001)
    assert engine.risk.state is RiskState.HALTED
    assert engine.risk.state_reason == "max_daily_loss"
    assert resting.status is OrderStatus.CANCELED
    assert scripted.closed == [resting]
    assert kernel.open == {}


def test_daily_loss_reference_resets_at_the_utc_day_boundary() -> None:
    engine, _ = build_scripted_engine(
        spec_dict(
            risk={"maxDailyLoss": "10"},
            paper={"startingBalances": {"USD": "0", "BTC": "1"}},
        )
    )
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    kernel.on_candle(candle(24 * 60 - 1, 100.0, close=92.0))  # day 1: loss 8
    assert engine.risk.state is RiskState.ACTIVE
    kernel.on_candle(candle(24 * 60, 92.0, close=85.0))  # day 2: loss 7 (15 since day 1)
    assert engine.risk.state is RiskState.ACTIVE
    assert engine.ledger.day_start_equity == D(92)
    kernel.on_candle(candle(24 * 60 + 1, 85.0, close=82.0))  # day 2: loss 10
    assert engine.risk.state is RiskState.HALTED
    assert engine.risk.state_reason == "max_daily_loss"


def test_halt_is_sticky_resume_never_lifts_it_only_reset_halt() -> None:
    engine, _ = build_scripted_engine(
        spec_dict(risk={"maxDailyLoss": "10"}, paper={"startingBalances": {"BTC": "1"}})
    )
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    kernel.on_candle(candle(1, 80.0))
    assert engine.risk.state is RiskState.HALTED
    kernel.on_candle(candle(2 * 24 * 60, 120.0))  # a new day and a recovery
    assert engine.risk.state is RiskState.HALTED
    kernel.pause()
    kernel.resume()  # issue 14 item 3: a pause toggle does not lift a risk halt
    assert engine.risk.state is RiskState.HALTED
    assert engine.risk.state_reason == "max_daily_loss"
    kernel.reset_halt()
    assert engine.risk.state is RiskState.ACTIVE
    assert engine.risk.state_reason == "reset-halt command"
    assert kernel.submit(_sell("1")) is not None


def test_an_empty_account_is_not_a_drawdown() -> None:
    engine, _ = build_scripted_engine(
        spec_dict(risk={"maxDrawdownPct": "1"}, paper={"startingBalances": {"USD": "0"}})
    )
    engine.kernel.on_candle(candle(0, 100.0))
    engine.kernel.on_candle(candle(24 * 60, 100.0))
    assert engine.risk.state is RiskState.ACTIVE


# -- properties ---------------------------------------------------------------------------------


# A working market buy (3 at about 10) must reserve about 30 of the 40 USD, not 3 x the
# next order's limit price: the limit buy (3 at 6) then cannot be paid for.
MARKET_BUY_RESERVES_CASH = (
    spec_dict(paper={"startingBalances": {"USD": "40"}, "feeRate": "0"}),
    "candles",
    [
        ("event", 0, 1000, 1000, 0, 1.0),
        ("submit", Side.BUY, OrderType.MARKET, D(3), 0),
        ("submit", Side.BUY, OrderType.LIMIT, D(3), -400),
    ],
)


@example(*MARKET_BUY_RESERVES_CASH)
@settings(max_examples=250, deadline=None, derandomize=True, database=None)
@given(
    spec=session_specs(),
    kind=st.sampled_from(["candles", "trades"]),
    steps=session_steps(with_state_changes=True),
)
def test_accepted_orders_never_breach_limits_and_halted_accepts_nothing(
    spec: dict[str, Any], kind: str, steps: list[Any]
) -> None:
    engine, _ = build_scripted_engine(spec)
    risk = parse_spec(spec).risk
    fee_rate = parse_spec(spec).paper.fee_rate

    def on_submit(
        intent: OrderIntent, ref: Decimal | None, order: Order | None, before: dict[str, Any]
    ) -> None:
        rejections = sum(engine.risk.rejections.values())
        if order is None:
            assert rejections == before["rejections"] + 1
            if before["state"] is RiskState.HALTED:
                assert engine.risk.rejections["halted"] >= 1
            return
        assert rejections == before["rejections"]
        assert before["state"] is not RiskState.HALTED
        assert intent.quantity > 0 and ref is not None
        if before["state"] is RiskState.REDUCING:
            assert intent.side is Side.SELL
        working: list[Order] = before["open"]
        assert len(working) < risk.max_open_orders
        if intent.side is Side.SELL:
            reserved = sum((o.remaining for o in working if o.side is Side.SELL), start=D(0))
            assert intent.quantity + reserved <= before["position"]
            return
        assert intent.quantity * ref <= risk.max_order_notional
        pending = sum((o.remaining for o in working if o.side is Side.BUY), start=D(0))
        assert (before["position"] + pending + intent.quantity) * ref <= (
            risk.max_position_notional
        )
        # working limit buys at their limit, working market buys at the market price
        market = before["mark"] if before["mark"] is not None else ref
        reserved_quote = sum(
            (
                o.remaining * (o.price if o.price is not None else market)
                for o in working
                if o.side is Side.BUY
            ),
            start=D(0),
        )
        assert (intent.quantity * ref + reserved_quote) * (1 + fee_rate) <= before["quote"]

    def after_step(step: Any) -> None:
        if engine.risk.state is RiskState.HALTED:
            assert engine.kernel.open == {}

    run_session(engine, kind, steps, on_submit=on_submit, after_step=after_step)  # type: ignore[arg-type]
    submits = sum(1 for step in steps if step[0] == "submit")
    assert engine.kernel.orders_submitted + sum(engine.risk.rejections.values()) == submits


@settings(max_examples=250, deadline=None, derandomize=True, database=None)
@given(
    spec=session_specs(),
    kind=st.sampled_from(["candles", "trades"]),
    steps=session_steps(),
)
def test_a_breach_always_halts_and_the_halt_sticks(
    spec: dict[str, Any], kind: str, steps: list[Any]
) -> None:
    engine, _ = build_scripted_engine(spec)
    limits = parse_spec(spec).risk
    ledger = engine.ledger
    halted_at: list[int] = []

    def after_step(step: Any) -> None:
        state = engine.risk.state
        if halted_at:
            assert state is RiskState.HALTED  # only a command lifts a halt
        if state is RiskState.HALTED:
            halted_at.append(engine.kernel.now)
            assert engine.kernel.open == {}
            assert engine.risk.state_reason in ("max_daily_loss", "max_drawdown")
        if ledger.starting_equity is None:
            return
        daily_loss = ledger.day_start_equity - ledger.equity
        drawdown = ledger.peak_equity - ledger.equity
        breached = daily_loss >= limits.max_daily_loss or (
            drawdown > 0 and drawdown * 100 >= ledger.peak_equity * limits.max_drawdown_pct
        )
        if breached:
            assert state is RiskState.HALTED

    run_session(engine, kind, steps, after_step=after_step)  # type: ignore[arg-type]
    assert engine.risk.rejections["halted"] == 0 or halted_at


# -- the pre-trade check against its straightforward form ----------------------------------


def _reference_check(
    risk: RiskEngine,
    intent: OrderIntent,
    mark: float | None,
    open_orders: list[Order],
    now: int,
) -> Any:
    """The check as first written (sums over the open orders, the mark converted up
    front): the streamlined `RiskEngine.check` must give the same answer."""
    price = D(repr(mark)) if mark is not None else None
    spec, ledger = risk.spec, risk.ledger
    if risk.paused:
        return "paused"
    if risk.state is RiskState.HALTED:
        return "halted"
    if intent.quantity <= 0:
        return "invalid_quantity"
    reduces = intent.side is Side.SELL
    if risk.state is RiskState.REDUCING and not reduces:
        return "reducing"
    if len(open_orders) >= spec.max_open_orders:
        return "max_open_orders"
    recent = [t for t in risk._recent_submits if t > now - MINUTE]
    if len(recent) >= spec.max_orders_per_minute:
        return "max_orders_per_minute"
    ref_price = intent.price if intent.price is not None else price
    if ref_price is None:
        return "no_price"
    notional = intent.quantity * ref_price
    if reduces:
        reserved = sum((o.remaining for o in open_orders if o.side is Side.SELL), D(0))
        if intent.quantity + reserved > ledger.position:
            return "insufficient_balance"
        return None
    if notional > spec.max_order_notional:
        return "max_order_notional"
    pending_buys = sum((o.remaining for o in open_orders if o.side is Side.BUY), D(0))
    market_price = price if price is not None else ref_price
    reserved_quote = sum(
        (
            o.remaining * (o.price if o.price is not None else market_price)
            for o in open_orders
            if o.side is Side.BUY
        ),
        D(0),
    )
    if (ledger.position + pending_buys + intent.quantity) * ref_price > spec.max_position_notional:
        return "max_position_notional"
    if (notional + reserved_quote) * (1 + risk.fee_rate) > ledger.quote:
        return "insufficient_balance"
    return None


def _part_filled(order: Order) -> Order:
    order.filled = order.quantity / 2
    return order


_AMOUNTS = st.sampled_from(["0", "-1", "0.01", "0.5", "1", "3", "12.345"]).map(D)
_PRICES = st.sampled_from(["0.5", "4", "10", "99.9", "100", "100.1", "250"]).map(D)


@st.composite
def _open_orders(draw: Any) -> list[Order]:
    orders = []
    for i in range(draw(st.integers(0, 4))):
        limit = draw(st.one_of(st.none(), _PRICES))
        quantity = draw(_AMOUNTS.filter(lambda q: q > 0))
        order = Order(
            f"o{i}",
            draw(st.sampled_from(list(Side))),
            OrderType.MARKET if limit is None else OrderType.LIMIT,
            quantity,
            limit,
            T0,
        )
        order.filled = draw(st.sampled_from([D(0), quantity / 2]))
        orders.append(order)
    return orders


@settings(max_examples=600, deadline=None, derandomize=True, database=None)
@given(
    spec=session_specs(),
    state=st.sampled_from(list(RiskState)),
    paused=st.booleans(),
    position=_AMOUNTS.filter(lambda q: q >= 0),
    quote=st.sampled_from(["0", "40", "1000", "100000"]).map(D),
    open_orders=_open_orders(),
    recent=st.lists(st.integers(0, 120_000), max_size=3),
    side=st.sampled_from(list(Side)),
    quantity=_AMOUNTS,
    limit=st.one_of(st.none(), _PRICES),
    mark=st.one_of(st.none(), st.sampled_from([0.1, 10.0, 99.95, 100.0, 100.05, 1e6])),
)
@example(  # a working market buy reserves cash at the mark, not at this intent's limit
    spec=spec_dict(paper={"startingBalances": {"USD": "40"}, "feeRate": "0"}),
    state=RiskState.ACTIVE,
    paused=False,
    position=D(0),
    quote=D(40),
    open_orders=[Order("o0", Side.BUY, OrderType.MARKET, D(3), None, T0)],
    recent=[],
    side=Side.BUY,
    quantity=D(3),
    limit=D(4),
    mark=10.0,
)
@example(  # a part-filled working sell reserves only what it has left
    spec=spec_dict(),
    state=RiskState.ACTIVE,
    paused=False,
    position=D(3),
    quote=D(0),
    open_orders=[_part_filled(Order("o0", Side.SELL, OrderType.LIMIT, D(2), D(100), T0))],
    recent=[],
    side=Side.SELL,
    quantity=D(2),
    limit=None,
    mark=100.0,
)
def test_check_gives_the_reference_answer(
    spec: dict[str, Any],
    state: RiskState,
    paused: bool,
    position: Decimal,
    quote: Decimal,
    open_orders: list[Order],
    recent: list[int],
    side: Side,
    quantity: Decimal,
    limit: Decimal | None,
    mark: float | None,
) -> None:
    parsed = parse_spec(spec)
    ledger = Ledger("BTC", "USD", {"USD": quote, "BTC": position})
    risk = RiskEngine(parsed.risk, ledger, parsed.paper.fee_rate)
    risk.state, risk.paused = state, paused
    now = T0 + 120_000
    risk._recent_submits.extend(T0 + t for t in sorted(recent))
    intent = OrderIntent(side, quantity, OrderType.MARKET if limit is None else OrderType.LIMIT)
    if limit is not None:
        intent = OrderIntent(side, quantity, OrderType.LIMIT, limit)
    expected = _reference_check(risk, intent, mark, open_orders, now)
    window = [t for t in risk._recent_submits if t > now - MINUTE]
    reason = risk.check(intent, mark, {o.id: o for o in open_orders}.values(), now)
    assert (reason.value if reason is not None else None) == expected
    assert dict(risk.rejections) == ({} if expected is None else {expected: 1})
    # Only an accepted intent counts against the rate limit.
    after = [t for t in risk._recent_submits if t > now - MINUTE]
    assert after == window + ([now] if expected is None else [])
