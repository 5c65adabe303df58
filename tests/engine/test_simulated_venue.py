"""The simulated venue: market and limit fills, slippage, fees, funds at fill time, cancels."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from engine_support import T0, build_scripted_engine, candle, spec_dict, trade
from hean_engine.execution.simulated import SimulatedVenue
from hean_engine.model.market import MarketEvent
from hean_engine.model.orders import (
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    RiskState,
    Side,
)

D = Decimal


class Recorder:
    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.closed: list[Order] = []

    def on_fill(self, order: Order, fill: Fill) -> None:
        self.fills.append(fill)

    def on_order_closed(self, order: Order) -> None:
        self.closed.append(order)


def _venue(
    fee_rate: str = "0.001", slippage_bps: str = "0", *, can_pay: bool = True
) -> tuple[SimulatedVenue, Recorder]:
    venue = SimulatedVenue(D(fee_rate), D(slippage_bps), lambda *args: can_pay)
    recorder = Recorder()
    venue.bind(recorder)
    return venue, recorder


def _order(side: Side, quantity: str, price: str | None = None, order_id: str = "o1") -> Order:
    order_type = OrderType.MARKET if price is None else OrderType.LIMIT
    return Order(order_id, side, order_type, D(quantity), None if price is None else D(price), T0)


# -- market orders ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "price", "fee"),
    [(Side.BUY, "100.1", "0.2002"), (Side.SELL, "99.9", "0.1998")],
)
def test_market_order_fills_at_the_next_candles_open_moved_by_slippage(
    side: Side, price: str, fee: str
) -> None:
    venue, recorder = _venue("0.001", "10")
    order = _order(side, "2")
    venue.submit(order)
    next_candle = candle(1, 100.0, high=120.0, low=80.0, close=110.0)
    venue.on_candle(next_candle)
    assert recorder.fills == [Fill(next_candle.ts, "o1", side, D(price), D(2), D(fee), "taker")]
    assert order.status is OrderStatus.FILLED and order.filled == D(2)
    venue.on_candle(candle(2, 50.0))
    assert len(recorder.fills) == 1


def test_slippage_and_fee_are_exact_decimals() -> None:
    venue, recorder = _venue("0.001", "3")
    venue.submit(_order(Side.BUY, "0.01"))
    venue.on_candle(candle(1, 966.61))
    (fill,) = recorder.fills
    assert fill.price == D("966.899983")  # 966.61 x 1.0003
    assert fill.fee == D("0.00966899983")  # 966.899983 x 0.01 x 0.001


@pytest.mark.parametrize(("side", "price"), [(Side.BUY, "0.00992"), (Side.SELL, "0.00992")])
def test_market_order_fills_at_the_next_trades_price_whatever_its_amount(
    side: Side, price: str
) -> None:
    venue, recorder = _venue("0.002", "0")
    venue.submit(_order(side, "50"))
    venue.on_trade(trade(5, 0.00992, amount=0.5))
    assert recorder.fills == [Fill(T0 + 5, "o1", side, D(price), D(50), D("0.0009920"), "taker")]


def test_market_order_never_fills_at_the_price_that_triggered_it() -> None:
    engine, scripted = build_scripted_engine(spec_dict(paper={"feeRate": "0"}))
    kernel = engine.kernel

    def buy_on_first(event: MarketEvent) -> None:
        if len(scripted.events) == 1:
            kernel.submit(OrderIntent(Side.BUY, D(1)))

    scripted.on_event = buy_on_first
    kernel.on_candle(candle(0, 100.0, close=105.0))
    assert kernel.fills == []
    kernel.on_candle(candle(1, 101.0, close=99.0))
    assert kernel.fills == [Fill(T0 + 60_000, "o1", Side.BUY, D(101), D(1), D(0), "taker")]
    # The fill is booked before the strategy sees the candle it happened on.
    assert scripted.position_seen == [D(0), D(1)]


def test_orders_submitted_while_an_event_is_matched_wait_for_the_next_event() -> None:
    engine, scripted = build_scripted_engine(spec_dict(paper={"feeRate": "0"}))
    kernel = engine.kernel

    def sell_what_was_bought(fill: Fill, order: Order) -> None:
        if fill.side is Side.BUY:
            kernel.submit(OrderIntent(Side.SELL, fill.quantity))

    scripted.after_fill = sell_what_was_bought
    kernel.on_candle(candle(0, 100.0))
    kernel.submit(OrderIntent(Side.BUY, D(1)))
    kernel.on_candle(candle(1, 101.0))
    assert [(f.side, f.price, f.ts) for f in kernel.fills] == [(Side.BUY, D(101), T0 + 60_000)]
    kernel.on_candle(candle(2, 102.0))
    assert [(f.side, f.price, f.ts) for f in kernel.fills] == [
        (Side.BUY, D(101), T0 + 60_000),
        (Side.SELL, D(102), T0 + 120_000),
    ]


# -- limit orders on candles -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "limit", "bar", "expected"),
    [
        # a buy fills when the low trades below its price, at the limit
        (Side.BUY, "100", candle(1, 101.0, high=102.0, low=100.0, close=101.0), None),
        (Side.BUY, "100", candle(1, 101.0, high=102.0, low=99.99, close=101.0), "100"),
        # ... or at the open when the candle opens through it
        (Side.BUY, "100", candle(1, 98.0, high=99.0, low=97.0, close=99.0), "98"),
        (Side.SELL, "100", candle(1, 99.0, high=100.0, low=98.0, close=99.0), None),
        (Side.SELL, "100", candle(1, 99.0, high=100.01, low=98.0, close=99.0), "100"),
        (Side.SELL, "100", candle(1, 102.5, high=103.0, low=101.0, close=102.0), "102.5"),
    ],
    ids=["buy-touch", "buy-through", "buy-gap", "sell-touch", "sell-through", "sell-gap"],
)
def test_limit_order_on_candles(
    side: Side, limit: str, bar: MarketEvent, expected: str | None
) -> None:
    venue, recorder = _venue("0.001")
    order = _order(side, "3", limit)
    venue.submit(order)
    venue.on_candle(bar)  # type: ignore[arg-type]
    if expected is None:
        assert recorder.fills == [] and order.status is OrderStatus.OPEN
        return
    price = D(expected)
    assert recorder.fills == [
        Fill(bar.ts, "o1", side, price, D(3), price * 3 * D("0.001"), "maker")
    ]
    assert order.status is OrderStatus.FILLED


def test_limit_orders_ignore_slippage() -> None:
    venue, recorder = _venue("0", "50")
    venue.submit(_order(Side.BUY, "1", "100"))
    venue.on_candle(candle(1, 101.0, high=101.0, low=99.0, close=100.0))
    assert recorder.fills[0].price == D(100)


# -- limit orders on trades ---------------------------------------------------------------------


def test_limit_buy_on_trades_fills_strictly_through_and_partially() -> None:
    venue, recorder = _venue("0.001")
    order = _order(Side.BUY, "1", "100")
    venue.submit(order)
    venue.on_trade(trade(1, 100.0, amount=5.0))  # at the limit: back of the queue
    venue.on_trade(trade(2, 100.5, amount=5.0))
    assert recorder.fills == []
    venue.on_trade(trade(3, 99.99, amount=0.3))
    assert recorder.fills == [Fill(T0 + 3, "o1", Side.BUY, D(100), D("0.3"), D("0.03"), "maker")]
    assert order.status is OrderStatus.OPEN and order.remaining == D("0.7")
    venue.on_trade(trade(4, 99.0, amount=5.0))
    assert recorder.fills[-1] == Fill(T0 + 4, "o1", Side.BUY, D(100), D("0.7"), D("0.07"), "maker")
    assert order.status is OrderStatus.FILLED and order.filled == D(1)
    venue.on_trade(trade(5, 98.0, amount=5.0))
    assert len(recorder.fills) == 2


def test_limit_sell_on_trades_fills_strictly_through_and_partially() -> None:
    venue, recorder = _venue("0")
    order = _order(Side.SELL, "2", "0.0101")
    venue.submit(order)
    venue.on_trade(trade(1, 0.0101, amount=9.0))
    venue.on_trade(trade(2, 0.0100, amount=9.0))
    assert recorder.fills == []
    venue.on_trade(trade(3, 0.0102, amount=1.25))
    venue.on_trade(trade(4, 0.0103, amount=9.0))
    assert [(f.price, f.quantity) for f in recorder.fills] == [
        (D("0.0101"), D("1.25")),
        (D("0.0101"), D("0.75")),
    ]
    assert order.status is OrderStatus.FILLED


# -- funds at fill time ------------------------------------------------------------------------


def test_a_fill_the_account_cannot_pay_is_rejected() -> None:
    venue, recorder = _venue(can_pay=False)
    market = _order(Side.BUY, "1", order_id="m")
    limit = _order(Side.BUY, "1", "100", order_id="l")
    venue.submit(market)
    venue.submit(limit)
    venue.on_candle(candle(1, 99.0, high=99.0, low=98.0, close=98.0))
    assert recorder.fills == []
    assert recorder.closed == [market, limit]
    for order in (market, limit):
        assert order.status is OrderStatus.REJECTED
        assert order.reason == "insufficient_balance"
    venue.on_candle(candle(2, 90.0))
    assert recorder.fills == []


def test_market_buy_that_gaps_beyond_the_balance_is_rejected_by_the_venue() -> None:
    engine, scripted = build_scripted_engine(
        spec_dict(paper={"startingBalances": {"USD": "100.5"}, "feeRate": "0.001"})
    )
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    order = kernel.submit(OrderIntent(Side.BUY, D(1)))  # 100.1 with the fee: affordable
    assert order is not None
    kernel.on_candle(candle(1, 101.0))  # 101.101 with the fee: not
    assert kernel.fills == []
    assert order.status is OrderStatus.REJECTED and order.reason == "insufficient_balance"
    assert scripted.closed == [order]
    assert kernel.orders_by_status == Counter({"rejected": 1})
    assert engine.ledger.balances() == {"USD": D("100.5"), "BTC": D(0)}
    assert kernel.open == {}


# -- cancel -------------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [None, "100"], ids=["market", "limit"])
def test_cancel_removes_the_order_before_it_fills(price: str | None) -> None:
    venue, recorder = _venue()
    order = _order(Side.BUY, "1", price)
    venue.submit(order)
    venue.cancel(order)
    assert order.status is OrderStatus.CANCELED
    assert recorder.closed == [order]
    venue.on_candle(candle(1, 90.0, high=90.0, low=80.0, close=85.0))
    venue.on_trade(trade(70_000, 80.0))
    assert recorder.fills == []
    venue.cancel(order)  # a second cancel is a no-op
    assert recorder.closed == [order]


def test_cancel_of_a_filled_order_is_a_no_op() -> None:
    venue, recorder = _venue()
    order = _order(Side.BUY, "1")
    venue.submit(order)
    venue.on_candle(candle(1, 100.0))
    venue.cancel(order)
    assert order.status is OrderStatus.FILLED
    assert recorder.closed == []


def test_cancel_through_the_kernel() -> None:
    engine, scripted = build_scripted_engine(spec_dict())
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    order = kernel.submit(OrderIntent(Side.BUY, D(1), OrderType.LIMIT, D(90)))
    assert order is not None
    kernel.cancel(order.id)
    kernel.cancel("no-such-order")
    assert kernel.open == {}
    assert kernel.orders_by_status == Counter({"canceled": 1})
    assert scripted.closed == [order]


# -- a halt caused by a fill, while the same event is still being matched -------------------------


def test_a_halt_during_matching_cancels_the_remaining_resting_orders() -> None:
    engine, scripted = build_scripted_engine(
        spec_dict(
            risk={"maxDrawdownPct": "0.01"},
            paper={"startingBalances": {"USD": "40"}, "feeRate": "0.0075"},
        )
    )
    kernel = engine.kernel
    kernel.on_candle(candle(0, 5.0))
    first = kernel.submit(OrderIntent(Side.BUY, D(1), OrderType.LIMIT, D("4.9")))
    second = kernel.submit(OrderIntent(Side.BUY, D(1), OrderType.LIMIT, D("4.8")))
    assert first is not None and second is not None
    kernel.on_candle(candle(1, 5.0, high=5.0, low=4.5, close=4.5))  # through both bids
    assert engine.risk.state is RiskState.HALTED
    assert [f.order_id for f in kernel.fills] == [first.id]
    assert first.status is OrderStatus.FILLED
    assert second.status is OrderStatus.CANCELED and second.filled == 0
    assert scripted.closed == [second]
    assert kernel.open == {}
    assert kernel.orders_by_status == Counter({"filled": 1, "canceled": 1})


def test_a_halt_during_matching_cancels_the_remaining_market_orders() -> None:
    engine, _ = build_scripted_engine(
        spec_dict(
            risk={"maxDailyLoss": "1"},
            paper={"startingBalances": {"USD": "1000"}, "feeRate": "0.02"},
        )
    )
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    first = kernel.submit(OrderIntent(Side.BUY, D(1)))
    second = kernel.submit(OrderIntent(Side.BUY, D(1)))
    assert first is not None and second is not None
    kernel.on_candle(candle(1, 100.0))  # the first fill's fee (2) breaches the daily loss
    assert engine.risk.state is RiskState.HALTED
    assert [f.order_id for f in kernel.fills] == [first.id]
    assert second.status is OrderStatus.CANCELED
    assert engine.ledger.position == D(1)
    assert kernel.open == {}
