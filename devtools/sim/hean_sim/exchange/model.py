"""The simulator's own data types: recorded market data, and an account's orders and fills.

Nothing here does anything: the reader (`records`) makes the recorded rows,
the order engine (`orders`) the orders and fills, and the accounts
(`accounts`) keep them. Both of the last two import this module and neither
imports the other's types through it, so the two have no import cycle.

The recorded rows are the simulator's own, not the engine's: the simulator
reads recorded files with its own reader so that it stays an independent
check of the engine's reader (see docs/exchange-simulator.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from hean_sim.exchange.numbers import ZERO


class RecordedCandle(NamedTuple):
    """One row of a candles file: `timestamp,open,high,low,close,volume` (one minute)."""

    ts: int  # epoch ms of the minute's start, as recorded
    open: float
    high: float
    low: float
    close: float
    volume: float


class RecordedTrade(NamedTuple):
    """One row of a trades file: `timestamp,side,price,amount` (side is the taker's)."""

    ts: int  # epoch ms, as recorded
    buyer_taker: bool
    price: float
    amount: float


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    LIMIT_MAKER = "LIMIT_MAKER"


class Status(StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


OPEN_STATUSES = frozenset({Status.NEW, Status.PARTIALLY_FILLED})


@dataclass(frozen=True)
class AccountTrade:
    """One fill of one of an account's orders (a row of `myTrades`)."""

    id: int
    order_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool


@dataclass
class Order:
    order_id: int
    client_order_id: str
    side: Side
    type: OrderType
    time_in_force: str
    price: Decimal  # 0 for market orders, as Binance reports them
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    update_time: int
    status: Status = Status.NEW
    executed_qty: Decimal = ZERO
    cummulative_quote_qty: Decimal = ZERO
    fills: list[AccountTrade] = field(default_factory=list)
    locked: Decimal = ZERO  # what this order still holds locked (quote for buys, base for sells)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    def snapshot(self) -> Order:
        """A copy that later matching does not change."""
        return replace(self, fills=list(self.fills))
