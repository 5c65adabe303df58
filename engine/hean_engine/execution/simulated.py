"""Simulated fills for replay and paper trading.

- Market orders fill at the next market event's price: the next candle's
  open, or the next trade's price; never at the price that triggered them (no
  look-ahead). The price moves `slippageBps` against the order.
- Limit orders rest. On candles, a buy fills when the low trades below its
  price (a sell: the high above), at the limit, or at the open if the candle
  opens through it. On trades, a buy fills when a trade prints strictly below
  its price (a sell: above), up to that trade's amount, at the limit. Prints at
  exactly the limit do not fill: a resting order is at the back of the queue.
- The fee is `feeRate` x fill notional in the quote currency (maker or taker).
- A fill the account cannot pay for at its actual price is rejected
  (`insufficient_balance`), as an exchange would: balances never go negative.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from hean_engine.execution.venue import VenueListener
from hean_engine.model.market import Candle, Trade
from hean_engine.model.money import BPS, ONE, price_to_decimal
from hean_engine.model.orders import Fill, Order, OrderStatus, OrderType, Reject, Side

# (side, quantity, price, fee) -> can the account pay for this fill?
FundsCheck = Callable[[Side, Decimal, Decimal, Decimal], bool]

# Enum members as module constants: a global load, not a class attribute lookup.
_BUY = Side.BUY
_SELL = Side.SELL
_MARKET = OrderType.MARKET
_OPEN = OrderStatus.OPEN
_FILLED = OrderStatus.FILLED


class SimulatedVenue:
    def __init__(self, fee_rate: Decimal, slippage_bps: Decimal, funds_check: FundsCheck) -> None:
        self.fee_rate = fee_rate
        self._buy_factor = ONE + slippage_bps / BPS
        self._sell_factor = ONE - slippage_bps / BPS
        self._funds_check = funds_check
        self._market: list[Order] = []
        self._limits: list[Order] = []
        self._listener: VenueListener | None = None
        self._seq = 0
        self.dust = Decimal(0)  # simulated fills take any amount

    def new_order_id(self) -> str:
        self._seq += 1
        return f"o{self._seq}"

    def continue_ids(self, last: int) -> None:
        """Number the next order after `last` (a paper account's ids continue across runs)."""
        self._seq = max(self._seq, last)

    def bind(self, listener: VenueListener) -> None:
        self._listener = listener

    def submit(self, order: Order) -> None:
        (self._market if order.type is _MARKET else self._limits).append(order)

    def cancel(self, order: Order) -> None:
        for book in (self._market, self._limits):
            if _take(book, order):
                order.status = OrderStatus.CANCELED
                self._closed(order)
                return

    # -- matching ---------------------------------------------------------------
    def on_candle(self, candle: Candle) -> None:
        if self._market:
            self._fill_market(candle.open, candle.ts)
        if self._limits:
            low = high = open_ = None  # each converted once, when first needed
            for order in list(self._limits):
                if order.status is not _OPEN:
                    continue  # closed by an earlier fill's effects (a halt cancels)
                limit = order.price
                assert limit is not None
                if order.side is _BUY:
                    if low is None:
                        low = price_to_decimal(candle.low)
                    if not low < limit:
                        continue
                    if open_ is None:
                        open_ = price_to_decimal(candle.open)
                    price = min(limit, open_)
                else:
                    if high is None:
                        high = price_to_decimal(candle.high)
                    if not high > limit:
                        continue
                    if open_ is None:
                        open_ = price_to_decimal(candle.open)
                    price = max(limit, open_)
                self._fill(order, order.remaining, price, candle.ts, "maker", self._limits)

    def on_trade(self, trade: Trade) -> None:
        if self._market:
            self._fill_market(trade.price, trade.ts)
        if self._limits:
            price = price_to_decimal(trade.price)
            amount = None  # converted once, when first needed
            for order in list(self._limits):
                if order.status is not _OPEN:
                    continue  # closed by an earlier fill's effects (a halt cancels)
                limit = order.price
                assert limit is not None
                if price < limit if order.side is _BUY else price > limit:
                    if amount is None:
                        amount = price_to_decimal(trade.amount)
                    quantity = min(order.remaining, amount)
                    self._fill(order, quantity, limit, trade.ts, "maker", self._limits)

    def _fill_market(self, price: float, ts: int) -> None:
        base_price = price_to_decimal(price)
        # The orders waiting for this event; ones submitted while it is matched wait
        # for the next. Each stays in the book until its turn, so that a halt caused
        # by an earlier fill can still cancel it.
        market = self._market
        for order in list(market):
            if order.status is not _OPEN:
                continue
            _take(market, order)
            factor = self._buy_factor if order.side is _BUY else self._sell_factor
            self._fill(order, order.remaining, base_price * factor, ts, "taker", None)

    def _fill(
        self,
        order: Order,
        quantity: Decimal,
        price: Decimal,
        ts: int,
        liquidity: str,
        book: list[Order] | None,
    ) -> None:
        fee = price * quantity * self.fee_rate
        side = order.side
        if not self._funds_check(side, quantity, price, fee):
            if book is not None:
                _take(book, order)
            order.status = OrderStatus.REJECTED
            order.reason = Reject.INSUFFICIENT_BALANCE.value
            self._closed(order)
            return
        order.filled = filled = order.filled + quantity
        if filled >= order.quantity:
            order.status = _FILLED
            if book is not None:
                _take(book, order)
        listener = self._listener
        assert listener is not None
        listener.on_fill(order, Fill(ts, order.id, side, price, quantity, fee, liquidity))

    def _closed(self, order: Order) -> None:
        assert self._listener is not None
        self._listener.on_order_closed(order)


def _take(book: list[Order], order: Order) -> bool:
    """Remove this very order from `book`; False if it is not there.

    By identity: `list.remove` and `in` compare with Order's dataclass `==`,
    which builds a tuple of every field for each other order they pass (only
    the order itself has its id, so the result is the same).
    """
    if book and book[0] is order:
        del book[0]
        return True
    for index, other in enumerate(book):
        if other is order:
            del book[index]
            return True
    return False
