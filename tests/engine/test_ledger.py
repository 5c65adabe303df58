"""The ledger: exact balances, equity, fees, PnL and drawdown, by example and by property."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine_support import (
    DAY,
    T0,
    build_scripted_engine,
    run_session,
    session_specs,
    session_steps,
    spec_dict,
)
from hean_contract.spec import parse_spec
from hean_engine.model.market import Candle, MarketEvent
from hean_engine.model.money import price_to_decimal
from hean_engine.model.orders import Fill, Order, OrderType, Side
from hean_engine.portfolio.ledger import Ledger, LedgerError

D = Decimal


def _fill(side: Side, quantity: str, price: str, fee: str, ts: int = T0) -> Fill:
    return Fill(ts, "o1", side, D(price), D(quantity), D(fee))


def test_starting_books() -> None:
    ledger = Ledger("BTC", "USD", {"USD": D("1000.5"), "BTC": D("0.25"), "ETH": D(3)})
    assert (ledger.quote, ledger.position, ledger.fees) == (D("1000.5"), D("0.25"), D(0))
    assert ledger.balances() == {"USD": D("1000.5"), "BTC": D("0.25"), "ETH": D(3)}
    assert ledger.starting_equity is None and ledger.first_ts is None
    assert ledger.fill_count == 0


def test_pnl_is_zero_before_the_first_valuation() -> None:
    ledger = Ledger("BTC", "USD", {"USD": D(1000)})
    assert ledger.pnl == 0


def test_buy_and_sell_fills_move_exact_amounts() -> None:
    ledger = Ledger("BTC", "USD", {"USD": D(1000)})
    ledger.revalue(100.0, T0)
    ledger.apply_fill(_fill(Side.BUY, "2", "100.5", "0.201", T0 + 1))
    assert ledger.quote == D("798.799")  # 1000 - 201 - 0.201
    assert ledger.position == D(2)
    assert ledger.fees == D("0.201")
    assert ledger.last_price == D("100.5")
    assert ledger.equity == D("999.799")
    assert ledger.pnl == D("-0.201")
    ledger.apply_fill(_fill(Side.SELL, "0.5", "110.25", "0.055125", T0 + 2))
    assert ledger.quote == D("853.868875")  # + 55.125 - 0.055125
    assert ledger.position == D("1.5")
    assert ledger.fees == D("0.256125")
    assert ledger.equity == D("853.868875") + D("1.5") * D("110.25")
    assert ledger.fill_count == 2
    assert ledger.balances() == {"USD": D("853.868875"), "BTC": D("1.5")}


def test_first_fill_before_any_valuation_keeps_the_pre_trade_starting_equity() -> None:
    ledger = Ledger("BTC", "USD", {"USD": D(1000)})
    ledger.apply_fill(_fill(Side.BUY, "1", "100", "0.1"))
    assert ledger.starting_equity == D(1000)
    assert ledger.equity == D("999.9")
    assert ledger.pnl == D("-0.1")
    assert ledger.max_drawdown == D("0.1")


@pytest.mark.parametrize(
    ("fill", "problem"),
    [
        (_fill(Side.BUY, "10", "100", "0.01"), "fill o1 would make USD negative"),
        (_fill(Side.SELL, "0.5000001", "100", "0"), "fill o1 would make BTC negative"),
    ],
)
def test_a_fill_that_would_overdraw_raises_and_changes_nothing(fill: Fill, problem: str) -> None:
    ledger = Ledger("BTC", "USD", {"USD": D(1000), "BTC": D("0.5")})
    with pytest.raises(LedgerError, match=problem):
        ledger.apply_fill(fill)
    assert ledger.balances() == {"USD": D(1000), "BTC": D("0.5")}
    assert ledger.fees == 0 and ledger.fill_count == 0


def test_buying_with_exactly_the_whole_balance_is_allowed() -> None:
    ledger = Ledger("BTC", "USD", {"USD": D("100.1")})
    assert ledger.can_pay(Side.BUY, D(1), D(100), D("0.1"))
    assert not ledger.can_pay(Side.BUY, D(1), D(100), D("0.1000001"))
    ledger.apply_fill(_fill(Side.BUY, "1", "100", "0.1"))
    assert ledger.quote == 0 and ledger.position == 1
    assert ledger.can_pay(Side.SELL, D(1), D(1), D(0))
    assert not ledger.can_pay(Side.SELL, D("1.00000001"), D(1), D(0))


def test_equity_peak_and_max_drawdown() -> None:
    ledger = Ledger("BTC", "USD", {"BTC": D(10)})
    path = [100.0, 120.0, 90.0, 130.0, 125.0, 80.0, 140.0]
    for i, price in enumerate(path):
        ledger.revalue(price, T0 + i * 60_000)
    assert ledger.starting_equity == D(1000)
    assert ledger.equity == D(1400)
    assert ledger.peak_equity == D(1400)
    # the largest peak-to-trough: 1300 -> 800
    assert ledger.max_drawdown == D(500)
    assert ledger.max_drawdown_pct == D(500) * 100 / D(1300)
    assert ledger.pnl == D(400)
    ledger.revalue(126.0, T0 + DAY // 2)
    assert ledger.drawdown_pct == D(10)  # 1400 -> 1260


def test_mark_revalues_only_when_equity_can_change() -> None:
    ledger = Ledger("BTC", "USD", {"USD": D(500)})
    assert ledger.mark(10.0, T0) is True  # the first valuation
    assert ledger.starting_equity == D(500)
    assert ledger.mark(11.0, T0 + 60_000) is False  # flat, same UTC day
    assert ledger.mark_price == 11.0 and ledger.last_price == D(10)
    assert ledger.mark(12.0, T0 + DAY) is True  # a new UTC day
    ledger.apply_fill(_fill(Side.BUY, "1", "12", "0", T0 + DAY + 1))
    assert ledger.mark(13.0, T0 + DAY + 2) is True  # in a position
    assert ledger.equity == D(501)


def test_daily_loss_reference_resets_at_the_utc_day_boundary() -> None:
    ledger = Ledger("BTC", "USD", {"BTC": D(1)})
    ten_am = T0 + 10 * 3_600_000
    ledger.revalue(100.0, ten_am)
    assert ledger.day_start_equity == D(100)
    ledger.revalue(90.0, T0 + DAY - 1)  # 23:59:59.999
    assert ledger.daily_loss == D(10)
    ledger.revalue(80.0, T0 + DAY)  # midnight: the reference is the equity carried over
    assert ledger.day_start_equity == D(90)
    assert ledger.daily_loss == D(10)
    ledger.revalue(85.0, T0 + DAY + 3_600_000)
    assert ledger.daily_loss == D(5)
    assert ledger.revalue_due_ms == T0 + 2 * DAY
    ledger.revalue(70.0, T0 + 5 * DAY + 7)  # days without data: carried over again
    assert ledger.day_start_equity == D(85)
    assert ledger.daily_loss == D(15)


# -- property: any sequence of fills the kernel accepts ------------------------------------

# Two resting bids filled by one candle; the first fill's fee breaches maxDrawdownPct,
# and the halt cancels the second bid while the venue is still matching the candle.
HALT_WHILE_MATCHING = (
    spec_dict(
        risk={"maxDrawdownPct": "0.01"},
        paper={"startingBalances": {"USD": "40"}, "feeRate": "0.0075"},
    ),
    "candles",
    [
        ("event", 0, 500, 500, 0, 1.0),
        ("submit", Side.BUY, OrderType.LIMIT, D(1), -10),
        ("submit", Side.BUY, OrderType.LIMIT, D(1), -20),
        ("event", 0, 500, 450, 0, 1.0),
        ("event", 0, 450, 450, 0, 1.0),
    ],
)


@example(*HALT_WHILE_MATCHING)
@settings(max_examples=250, deadline=None, derandomize=True, database=None)
@given(
    spec=session_specs(),
    kind=st.sampled_from(["candles", "trades"]),
    steps=session_steps(),
)
def test_books_stay_consistent_through_any_accepted_fills(
    spec: dict[str, Any], kind: str, steps: list[Any]
) -> None:
    engine, scripted = build_scripted_engine(spec)
    ledger = engine.ledger
    parsed = parse_spec(spec)
    fee_rate = parsed.paper.fee_rate
    start_quote = parsed.paper.starting_balances.get("USD", D(0))
    start_base = parsed.paper.starting_balances.get("BTC", D(0))
    books = {"quote": start_quote, "position": start_base, "fees": D(0)}
    equity_series: list[Decimal] = []

    def first_valuation(price: Decimal) -> None:
        if not equity_series:
            equity_series.append(start_quote + start_base * price)

    def check_identity() -> None:
        assert ledger.quote >= 0 and ledger.position >= 0
        assert ledger.last_price is not None
        assert ledger.equity == ledger.quote + ledger.position * ledger.last_price
        assert ledger.starting_equity == equity_series[0]
        assert ledger.pnl == ledger.equity - equity_series[0]

    def after_fill(fill: Fill, order: Order) -> None:
        first_valuation(fill.price)
        assert fill.fee == fill.price * fill.quantity * fee_rate
        notional = fill.price * fill.quantity
        if fill.side is Side.BUY:
            books["quote"] -= notional + fill.fee
            books["position"] += fill.quantity
        else:
            books["quote"] += notional - fill.fee
            books["position"] -= fill.quantity
        books["fees"] += fill.fee
        assert (ledger.quote, ledger.position, ledger.fees) == (
            books["quote"],
            books["position"],
            books["fees"],
        )
        assert ledger.last_price == fill.price
        check_identity()
        equity_series.append(ledger.equity)

    def on_event(event: MarketEvent) -> None:
        price = price_to_decimal(event.close if isinstance(event, Candle) else event.price)
        first_valuation(price)
        check_identity()
        if ledger.position:
            assert ledger.last_price == price
        equity_series.append(ledger.equity)

    scripted.after_fill = after_fill
    scripted.on_event = on_event
    run_session(engine, kind, steps)  # type: ignore[arg-type]

    assert len(engine.kernel.fills) == len(scripted.fills) == ledger.fill_count
    assert ledger.fees == sum((f.fee for f in engine.kernel.fills), start=D(0))
    if equity_series:
        peak, max_drawdown = equity_series[0], D(0)
        for equity in equity_series:
            peak = max(peak, equity)
            max_drawdown = max(max_drawdown, peak - equity)
        assert ledger.max_drawdown == max_drawdown
        assert ledger.peak_equity == peak
        assert ledger.pnl == ledger.equity - equity_series[0]
    else:
        assert ledger.fill_count == 0 and ledger.pnl == 0
