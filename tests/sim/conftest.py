"""Fixtures of the exchange simulator's tests (helpers: sim_support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sim_support import CANDLES, TRADES, FakeClock, Row, ccxt_client, slice_file

from hean_sim.exchange import ApiKey, FaultPlan, SimConfig, SimExchange


@pytest.fixture
def candle_rows(tmp_path: Path) -> tuple[Path, list[Row]]:
    path = tmp_path / "candles.csv.gz"
    return path, slice_file(CANDLES, path, 4000)


@pytest.fixture
def trade_rows(tmp_path: Path) -> tuple[Path, list[Row]]:
    path = tmp_path / "trades.csv.gz"
    return path, slice_file(TRADES, path, 3000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def start_sim() -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await start_sim(faults=None, **SimConfig fields)` -> a listening simulator."""
    sims: list[SimExchange] = []

    async def start(faults: FaultPlan | None = None, **fields: Any) -> SimExchange:
        sim = SimExchange(SimConfig(**fields), faults)
        await sim.start(host="127.0.0.1", port=0)
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        await sim.stop()


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., Any]]:
    """Factory: `client(sim, key=None, clock=None, **ccxt config)` -> ccxt binance, closed after."""
    clients: list[Any] = []

    def make(
        sim: SimExchange, key: ApiKey | None = None, clock: FakeClock | None = None, **config: Any
    ) -> Any:
        exchange = ccxt_client(sim, key, clock, **config)
        clients.append(exchange)
        return exchange

    yield make
    for exchange in clients:
        await exchange.close()
