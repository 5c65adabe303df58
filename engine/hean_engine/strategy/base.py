"""The strategy interface.

A strategy sees market data (`on_candle` or `on_trade`, whichever it
`consumes`) and its own fills, and acts only through its `StrategyContext`:
submitting an intent (which the risk engine may refuse) or cancelling an
order. The same strategy object runs unchanged in replay, paper and live.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar, Literal, Protocol

from hean_contract.strategies import StrategyParams
from hean_engine.model.market import Candle, Trade
from hean_engine.model.orders import Fill, Order, OrderIntent

DataKind = Literal["candles", "trades"]


class StrategyContext(Protocol):
    @property
    def position(self) -> Decimal:
        """Base currency held (filled orders only)."""
        ...

    @property
    def dust(self) -> Decimal:
        """The largest quantity the venue cannot trade (0 when any amount trades)."""
        ...

    @property
    def open_orders(self) -> Sequence[Order]: ...

    @property
    def now(self) -> int:
        """Event time in epoch ms: the data's clock in replay, the exchange's live."""
        ...

    def submit(self, intent: OrderIntent) -> Order | None:
        """Send an intent through risk; the accepted Order, or None if refused."""
        ...

    def cancel(self, order_id: str) -> None: ...


class Strategy:
    # The name the contract's registry (hean_contract.strategies) lists it under,
    # and the parameter model registered with that name, which `__init__` takes.
    name: ClassVar[str]
    consumes: ClassVar[DataKind]
    params_model: ClassVar[type[StrategyParams]]

    def __init__(self, ctx: StrategyContext) -> None:
        self.ctx = ctx

    def on_candle(self, candle: Candle) -> None:
        """Called on each closed candle."""

    def on_trade(self, trade: Trade) -> None:
        """Called on each public trade."""

    def on_fill(self, fill: Fill, order: Order) -> None:
        """Called after a fill of one of this strategy's orders was booked."""

    def on_order_closed(self, order: Order) -> None:
        """Called when an order is cancelled or rejected by the venue."""
