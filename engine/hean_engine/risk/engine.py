"""The risk engine: limits, risk states, and the automatic halts.

States follow NautilusTrader: ACTIVE (any order), REDUCING (only orders that
shrink the position), HALTED (no orders; the kernel cancels open ones).
Breaching `maxDailyLoss` or `maxDrawdownPct` halts by itself; the `halt` and
`reduce` control commands set a state. A halt is sticky: only the explicit
`reset-halt` command lifts it (never `resume`, which only unpauses).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from hean_contract.spec import RiskSpec
from hean_engine.model.money import HUNDRED, ONE, ZERO, price_to_decimal
from hean_engine.model.orders import Order, OrderIntent, Reject, RiskState, Side
from hean_engine.portfolio.ledger import Ledger

_MINUTE_MS = 60_000
# Enum members as module constants: a global load, not a class attribute lookup.
_BUY = Side.BUY
_SELL = Side.SELL
_HALTED = RiskState.HALTED
_REDUCING = RiskState.REDUCING


@dataclass(frozen=True, slots=True)
class StateChange:
    state: RiskState
    reason: str
    ts: int


class RiskEngine:
    def __init__(self, spec: RiskSpec, ledger: Ledger, fee_rate: Decimal) -> None:
        self.spec = spec
        self.ledger = ledger
        self.fee_rate = fee_rate
        self._fee_factor = ONE + fee_rate
        self.state = RiskState.ACTIVE
        self.state_reason = "start"
        self.paused = False
        self.rejections: Counter[str] = Counter()
        self._recent_submits: deque[int] = deque()
        self._drawdown_keep = ONE - spec.max_drawdown_pct / HUNDRED
        self._peak_seen: Decimal | None = None
        self._drawdown_floor = Decimal(0)
        # The ledger skips exact valuations that cannot cross these (see Ledger.mark).
        self._halt_limits = (spec.max_daily_loss, self._drawdown_keep)
        ledger.set_halt_limits(self._halt_limits)

    # -- state ---------------------------------------------------------------
    def set_state(self, state: RiskState, reason: str, ts: int) -> StateChange | None:
        if state is self.state:
            return None
        self.state = state
        self.state_reason = reason
        self.ledger.set_halt_limits(None if state is RiskState.HALTED else self._halt_limits)
        return StateChange(state, reason, ts)

    def on_equity(self, ts: int) -> StateChange | None:
        """Halt when the day's loss or the drawdown from the peak breaches its limit."""
        if self.state is _HALTED:
            return None
        ledger = self.ledger
        equity = ledger.equity
        if ledger.day_start_equity - equity >= self.spec.max_daily_loss:
            return self.set_state(RiskState.HALTED, "max_daily_loss", ts)
        peak = ledger.peak_equity
        if peak is not self._peak_seen:  # the floor moves only with the peak
            self._peak_seen = peak
            self._drawdown_floor = peak * self._drawdown_keep
        # `equity < peak`: an account that never had equity (all zero) is not in a drawdown.
        if equity <= self._drawdown_floor and equity < peak:
            return self.set_state(RiskState.HALTED, "max_drawdown", ts)
        return None

    # -- pre-trade check -----------------------------------------------------
    def check(
        self, intent: OrderIntent, mark: float | None, open_orders: Collection[Order], now: int
    ) -> Reject | None:
        """None if the intent may be sent; else the reason, counted in `rejections`.

        `mark` is the latest market price (None before the first), converted to
        money (`price_to_decimal`) only if the check needs it; `open_orders` is
        read, never kept (the kernel passes a view of its own).
        """
        if self.paused:
            return self._reject(Reject.PAUSED)
        state = self.state
        if state is _HALTED:
            return self._reject(Reject.HALTED)
        quantity = intent.quantity
        if quantity <= ZERO:
            return self._reject(Reject.INVALID_QUANTITY)
        # A sell shrinks a spot long position; a buy grows it.
        reduces = intent.side is _SELL
        if state is _REDUCING and not reduces:
            return self._reject(Reject.REDUCING)
        spec = self.spec
        if len(open_orders) >= spec.max_open_orders:
            return self._reject(Reject.MAX_OPEN_ORDERS)
        recent = self._recent_submits
        horizon = now - _MINUTE_MS
        while recent and recent[0] <= horizon:
            recent.popleft()
        if len(recent) >= spec.max_orders_per_minute:
            return self._reject(Reject.MAX_ORDERS_PER_MINUTE)
        limit = intent.price
        if limit is None and mark is None:
            return self._reject(Reject.NO_PRICE)
        ledger = self.ledger
        if reduces:
            # A sell is checked on quantities alone: what the position holds beyond
            # the working sells.
            reserved = ZERO
            for o in open_orders:
                if o.side is _SELL:
                    reserved = reserved + o.remaining
            if quantity + reserved > ledger.position:
                return self._reject(Reject.INSUFFICIENT_BALANCE)
            recent.append(now)
            return None
        # Exits are never blocked by the size limits: they only apply to orders
        # that add exposure.
        market_price = None  # the mark as money, converted when first needed
        if limit is None:
            assert mark is not None  # (NO_PRICE above)
            ref_price = market_price = price_to_decimal(mark)
        else:
            ref_price = limit
        notional = quantity * ref_price
        if notional > spec.max_order_notional:
            return self._reject(Reject.MAX_ORDER_NOTIONAL)
        pending_buys = reserved_quote = ZERO
        for o in open_orders:
            if o.side is _BUY:
                remaining = o.remaining
                pending_buys = pending_buys + remaining
                pay = o.price
                if pay is None:
                    # A working market buy pays about the market price, not this
                    # order's limit.
                    if market_price is None:
                        market_price = ref_price if mark is None else price_to_decimal(mark)
                    pay = market_price
                reserved_quote = reserved_quote + remaining * pay
        if (ledger.position + pending_buys + quantity) * ref_price > spec.max_position_notional:
            return self._reject(Reject.MAX_POSITION_NOTIONAL)
        if (notional + reserved_quote) * self._fee_factor > ledger.quote:
            return self._reject(Reject.INSUFFICIENT_BALANCE)
        recent.append(now)
        return None

    def _reject(self, reason: Reject) -> Reject:
        self.rejections[reason.value] += 1
        return reason
