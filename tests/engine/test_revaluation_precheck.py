"""The ledger's float pre-check only decides when to value exactly, never the values.

An engine whose ledger skips exact revaluations inside the steady price
interval (`Ledger.mark`) must be indistinguishable from one that values every
mark in a position exactly (`set_precheck(False)`): same books, peak, drawdown,
day references, halts, events and fills, on random sessions and random limits.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
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
from hean_contract.spec import RiskSpec
from hean_engine.app.assembly import Engine
from hean_engine.model.orders import Fill, OrderType, RiskState, Side
from hean_engine.portfolio.ledger import Ledger
from hean_engine.risk.engine import RiskEngine

D = Decimal


def _books(ledger: Ledger) -> tuple[Any, ...]:
    """What the ledger holds without being asked to value anything."""
    return (
        ledger.quote,
        ledger.position,
        ledger.fees,
        ledger.fill_count,
        ledger.mark_price,
        ledger.starting_equity,
        ledger.peak_equity,
        ledger.day_start_equity,
        ledger.first_ts,
        ledger.revalue_due_ms,
    )


def _valued(ledger: Ledger) -> tuple[Any, ...]:
    """The values computed on demand: equity and everything derived from it."""
    return (
        ledger.equity,
        ledger.last_price,
        ledger.max_drawdown,
        ledger.max_drawdown_pct,
        ledger.pnl,
        ledger.daily_loss,
        ledger.drawdown_pct,
        ledger.balances(),
    )


def _engine_state(engine: Engine) -> tuple[Any, ...]:
    kernel, risk = engine.kernel, engine.risk
    return (
        _books(engine.ledger),
        risk.state,
        risk.state_reason,
        dict(risk.rejections),
        [(e.ts, e.kind, e.detail) for e in kernel.recent_events],
        list(kernel.fills),
        dict(kernel.orders_by_status),
        kernel.orders_submitted,
    )


def _run(spec: dict[str, Any], kind: str, steps: list[Any], reads: set[int], *, fast: bool) -> Any:
    engine, _ = build_scripted_engine(spec)
    engine.ledger.set_precheck(fast)
    seen: list[Any] = []
    index = 0

    def after_step(step: Any) -> None:
        nonlocal index
        seen.append(_engine_state(engine))
        if index in reads:  # a /status read or a metrics scrape in the middle
            seen.append(_valued(engine.ledger))
        index += 1

    run_session(engine, kind, steps, after_step=after_step)  # type: ignore[arg-type]
    seen.append(_valued(engine.ledger))
    return seen


@st.composite
def _walks(draw: Any) -> list[Any]:
    """Sessions that hold positions while prices drift: where the pre-check skips most."""
    cents = draw(st.integers(1_000, 20_000))
    steps: list[Any] = []
    for _ in range(draw(st.integers(0, 120))):
        choice = draw(st.integers(0, 9))
        if choice < 7:
            close = max(cents + draw(st.integers(-40, 40)), 1)
            dt = draw(st.sampled_from([1, 60_000, 3_600_000, DAY // 3]))
            steps.append(("event", dt, cents, close, draw(st.integers(0, 30)), 1.0))
            cents = close
        elif choice == 7:
            side = draw(st.sampled_from(list(Side)))
            quantity = draw(st.sampled_from([D("0.01"), D("0.5"), D(1), D(3)]))
            steps.append(("submit", side, OrderType.MARKET, quantity, 0))
        elif choice == 8:
            offset = draw(st.integers(-50, 50))
            steps.append(
                ("submit", draw(st.sampled_from(list(Side))), OrderType.LIMIT, D(1), offset)
            )
        else:
            steps.append(("state", draw(st.sampled_from(list(RiskState)))))
    return steps


@settings(max_examples=300, deadline=None)
@given(
    spec=session_specs(),
    kind=st.sampled_from(["candles", "trades"]),
    steps=st.one_of(session_steps(with_state_changes=True, max_size=80), _walks()),
    reads=st.sets(st.integers(0, 120), max_size=10),
)
def test_engine_with_precheck_matches_always_exact(
    spec: dict[str, Any], kind: str, steps: list[Any], reads: set[int]
) -> None:
    exact = _run(spec, kind, steps, reads, fast=False)
    fast = _run(spec, kind, steps, reads, fast=True)
    assert fast == exact


def test_precheck_skips_exact_valuations_inside_the_steady_interval() -> None:
    ledger = Ledger("BTC", "USD", {"USD": D(1000)})
    risk = RiskEngine(RiskSpec.model_validate(spec_dict()["risk"]), ledger, D(0))
    assert ledger.mark(100.0, T0) is True  # the first valuation
    ledger.apply_fill(Fill(T0, "o1", Side.BUY, D(100), D(1), D(0)))
    risk.on_equity(T0)
    assert ledger.steady_high < 100.0  # at the peak: any rise is a new peak
    assert ledger.mark(101.0, T0 + 60_000) is True  # a new peak: exact
    assert ledger.mark(100.5, T0 + 120_000) is False  # below the peak, above the halts
    assert ledger.mark(100.25, T0 + 180_000) is False
    assert ledger.mark(100.75, T0 + 240_000) is False
    assert ledger.low_mark == 100.25
    assert ledger.equity == D("1000.75") and ledger.last_price == D("100.75")
    assert ledger.max_drawdown == D("0.75")  # 1001 -> 1000.25, settled when read
    assert ledger.max_drawdown_pct == D("0.75") * 100 / D(1001)
    assert ledger.mark(100.75, T0 + DAY) is True  # a new UTC day: exact


_magnitudes = st.sampled_from([D("1e-9"), D("0.001"), D(1), D(1000), D("1e9"), D("1e15")])


@st.composite
def _ledger_sessions(draw: Any) -> tuple[Any, ...]:
    quote = draw(_magnitudes) * draw(st.integers(0, 1000))
    limits = None
    if draw(st.booleans()):
        limits = (draw(_magnitudes) * draw(st.integers(0, 50)), D(draw(st.integers(0, 100))) / 100)
    scale = draw(st.floats(1e-6, 1e6))
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("mark"), st.floats(0.5, 2.0), st.sampled_from([0, 1, DAY])),
                st.tuples(
                    st.just("fill"),
                    st.sampled_from(list(Side)),
                    st.floats(0.5, 2.0),
                    st.sampled_from([D("1e-8"), D("0.01"), D(1), D(7)]),
                ),
                st.tuples(st.just("read")),
            ),
            max_size=60,
        )
    )
    return quote, limits, scale, steps


@settings(max_examples=300, deadline=None)
@given(_ledger_sessions())
def test_ledger_precheck_matches_always_exact_at_any_magnitude(session: Any) -> None:
    """Balances, prices and limits across 24 orders of magnitude, halt levels near equity."""
    quote, limits, scale, steps = session

    def run(fast: bool) -> list[Any]:
        ledger = Ledger("BTC", "USD", {"USD": quote})
        ledger.set_precheck(fast)
        ledger.set_halt_limits(limits)
        seen: list[Any] = []
        ts = T0
        for step in steps:
            if step[0] == "mark":
                ts += step[2] + 1
                ledger.mark(step[1] * scale, ts)  # whether it valued exactly may differ
            elif step[0] == "fill":
                _, side, factor, quantity = step
                price = D(repr(factor * scale))
                if side is Side.SELL:
                    quantity = min(quantity, ledger.position)
                elif price * quantity > ledger.quote:
                    continue
                if quantity:
                    ledger.apply_fill(Fill(ts, "o", side, price, quantity, D(0)))
            else:
                seen.append(_valued(ledger))
            seen.append(_books(ledger))
        seen.append(_valued(ledger))
        return seen

    assert run(True) == run(False)
