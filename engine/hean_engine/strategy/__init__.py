"""Strategies: read market data and fills, emit order intents through a context.

What a strategy package imports, in one place (docs/strategies.md):

    from hean_engine.strategy import Candle, OrderIntent, Side, Strategy, StrategyContext

The parameter model's base and field types are the contract's
(`hean_contract.strategies.StrategyParams`, `hean_contract.fields`), re-exported
here too. Nothing here imports the registry: the kernel imports `base` only.
"""

from __future__ import annotations

from hean_contract.fields import Count, NonNegativeDecimal, PositiveDecimal
from hean_contract.strategies import StrategyParams
from hean_engine.model.market import Candle, Trade
from hean_engine.model.money import price_to_decimal
from hean_engine.model.orders import Fill, Order, OrderIntent, OrderStatus, OrderType, Side
from hean_engine.strategy.base import DataKind, Strategy, StrategyContext

__all__ = [
    "Candle",
    "Count",
    "DataKind",
    "Fill",
    "NonNegativeDecimal",
    "Order",
    "OrderIntent",
    "OrderStatus",
    "OrderType",
    "PositiveDecimal",
    "Side",
    "Strategy",
    "StrategyContext",
    "StrategyParams",
    "Trade",
    "price_to_decimal",
]
