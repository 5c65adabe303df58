"""`hean engine run`: the engine as a long-running service (paper, or live through the gate).

The spec's mode picks the node once (`app.nodes`: a paper node or a live
node); start-up, in order, each step failing with a reason and a non-zero exit:
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
import signal

from hean_contract.spec import EngineIdentity, TradingEngineSpec
from hean_engine.app.nodes import OnReady, RunOptions, build_node
from hean_engine.control.runtime import Runtime
from hean_engine.model.clock import SYSTEM_CLOCK, Clock
from hean_engine.telemetry.logs import configure_logging, new_run_id


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
    asyncio.run(serve(identity, spec, options, run_id=run_id))


async def serve(
    identity: EngineIdentity,
    spec: TradingEngineSpec,
    options: RunOptions,
    *,
    run_id: str | None = None,
    client: object = None,
    stop: asyncio.Event | None = None,
    on_ready: OnReady | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Runtime:
    """The engine's lifetime inside a running loop; returns when `stop` is set.

    Tests pass a ccxt `client` pointed at a local exchange and their own `stop`
    event; `on_ready(runtime, port)` is called once the control server listens;
    `clock` drives polling, staleness, backoff and its jitter (a fake clock in
    tests). The node for the spec's mode (`app.nodes`) asks the live gate
    itself, so no caller can get around it.
    """
    node = build_node(
        identity,
        spec,
        options,
        run_id=run_id or new_run_id(),
        clock=clock,
        client=client,
    )
    return await node.run(stop if stop is not None else _stop_on_signals(), on_ready)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
