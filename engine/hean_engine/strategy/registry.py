"""Strategy name -> implementation class.

The names, the parameter models and the descriptions are the contract's
registry (`hean_contract.strategies.BUILTIN_STRATEGIES`); this module only
adds the code behind each name. A test proves both list the same names and
that each class takes the parameter model registered under its name.
"""

from __future__ import annotations

from hean_contract.spec import StrategySpec
from hean_engine.strategy.base import Strategy, StrategyContext
from hean_engine.strategy.ema_cross import EmaCross
from hean_engine.strategy.market_maker import MarketMaker

STRATEGY_CLASSES: dict[str, type[Strategy]] = {cls.name: cls for cls in (EmaCross, MarketMaker)}


def build_strategy(spec: StrategySpec, ctx: StrategyContext) -> Strategy:
    cls = STRATEGY_CLASSES[spec.name]
    # Every concrete strategy's __init__ takes (ctx, params); the base's takes ctx only.
    return cls(ctx, spec.typed_params())  # type: ignore[call-arg]
