"""A synthetic order book around the replayed price.

Recorded files hold no book, so the depth endpoints show a deterministic one:
the best bid is the last price rounded down to the tick (one tick lower when
the price is on a tick), the best ask the last price rounded up (one tick
higher when on a tick), so bid < last < ask always; then one level per tick
outwards, level k (from 0) holding (k + 1) x the typical quantity. All Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hean_sim.exchange.market import MarketState

Level = tuple[Decimal, Decimal]


@dataclass(frozen=True)
class Book:
    last_update_id: int
    bids: list[Level]
    asks: list[Level]


def synthetic_book(market: MarketState, levels: int) -> Book:
    filters = market.filters
    tick = filters.tick_size
    last = market.last_price()
    bid = filters.floor_price(last)
    if bid >= last:
        bid -= tick
    ask = filters.ceil_price(last)
    if ask <= last:
        ask += tick
    qty = market.typical_qty
    bids: list[Level] = []
    asks: list[Level] = []
    for k in range(levels):
        size = qty * (k + 1)
        price = bid - tick * k
        if price > 0:
            bids.append((price, size))
        asks.append((ask + tick * k, size))
    return Book(market.updates, bids, asks)
