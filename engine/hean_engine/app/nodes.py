"""A running engine as a node: a paper node or a live node, assembled once from typed parts.

`build_node` looks at `spec.mode` once and assembles the parts that mode
needs, as NautilusTrader's kernel does; nothing after it asks the mode again.
Every node has an exchange client, an engine (kernel, books, strategy), the
market data feed, the `Runtime` the control server reads and one `Clock`:

- `PaperNode`: simulated fills against the spec's paper account; nothing
  more to open, start or drain.
- `LiveNode`: asks the `LiveGate` before anything is built, then owns the
  venue (orders through the intent journal), the session with the exchange
  (start-up reconcile, fills, periodic reconcile) and the approval watch, and
  the tasks that run them. It trades only after the start-up reconcile, and
  when stopping lets the order in flight finish.

`TradingNode.run` is the one lifetime both share: open, start the control
server, trade until stopped, stop; in the order `app.run` documents.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hean_contract.spec import EngineIdentity, Mode, TradingEngineSpec
from hean_engine.app.approval_gate import RECHECK_SECONDS, ApprovalWatch
from hean_engine.app.assembly import Engine, build_live_engine, build_simulated_engine
from hean_engine.app.live import LiveSession
from hean_engine.control.history_api import register_history_routes
from hean_engine.control.runtime import RunMode, Runtime
from hean_engine.control.server import ControlServer
from hean_engine.data.exchange_feed import ExchangeFeed, FeedSettings
from hean_engine.execution.client_ids import ClientOrderIds
from hean_engine.execution.journal import Journal, JournaledIntent
from hean_engine.execution.live import DenyAllGate, LiveGate, require_live_approval
from hean_engine.execution.live_venue import LiveVenue
from hean_engine.history.recorder import HistoryRecorder, open_history
from hean_engine.history.store import Retention
from hean_engine.model.clock import Clock
from hean_engine.model.errors import ConfigError, HeanError
from hean_engine.net.exchange import create_client
from hean_engine.net.retry import RetriesExhausted, RetryPolicy, call_with_retry
from hean_engine.net.venues import UnsupportedExchange
from hean_engine.net.venues import venue as live_venue_of
from hean_engine.telemetry.logs import REDACTOR, get_logger

log = get_logger("hean.engine")

# How often the loop-lag probe wakes up.
_LAG_PROBE_SECONDS = 0.5
# How long a stopping live engine waits for the order in flight.
_DRAIN_SECONDS = 10.0

OnReady = Callable[[Runtime, int], None]


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
    # How long the history keeps rows (--history-series-days, --history-books-days).
    history_retention: Retention = field(default_factory=Retention)


@dataclass
class TradingNode:
    """The parts every running engine has, and the lifetime they share."""

    spec: TradingEngineSpec
    options: RunOptions
    client: Any  # a ccxt async client
    engine: Engine
    feed: ExchangeFeed
    runtime: Runtime
    clock: Clock

    async def run(self, stop: asyncio.Event, on_ready: OnReady | None = None) -> Runtime:
        """Trade until `stop` is set (or a loop fails: its error is raised); returns the runtime."""
        runtime, spec = self.runtime, self.spec
        server = ControlServer(
            runtime, self.options.host, self.options.port, self.options.control_token_file
        )
        # -- history (issue 15): the durable books and GET /orders, /fills, ... --
        recorder = self._open_history()
        if recorder is not None:
            register_history_routes(server.app, recorder)
        # --------------------------------------------------------------------------
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._open()
            await server.start()
            assert server.port is not None
            log.info(
                "engine started",
                mode=runtime.mode,
                exchange=spec.exchange.id,
                symbol=spec.market.symbol,
                strategy=spec.strategy.name,
                port=server.port,
                generation=runtime.identity.generation,
            )
            if on_ready is not None:
                on_ready(runtime, server.port)
            tasks.append(
                _task(_trade(self.engine, self.feed, self._before_trading()), "market-data")
            )
            probe = _task(_probe_loop_lag(runtime), "loop-lag")
            tasks.append(probe)
            tasks.extend(self._start_tasks())
            waiter = asyncio.create_task(stop.wait(), name="stop")
            watched = [waiter, *[t for t in tasks if t is not probe]]
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                for task in done:
                    task.result()  # these loops only end by failing: raise the error
            runtime.stopping = True
            log.info("engine stopping", reason="signal")
            await self._drain()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await server.stop()
            if recorder is not None:
                await asyncio.to_thread(recorder.close)  # writes what is queued
            self._close()
            with contextlib.suppress(Exception):
                await self.client.close()
        ledger = self.engine.ledger
        log.info(
            "engine stopped",
            events=self.engine.kernel.events,
            fills=len(self.engine.kernel.fills),
            equity=str(ledger.equity),
            pnl=str(ledger.pnl),
        )
        return runtime

    def _open_history(self) -> HistoryRecorder | None:
        """The store at `--history`, its recorder attached to the kernel (None: off)."""
        if self.options.history is None:
            return None
        identity = self.runtime.identity
        return open_history(
            self.options.history,
            self.engine.kernel,
            namespace=identity.namespace,
            name=identity.name,
            run_id=self.runtime.run_id,
            paper=self.spec.mode is not Mode.LIVE,
            timeframe_ms=self.spec.market.timeframe_ms,
            retention=self.options.history_retention,
            clock=self.clock.now,
        )

    # What a mode adds to the lifetime: nothing, by default.
    async def _open(self) -> None:
        """Before the control server starts: the exchange has the market."""
        await _check_market(self.client, self.spec, self.clock)

    def _before_trading(self) -> Coroutine[Any, Any, None] | None:
        return None

    def _start_tasks(self) -> list[asyncio.Task[None]]:
        return []

    async def _drain(self) -> None:
        """Once stopping: finish what must not be cut off."""

    def _close(self) -> None:
        """After the server stopped, whether the run succeeded or not."""


@dataclass
class PaperNode(TradingNode):
    """Public market data, simulated fills against the spec's paper account."""


@dataclass
class LiveNode(TradingNode):
    """An account on the exchange: the venue, the session and the approval watch."""

    venue: LiveVenue
    session: LiveSession
    watch: ApprovalWatch
    # Intents a previous run may have sent (read from the journal when opening).
    pending: list[JournaledIntent] = field(default_factory=list)

    async def _open(self) -> None:
        self.pending = self.venue.journal.open(self.runtime.run_id)
        await super()._open()
        self.venue.configure_market()

    def _before_trading(self) -> Coroutine[Any, Any, None]:
        # The books must be the exchange's before anything trades.
        return self.session.start(self.pending)

    def _start_tasks(self) -> list[asyncio.Task[None]]:
        return [
            _task(self.watch.run(), "approval"),
            _task(self.venue.run_sender(), "orders"),
            _task(self.session.run_fills(), "fills"),
            _task(self.session.run_reconcile(), "reconcile"),
        ]

    async def _drain(self) -> None:
        if not self.venue.idle.is_set():
            # Let the submission in flight finish, so the journal records its
            # outcome; the next run would resolve it anyway, only slower.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.venue.idle.wait(), timeout=_DRAIN_SECONDS)

    def _close(self) -> None:
        self.venue.journal.close()


def read_credentials(
    directory: Path | None, keys: tuple[str, ...] = ("apiKey", "secret")
) -> dict[str, str]:
    """`keys` (the venue's: apiKey, secret, and OKX's password) from a mounted Secret's
    directory; values are registered as secrets."""
    if directory is None:
        raise ConfigError(["--credentials-dir: required in live mode (a mounted Secret)"])
    values: dict[str, str] = {}
    for key in keys:
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


def build_node(
    identity: EngineIdentity,
    spec: TradingEngineSpec,
    options: RunOptions,
    *,
    run_id: str,
    clock: Clock,
    client: Any = None,
) -> TradingNode:
    """The node for `spec.mode`: the one place that asks it.

    A live node asks the gate first, before any part exists or a key is read,
    so no caller can get around it. `client` replaces the ccxt client (tests
    point one at the exchange simulator; a live node then reads no keys).
    """
    if spec.mode is Mode.LIVE:
        return _live_node(identity, spec, options, run_id, clock, client)
    return _paper_node(identity, spec, options, run_id, clock, client)


def _paper_node(
    identity: EngineIdentity,
    spec: TradingEngineSpec,
    options: RunOptions,
    run_id: str,
    clock: Clock,
    client: Any,
) -> PaperNode:
    client = client if client is not None else create_client(spec.exchange)
    engine = build_simulated_engine(identity, spec)
    feed = _feed(client, spec, options, clock)
    runtime = _runtime(identity, spec, engine, "paper", run_id, feed, options, clock)
    _log_events(engine)
    return PaperNode(spec, options, client, engine, feed, runtime, clock)


def _live_node(
    identity: EngineIdentity,
    spec: TradingEngineSpec,
    options: RunOptions,
    run_id: str,
    clock: Clock,
    client: Any,
) -> LiveNode:
    require_live_approval(options.gate, identity, spec)
    try:
        quirks = live_venue_of(spec.exchange.id)
    except UnsupportedExchange as exc:
        raise ConfigError([f"spec.exchange.id: {exc}"]) from None
    credentials = (
        read_credentials(options.credentials_dir, quirks.credentials) if client is None else None
    )
    if options.journal_dir is None:
        raise ConfigError(["--journal-dir: required in live mode (a volume for the journal)"])
    if client is None:
        window = quirks.recv_window
        client = create_client(
            spec.exchange,
            credentials=credentials,
            options={window.name: spec.live.recv_window_ms} if window.how == "option" else None,
        )
    ids = quirks.client_ids
    venue = LiveVenue(
        client,
        spec.market.symbol,
        Journal(options.journal_dir, clock),
        ClientOrderIds(
            identity.namespace,
            identity.name,
            run_id,
            separator=ids.separator,
            allowed=ids.pattern,
        ),
        recv_window_ms=spec.live.recv_window_ms,
        clock=clock,
        policy=options.retry,
        venue=quirks,
    )
    engine = build_live_engine(identity, spec, venue)
    feed = _feed(client, spec, options, clock)
    runtime = _runtime(identity, spec, engine, "live", run_id, feed, options, clock)
    runtime.reconcile_required = True
    session = LiveSession(engine, venue, runtime, clock=clock, policy=options.retry)
    venue.on_fault = session.on_fault
    runtime.live = session
    _log_events(engine)
    # The approval is checked again while the engine runs: it expires, keys
    # are revoked, and the verdict at start-up says nothing about later.
    watch = ApprovalWatch(
        options.gate,
        identity,
        spec,
        engine.kernel,
        runtime,
        clock=clock,
        interval=options.approval_recheck_seconds,
    )
    watch.check()
    return LiveNode(
        spec,
        options,
        client,
        engine,
        feed,
        runtime,
        clock,
        venue=venue,
        session=session,
        watch=watch,
    )


def _feed(client: Any, spec: TradingEngineSpec, options: RunOptions, clock: Clock) -> ExchangeFeed:
    return ExchangeFeed(
        client,
        spec.market.symbol,
        timeframe=spec.market.timeframe,
        timeframe_ms=spec.market.timeframe_ms,
        settings=options.feed,
        policy=options.retry or RetryPolicy(max_attempts=None),
        clock=clock,
        on_retry=_log_retry,
    )


def _runtime(
    identity: EngineIdentity,
    spec: TradingEngineSpec,
    engine: Engine,
    mode: RunMode,
    run_id: str,
    feed: ExchangeFeed,
    options: RunOptions,
    clock: Clock,
) -> Runtime:
    return Runtime(
        identity=identity,
        spec=spec,
        kernel=engine.kernel,
        mode=mode,
        run_id=run_id,
        feed=feed.health,
        stale_after=_stale_after(options.feed),
        clock=clock,
    )


def _log_events(engine: Engine) -> None:
    engine.kernel.listeners.append(
        lambda event: log.info("engine event", kind=event.kind, detail=event.detail)
    )


def _task(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.create_task(coro, name=name)


async def _check_market(client: Any, spec: TradingEngineSpec, clock: Clock) -> None:
    try:
        markets = await call_with_retry(
            client.load_markets,
            policy=RetryPolicy(max_attempts=6),
            what="load_markets",
            clock=clock,
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
    """Loop lag: how much later than asked a sleep wakes up (a busy or blocked loop).

    Real time on purpose, never the injected clock: it measures the event loop.
    """
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(_LAG_PROBE_SECONDS)
        runtime.loop_lag = max(0.0, loop.time() - before - _LAG_PROBE_SECONDS)


def _stale_after(settings: FeedSettings) -> float:
    # A candle feed legitimately delivers nothing for a whole timeframe, but it
    # polls every poll_interval: readiness follows successful polls.
    return max(60.0, 6 * settings.poll_interval)


def _log_retry(what: str, attempt: int, exc: BaseException, delay: float) -> None:
    log.warning(
        "exchange call failed, retrying",
        call=what,
        attempt=attempt,
        error=type(exc).__name__,
        detail=REDACTOR.redact(str(exc))[:200],
        delay_seconds=round(delay, 3),
    )
