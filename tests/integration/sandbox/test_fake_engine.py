"""The fake pod runner's stand-in engines: /status at the pod's IP, control, stop on delete."""

from __future__ import annotations

import ipaddress
from typing import Any

import aiohttp
import pytest
import yaml
from node_support import NodeWorld

from engine_support import build_engine
from hean_contract.report import EngineReport
from hean_engine.control.runtime import Runtime
from hean_engine.control.status import status_document
from hean_sandbox.kubelet.fake_engine import FakeEngine, idle_report

ENGINE_PORT = 8080
WITHIN = 10.0


def _real_paper_document() -> dict[str, Any]:
    """What a real paper engine's GET /status answers (before it has traded)."""
    engine = build_engine()
    runtime = Runtime(engine.identity, engine.spec, engine.kernel, "paper", "r")
    return status_document(runtime)


def _pod(name: str, *, port: int | None = ENGINE_PORT, config: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "engine",
        "image": "ghcr.io/hean-io/hean-engine:dev",
        "command": ["hean"],
    }
    if port is not None:
        container["ports"] = [{"name": "http", "containerPort": port}]
    spec: dict[str, Any] = {"containers": [container]}
    if config is not None:
        spec["volumes"] = [{"name": "config", "configMap": {"name": config}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def get(url: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(url) as response,
    ):
        return response.status, await response.json()


async def post(url: str, body: Any) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.post(url, json=body) as response,
    ):
        return response.status, await response.json()


async def create_configmap(world: NodeWorld, body: dict[str, Any]) -> None:
    status, answer, _ = await world.http.post(world.path("configmaps"), body)
    assert status == 201, answer


def _engine_config(name: str, **spec: Any) -> dict[str, Any]:
    manifest = {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": name, "namespace": "ns", "generation": 3},
        "spec": {
            "mode": "paper",
            "exchange": {"id": "binance"},
            "market": {"symbol": "BTC/USDT", "timeframe": "1m"},
            "strategy": {"name": "ema_cross"},
            "paper": {"startingBalances": {"USDT": "100000", "BTC": "0.5"}},
            **spec,
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config"},
        "data": {"engine.yaml": yaml.safe_dump(manifest)},
    }


async def test_fake_pod_answers_status_at_its_ip(fake_world: NodeWorld) -> None:
    config = _engine_config("alpha")
    await create_configmap(fake_world, config)
    pod = await fake_world.start_pod(_pod("alpha-engine", config="alpha-config"))
    ip = pod["status"]["podIP"]
    network = fake_world.node.pod_network  # a proxyable range when the sandbox made one
    assert ip.startswith("127.") if network is None else ipaddress.ip_address(ip) in network
    base = f"http://{ip}:{ENGINE_PORT}"

    assert await get(f"{base}/healthz") == (200, {"status": "ok"})
    code, ready = await get(f"{base}/readyz")
    assert (code, ready["ready"]) == (200, True)
    code, report = await get(f"{base}/status")
    assert code == 200
    # The real engine's type, and the real engine's document key for key (camelCase).
    parsed = EngineReport.model_validate(report)
    assert list(report) == list(_real_paper_document())
    assert parsed.model_dump(mode="json", by_alias=True) == report
    assert report["name"] == "alpha"
    assert report["generation"] == 3
    assert report["mode"] == "paper"
    assert report["symbol"] == "BTC/USDT"
    assert report["strategy"] == "ema_cross"
    assert report["riskState"] == "ACTIVE"
    assert report["paused"] is False
    assert report["balances"] == {"BTC": "0.5", "USDT": "100000"}
    assert report["equity"] == "100000"
    assert report["openOrders"] == []
    # An idle engine's document does not change between polls.
    assert (await get(f"{base}/status"))[1] == report


async def test_control_toggles_paused_and_risk_state(fake_world: NodeWorld) -> None:
    pod = await fake_world.start_pod(_pod("beta-engine"))  # no ConfigMap: defaults
    base = f"http://{pod['status']['podIP']}:{ENGINE_PORT}"
    code, report = await get(f"{base}/status")
    assert (code, report["name"], report["equity"]) == (200, "beta-engine", "0")

    assert (await post(f"{base}/control", {"command": "pause"}))[1]["paused"] is True
    assert (await get(f"{base}/status"))[1]["paused"] is True
    code, answer = await post(f"{base}/control", {"command": "halt"})
    assert (code, answer["risk_state"], answer["paused"]) == (200, "HALTED", True)
    report = (await get(f"{base}/status"))[1]
    assert (report["riskState"], report["riskStateReason"]) == (
        "HALTED",
        "control command: halt",
    )
    await post(f"{base}/control", {"command": "reduce"})
    assert (await get(f"{base}/status"))[1]["riskState"] == "REDUCING"
    code, answer = await post(f"{base}/control", {"command": "resume"})
    # resume only unpauses: the halt stays until the explicit reset
    assert (code, answer["risk_state"], answer["paused"]) == (200, "REDUCING", False)
    code, answer = await post(f"{base}/control", {"command": "reset-halt"})
    assert (code, answer["risk_state"], answer["paused"]) == (200, "ACTIVE", False)
    assert (await post(f"{base}/control", {"command": "explode"}))[0] == 400
    engine = next(iter(fake_world.node.pods.values())).fake_engine
    assert engine is not None
    assert engine.commands == ["pause", "halt", "reduce", "resume", "reset-halt"]


async def test_config_paused_and_halt_apply_at_start(fake_world: NodeWorld) -> None:
    config = _engine_config("gamma", paused=True, halt=True)
    await create_configmap(fake_world, config)
    pod = await fake_world.start_pod(_pod("gamma-engine", config="gamma-config"))
    report = (await get(f"http://{pod['status']['podIP']}:{ENGINE_PORT}/status"))[1]
    assert (report["paused"], report["riskState"]) == (True, "HALTED")


async def test_deleting_the_pod_stops_its_engine(fake_world: NodeWorld) -> None:
    pod = await fake_world.start_pod(_pod("delta-engine"))
    base = f"http://{pod['status']['podIP']}:{ENGINE_PORT}"
    assert (await get(f"{base}/healthz"))[0] == 200

    gone = await fake_world.watch_pod("delta-engine")
    status, body, _ = await fake_world.http.delete(fake_world.path("pods", "delta-engine"))
    assert status == 200, body
    # the kubelet finishes the deletion only after stopping the engine
    await gone.until(lambda e: e["type"] == "DELETED", within=WITHIN)
    assert fake_world.node.pods == {}
    with pytest.raises(aiohttp.ClientConnectorError):
        await get(f"{base}/healthz")


async def test_pod_without_http_port_gets_no_engine(fake_world: NodeWorld) -> None:
    await fake_world.start_pod(_pod("plain", port=None))
    (run,) = fake_world.node.pods.values()
    assert run.fake_engine is None


class _Addresses:
    def __init__(self, *ips: str) -> None:
        self._ips = list(ips)

    def next(self) -> str:
        return self._ips.pop(0)


async def test_taken_address_moves_the_pod_to_the_next_ip(fake_world: NodeWorld) -> None:
    taken, free = "127.1.200.7", "127.1.200.8"
    fake_world.node._ips = _Addresses(taken, free)  # type: ignore[assignment]
    # Another sandbox's pod holds the address the runner gives out next.
    squatter = FakeEngine(taken, ENGINE_PORT, name="squatter", namespace="default")
    await squatter.start()
    try:
        pod = await fake_world.start_pod(_pod("epsilon-engine"))
        assert pod["status"]["podIP"] == free
        report = (await get(f"http://{free}:{ENGINE_PORT}/status"))[1]
        assert report["name"] == "epsilon-engine"
        assert (await get(f"http://{taken}:{ENGINE_PORT}/status"))[1]["name"] == "squatter"
    finally:
        await squatter.stop()


def test_the_idle_report_of_a_live_spec_has_no_paper_balances() -> None:
    report = idle_report(
        {"spec": {"mode": "live", "paper": {"startingBalances": {"USDT": "5"}}}},
        name="x",
        namespace="default",
        run_id="r",
        risk_state="ACTIVE",
        risk_state_reason="start",
        paused=False,
        last_data_time="2024-01-01T00:00:00Z",
    )
    assert (report.mode, report.balances, report.equity) == ("live", {}, "0")
