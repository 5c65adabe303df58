"""Shared fixtures.

Engine core fixtures (this section): the shared recorded data files, a factory
of valid TradingEngineSpec dicts, and factories of simulated engines. The
plain helpers behind them live in tests/engine_support.py. Other suites add
their own fixtures in their own clearly named sections below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster_support import stop_shared_control_plane
from engine_support import (
    BNTETH_TRADES,
    BTCUSD_CANDLES,
    REPO_ROOT,
    SHARED_DATA_DIR,
    ScriptedStrategy,
    build_engine,
    build_scripted_engine,
    require_shared_file,
    spec_dict,
)
from hean_engine.app.assembly import Engine
from history_support import PostgresServer, postgres_bin_dir

# -- engine core: data, specs, simulated engines ----------------------------------


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """<repo>/../shared/data; fails (does not skip) when it is missing."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.fail(
            f"shared market data directory missing: {SHARED_DATA_DIR} "
            "(the tests read the recorded data from <repo>/../shared/data)",
            pytrace=False,
        )
    return SHARED_DATA_DIR


@pytest.fixture(scope="session")
def btcusd_candles_file(shared_data_dir: Path) -> Path:
    """The shared Bitfinex BTC/USD one-minute candles (gzipped CSV)."""
    return require_shared_file(BTCUSD_CANDLES)


@pytest.fixture(scope="session")
def bnteth_trades_file(shared_data_dir: Path) -> Path:
    """The shared Binance BNT/ETH trades (gzipped CSV)."""
    return require_shared_file(BNTETH_TRADES)


@pytest.fixture(scope="session")
def engine_spec_dict() -> Callable[..., dict[str, Any]]:
    """Factory: `engine_spec_dict("ema_cross", **overrides)` -> a valid spec dict.

    Overrides merge into nested dicts (`risk={"maxOpenOrders": 1}`); the result
    is a fresh dict the test may mutate (for example to delete a field).
    """
    return spec_dict


@pytest.fixture(scope="session")
def sim_engine() -> Callable[..., Engine]:
    """Factory: `sim_engine(spec_dict_or_spec=None)` -> a simulated Engine with its strategy."""
    return build_engine


@pytest.fixture(scope="session")
def scripted_sim_engine() -> Callable[..., tuple[Engine, ScriptedStrategy]]:
    """Factory: a simulated Engine whose strategy is a test-driven ScriptedStrategy."""
    return build_scripted_engine


# -- the test world: one real control plane per session (tests/cluster_support.py) --


@pytest.fixture(scope="session", autouse=True)
def _stop_the_cluster_at_the_end() -> Iterator[None]:
    yield
    stop_shared_control_plane()


# -- history: a store on each backend (tests/history_support.py) ------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server from Debian's binaries, for the whole session."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin "
            "(apt install postgresql): the PostgreSQL history backend is not tested"
        )
    server = PostgresServer(bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def history_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh history store lives: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite3")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
