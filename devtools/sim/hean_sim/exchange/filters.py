"""The symbol's trading rules (Binance "filters"), from the config or the data.

Defaults are derived so that the recorded data is valid under them: the tick
size is the finest decimal place seen in the first records' prices, the step
size the finest seen in their amounts (both capped at eight decimals, Binance's
precision), and the minimum notional follows Binance's usual level for the
quote asset. The private half of the simulator validates orders against the
same `SymbolFilters`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Literal

from hean_sim.exchange.config import SimConfig
from hean_sim.exchange.numbers import dec, decimals, text

MAX_DECIMALS = 8
# Binance's usual minimum order value by quote asset; others get none.
_MIN_NOTIONAL_BY_QUOTE = {
    "USDT": Decimal(5),
    "USDC": Decimal(5),
    "FDUSD": Decimal(5),
    "BUSD": Decimal(5),
    "TUSD": Decimal(5),
    "USD": Decimal(5),
    "EUR": Decimal(5),
    "BTC": Decimal("0.0001"),
    "ETH": Decimal("0.001"),
    "BNB": Decimal("0.01"),
}


@dataclass(frozen=True)
class SymbolFilters:
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    notional_filter: Literal["NOTIONAL", "MIN_NOTIONAL"]

    def floor_price(self, price: Decimal) -> Decimal:
        return (price / self.tick_size).to_integral_value(ROUND_FLOOR) * self.tick_size

    def ceil_price(self, price: Decimal) -> Decimal:
        return (price / self.tick_size).to_integral_value(ROUND_CEILING) * self.tick_size

    def floor_qty(self, qty: Decimal) -> Decimal:
        return (qty / self.step_size).to_integral_value(ROUND_FLOOR) * self.step_size

    def to_json(self) -> list[dict[str, Any]]:
        """exchangeInfo's `filters` list, in Binance's shapes."""
        notional: dict[str, Any]
        if self.notional_filter == "MIN_NOTIONAL":
            notional = {
                "filterType": "MIN_NOTIONAL",
                "minNotional": text(self.min_notional),
                "applyToMarket": True,
                "avgPriceMins": 5,
            }
        else:
            notional = {
                "filterType": "NOTIONAL",
                "minNotional": text(self.min_notional),
                "applyMinToMarket": True,
                "maxNotional": text(self.max_notional),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            }
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": text(self.min_price),
                "maxPrice": text(self.max_price),
                "tickSize": text(self.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": text(self.min_qty),
                "maxQty": text(self.max_qty),
                "stepSize": text(self.step_size),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": text(Decimal(0)),
                "maxQty": text(self.max_qty),
                "stepSize": text(Decimal(0)),
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            notional,
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ]


def _finest(values: Iterable[float]) -> Decimal:
    places = max((decimals(dec(v)) for v in values), default=MAX_DECIMALS)
    return Decimal(1).scaleb(-min(places, MAX_DECIMALS))


def derive_filters(
    config: SimConfig, sample_prices: Iterable[float], sample_amounts: Iterable[float]
) -> SymbolFilters:
    tick = config.tick_size if config.tick_size is not None else _finest(sample_prices)
    step = config.step_size if config.step_size is not None else _finest(sample_amounts)
    min_notional = config.min_notional
    if min_notional is None:
        min_notional = _MIN_NOTIONAL_BY_QUOTE.get(config.quote_asset, Decimal(0))
    return SymbolFilters(
        tick_size=tick,
        min_price=tick,
        max_price=Decimal(1_000_000),
        step_size=step,
        min_qty=config.min_qty if config.min_qty is not None else step,
        max_qty=config.max_qty if config.max_qty is not None else Decimal(9_000_000),
        min_notional=min_notional,
        max_notional=(
            config.max_notional if config.max_notional is not None else Decimal(9_000_000)
        ),
        notional_filter=config.notional_filter,
    )
