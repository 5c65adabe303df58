"""A simple inventory-limited market maker on public trades, with resting limit orders.

The reference price is an EMA of trade prices. The strategy keeps at most one
bid and one ask, `spreadBps` either side of the reference (bids rounded down,
asks up, to `tickSize`), and moves them when the reference has moved more than
`requoteBps` since they were placed, or after a fill. It bids only while the
position is below `maxPosition`, and asks only what it holds (spot).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import ClassVar

from hean_contract.strategies import MarketMakerParams
from hean_engine.indicators.ema import Ema
from hean_engine.model.market import Trade
from hean_engine.model.money import BPS, ONE, price_to_decimal
from hean_engine.model.orders import Fill, Order, OrderIntent, OrderType, Side
from hean_engine.strategy.base import DataKind, Strategy, StrategyContext


class MarketMaker(Strategy):
    name: ClassVar[str] = "market_maker"
    consumes: ClassVar[DataKind] = "trades"
    params_model: ClassVar[type[MarketMakerParams]] = MarketMakerParams
    params: MarketMakerParams

    def __init__(self, ctx: StrategyContext, params: MarketMakerParams) -> None:
        super().__init__(ctx, params)
        self._ema = Ema(params.window)
        self._requote_frac = float(params.requote_bps / BPS)
        self._quoted_at: float | None = None  # the reference the live quotes were placed at

    def on_trade(self, trade: Trade) -> None:
        ref = self._ema.update(trade.price)
        quoted_at = self._quoted_at
        if quoted_at is not None and abs(ref - quoted_at) <= quoted_at * self._requote_frac:
            return
        self._requote(ref)

    def on_fill(self, fill: Fill, order: Order) -> None:
        self._quoted_at = None  # requote on the next trade

    def on_order_closed(self, order: Order) -> None:
        self._quoted_at = None

    def _requote(self, ref: float) -> None:
        ctx = self.ctx
        for order in list(ctx.open_orders):
            ctx.cancel(order.id)
        params = self.params
        reference = price_to_decimal(ref)
        offset = params.spread_bps / BPS
        tick = params.tick_size
        bid = (reference * (ONE - offset) / tick).to_integral_value(ROUND_FLOOR) * tick
        ask = (reference * (ONE + offset) / tick).to_integral_value(ROUND_CEILING) * tick
        position = ctx.position
        placed = False
        if bid > 0 and position + params.quantity <= params.max_position:
            placed |= self._place(Side.BUY, params.quantity, bid)
        if position > 0:
            placed |= self._place(Side.SELL, min(params.quantity, position), ask)
        # If every quote was refused (risk), try again on the next trade.
        self._quoted_at = ref if placed else None

    def _place(self, side: Side, quantity: Decimal, price: Decimal) -> bool:
        intent = OrderIntent(side, quantity, OrderType.LIMIT, price, tag=f"mm:{side.value}")
        return self.ctx.submit(intent) is not None
