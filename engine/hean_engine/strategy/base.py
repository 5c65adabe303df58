"""The strategy interface: the one the built-in strategies and users' strategies implement.

A strategy sees market data (`on_candle` or `on_trade`, whichever it
`consumes`) and its own orders' fills and closes, and acts only through its
`StrategyContext`: submitting an intent (which the risk engine may refuse) or
cancelling an order. The same object runs unchanged in replay, paper and live:
the engine calls it the same way in all three, so nothing here may cost time
per event (the replay's hot path calls `on_candle` directly).

docs/strategies.md is the user's reference for all of this; a strategy is
found by name through the entry-point group `hean.strategies`
(`hean_engine.strategy.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import ClassVar, Literal, Protocol

from hean_contract.strategies import StrategyParams
from hean_engine.model.market import Candle, Trade
from hean_engine.model.orders import Fill, Order, OrderIntent

DataKind = Literal["candles", "trades"]
DATA_KINDS: tuple[DataKind, ...] = ("candles", "trades")


class StrategyContext(Protocol):
    """What a strategy can read and do; the engine's kernel implements it."""

    @property
    def position(self) -> Decimal:
        """Base currency held (filled orders only)."""
        ...

    @property
    def balances(self) -> Mapping[str, Decimal]:
        """Every balance of the account by currency code (base and quote included)."""
        ...

    @property
    def dust(self) -> Decimal:
        """The largest quantity the venue cannot trade (0 when any amount trades)."""
        ...

    @property
    def open_orders(self) -> Sequence[Order]:
        """This engine's working orders (a copy: cancelling while iterating is safe)."""
        ...

    @property
    def now(self) -> int:
        """Event time in epoch ms: the data's clock in replay, the exchange's live."""
        ...

    def submit(self, intent: OrderIntent) -> Order | None:
        """Send an intent through risk; the accepted Order, or None if refused."""
        ...

    def cancel(self, order_id: str) -> None:
        """Ask the venue to cancel a working order; `on_order_closed` follows."""
        ...


class Strategy:
    """The base of every strategy.

    A subclass sets `consumes` and `params_model` and takes `(ctx, params)` in
    `__init__`, where `params` is an instance of its `params_model` built from
    `spec.strategy.params` (validated before the strategy is constructed).
    The `name` a built-in carries is the name it is registered under; a
    user's strategy is named by its entry point and need not set it.
    """

    name: ClassVar[str] = ""
    consumes: ClassVar[DataKind]
    params_model: ClassVar[type[StrategyParams]]

    def __init__(self, ctx: StrategyContext, params: StrategyParams) -> None:
        self.ctx = ctx
        self.params = params

    def on_candle(self, candle: Candle) -> None:
        """Called on each closed candle (strategies that consume candles)."""

    def on_trade(self, trade: Trade) -> None:
        """Called on each public trade (strategies that consume trades)."""

    def on_fill(self, fill: Fill, order: Order) -> None:
        """Called after a fill of one of this strategy's orders was booked."""

    def on_order_closed(self, order: Order) -> None:
        """Called when an order is cancelled or rejected by the venue."""
