"""Long-only EMA crossover on candle closes.

Exact semantics (docs/strategies.md), so results can be checked independently:
- fast and slow EMAs with alpha = 2/(n+1), both seeded with the first close;
- the relation of fast to slow is taken after each close; no signal is
  acted on before the `slow`-th candle;
- fast goes from <= slow to > slow, and the position is zero: buy `quantity`
  at market;
- fast goes from >= slow to < slow, and the position is positive: sell the
  whole position at market.
Market orders fill at the next candle's open (no look-ahead).
"""

from __future__ import annotations

from typing import ClassVar

from hean_contract.strategies import EmaCrossParams
from hean_engine.model.market import Candle
from hean_engine.model.orders import OrderIntent, Side
from hean_engine.strategy.base import DataKind, Strategy, StrategyContext


class EmaCross(Strategy):
    name: ClassVar[str] = "ema_cross"
    consumes: ClassVar[DataKind] = "candles"
    params_model: ClassVar[type[EmaCrossParams]] = EmaCrossParams
    params: EmaCrossParams

    def __init__(self, ctx: StrategyContext, params: EmaCrossParams) -> None:
        super().__init__(ctx, params)
        self._fa = 2.0 / (params.fast + 1)
        self._fk = 1.0 - self._fa
        self._sa = 2.0 / (params.slow + 1)
        self._sk = 1.0 - self._sa
        self._fast = 0.0
        self._slow = 0.0
        self._seen = 0
        self._relation = 0  # sign(fast - slow) after the previous close
        self._buy = OrderIntent(Side.BUY, params.quantity, tag="ema_cross:golden")

    @property
    def fast(self) -> float:
        return self._fast

    @property
    def slow(self) -> float:
        return self._slow

    def on_candle(self, candle: Candle) -> None:
        # The hot path of a replay: locals and plain floats only.
        x = candle.close
        seen = self._seen + 1
        self._seen = seen
        if seen == 1:
            fast = slow = x
        else:
            fast = self._fa * x + self._fk * self._fast
            slow = self._sa * x + self._sk * self._slow
        self._fast = fast
        self._slow = slow
        before = self._relation
        now = 1 if fast > slow else (-1 if fast < slow else 0)
        self._relation = now
        if now == before or seen < self.params.slow:
            return
        ctx = self.ctx
        if now == 1:
            # Flat means nothing tradeable: dust below the venue's smallest order (a
            # fee charged in the base currency, lot-size rounding) is not a position.
            if ctx.position <= ctx.dust:
                ctx.submit(self._buy)
        elif now == -1:
            position = ctx.position
            if position > ctx.dust:
                ctx.submit(OrderIntent(Side.SELL, position, tag="ema_cross:death"))
