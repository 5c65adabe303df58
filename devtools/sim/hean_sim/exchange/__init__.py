"""A stateful fake Binance spot REST API replaying recorded market data.

The real ccxt `binance` client works against it unchanged once its URLs are
rewritten with `point_ccxt_at`. The public half serves market data from a
`MarketState`; the private half (signed requests, one account per API key)
places, matches and cancels orders against the replayed price path; a
`FaultPlan` injects seeded network and exchange failures. See
docs/exchange-simulator.md.
"""

from __future__ import annotations

from hean_sim.exchange.accounts import (
    Account,
    Balance,
    KeysFileError,
    generate_key_pair,
    load_keys,
    write_credentials,
)
from hean_sim.exchange.ccxt_urls import point_ccxt_at
from hean_sim.exchange.config import ApiKey, SimConfig
from hean_sim.exchange.faults import Fault, FaultPlan, FaultSpecError
from hean_sim.exchange.market import MarketState
from hean_sim.exchange.model import AccountTrade, Order, OrderType, Side, Status
from hean_sim.exchange.server import SimExchange, serve_forever

__all__ = [
    "Account",
    "AccountTrade",
    "ApiKey",
    "Balance",
    "Fault",
    "FaultPlan",
    "FaultSpecError",
    "KeysFileError",
    "MarketState",
    "Order",
    "OrderType",
    "Side",
    "SimConfig",
    "SimExchange",
    "Status",
    "generate_key_pair",
    "load_keys",
    "point_ccxt_at",
    "serve_forever",
    "write_credentials",
]
