"""The trading kernel: wires data, strategy, risk, execution and the ledger.

It is synchronous and allocation-light on purpose: a replay steps through a
million candles (`on_candles`, a block of the reader's at a time; `on_candle`
is the same step for one), so the kernel does per event only what the event
needs (matching when orders work, revaluation when a position is open) and
counts in plain integers that the metrics collector reads at scrape time.

For every market event, in this order:
1. the venue matches working orders against it (fills are booked at once);
2. the ledger revalues at the event's close/price; the risk engine may halt;
3. the strategy sees the event and may submit intents through the kernel,
   which passes each through the risk engine before the venue.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from hean_engine.execution.venue import OrderRecorder, Venue
from hean_engine.model.market import Candle, Trade
from hean_engine.model.orders import (
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    RiskState,
    Side,
)
from hean_engine.portfolio.ledger import Ledger
from hean_engine.risk.engine import RiskEngine, StateChange
from hean_engine.strategy.base import Strategy

_OPEN = OrderStatus.OPEN  # a global load, not an enum class attribute lookup


@dataclass(frozen=True, slots=True)
class KernelEvent:
    """Something an operator wants to know about: a state change, a pause, a halt."""

    ts: int
    kind: str
    detail: str


class TradingKernel:
    def __init__(self, ledger: Ledger, risk: RiskEngine, venue: Venue) -> None:
        self.ledger = ledger
        self.risk = risk
        self.venue = venue
        self.strategy: Strategy | None = None
        self.now = 0  # event time of the latest market event (epoch ms)
        self.events = 0
        self.orders_submitted = 0
        self.orders_by_status: Counter[str] = Counter()
        self.fills: list[Fill] = []
        self.open: dict[str, Order] = {}
        # The latest notable events, for /status; bounded so a long run cannot grow it.
        self.recent_events: deque[KernelEvent] = deque(maxlen=100)
        self.listeners: list[Callable[[KernelEvent], None]] = []
        self.recorder: OrderRecorder | None = None  # the durable history; None in replay
        self._warming = False
        venue.bind(self)

    def attach(self, strategy: Strategy) -> None:
        self.strategy = strategy

    # -- market data -------------------------------------------------------
    # on_candles and on_trades are the replay's hot path (a block of events in
    # one frame; on_candle and on_trade are the same step for one event): the
    # ledger values the books exactly only when that can change an outcome
    # (Ledger.mark), and the risk engine looks at equity only after such a
    # valuation. Everything an event can change (the ledger's interval, the open
    # orders, the strategy) is read again for each event.
    def on_candle(self, candle: Candle) -> None:
        self.on_candles((candle,))

    def on_candles(self, candles: Iterable[Candle]) -> None:
        """`on_candle` for each candle, in order."""
        ledger = self.ledger
        open_orders = self.open
        for candle in candles:
            ts = candle.ts
            self.now = ts
            self.events += 1
            if open_orders:
                self.venue.on_candle(candle)
            price = candle.close
            if ledger.steady_low < price < ledger.steady_high and ts < ledger.revalue_due_ms:
                ledger.mark_price = ledger.unvalued_mark = price  # Ledger.mark, inlined
                if price < ledger.low_mark:
                    ledger.low_mark = price
            elif ledger.mark(price, ts):
                change = self.risk.on_equity(ts)
                if change is not None:
                    self._apply(change)
            self.strategy.on_candle(candle)  # type: ignore[union-attr]

    def on_trade(self, trade: Trade) -> None:
        self.on_trades((trade,))

    def on_trades(self, trades: Iterable[Trade]) -> None:
        """`on_trade` for each trade, in order."""
        ledger = self.ledger
        open_orders = self.open
        for trade in trades:
            ts = trade.ts
            self.now = ts
            self.events += 1
            if open_orders:
                self.venue.on_trade(trade)
            price = trade.price
            if ledger.steady_low < price < ledger.steady_high and ts < ledger.revalue_due_ms:
                ledger.mark_price = ledger.unvalued_mark = price  # Ledger.mark, inlined
                if price < ledger.low_mark:
                    ledger.low_mark = price
            elif ledger.mark(price, ts):
                change = self.risk.on_equity(ts)
                if change is not None:
                    self._apply(change)
            self.strategy.on_trade(trade)  # type: ignore[union-attr]

    def warm_up(self, candles: Sequence[Candle] = (), trades: Sequence[Trade] = ()) -> None:
        """History from before the engine started: the strategy's indicators see it,
        nothing trades (an order on an old signal would fill at today's price)."""
        strategy = self.strategy
        assert strategy is not None
        self._warming = True
        try:
            for candle in candles:
                strategy.on_candle(candle)
            for trade in trades:
                strategy.on_trade(trade)
        finally:
            self._warming = False
        self._emit("warmed_up", f"{len(candles)} candles, {len(trades)} trades of history")

    # -- strategy context ----------------------------------------------------
    @property
    def position(self) -> Decimal:
        return self.ledger.position

    @property
    def balances(self) -> dict[str, Decimal]:
        return self.ledger.balances()

    @property
    def dust(self) -> Decimal:
        return self.venue.dust

    @property
    def open_orders(self) -> Sequence[Order]:
        return list(self.open.values())

    def submit(self, intent: OrderIntent) -> Order | None:
        if self._warming:
            return None
        now = self.now
        if self.risk.check(intent, self.ledger.mark_price, self.open.values(), now) is not None:
            return None
        venue = self.venue
        order = Order(
            venue.new_order_id(),
            intent.side,
            intent.type,
            intent.quantity,
            intent.price,
            now,
            intent.tag,
        )
        self.orders_submitted += 1
        self.open[order.id] = order
        if self.recorder is not None:
            self.recorder.on_order(order, "submitted")
        venue.submit(order)
        return order

    def adopt(self, order: Order) -> None:
        """An order the venue found working at the exchange (live start-up): track it."""
        self.open[order.id] = order

    def cancel(self, order_id: str) -> None:
        order = self.open.get(order_id)
        if order is not None:
            self.venue.cancel(order)

    # -- venue reports -------------------------------------------------------
    def on_fill(self, order: Order, fill: Fill) -> None:
        self.ledger.apply_fill(fill)
        self.fills.append(fill)
        if self.recorder is not None:
            self.recorder.on_fill(order, fill)
        if order.status is not _OPEN:
            self._close(order)
        change = self.risk.on_equity(fill.ts)
        if change is not None:
            self._apply(change)
        strategy = self.strategy
        if strategy is not None:
            strategy.on_fill(fill, order)

    def on_order_closed(self, order: Order) -> None:
        self._close(order)
        if self.recorder is not None:
            self.recorder.on_order(order, order.status.value)
        if self.strategy is not None:
            self.strategy.on_order_closed(order)

    def _close(self, order: Order) -> None:
        self.open.pop(order.id, None)
        # `_value_`: the member's value without the enum property's Python call.
        self.orders_by_status[order.status._value_] += 1

    # -- control -------------------------------------------------------------
    def set_risk_state(self, state: RiskState, reason: str) -> None:
        self._apply(self.risk.set_state(state, reason, self.now))

    def pause(self) -> None:
        if not self.risk.paused:
            self.risk.paused = True
            self._emit("paused", "trading paused: no new orders")

    def resume(self) -> None:
        """Unpause. Only that: a REDUCING or HALTED risk state stays (see `reset_halt`).

        Pausing is a user's switch; a halt is a decision (a risk limit, drift, a
        lost LiveApproval, a halt command). Toggling the switch must never undo
        the decision.
        """
        if self.risk.paused:
            self.risk.paused = False
            self._emit("resumed", "trading resumed")

    def reset_halt(self) -> None:
        """The one way back to ACTIVE from REDUCING or HALTED: an explicit `reset-halt` command.

        A lost LiveApproval's listener puts its state back at once, so this
        lifts nothing while the approval is still invalid; a breached risk limit
        halts again on the next valuation if it is still breached.
        """
        self.set_risk_state(RiskState.ACTIVE, "reset-halt command")

    def _apply(self, change: StateChange | None) -> None:
        if change is None:
            return
        self._emit("risk_state", f"{change.state.value}: {change.reason}")
        if change.state is RiskState.HALTED:
            for order in list(self.open.values()):
                self.venue.cancel(order)
        elif change.state is RiskState.REDUCING:
            for order in list(self.open.values()):
                if order.side is Side.BUY:
                    self.venue.cancel(order)

    def _emit(self, kind: str, detail: str) -> None:
        event = KernelEvent(self.now, kind, detail)
        self.recent_events.append(event)
        for listener in self.listeners:
            listener(event)
