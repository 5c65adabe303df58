"""Strategy name -> class. The spec's STRATEGY_PARAMS names the same strategies."""

from __future__ import annotations

from hean_contract.spec import StrategySpec
from hean_engine.strategy.base import Strategy, StrategyContext
from hean_engine.strategy.ema_cross import EmaCross
from hean_engine.strategy.market_maker import MarketMaker

STRATEGIES: dict[str, type[Strategy]] = {
    EmaCross.name: EmaCross,
    MarketMaker.name: MarketMaker,
}


def build_strategy(spec: StrategySpec, ctx: StrategyContext) -> Strategy:
    cls = STRATEGIES[spec.name]
    return cls(ctx, spec.typed_params())  # type: ignore[call-arg]
