"""The operator as a service: its metrics, its liveness endpoint, its namespace scope."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families
from scenario_support import engine_manifest, make_sandbox_scenario, stop_recording

from cluster_support import unique


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_metrics_and_liveness(tmp_path: Path) -> None:
    metrics, liveness = free_port(), free_port()
    scenario, recorder = await make_sandbox_scenario(
        tmp_path, values={"ports": {"metrics": metrics, "liveness": liveness}}
    )
    try:
        await scenario.apply(scenario.engine("btc"))
        await scenario.wait("tradingengine/btc", "condition=Ready")
        await scenario.wait("tradingengine/btc", "jsonpath={.status.phase}=Running")
        assert scenario.box is not None
        operator = await scenario.box.operator_pod()
        assert operator is not None
        address = operator["status"]["podIP"]  # the operator pod's own address
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{address}:{liveness}/healthz") as response:
                assert response.status == 200
            async with session.get(f"http://{address}:{metrics}/metrics") as response:
                text = await response.text()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        assert samples[("hean_operator_reconciles_total", (("handler", "reconcile"),))] >= 1
        assert samples[("hean_operator_reconciles_total", (("handler", "poll"),))] >= 1
        assert samples[("hean_operator_engines", (("phase", "Running"),))] == 1
        assert samples[("hean_operator_engines", (("phase", "Invalid"),))] == 0
        assert samples[("hean_operator_engine_poll_seconds_count", ())] >= 1
        assert ("hean_operator_reconcile_errors_total", (("handler", "reconcile"),)) in samples
    finally:
        await stop_recording(recorder)
        assert scenario.box is not None
        await scenario.box.stop()


async def test_a_namespaced_operator_leaves_other_namespaces_alone(tmp_path: Path) -> None:
    trading = unique("trading")
    scenario, recorder = await make_sandbox_scenario(tmp_path, watch_namespaces=[trading])
    try:
        # the operator's own namespace (the release's) is not among those it watches
        elsewhere = engine_manifest("outside", scenario.exchange_url, scenario.namespace)
        inside = engine_manifest("inside", scenario.exchange_url, trading)
        await scenario.apply(elsewhere)
        await scenario.kubectl(
            "-n", trading, "apply", "-f", "-", stdin=yaml.safe_dump(inside), namespaced=False
        )
        await scenario.kubectl(
            "-n",
            trading,
            "wait",
            "--for=condition=Ready",
            "tradingengine/inside",
            "--timeout=90s",
            namespaced=False,
        )
        outside = await scenario.get("tradingengine", "outside")
        assert "status" not in outside
        assert "finalizers" not in outside["metadata"]
        pods = (await scenario.kubectl("get", "pods", "-o", "name")).stdout
        assert "outside-engine" not in pods
    finally:
        await stop_recording(recorder)
        assert scenario.box is not None
        await scenario.box.stop()
