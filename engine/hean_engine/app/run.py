"""`hean engine run`: the engine as a long-running service (paper, or live through the gate).

Start-up, in order, each step failing with a reason and a non-zero exit:
1. live mode asks the `LiveGate` first: without an approval nothing else
   happens, not even reading the keys; then the keys and the journal. The
   approval is checked again while the engine runs (`app.approval_gate`);
2. the exchange's markets are loaded and the symbol checked;
3. the control server starts (health, readiness, metrics, status, control);
4. live mode: the books are reconciled with the exchange (`app.live`); the
   engine is not ready and sends nothing until that succeeds;
5. the strategy warms up on recent history (it sees it; nothing trades);
6. market data flows into the kernel until SIGTERM or SIGINT.

Shutdown cancels nothing: paper books are simulated, and a live engine's
resting orders are adopted by the next run (its client ids say whose they are).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hean_contract.spec import EngineIdentity, Mode, TradingEngineSpec
from hean_engine.app.approval_gate import RECHECK_SECONDS, ApprovalWatch
from hean_engine.app.assembly import Engine, build_live_engine, build_simulated_engine
from hean_engine.app.live import LiveSession
from hean_engine.control.history_api import register_history_routes
from hean_engine.control.runtime import Runtime
from hean_engine.control.server import ControlServer
from hean_engine.data.exchange_feed import ExchangeFeed, FeedSettings
from hean_engine.execution.client_ids import ClientOrderIds
from hean_engine.execution.journal import Journal
from hean_engine.execution.live import DenyAllGate, LiveGate, require_live_approval
from hean_engine.execution.live_venue import LiveVenue
from hean_engine.history.recorder import HistoryRecorder, open_history
from hean_engine.model.errors import ConfigError, HeanError
from hean_engine.net.exchange import create_client
from hean_engine.net.retry import RetriesExhausted, RetryPolicy, Sleep, call_with_retry
from hean_engine.telemetry.logs import REDACTOR, configure_logging, get_logger, new_run_id

log = get_logger("hean.engine")

# How often the loop-lag probe wakes up.
_LAG_PROBE_SECONDS = 0.5
# How long a stopping live engine waits for the order in flight.
_DRAIN_SECONDS = 10.0


@dataclass(frozen=True)
class RunOptions:
    host: str = "0.0.0.0"  # noqa: S104 - a pod's server must be reachable from the operator
    port: int = 8080
    control_token_file: Path | None = None
    credentials_dir: Path | None = None
    # Live mode: where the intent journal lives (a volume that outlives the process).
    journal_dir: Path | None = None
    # The backoff for market data and orders; None keeps each part's default
    # (tests shorten it).
    retry: RetryPolicy | None = None
    feed: FeedSettings = field(default_factory=FeedSettings)
    # The one way to live trading; the command line cannot replace it.
    gate: LiveGate = field(default_factory=DenyAllGate)
    # How often a live engine checks its approval again (expiry has its own timer).
    approval_recheck_seconds: float = RECHECK_SECONDS
    log_level: str = "info"
    configure_logs: bool = True
    # --history: the durable books and the read API (a path on the engine's volume,
    # or a PostgreSQL URL); None leaves them off.
    history: str | None = None


def read_credentials(directory: Path | None) -> dict[str, str]:
    """apiKey and secret from a mounted Secret's directory; values are registered as secrets."""
    if directory is None:
        raise ConfigError(["--credentials-dir: required in live mode (a mounted Secret)"])
    values: dict[str, str] = {}
    for key in ("apiKey", "secret"):
        path = directory / key
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                [f"--credentials-dir: cannot read {path}: {exc.strerror or type(exc).__name__}"]
            ) from None
        if not value:
            raise ConfigError([f"--credentials-dir: {path} is empty"])
        REDACTOR.register(value)
        values[key] = value
    return values


def run_engine(identity: EngineIdentity, spec: TradingEngineSpec, options: RunOptions) -> None:
    """Run until SIGTERM/SIGINT; raises the engine's errors for the CLI to report."""
    run_id = new_run_id()
    if options.configure_logs:
        configure_logging(
            level=options.log_level,
            engine=identity.name,
            namespace=identity.namespace,
            run_id=run_id,
        )
    credentials = None
    if spec.mode is Mode.LIVE:
        require_live_approval(options.gate, identity, spec)
        credentials = read_credentials(options.credentials_dir)
        if options.journal_dir is None:
            raise ConfigError(["--journal-dir: required in live mode (a volume for the journal)"])
    asyncio.run(serve(identity, spec, options, run_id=run_id, credentials=credentials))


async def serve(
    identity: EngineIdentity,
    spec: TradingEngineSpec,
    options: RunOptions,
    *,
    run_id: str | None = None,
    client: Any = None,
    credentials: dict[str, str] | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Runtime, int], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> Runtime:
    """The engine's lifetime inside a running loop; returns when `stop` is set.

    Tests pass a ccxt `client` pointed at a local exchange and their own `stop`
    event; `on_ready(runtime, port)` is called once the control server listens;
    `clock` and `sleep` drive polling, staleness and backoff (a fake clock in tests).
    Live mode asks the gate here too, so no caller can get around it.
    """
    live = spec.mode is Mode.LIVE
    if live:
        require_live_approval(options.gate, identity, spec)
    stop = stop if stop is not None else _stop_on_signals()
    run_id = run_id or new_run_id()
    if client is None:
        client = create_client(
            spec.exchange,
            credentials=credentials,
            options={"recvWindow": spec.live.recv_window_ms} if live else None,
        )
    session: LiveSession | None = None
    venue: LiveVenue | None = None
    if live:
        journal_dir = options.journal_dir
        if journal_dir is None:
            raise ConfigError(["--journal-dir: required in live mode (a volume for the journal)"])
        journal = Journal(journal_dir, lambda: int(clock() * 1000))
        ids = ClientOrderIds(identity.namespace, identity.name, run_id)
        venue = LiveVenue(
            client,
            spec.market.symbol,
            journal,
            ids,
            recv_window_ms=spec.live.recv_window_ms,
            clock=clock,
            sleep=sleep,
            policy=options.retry,
            rng=rng,
        )
        engine = build_live_engine(identity, spec, venue)
    else:
        engine = build_simulated_engine(identity, spec)
    feed = ExchangeFeed(
        client,
        spec.market.symbol,
        timeframe=spec.market.timeframe,
        timeframe_ms=spec.market.timeframe_ms,
        settings=options.feed,
        policy=options.retry or RetryPolicy(max_attempts=None),
        clock=clock,
        sleep=sleep,
        on_retry=_log_retry,
    )
    runtime = Runtime(
        identity=identity,
        spec=spec,
        kernel=engine.kernel,
        mode="live" if live else "paper",
        run_id=run_id,
        feed=feed.health,
        stale_after=_stale_after(options.feed),
        clock=clock,
        started=clock(),
        reconcile_required=live,
    )
    if venue is not None:
        session = LiveSession(
            engine, venue, runtime, clock=clock, sleep=sleep, rng=rng, policy=options.retry
        )
        venue.on_fault = session.on_fault
        runtime.live = session
    engine.kernel.listeners.append(
        lambda event: log.info("engine event", kind=event.kind, detail=event.detail)
    )
    watch: ApprovalWatch | None = None
    if live:
        # The approval is checked again while the engine runs: it expires, keys
        # are revoked, and the verdict at start-up says nothing about later.
        watch = ApprovalWatch(
            options.gate,
            identity,
            spec,
            engine.kernel,
            runtime,
            clock=clock,
            sleep=sleep,
            interval=options.approval_recheck_seconds,
        )
        watch.check()
    server = ControlServer(runtime, options.host, options.port, options.control_token_file)
    # -- history (issue 15): the durable books and GET /orders, /fills, ... --
    recorder = _open_history(options.history, identity, spec, engine, run_id, clock)
    if recorder is not None:
        register_history_routes(server.app, recorder)
    # ------------------------------------------------------------------------
    tasks: list[asyncio.Task[None]] = []
    try:
        pending = venue.journal.open(run_id) if venue is not None else []
        await _check_market(client, spec, sleep)
        if venue is not None:
            venue.configure_market()
        await server.start()
        assert server.port is not None
        log.info(
            "engine started",
            mode=runtime.mode,
            exchange=spec.exchange.id,
            symbol=spec.market.symbol,
            strategy=spec.strategy.name,
            port=server.port,
            generation=identity.generation,
        )
        if on_ready is not None:
            on_ready(runtime, server.port)
        before_trading = session.start(pending) if session is not None else None
        tasks.append(_task(_trade(engine, feed, before_trading), "market-data"))
        tasks.append(_task(_probe_loop_lag(runtime), "loop-lag"))
        if watch is not None:
            tasks.append(_task(watch.run(), "approval"))
        if session is not None and venue is not None:
            tasks.append(_task(venue.run_sender(), "orders"))
            tasks.append(_task(session.run_fills(), "fills"))
            tasks.append(_task(session.run_reconcile(), "reconcile"))
        waiter = asyncio.create_task(stop.wait(), name="stop")
        watched = [waiter, *[t for t in tasks if t.get_name() != "loop-lag"]]
        done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            for task in done:
                task.result()  # these loops only end by failing: raise the error
        runtime.stopping = True
        log.info("engine stopping", reason="signal")
        if venue is not None and not venue.idle.is_set():
            # Let the submission in flight finish, so the journal records its
            # outcome; the next run would resolve it anyway, only slower.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(venue.idle.wait(), timeout=_DRAIN_SECONDS)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.stop()
        if recorder is not None:
            await asyncio.to_thread(recorder.close)  # writes what is queued
        if venue is not None:
            venue.journal.close()
        with contextlib.suppress(Exception):
            await client.close()
    ledger = engine.ledger
    log.info(
        "engine stopped",
        events=engine.kernel.events,
        fills=len(engine.kernel.fills),
        equity=str(ledger.equity),
        pnl=str(ledger.pnl),
    )
    return runtime


def _open_history(
    target: str | None,
    identity: EngineIdentity,
    spec: TradingEngineSpec,
    engine: Engine,
    run_id: str,
    clock: Callable[[], float],
) -> HistoryRecorder | None:
    if target is None:
        return None
    return open_history(
        target,
        engine.kernel,
        namespace=identity.namespace,
        name=identity.name,
        run_id=run_id,
        paper=spec.mode is not Mode.LIVE,
        timeframe_ms=spec.market.timeframe_ms,
        clock=clock,
    )


def _task(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.create_task(coro, name=name)


async def _check_market(client: Any, spec: TradingEngineSpec, sleep: Sleep) -> None:
    try:
        markets = await call_with_retry(
            client.load_markets,
            policy=RetryPolicy(max_attempts=6),
            what="load_markets",
            sleep=sleep,
            on_retry=_log_retry,
        )
    except RetriesExhausted as exc:
        cause = exc.__cause__
        raise HeanError(
            f"cannot load {spec.exchange.id}'s markets: {type(cause).__name__} after retries"
        ) from None
    except Exception as exc:  # ccxt's non-transient errors (bad endpoint, 4xx)
        raise HeanError(
            f"cannot load {spec.exchange.id}'s markets: {type(exc).__name__}: "
            f"{REDACTOR.redact(str(exc))[:200]}"
        ) from None
    if spec.market.symbol not in markets:
        raise ConfigError(
            [f"spec.market.symbol: {spec.market.symbol} is not a market on {spec.exchange.id}"]
        )


async def _trade(
    engine: Engine, feed: ExchangeFeed, before: Coroutine[Any, Any, None] | None
) -> None:
    if before is not None:
        await before  # live: the books must be the exchange's before anything trades
    kernel = engine.kernel
    if engine.strategy.consumes == "candles":
        kernel.warm_up(candles=await feed.candle_history())
        async for candle in feed.candles():
            kernel.on_candle(candle)
    else:
        kernel.warm_up(trades=await feed.trade_history())
        async for trade in feed.trades():
            kernel.on_trade(trade)


async def _probe_loop_lag(runtime: Runtime) -> None:
    """Loop lag: how much later than asked a sleep wakes up (a busy or blocked loop)."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(_LAG_PROBE_SECONDS)
        runtime.loop_lag = max(0.0, loop.time() - before - _LAG_PROBE_SECONDS)


def _stale_after(settings: FeedSettings) -> float:
    # A candle feed legitimately delivers nothing for a whole timeframe, but it
    # polls every poll_interval: readiness follows successful polls.
    return max(60.0, 6 * settings.poll_interval)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _log_retry(what: str, attempt: int, exc: BaseException, delay: float) -> None:
    log.warning(
        "exchange call failed, retrying",
        call=what,
        attempt=attempt,
        error=type(exc).__name__,
        detail=REDACTOR.redact(str(exc))[:200],
        delay_seconds=round(delay, 3),
    )
