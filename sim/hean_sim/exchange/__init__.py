"""A stateful fake Binance spot REST API replaying recorded market data.

The real ccxt `binance` client works against it unchanged once its URLs are
rewritten with `point_ccxt_at`. This half serves the public market-data
endpoints; `MarketState` (current price, current time) is what order matching
builds on.
"""

from __future__ import annotations

from hean_sim.exchange.ccxt_urls import point_ccxt_at
from hean_sim.exchange.config import SimConfig
from hean_sim.exchange.market import MarketState
from hean_sim.exchange.server import SimExchange, serve_forever

__all__ = ["MarketState", "SimConfig", "SimExchange", "point_ccxt_at", "serve_forever"]
