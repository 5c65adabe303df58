"""What the kernel needs from an execution venue, and what a venue reports back."""

from __future__ import annotations

from typing import Protocol

from hean_engine.model.market import Candle, Trade
from hean_engine.model.orders import Fill, Order


class VenueListener(Protocol):
    def on_fill(self, order: Order, fill: Fill) -> None: ...

    def on_order_closed(self, order: Order) -> None:
        """The order was cancelled or rejected (its status and reason say which)."""
        ...


class Venue(Protocol):
    def bind(self, listener: VenueListener) -> None: ...

    def submit(self, order: Order) -> None:
        """Take an accepted order; outcomes arrive through the listener."""
        ...

    def cancel(self, order: Order) -> None: ...

    def on_candle(self, candle: Candle) -> None:
        """Market data for matching simulated orders (a no-op at a real venue)."""
        ...

    def on_trade(self, trade: Trade) -> None: ...
