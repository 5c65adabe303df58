"""Long-only RSI mean reversion on candle closes.

Exact semantics (so that a test can recompute every signal independently):

- RSI is Wilder's: the first average gain and loss are the plain means of the
  first `period` close-to-close changes; after that
  `avg = (avg * (period - 1) + x) / period`, in IEEE doubles. RSI is
  `100 - 100 / (1 + avg_gain / avg_loss)`, and 100 when `avg_loss` is 0.
- The first RSI exists after `period + 1` closes; no signal before that.
- RSI below `oversold`, flat (position at most dust) and no order working:
  buy `quantity` at market.
- RSI above `overbought` and a position: sell all of it at market.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from hean_engine.strategy import (
    Candle,
    Count,
    DataKind,
    OrderIntent,
    PositiveDecimal,
    Side,
    Strategy,
    StrategyContext,
    StrategyParams,
)


class RsiParams(StrategyParams):
    """`spec.strategy.params` of `rsi_mean_reversion` (camelCase in the spec)."""

    # oversold < overbought, checked with a message naming both fields.
    ordered: ClassVar[tuple[tuple[str, str], ...]] = (("oversold", "overbought"),)

    period: Count = Field(default=14, ge=2, le=1000, description="RSI length in candles.")
    oversold: Count = Field(default=30, ge=1, le=99, description="Buy below this RSI.")
    overbought: Count = Field(default=70, ge=1, le=99, description="Sell above this RSI.")
    quantity: PositiveDecimal = Field(gt=0, description="Base quantity bought on a signal.")


class RsiMeanReversion(Strategy):
    consumes: ClassVar[DataKind] = "candles"
    params_model: ClassVar[type[RsiParams]] = RsiParams
    params: RsiParams

    def __init__(self, ctx: StrategyContext, params: RsiParams) -> None:
        super().__init__(ctx, params)
        self._period = params.period
        self._oversold = float(params.oversold)
        self._overbought = float(params.overbought)
        self._buy = OrderIntent(Side.BUY, params.quantity, tag="rsi:oversold")
        self._previous: float | None = None
        self._changes = 0
        self._gain = 0.0  # a sum over the first `period` changes, then Wilder's average
        self._loss = 0.0

    @property
    def rsi(self) -> float | None:
        """The RSI after the latest close, or None before the first one exists."""
        if self._changes < self._period:
            return None
        if self._loss == 0.0:
            return 100.0
        return 100.0 - 100.0 / (1.0 + self._gain / self._loss)

    def on_candle(self, candle: Candle) -> None:
        close = candle.close
        previous, self._previous = self._previous, close
        if previous is None:
            return
        change = close - previous
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        period = self._period
        self._changes += 1
        if self._changes < period:
            self._gain += gain
            self._loss += loss
            return
        if self._changes == period:
            self._gain = (self._gain + gain) / period
            self._loss = (self._loss + loss) / period
        else:
            self._gain = (self._gain * (period - 1) + gain) / period
            self._loss = (self._loss * (period - 1) + loss) / period
        rsi = self.rsi
        assert rsi is not None
        ctx = self.ctx
        if rsi < self._oversold:
            if ctx.position <= ctx.dust and not ctx.open_orders:
                ctx.submit(self._buy)
        elif rsi > self._overbought:
            position = ctx.position
            if position > ctx.dust:
                ctx.submit(OrderIntent(Side.SELL, position, tag="rsi:overbought"))
