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


class OrderRecorder(Protocol):
    """Where order state changes and fills go to be kept (`history.recorder`).

    Optional everywhere (None in replay): the kernel and the live venue call it
    only when one is set, so a replay pays nothing for it.
    """

    def on_order(self, order: Order, change: str, exchange_order_id: str = "") -> None: ...

    def on_fill(self, order: Order, fill: Fill) -> None:
        """Called after the ledger booked the fill (its balances include it)."""
        ...

    def missed_fills_from(self) -> tuple[int, set[str]] | None:
        """Where a live start-up looks for fills the history lacks: (from this time in ms,
        the trade ids already recorded from then on); None: nothing can be missing."""
        ...

    def on_missed_fill(self, order: Order, fill: Fill, exchange_order_id: str) -> None:
        """A fill found at start-up that the history lacked: recorded, never booked."""
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
