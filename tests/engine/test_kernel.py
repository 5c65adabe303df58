"""The trading kernel: event order, counters, revaluation policy, control and notable events."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from engine_support import (
    DAY,
    MINUTE,
    T0,
    build_engine,
    build_scripted_engine,
    candle,
    spec_dict,
    trade,
)
from hean_engine.kernel.engine import KernelEvent
from hean_engine.model.market import MarketEvent
from hean_engine.model.orders import OrderIntent, OrderStatus, OrderType, RiskState, Side
from hean_engine.strategy.ema_cross import EmaCross
from hean_engine.strategy.market_maker import MarketMaker

D = Decimal


def test_each_event_is_matched_then_valued_then_shown_to_the_strategy() -> None:
    engine, scripted = build_scripted_engine(spec_dict(paper={"feeRate": "0"}))
    kernel, ledger = engine.kernel, engine.ledger
    seen: list[tuple[Decimal, Decimal, int]] = []

    def look(event: MarketEvent) -> None:
        seen.append((ledger.position, ledger.equity, len(kernel.fills)))

    scripted.on_event = look
    kernel.on_candle(candle(0, 100.0))
    kernel.submit(OrderIntent(Side.BUY, D(2)))
    kernel.on_candle(candle(1, 101.0, high=112.0, low=100.0, close=110.0))
    # the strategy saw the candle after the fill (at the open, 101) and the revaluation
    # at the close: 10000 - 202 + 2 x 110
    assert seen == [(D(0), D(10000), 0), (D(2), D(10018), 1)]
    assert ledger.last_price == D(110)


def test_counters_and_clock() -> None:
    engine, _ = build_scripted_engine(spec_dict(paper={"feeRate": "0"}))
    kernel = engine.kernel
    assert (kernel.now, kernel.events, kernel.orders_submitted) == (0, 0, 0)
    kernel.on_trade(trade(5, 100.0))
    first = kernel.submit(OrderIntent(Side.BUY, D(1)))
    second = kernel.submit(OrderIntent(Side.BUY, D(1), OrderType.LIMIT, D(50)))
    rejected = kernel.submit(OrderIntent(Side.SELL, D(5)))  # nothing held
    assert first is not None and second is not None and rejected is None
    assert (first.id, second.id) == ("o1", "o2")
    assert (first.created_ts, first.tag) == (T0 + 5, "")
    kernel.on_trade(trade(9, 101.0))
    kernel.cancel(second.id)
    assert kernel.now == T0 + 9
    assert kernel.events == 2
    assert kernel.orders_submitted == 2
    assert kernel.orders_by_status == Counter({"filled": 1, "canceled": 1})
    assert [f.order_id for f in kernel.fills] == ["o1"]
    assert engine.risk.rejections == Counter({"insufficient_balance": 1})
    assert kernel.open == {}


def test_open_orders_is_a_snapshot() -> None:
    engine, _ = build_scripted_engine(spec_dict())
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    order = kernel.submit(OrderIntent(Side.BUY, D(1), OrderType.LIMIT, D(90)))
    snapshot = kernel.open_orders
    kernel.cancel(order.id if order else "")
    assert [o.id for o in snapshot] == ["o1"]
    assert kernel.open_orders == []


def test_flat_books_are_valued_once_a_day_and_a_position_on_every_event() -> None:
    engine, _ = build_scripted_engine(spec_dict(paper={"feeRate": "0"}))
    kernel, ledger = engine.kernel, engine.ledger
    kernel.on_candle(candle(0, 100.0))
    assert ledger.starting_equity == D(10000) and ledger.first_ts == T0
    kernel.on_candle(candle(1, 120.0))
    assert ledger.last_price == D(100)  # flat: equity cannot change, not revalued
    assert ledger.mark_price == 120.0
    kernel.on_candle(candle(24 * 60, 130.0))  # a new UTC day: revalued
    assert ledger.last_price == D(130)
    assert ledger.revalue_due_ms == T0 + 2 * DAY
    kernel.submit(OrderIntent(Side.BUY, D(1)))
    kernel.on_candle(candle(24 * 60 + 1, 131.0, close=133.0))
    kernel.on_candle(candle(24 * 60 + 2, 133.0, close=140.0))
    assert ledger.last_price == D(140)
    assert ledger.equity == D(10000) - 131 + 140


def test_market_orders_use_the_last_price_as_the_risk_reference() -> None:
    engine, _ = build_scripted_engine(spec_dict(risk={"maxOrderNotional": "100"}))
    kernel = engine.kernel
    kernel.on_candle(candle(0, 50.0, close=100.0))
    assert kernel.submit(OrderIntent(Side.BUY, D("1.01"))) is None  # at the close, 100
    kernel.on_trade(trade(2 * MINUTE, 10.0))
    assert kernel.submit(OrderIntent(Side.BUY, D("1.01"))) is not None  # at the trade, 10


def test_pause_resume_and_notable_events() -> None:
    engine, _ = build_scripted_engine(spec_dict())
    kernel = engine.kernel
    heard: list[KernelEvent] = []
    kernel.listeners.append(heard.append)
    kernel.on_candle(candle(0, 100.0))
    kernel.pause()
    kernel.pause()  # already paused: no second event
    assert engine.risk.paused
    kernel.set_risk_state(RiskState.REDUCING, "operator")
    kernel.set_risk_state(RiskState.REDUCING, "again")  # unchanged: no event
    kernel.resume()
    assert not engine.risk.paused
    assert engine.risk.state is RiskState.REDUCING  # resume only unpauses
    kernel.reset_halt()
    assert engine.risk.state is RiskState.ACTIVE
    assert heard == [
        KernelEvent(T0, "paused", "trading paused: no new orders"),
        KernelEvent(T0, "risk_state", "REDUCING: operator"),
        KernelEvent(T0, "resumed", "trading resumed"),
        KernelEvent(T0, "risk_state", "ACTIVE: reset-halt command"),
    ]
    assert list(kernel.recent_events) == heard


def test_recent_events_keep_only_the_latest_100() -> None:
    engine, _ = build_scripted_engine(spec_dict())
    kernel = engine.kernel
    for i in range(130):
        kernel.on_trade(trade(i, 100.0))
        if i % 2 == 0:
            kernel.pause()
        else:
            kernel.resume()  # already ACTIVE: only the "resumed" event
    assert len(kernel.recent_events) == 100
    assert kernel.recent_events[0] == KernelEvent(
        T0 + 30, "paused", "trading paused: no new orders"
    )
    assert kernel.recent_events[-1] == KernelEvent(T0 + 129, "resumed", "trading resumed")


def test_halting_cancels_every_working_order() -> None:
    engine, scripted = build_scripted_engine(
        spec_dict(paper={"startingBalances": {"USD": "1000", "BTC": "1"}})
    )
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    orders = [
        kernel.submit(OrderIntent(Side.BUY, D(1))),
        kernel.submit(OrderIntent(Side.BUY, D(1), OrderType.LIMIT, D(90))),
        kernel.submit(OrderIntent(Side.SELL, D(1), OrderType.LIMIT, D(110))),
    ]
    kernel.set_risk_state(RiskState.HALTED, "operator")
    assert all(o is not None and o.status is OrderStatus.CANCELED for o in orders)
    assert kernel.open == {}
    assert scripted.closed == orders
    kernel.on_candle(candle(1, 80.0, high=120.0, low=70.0, close=100.0))
    assert kernel.fills == []


def test_assembly_applies_spec_paused_and_halt() -> None:
    paused = build_engine(spec_dict(paused=True))
    assert paused.risk.paused and paused.risk.state is RiskState.ACTIVE
    assert [e.kind for e in paused.kernel.recent_events] == ["paused"]
    halted = build_engine(spec_dict(halt=True))
    assert halted.risk.state is RiskState.HALTED and not halted.risk.paused
    assert [e.detail for e in halted.kernel.recent_events] == ["HALTED: spec.halt"]


def test_assembly_builds_the_spec_strategy() -> None:
    ema = build_engine(spec_dict())
    assert isinstance(ema.strategy, EmaCross) and ema.kernel.strategy is ema.strategy
    assert ema.strategy.consumes == "candles"
    mm = build_engine(spec_dict("market_maker"))
    assert isinstance(mm.strategy, MarketMaker) and mm.strategy.consumes == "trades"
    assert mm.ledger.base == "BTC" and mm.ledger.quote_ccy == "USD"


def test_a_block_of_events_is_the_same_steps_as_one_event_at_a_time() -> None:
    """`on_candles`/`on_trades` (the replay's blocks) and `on_candle`/`on_trade` (paper and
    live) are one step: the same fills, books, drawdown and notable events."""
    import random

    from hean_engine.app.replay import summarize

    rng = random.Random(12)
    price, candles, trades = 100.0, [], []
    for i in range(6000):
        close = round(max(price + rng.uniform(-1.5, 1.5), 1.0), 2)
        high, low = max(price, close) + 0.5, max(min(price, close) - 0.5, 0.01)
        candles.append(candle(i, price, high, low, close))
        trades.append(trade(i * 997, close, 0.5 + (i % 7), "buy" if i % 3 else "sell"))
        price = close
    spec = spec_dict(
        strategy={"params": {"fast": 3, "slow": 8, "quantity": "0.5"}},
        risk={"maxDailyLoss": "40", "maxDrawdownPct": "5"},
    )
    mm = spec_dict(
        "market_maker",
        strategy={"params": {"quantity": "1", "spreadBps": "5", "requoteBps": "2"}},
        risk={"maxDailyLoss": "40", "maxOrdersPerMinute": 20},
    )
    for spec_, events, one, block in (
        (spec, candles, "on_candle", "on_candles"),
        (mm, trades, "on_trade", "on_trades"),
    ):
        singly, blocks = build_engine(spec_), build_engine(spec_)
        for event in events:
            getattr(singly.kernel, one)(event)
        start = 0
        while start < len(events):
            size = rng.choice([1, 2, 50, 2048])
            getattr(blocks.kernel, block)(events[start : start + size])
            start += size
        assert singly.kernel.fills and summarize(singly, 1.0) == summarize(blocks, 1.0)
        assert list(singly.kernel.recent_events) == list(blocks.kernel.recent_events)
        assert singly.kernel.events == blocks.kernel.events == len(events)
