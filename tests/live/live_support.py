"""A live engine in-process against the exchange simulator, through ccxt's real binance client.

The simulator runs in step mode: each market-data request moves its replay
one candle on, so the engine's own polling drives the market and nothing in a
test waits for time to pass. Clocks are real because ccxt signs with the wall
clock and the simulator checks `recvWindow` against it (a fake clock advanced
by several concurrent loops would move while a signed request is in flight).
Backoffs and the recvWindow are shortened instead. The gate is a test's (it
allows) unless a test passes its own (an `ApprovalGate` over signed files).
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async

from engine_support import BTCUSD_CANDLES, head_lines, require_shared_file, spec_dict, write_lines
from hean_contract.spec import EngineIdentity, TradingEngineSpec, parse_spec
from hean_engine.app.live import LiveSession
from hean_engine.app.run import RunOptions, serve
from hean_engine.control.runtime import Runtime
from hean_engine.data.exchange_feed import FeedSettings
from hean_engine.data.files import read_candles
from hean_engine.execution.live import GateDecision, LiveGate
from hean_engine.net.exchange import create_client
from hean_engine.net.retry import RetryPolicy
from hean_engine.telemetry.logs import REDACTOR, configure_logging
from hean_sim.exchange import SimConfig, SimExchange, point_ccxt_at
from hean_sim.exchange.config import ApiKey

API_KEY = "live-canary-apikey-5Dq2rX8wzT1"
SECRET = "live-canary-secret-Hk39vQpL0aZ7mN"
CANDLES = 600
START_BALANCES = {"USDT": Decimal(10_000), "BTC": Decimal(0)}


class AllowGate:
    def evaluate(self, identity: EngineIdentity, spec: TradingEngineSpec) -> GateDecision:
        return GateDecision(True, "test gate")


def live_spec(endpoint: str, **overrides: Any) -> TradingEngineSpec:
    base = spec_dict(
        mode="live",
        exchange={"id": "binance", "endpoint": endpoint, "credentialsSecret": "keys"},
        market={"symbol": "BTC/USDT", "timeframe": "1m"},
        strategy={"params": {"fast": 2, "slow": 3, "quantity": "0.01"}},
        # Tests call reconcile_once themselves; the recvWindow is short so that a
        # "not found" becomes final quickly.
        live={"reconcileIntervalSeconds": 3600, "syncIntervalSeconds": 1, "recvWindowMs": 200},
    )
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return parse_spec(base)


def signed_client(sim: SimExchange, key: ApiKey | None = None) -> Any:
    """A ccxt binance client with keys, pointed at the simulator (someone trading by hand)."""
    key = key or ApiKey(API_KEY, SECRET)
    client = ccxt_async.binance(
        {
            "apiKey": key.api_key,
            "secret": key.secret,
            "enableRateLimit": False,
            "options": {"defaultType": "spot", "fetchMarkets": ["spot"]},
        }
    )
    point_ccxt_at(client, sim.url)
    return client


@dataclass
class LiveRun:
    sim: SimExchange
    spec: TradingEngineSpec
    journal_dir: Path
    logs: io.StringIO = field(default_factory=io.StringIO)
    runtime: Runtime | None = None
    port: int = 0

    @property
    def session(self) -> LiveSession:
        assert self.runtime is not None
        live = self.runtime.live
        assert isinstance(live, LiveSession)
        return live

    def exchange_totals(self) -> dict[str, Decimal]:
        return {asset: balance.total for asset, balance in self.sim.balances(API_KEY).items()}

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line]


async def make_sim(tmp_path: Path, *, candles: int = CANDLES, **config: Any) -> SimExchange:
    data = tmp_path / "candles.csv"
    if not data.exists():
        write_lines(data, head_lines(require_shared_file(BTCUSD_CANDLES), candles + 1))
    first = next(iter(read_candles(data)))
    sim = SimExchange(
        SimConfig(
            data=data,
            symbol="BTC/USDT",
            speed=None,  # step mode: the engine's polls move the market
            start=datetime.fromtimestamp(first.ts / 1000 + 30 * 60, tz=UTC),
            keys=config.pop("keys", [ApiKey(API_KEY, SECRET)]),
            balances=dict(START_BALANCES),
            **config,
        )
    )
    await sim.start(host="127.0.0.1", port=0)
    return sim


FAST_RETRY = RetryPolicy(base_delay=0.005, max_delay=0.05, max_attempts=None)


async def run_live(
    run: LiveRun,
    during: Callable[[LiveRun], Awaitable[None]],
    *,
    identity: EngineIdentity | None = None,
    run_id: str = "run00001aaaa",
    limit_seconds: float = 60.0,
    gate: LiveGate | None = None,
    approval_recheck_seconds: float = 5.0,
    history: str | None = None,
) -> Runtime:
    """Serve a live engine until `during(run)` returns; the engine is stopped after it."""
    client = create_client(
        run.spec.exchange,
        credentials={"apiKey": API_KEY, "secret": SECRET},
        options={"recvWindow": run.spec.live.recv_window_ms},
    )
    client.enableRateLimit = False  # the simulator's weight limit is what is tested
    REDACTOR.register(API_KEY)
    REDACTOR.register(SECRET)
    configure_logging(stream=run.logs, engine="live-test", run_id=run_id)
    stop = asyncio.Event()
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_ready(runtime: Runtime, port: int) -> None:
        run.runtime = runtime
        run.port = port
        ready.set_result(None)

    options = RunOptions(
        host="127.0.0.1",
        port=0,
        feed=FeedSettings(poll_interval=0.01, history=20, close_grace=0.0),
        retry=FAST_RETRY,
        gate=gate or AllowGate(),
        approval_recheck_seconds=approval_recheck_seconds,
        journal_dir=run.journal_dir,
        configure_logs=False,
        history=history,
    )
    task = asyncio.create_task(
        serve(
            identity or EngineIdentity(name="live-test", namespace="default", generation=1),
            run.spec,
            options,
            run_id=run_id,
            client=client,
            stop=stop,
            on_ready=on_ready,
        )
    )
    try:
        await asyncio.wait_for(asyncio.shield(ready), 30)
        await asyncio.wait_for(during(run), limit_seconds)
        stop.set()
        return await asyncio.wait_for(task, 30)
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        configure_logging()


async def until(condition: Callable[[], bool], what: str, *, seconds: float = 30.0) -> None:
    """Wait until `condition()` holds: polled between the engine's steps, bounded in real time.

    The engine's polling drives the market, so nothing here decides timing;
    the bound only turns a hang into a failure.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)
