"""A live engine in-process against the exchange simulator, through ccxt's real clients.

Every test here runs once per protocol the simulator speaks (`PROTOCOLS`:
Binance's and OKX's REST API, each through ccxt's own client for that
exchange); `Proto` holds what a test needs to know about each (paths, the
client-id parameter, the signature error's code), so the assertions are the
same for both.

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
from hean_engine.execution.client_ids import ClientOrderIds
from hean_engine.execution.live import GateDecision, LiveGate
from hean_engine.net.exchange import create_client
from hean_engine.net.retry import RetryPolicy
from hean_engine.net.venues import VENUES
from hean_engine.telemetry.logs import REDACTOR, configure_logging
from hean_sim.exchange import SimConfig, SimExchange, point_ccxt_at
from hean_sim.exchange.config import ApiKey

API_KEY = "live-canary-apikey-5Dq2rX8wzT1"
SECRET = "live-canary-secret-Hk39vQpL0aZ7mN"
PASSPHRASE = "live-canary-passphrase-Qw7eR"
CANDLES = 600
START_BALANCES = {"USDT": Decimal(10_000), "BTC": Decimal(0)}
PROTOCOLS = ("binance", "okx")
# OKX's per-endpoint limits multiplied by this in the simulator: the engines
# here run without ccxt's rate limiter (as against Binance, whose default
# weight limit is what these tests run under; rate limits are the
# simulator's own tests' subject).
OKX_RATE_LIMIT_FACTOR = 50


@dataclass(frozen=True)
class Proto:
    """What a test needs to know about one protocol."""

    name: str
    order_path: str  # the request ccxt's create_order makes
    trades_path: str  # the request ccxt's fetch_my_trades makes
    cid_param: str  # create_order's client order id parameter
    bad_signature_code: str  # the code of a wrong signature's refusal

    def credentials(self) -> dict[str, str]:
        creds = {"apiKey": API_KEY, "secret": SECRET}
        if self.name == "okx":
            creds["password"] = PASSPHRASE
        return creds

    def client_ids(self, namespace: str, name: str, run_id: str) -> ClientOrderIds:
        """Ids as an engine on this exchange makes them."""
        rule = VENUES[self.name].client_ids
        return ClientOrderIds(
            namespace, name, run_id, separator=rule.separator, allowed=rule.pattern
        )

    def hand_id(self, text: str) -> str:
        """A client order id someone trading by hand might pick, legal here."""
        return text if self.name == "binance" else "".join(c for c in text if c.isalnum())

    def unlimited(self) -> dict[str, int]:
        """Simulator settings that take the rate limits out of a test's way."""
        if self.name == "okx":
            return {"rate_limit_factor": 1_000_000}
        return {"weight_limit": 10_000_000}


PROTOS = {
    "binance": Proto("binance", "/api/v3/order", "/api/v3/myTrades", "newClientOrderId", "-1022"),
    "okx": Proto(
        "okx", "/api/v5/trade/batch-orders", "/api/v5/trade/fills-history", "clOrdId", "50113"
    ),
}


class AllowGate:
    def evaluate(self, identity: EngineIdentity, spec: TradingEngineSpec) -> GateDecision:
        return GateDecision(True, "test gate")


def live_spec(endpoint: str, protocol: str = "binance", **overrides: Any) -> TradingEngineSpec:
    base = spec_dict(
        mode="live",
        exchange={"id": protocol, "endpoint": endpoint, "credentialsSecret": "keys"},
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
    """A ccxt client for the simulator's protocol, with keys, pointed at the simulator
    (someone trading by hand)."""
    protocol = sim.config.protocol
    key = key or ApiKey(API_KEY, SECRET, PASSPHRASE)
    config: dict[str, Any] = {
        "apiKey": key.api_key,
        "secret": key.secret,
        "enableRateLimit": False,
        "options": dict(VENUES[protocol].ccxt_options),
    }
    if protocol == "okx":
        config["password"] = key.passphrase
    client = getattr(ccxt_async, protocol)(config)
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


async def make_sim(
    tmp_path: Path, *, protocol: str = "binance", candles: int = CANDLES, **config: Any
) -> SimExchange:
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
            keys=config.pop("keys", [ApiKey(API_KEY, SECRET, PASSPHRASE)]),
            balances=dict(START_BALANCES),
            protocol="okx" if protocol == "okx" else "binance",
            rate_limit_factor=config.pop(
                "rate_limit_factor", OKX_RATE_LIMIT_FACTOR if protocol == "okx" else 1
            ),
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
    proto = PROTOS[run.spec.exchange.id]
    window = VENUES[proto.name].recv_window
    client = create_client(
        run.spec.exchange,
        credentials=proto.credentials(),
        options={window.name: run.spec.live.recv_window_ms} if window.how == "option" else None,
    )
    client.enableRateLimit = False  # the simulator's weight limit is what is tested
    REDACTOR.register(API_KEY)
    REDACTOR.register(SECRET)
    REDACTOR.register(PASSPHRASE)
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
