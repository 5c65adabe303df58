"""Comparing the engine's books with the exchange's: pure, so it is tested without a network.

What is compared: the totals (free + locked) of the base and quote
currencies against the ledger, and the account's open orders on the market
(orders without this engine's client-id prefix are foreign). Drift is a
difference valued above the tolerance in the quote currency, or any foreign
open order: the books no longer describe the account alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hean_engine.model.money import ZERO, fmt
from hean_engine.portfolio.ledger import Ledger


@dataclass(frozen=True)
class BalanceDiff:
    currency: str
    engine: Decimal
    exchange: Decimal

    @property
    def difference(self) -> Decimal:
        return self.exchange - self.engine


@dataclass
class Comparison:
    balances: list[BalanceDiff]
    difference_value: Decimal  # |quote diff| + |base diff| x price, in the quote currency
    tolerance: Decimal
    foreign_orders: list[dict[str, Any]] = field(default_factory=list)

    @property
    def balance_drift(self) -> bool:
        return self.difference_value > self.tolerance

    @property
    def drift(self) -> bool:
        return self.balance_drift or bool(self.foreign_orders)

    def summary(self) -> str:
        parts = [
            f"{b.currency} engine {fmt(b.engine)} exchange {fmt(b.exchange)}"
            for b in self.balances
            if b.difference
        ]
        if self.foreign_orders:
            parts.append(f"{len(self.foreign_orders)} foreign open order(s)")
        return "; ".join(parts) or "books match"


def compare(
    ledger: Ledger,
    exchange_totals: dict[str, Decimal],
    open_orders: Iterable[dict[str, Any]],
    is_ours: Callable[[str | None], bool],
    price: Decimal | None,
    tolerance: Decimal,
) -> Comparison:
    base = BalanceDiff(ledger.base, ledger.position, exchange_totals.get(ledger.base, ZERO))
    quote = BalanceDiff(ledger.quote_ccy, ledger.quote, exchange_totals.get(ledger.quote_ccy, ZERO))
    value = abs(quote.difference)
    if base.difference:
        # Without a price yet, any base difference is drift (valued as if at 1).
        value += abs(base.difference) * (price if price is not None else Decimal(1))
    foreign = [
        {
            "id": str(order.get("id")),
            "client_order_id": order.get("clientOrderId"),
            "side": order.get("side"),
            "type": order.get("type"),
            "amount": _text(order.get("amount")),
            "price": _text(order.get("price")),
        }
        for order in open_orders
        if not is_ours(order.get("clientOrderId"))
    ]
    return Comparison([base, quote], value, tolerance, foreign)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return fmt(Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value)))
