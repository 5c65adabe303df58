"""Helpers of the exchange simulator's tests: data slices, a fake clock, ccxt clients.

Slices of the shared recorded files are written to tmp_path so each test
starts in milliseconds; a fake wall clock moves market time and signs
requests (no sleeps). The fixtures built on these live in tests/sim/conftest.py.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from engine_support import REPO_ROOT, SHARED_DATA_DIR
from hean_engine.model.timefmt import iso_to_ms
from hean_sim.exchange import ApiKey, SimExchange, point_ccxt_at

SHARED = SHARED_DATA_DIR
CANDLES = SHARED / "btcusd_bitfinex_1m_2017-2018.csv.gz"
TRADES = SHARED / "bnteth_binance_trades_2017-2018.csv.gz"
MINUTE = 60_000
# A wall time on a minute boundary: served market time == wall time at start.
WALL0 = 1_700_000_040.0
ROOT = REPO_ROOT


class FakeClock:
    def __init__(self, now: float = WALL0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Row:
    ts: int
    fields: tuple[str, ...]


def slice_file(source: Path, target: Path, rows: int) -> list[Row]:
    """The header and first `rows` rows of a shared file, gzipped to `target`."""
    if not source.is_file():
        pytest.fail(f"shared data file missing: {source}", pytrace=False)
    lines: list[str] = []
    with gzip.open(source, "rt") as stream:
        for line in stream:
            lines.append(line)
            if len(lines) > rows:
                break
    with gzip.open(target, "wt") as out:
        out.writelines(lines)
    parsed = []
    for line in lines[1:]:
        ts, *fields = line.strip().split(",")
        parsed.append(Row(iso_to_ms(ts), tuple(fields)))
    return parsed


def start_at(rows: list[Row], index: int) -> datetime:
    return datetime.fromtimestamp(rows[index].ts / 1000, tz=UTC)


def ccxt_client(
    sim: SimExchange,
    key: ApiKey | None = None,
    clock: FakeClock | None = None,
    **config: Any,
) -> Any:
    """ccxt's real async binance client pointed at `sim`, spot only.

    With `key` it signs; with `clock` it signs with the fake wall clock's time
    (what the simulator checks `timestamp` against) instead of the real one.
    """
    settings: dict[str, Any] = {
        "enableRateLimit": False,
        "options": {"defaultType": "spot", "fetchMarkets": ["spot"]},
        **config,
    }
    if key is not None:
        settings.update({"apiKey": key.api_key, "secret": key.secret})
    exchange = ccxt_async.binance(settings)
    exchange.timeout_on_exit = 0  # no TLS connections to wind down
    if clock is not None:
        fake = clock
        exchange.milliseconds = lambda: int(fake() * 1000)
    point_ccxt_at(exchange, sim.url)
    return exchange
