"""The chart's read-only console (`console.enabled`) as a real pod in the sandbox.

Sandbox only: `helm install` of the chart with the console enabled; the node
runs the console's container (`kubectl-hean console --in-cluster --read-only
--address=0.0.0.0`, the operator's image) as a local process with the pod's
ServiceAccount token and in-cluster config, and `helm install --wait` returns
only once its readiness probe (/healthz) passed. With a paper engine running:

- the API server's pod proxy reaches the pod's /healthz, and nothing else:
  the proxy names the pod's address in Host, which the console refuses (421),
  as it refuses any name but a loopback one (a DNS-rebinding guard);
- through a port-forward (the sandbox's node does not serve the kubelet's
  port-forward, so the test relays 127.0.0.1:PORT to the pod's address, which
  is what `kubectl port-forward` delivers: a browser's bytes with a loopback
  Host), the overview lists the engine, in Chromium too, with no action buttons;
- a halt is refused as read-only (403, before anything reaches the API
  server), and the engine stays Running, not halted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import expect
from scenario_support import Scenario, make_sandbox_scenario, stop_recording

from console_browser_support import chromium

CONSOLE_PORT = 8765  # the chart's default: every pod has an address of its own


@contextlib.asynccontextmanager
async def port_forward(address: str, port: int) -> AsyncIterator[int]:
    """127.0.0.1:LOCAL relayed byte for byte to address:port, as `kubectl port-forward`
    does into the pod's network namespace; yields LOCAL."""
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        pod_r, pod_w = await asyncio.open_connection(address, port)
        both = [
            asyncio.create_task(pipe(client_r, pod_w)),
            asyncio.create_task(pipe(pod_r, client_w)),
        ]
        tasks.update(both)
        await asyncio.gather(*both, return_exceptions=True)
        tasks.difference_update(both)

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_only_console(http: aiohttp.ClientSession, base: str, namespace: str) -> None:
    """The overview at `base` lists the engine with no action buttons, and a halt, sent
    as the page would send it, is refused as read-only (before the API server)."""
    async with http.get(f"{base}/") as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    assert f'data-key="{namespace}/btc"' in text
    assert "data-action=" not in text
    origin = {"Origin": "http://127.0.0.1"}
    async with http.post(f"{base}/api/engines/{namespace}/btc/halt", headers=origin) as response:
        refusal = await response.json()
        assert response.status == 403, refusal
    assert refusal["ok"] is False
    assert "read-only" in refusal["message"].lower(), refusal


async def console_pod(scenario: Scenario) -> dict[str, Any]:
    result = await scenario.kubectl(
        "get", "pods", "-l", "app.kubernetes.io/component=console", "-o", "json"
    )
    pods = [p for p in result.json()["items"] if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return dict(pods[0])


async def test_the_charts_console_runs_as_a_pod_read_only(tmp_path: Path) -> None:
    # `helm install --wait` (make_sandbox_scenario) returns once the console is Ready too
    scenario, recorder = await make_sandbox_scenario(
        tmp_path, values={"console": {"enabled": True}}
    )
    box = scenario.box
    assert box is not None
    try:
        await scenario.apply(
            scenario.engine(
                "btc",
                strategy={"name": "ema_cross", "params": {"fast": 2, "slow": 3, "quantity": "0.5"}},
            )
        )
        await scenario.wait("tradingengine/btc", "condition=Ready")
        await scenario.wait("tradingengine/btc", "jsonpath={.status.phase}=Running")

        pod = await console_pod(scenario)
        name = pod["metadata"]["name"]
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True", pod["status"]
        assert pod["spec"]["serviceAccountName"].endswith("-console")
        address = pod["status"]["podIP"]
        ready_at = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        created = datetime.fromisoformat(pod["metadata"]["creationTimestamp"])
        started = datetime.fromisoformat(
            pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
        )
        timings = {
            "created -> Ready (s)": (
                datetime.fromisoformat(ready_at["lastTransitionTime"]) - created
            ).total_seconds(),
            "process start -> Ready (s)": (
                datetime.fromisoformat(ready_at["lastTransitionTime"]) - started
            ).total_seconds(),
        }

        # through the API server's pod proxy (as the sandbox's admin): the proxy passes
        # on the Host the client named, here the API server's loopback address
        cluster = box.options.control_plane
        assert cluster is not None
        proxy = (
            f"{cluster.url}/api/v1/namespaces/{scenario.namespace}/pods/{name}:{CONSOLE_PORT}/proxy"
        )
        admin = aiohttp.TCPConnector(ssl=cluster.ssl_context())
        async with aiohttp.ClientSession(connector=admin) as api:
            async with api.get(f"{proxy}/healthz") as response:
                assert (response.status, await response.text()) == (200, "ok")
            await read_only_console(api, proxy, scenario.namespace)
            # and the Service's proxy, through its endpoints (the pod's address)
            service = await scenario.kubectl(
                "get", "services", "-l", "app.kubernetes.io/component=console", "-o", "name"
            )
            service_proxy = (
                f"{cluster.url}/api/v1/namespaces/{scenario.namespace}/services/"
                f"{service.stdout.strip().removeprefix('service/')}:http/proxy"
            )
            await read_only_console(api, service_proxy, scenario.namespace)
            # an API server reached by any other name (most clusters'): the pages are
            # refused (421), /healthz still answers
            elsewhere = {"Host": "kube.example.com:6443"}
            async with api.get(f"{proxy}/", headers=elsewhere) as response:
                assert response.status == 421, await response.text()
            async with api.get(f"{proxy}/healthz", headers=elsewhere) as response:
                assert response.status == 200

        # port-forward: a browser on 127.0.0.1:LOCAL
        async with port_forward(address, CONSOLE_PORT) as local:
            url = f"http://127.0.0.1:{local}"
            async with aiohttp.ClientSession() as http:
                began = time.perf_counter()
                await read_only_console(http, url, scenario.namespace)
                timings["overview + refused halt via port-forward (ms)"] = (
                    time.perf_counter() - began
                ) * 1000
            async with chromium() as browser:
                page = await browser.new_page()
                await page.goto(f"{url}/")
                row = page.locator(f'tr[data-key="{scenario.namespace}/btc"]')
                await expect(row).to_be_visible()
                await expect(row.locator('[data-field="phase"]')).to_have_text("Running")
                await expect(page.locator("button[data-action]")).to_have_count(0)
                await page.goto(f"{url}/engines/{scenario.namespace}/btc")
                await expect(page.locator("body")).to_have_attribute("data-live", "open")
                await expect(page.locator("button[data-action]")).to_have_count(0)

        engine = await scenario.get("tradingengine", "btc")
        assert not engine["spec"].get("halt"), json.dumps(engine["spec"])
        assert engine["status"]["phase"] == "Running"
        # it listens on its pod's address only (HEAN_HOST), not on the machine's every one
        logs = box.pods_dir / scenario.namespace
        banner = next(logs.glob(f"{name}-*/logs/console.log")).read_text()
        assert f"(read-only) on http://{address}:{CONSOLE_PORT}/" in banner, banner
        print("\nconsole pod: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    finally:
        await stop_recording(recorder)
        await box.stop()
