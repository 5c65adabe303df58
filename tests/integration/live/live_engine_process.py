"""A live engine as its own process, for the crash-safety test: `hean engine run` with
a gate that allows.

The command line has no way around the LiveGate, so the test runs this script
instead; everything else is the real service path (`run_engine`: signals,
logs, the control server, the journal). Backoffs are shortened and the feed
polls fast so that a kill lands mid-trade.

    python live_engine_process.py CONFIG CREDENTIALS_DIR JOURNAL_DIR PORT TOKEN_FILE
    python live_engine_process.py --zygote

`--zygote` imports everything once (ccxt alone takes over a second) and then
forks one engine per line of JSON arguments read from stdin (the five above
plus a log file for stderr), printing each child's pid. A forked engine is a
real process, killed with a real SIGKILL; only the imports are shared.
Children are reaped automatically (SIGCHLD ignored).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from hean_contract.spec import EngineIdentity, TradingEngineSpec
from hean_engine.app.config import load_config
from hean_engine.app.run import RunOptions, run_engine
from hean_engine.data.exchange_feed import FeedSettings
from hean_engine.execution.live import GateDecision
from hean_engine.model.errors import HeanError
from hean_engine.net.retry import RetryPolicy


class AllowGate:
    def evaluate(self, identity: EngineIdentity, spec: TradingEngineSpec) -> GateDecision:
        return GateDecision(True, "crash-safety test")


def _without_rate_limiter() -> None:
    """ccxt spaces binance requests 50 ms apart: right for the real exchange, but
    it would make this test mostly wait. The test raises the simulator's weight
    limit instead; rate limits are another test's subject."""
    import hean_engine.app.nodes as nodes_module

    create = nodes_module.create_client

    def create_client(*args: Any, **kwargs: Any) -> Any:
        client = create(*args, **kwargs)
        client.enableRateLimit = False
        return client

    nodes_module.create_client = create_client  # type: ignore[assignment]


def run(args: list[str]) -> None:
    config, credentials, journal, port, token = args[:5]
    identity, spec = load_config(Path(config))
    options = RunOptions(
        host="127.0.0.1",
        port=int(port),
        control_token_file=Path(token),
        credentials_dir=Path(credentials),
        journal_dir=Path(journal),
        feed=FeedSettings(poll_interval=0.01, history=20, close_grace=0.0),
        retry=RetryPolicy(base_delay=0.005, max_delay=0.05, max_attempts=None),
        gate=AllowGate(),
        log_level="warning",
    )
    _without_rate_limiter()
    run_engine(identity, spec, options)


def zygote() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        args = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            log = os.open(args[5], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(log, 2)
            code = 0
            try:
                run(args)
            except HeanError as exc:
                print(f"error: {exc}", file=sys.stderr)
                code = 1
            except BaseException as exc:  # the child must never return into the loop
                print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--zygote"]:
        zygote()
    else:
        run(sys.argv[1:])
