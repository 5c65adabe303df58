"""Orders, their intents and fills, and the risk states that gate them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from hean_engine.model.money import ZERO


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"


class RiskState(StrEnum):
    """NautilusTrader's trading states: all orders, only position-reducing ones, none."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Reject(StrEnum):
    """Why an order intent was refused; each is a label value of the rejections metric."""

    PAUSED = "paused"
    HALTED = "halted"
    REDUCING = "reducing"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION_NOTIONAL = "max_position_notional"
    MAX_OPEN_ORDERS = "max_open_orders"
    MAX_ORDERS_PER_MINUTE = "max_orders_per_minute"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    INVALID_QUANTITY = "invalid_quantity"
    NO_PRICE = "no_price"


_T = TypeVar("_T")


def slot_init(cls: type[_T]) -> type[_T]:
    """Give a frozen slots dataclass an `__init__` that sets each slot through its descriptor.

    The same signature, defaults and result as the generated one, which calls
    `object.__setattr__(self, name, value)` per field (frozen): about 60% of
    the cost for a Fill (made once per fill, an OrderIntent once per order, a
    report's RoundTrip once per round trip).
    Built like dataclasses builds its own, from the fields.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    namespace: dict[str, Any] = {}
    params, body = [], []
    for f in fields:
        assert f.init and f.default_factory is dataclasses.MISSING and not f.kw_only
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    assert not hasattr(cls, "__post_init__")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)  # noqa: S102 - generated from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@slot_init
@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy wants; becomes an Order only if the risk engine accepts it."""

    side: Side
    quantity: Decimal
    type: OrderType = OrderType.MARKET
    price: Decimal | None = None  # limit price; None for market orders
    tag: str = ""


@dataclass(slots=True)
class Order:
    id: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None
    created_ts: int
    tag: str = ""
    status: OrderStatus = OrderStatus.OPEN
    filled: Decimal = field(default=ZERO)
    reason: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.status is OrderStatus.OPEN


@slot_init
@dataclass(frozen=True, slots=True)
class Fill:
    ts: int
    order_id: str
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal  # in `fee_asset`
    liquidity: str = "taker"  # taker (market orders) or maker (resting limit orders)
    # The currency the fee was charged in; "" means the quote currency (the
    # simulated venue's rule). Binance charges the asset received: a buy's fee
    # is in the base currency.
    fee_asset: str = ""
    trade_id: str = ""  # the exchange's trade id (live); "" for simulated fills
