"""What the kernel needs from an execution venue, and what a venue reports back."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from hean_engine.model.market import Candle, Trade
from hean_engine.model.orders import Fill, Order


class VenueListener(Protocol):
    def on_fill(self, order: Order, fill: Fill) -> None: ...

    def on_order_closed(self, order: Order) -> None:
        """The order was cancelled or rejected (its status and reason say which)."""
        ...

    def adopt(self, order: Order) -> None:
        """An order already working at the venue (found at start-up) joins the books."""
        ...


class Venue(Protocol):
    # The largest quantity that cannot be traded here (below the smallest order).
    dust: Decimal

    def bind(self, listener: VenueListener) -> None: ...

    def new_order_id(self) -> str:
        """The id of the next order (a live venue's is its client order id)."""
        ...

    def submit(self, order: Order) -> None:
        """Take an accepted order; outcomes arrive through the listener."""
        ...

    def cancel(self, order: Order) -> None: ...

    def on_candle(self, candle: Candle) -> None:
        """Market data for matching simulated orders (a no-op at a real venue)."""
        ...

    def on_trade(self, trade: Trade) -> None: ...
