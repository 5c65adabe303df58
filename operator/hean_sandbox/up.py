"""`hean sandbox up`: a Kubernetes stand-in on one machine, with HEAN's operator in it.

It composes three parts, each usable alone:
- the API server emulator (`hean_sandbox.apiserver`), with HEAN's CRDs
  registered, generated from the models exactly as `hean crds generate` does;
- the pod runner (`hean_sandbox.kubelet`), which runs engine pods as local
  processes (or, with `fake_pods`, only reports them Running and Ready);
- the operator, as its own process (`hean operator run`) pointed at the
  sandbox's kubeconfig, as it would run in a cluster. A separate process keeps
  its memory measurable and lets tests restart it mid-change.

Optionally it also starts the exchange simulator (`hean_sim`), so that paper
engines get market data with no internet (and, given accounts, live engines an
exchange to trade on).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import aiohttp

from hean_operator.crds import write_crds
from hean_sandbox.apiserver import ApiServer
from hean_sandbox.kubelet.api import KubeApi
from hean_sandbox.kubelet.runner import PodRunner

if TYPE_CHECKING:
    from hean_sim.exchange.config import ApiKey


@dataclass
class ExchangeSimOptions:
    data: Path
    port: int = 0
    speed: float | None = 60.0
    symbol: str = "BTC/USDT"
    # Accounts that exist from the start (one per API key pair), for live
    # engines; `balances` is what each holds (None: the simulator's default).
    keys: Sequence[ApiKey] = ()
    balances: Mapping[str, Decimal] | None = None


@dataclass
class SandboxOptions:
    kubeconfig: Path
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    fake_pods: bool = False
    operator: bool = True
    # Extra `hean operator run` flags (for example a short --poll-interval).
    operator_args: tuple[str, ...] = ()
    exchange_sim: ExchangeSimOptions | None = None
    namespace: str = "default"
    env: dict[str, str] = field(default_factory=dict)


class Sandbox:
    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.apiserver = ApiServer(host=options.host, port=options.port)
        self.runner: PodRunner | None = None
        self.operator: asyncio.subprocess.Process | None = None
        self.exchange: Any = None
        self._session: aiohttp.ClientSession | None = None
        self._runner_task: asyncio.Task[None] | None = None
        self._operator_log: IO[bytes] | None = None

    @property
    def operator_log_path(self) -> Path:
        return self.options.workdir / "operator.log"

    async def start(self) -> None:
        options = self.options
        options.workdir.mkdir(parents=True, exist_ok=True)
        await self.apiserver.start()
        self.apiserver.load_crds(write_crds(options.workdir / "crds"))
        options.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.apiserver.write_kubeconfig(options.kubeconfig, namespace=options.namespace)
        if options.exchange_sim is not None:
            await self._start_exchange(options.exchange_sim)
        self._session = aiohttp.ClientSession()
        api = KubeApi(self._session, self.apiserver.url, token=None)
        self.runner = PodRunner(api, options.workdir / "pods", fake=options.fake_pods)
        ready = asyncio.Event()
        self._runner_task = asyncio.create_task(self.runner.run(ready), name="pod-runner")
        await ready.wait()
        if options.operator:
            await self.start_operator()

    async def _start_exchange(self, sim: ExchangeSimOptions) -> None:
        from hean_sim.exchange import SimConfig, SimExchange

        self.exchange = SimExchange(
            SimConfig(
                data=sim.data,
                symbol=sim.symbol,
                speed=sim.speed,
                keys=tuple(sim.keys),
                balances=None if sim.balances is None else dict(sim.balances),
            )
        )
        await self.exchange.start(host=self.options.host, port=sim.port)

    async def start_operator(self) -> None:
        """`hean operator run` against the sandbox; its output goes to operator.log."""
        env = {**os.environ, **self.options.env}
        env.pop("KUBECONFIG", None)  # --kubeconfig alone must do
        self._operator_log = self.operator_log_path.open("ab")
        self.operator = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hean_engine.cli",
            "operator",
            "run",
            "--metrics-port",
            "0",
            "--liveness-port",
            "0",
            "--kubeconfig",
            str(self.options.kubeconfig),
            *self.options.operator_args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._operator_log,
            stderr=self._operator_log,
            start_new_session=True,
        )

    async def stop_operator(self, *, kill: bool = False) -> None:
        process = self.operator
        self.operator = None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=30)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if self._operator_log is not None:
            self._operator_log.close()
            self._operator_log = None

    async def stop(self) -> None:
        await self.stop_operator()
        if self._runner_task is not None:
            self._runner_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner_task
        if self._session is not None:
            await self._session.close()
        if self.exchange is not None:
            await self.exchange.stop()
        await self.apiserver.stop()
