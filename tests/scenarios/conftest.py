"""Fixtures for scenario tests: the real operator, driven with kubectl, in the sandbox.

Each scenario gets a fresh sandbox: the API server emulator with HEAN's CRDs,
the pod runner (engine pods are real `hean engine run` processes on loopback
IPs), the exchange simulator replaying recorded candles, and the operator as
its own process (`hean operator run`), exactly as `hean sandbox up` runs them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from engine_support import BTCUSD_CANDLES, head_lines, require_shared_file, write_lines
from hean_sandbox.up import ExchangeSimOptions, Sandbox, SandboxOptions

WAIT = "60s"  # kubectl wait timeouts: generous for a loaded CI machine


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Scenario:
    box: Sandbox
    kubeconfig: Path
    tmp: Path
    exchange_url: str | None
    pod_events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, name, uid)
    pod_changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def until_pods(self, predicate: Callable[[list[tuple[str, str, str]]], bool]) -> None:
        """Wait (on the watch, not a timer) until the recorded pod events satisfy `predicate`."""
        async with self.pod_changed:
            await asyncio.wait_for(
                self.pod_changed.wait_for(lambda: predicate(self.pod_events)), 60
            )

    async def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> KubectlResult:
        process = await asyncio.create_subprocess_exec(
            "kubectl",
            "--kubeconfig",
            str(self.kubeconfig),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), 120
        )
        result = KubectlResult(process.returncode or 0, out.decode(), err.decode())
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    async def apply(self, manifest: dict[str, Any], *, check: bool = True) -> KubectlResult:
        return await self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=check)

    async def get(self, kind: str, name: str) -> dict[str, Any]:
        return dict((await self.kubectl("get", kind, name, "-o", "json")).json())

    async def wait(self, target: str, condition: str, limit: str = WAIT) -> None:
        await self.kubectl("wait", f"--for={condition}", target, f"--timeout={limit}")

    def operator_log(self) -> str:
        return self.box.operator_log_path.read_text(errors="replace")


def engine_manifest(name: str, exchange_url: str, **spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "mode": "paper",
        "exchange": {"id": "binance", "endpoint": exchange_url},
        "market": {"symbol": "BTC/USDT", "timeframe": "1m"},
        "strategy": {"name": "ema_cross", "params": {"fast": 3, "slow": 8, "quantity": "0.5"}},
        "risk": {
            "maxOrderNotional": "10000",
            "maxPositionNotional": "20000",
            "maxOpenOrders": 4,
            "maxDailyLoss": "5000",
            "maxDrawdownPct": "20",
            "maxOrdersPerMinute": 30,
        },
        "paper": {"startingBalances": {"USDT": "100000"}, "feeRate": "0.001"},
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


async def _record_pods(scenario: Scenario, ready: asyncio.Event) -> None:
    """Every pod ADDED/DELETED, from a watch that starts before anything exists."""
    url = f"{scenario.box.apiserver.url}/api/v1/pods"
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    params = {"watch": "true", "resourceVersion": "0"}
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, params=params) as response,
    ):
        ready.set()
        async for line in response.content:
            if not line.strip():
                continue
            event = json.loads(line)
            meta = event["object"].get("metadata", {})
            if event["type"] in ("ADDED", "DELETED"):
                async with scenario.pod_changed:
                    scenario.pod_events.append(
                        (event["type"], meta.get("name", ""), meta.get("uid", ""))
                    )
                    scenario.pod_changed.notify_all()


async def make_scenario(
    tmp_path: Path, *, fake_pods: bool = False, exchange: bool = True, poll: float = 1.0
) -> tuple[Scenario, asyncio.Task[None]]:
    sim = None
    if exchange:
        data = write_lines(
            tmp_path / "candles.csv", head_lines(require_shared_file(BTCUSD_CANDLES), 3000)
        )
        sim = ExchangeSimOptions(data=data, port=0, speed=60.0)
    options = SandboxOptions(
        kubeconfig=tmp_path / "kubeconfig",
        workdir=tmp_path / "sandbox",
        fake_pods=fake_pods,
        operator_args=("--poll-interval", str(poll)),
        exchange_sim=sim,
    )
    box = Sandbox(options)
    await box.start()
    scenario = Scenario(
        box, options.kubeconfig, tmp_path, box.exchange.url if box.exchange is not None else None
    )
    watching = asyncio.Event()
    recorder = asyncio.create_task(_record_pods(scenario, watching))
    await watching.wait()
    return scenario, recorder


@pytest.fixture
async def scenario(tmp_path: Path) -> AsyncIterator[Scenario]:
    current, recorder = await make_scenario(tmp_path)
    try:
        yield current
    finally:
        recorder.cancel()
        await current.box.stop()


def max_concurrent_pods(events: list[tuple[str, str, str]], name: str) -> int:
    alive: set[str] = set()
    most = 0
    for kind, pod, uid in events:
        if pod != name:
            continue
        if kind == "ADDED":
            alive.add(uid)
        else:
            alive.discard(uid)
        most = max(most, len(alive))
    return most
