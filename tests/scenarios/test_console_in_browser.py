"""The console in Debian's Chromium against the sandbox, with real engines trading.

Sandbox only: a paper engine and a live engine (a real `hean engine run` each,
managed by the real operator, the live one trading on the sandbox's exchange
simulator), the console served by `hean_desk.console` with the plugin's
DeskClient from a kubeconfig, exactly as `kubectl hean console` does. What a
person would check: the overview lists the engines and their equity moves;
the live engine's page shows the fills the engine's /fills and the exchange
simulator's own trade list hold, field for field; halting from the console
halts the engine; a user whose RBAC does not allow patching is told so.

The console's page load time and the time a fill takes to appear in it are
measured here and printed (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Page, expect
from scenario_support import (
    Scenario,
    credentials_secret,
    live_engine,
    sandbox_with_account,
    trust_configmap,
)

from console_browser_support import chromium, serving
from hean_contract.spec import parse_spec
from hean_desk.client import DeskClient
from hean_desk.console.desk_source import DeskSource
from hean_engine.approval.manifest import approval_manifest
from hean_engine.approval.sign import add_signature, new_approval
from hean_sim.exchange import SimExchange
from hean_sim.exchange.config import ApiKey

ALICE = Ed25519PrivateKey.generate()
KEY = ApiKey("console-live-apikey-4Hs8qP2", "console-live-secret-Vb71nXc9Qe")
WAIT_MS = 120_000  # a loaded CI machine: the engines trade within a minute or two


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Scenario]:
    async with sandbox_with_account(tmp_path, KEY) as scenario:
        yield scenario


async def start_live_engine(scenario: Scenario) -> None:
    """`btc-live`: approved by alice, trading on the simulator's account KEY."""
    await scenario.apply(trust_configmap(scenario, {"alice": ALICE}, {"required": 1}))
    await scenario.apply(credentials_secret(KEY))
    await scenario.apply(live_engine(scenario, "btc-live"))
    engine = await scenario.get("tradingengine", "btc-live")
    approval = new_approval(
        namespace=scenario.namespace,
        engine="btc-live",
        engine_uid=engine["metadata"]["uid"],
        spec=parse_spec(engine["spec"]),
        ttl=timedelta(hours=1),
        now=datetime.now(UTC),
        name="btc-live-ok",
    )
    await scenario.apply(approval_manifest(add_signature(approval, "alice", ALICE)))


async def start_paper_engine(scenario: Scenario, name: str = "btc-paper") -> None:
    await scenario.apply(
        scenario.engine(
            name,
            strategy={"name": "ema_cross", "params": {"fast": 2, "slow": 3, "quantity": "0.5"}},
        )
    )


async def navigation_ms(page: Page) -> dict[str, float]:
    """The browser's own navigation timing of the page just loaded."""
    timing: dict[str, float] = await page.evaluate(
        """() => { const n = performance.getEntriesByType("navigation")[0];
                   return {dom: n.domContentLoadedEventEnd, load: n.loadEventEnd}; }"""
    )
    return timing


async def page_load(page: Page, url: str) -> dict[str, float]:
    """Navigation timing plus the time until the live stream is connected (ms)."""
    started = time.perf_counter()
    await page.goto(url)
    await expect(page.locator("body")).to_have_attribute("data-live", "open")
    timing = await navigation_ms(page)
    timing["live"] = (time.perf_counter() - started) * 1000
    return timing


def _same_decimal(a: str, b: Decimal | str) -> bool:
    return Decimal(a) == Decimal(str(b))


async def console_fills(page: Page) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = await page.evaluate(
        """() => Array.from(document.querySelectorAll('#fills-table tr[data-trade-id]'))
              .map(r => ({tradeId: r.dataset.tradeId,
                          orderId: r.querySelector('[data-field=orderId]').textContent,
                          side: r.querySelector('[data-field=side]').textContent,
                          price: r.querySelector('[data-field=price]').dataset.value,
                          quantity: r.querySelector('[data-field=quantity]').dataset.value,
                          fee: r.querySelector('[data-field=fee]').dataset.value,
                          feeCurrency: r.querySelector('[data-field=feeCurrency]').textContent}))"""
    )
    return rows


WATCH_NEW_ROWS = """() => {
  window.__seen = {};
  for (const r of document.querySelectorAll('#fills-table tr[data-trade-id]'))
    window.__seen[r.dataset.tradeId] = 0;  // there before: not timed
  new MutationObserver(() => {
    for (const r of document.querySelectorAll('#fills-table tr[data-trade-id]'))
      if (!(r.dataset.tradeId in window.__seen)) window.__seen[r.dataset.tradeId] = Date.now();
  }).observe(document.body, {subtree: true, childList: true});
}"""


async def record_engine_fills(
    source: DeskSource,
    namespace: str,
    seen: dict[str, float],
    cycles: list[float],
    stop: asyncio.Event,
) -> None:
    """When each fill first shows in the engine's /fills (epoch ms), polled every 100 ms.

    A read through the pod proxy takes time too: `cycles` gets each read's duration,
    the uncertainty of these times (a fill may be in /fills up to one read earlier)."""
    while not stop.is_set():
        started = time.time() * 1000
        rows = await asyncio.to_thread(source.engine_history, namespace, "btc-live", "fills")
        now = time.time() * 1000
        cycles.append(now - started)
        for row in rows:
            seen.setdefault(str(row["tradeId"]), now)
        await asyncio.sleep(0.1)


async def test_console_on_real_engines(sandbox: Scenario) -> None:
    assert sandbox.kubeconfig is not None and sandbox.box is not None
    sim = sandbox.box.exchange
    assert isinstance(sim, SimExchange)
    await start_paper_engine(sandbox)
    await start_live_engine(sandbox)
    await sandbox.wait("tradingengine/btc-paper", "condition=Ready")
    await sandbox.wait("tradingengine/btc-live", "condition=Ready")
    desk = DeskClient(kubeconfig=str(sandbox.kubeconfig))
    source = DeskSource(desk)
    async with serving(source, report_interval=2.0) as url, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        loads = [await page_load(page, url) for _ in range(3)]
        # the overview: both engines, their equity moving while the page is open
        for name in ("btc-paper", "btc-live"):
            await expect(page.locator(f'tr[data-key="{sandbox.namespace}/{name}"]')).to_be_visible()
        live_row = page.locator(f'tr[data-key="{sandbox.namespace}/btc-live"]')
        equity = live_row.locator('[data-field="equity"]')
        first = await equity.text_content()
        await expect(equity).not_to_have_text(first or "", timeout=WAIT_MS)

        # the live engine's page: fills as they happen
        engine_url = f"{url}engines/{sandbox.namespace}/btc-live"
        engine_loads = [await page_load(page, engine_url) for _ in range(3)]
        await page.evaluate(WATCH_NEW_ROWS)
        engine_seen: dict[str, float] = {}
        cycles: list[float] = []
        stop = asyncio.Event()
        recorder = asyncio.create_task(
            record_engine_fills(source, sandbox.namespace, engine_seen, cycles, stop)
        )
        try:
            await page.wait_for_function(
                "() => Object.values(window.__seen).filter(t => t > 0).length >= 3",
                timeout=WAIT_MS,
            )
        finally:
            stop.set()
            await recorder
        browser_seen: dict[str, float] = await page.evaluate("() => window.__seen")
        latencies = [
            browser_seen[t] - engine_seen[t]
            for t in browser_seen
            if browser_seen[t] > 0 and t in engine_seen
        ]
        assert latencies

        # halt from the console; the operator's status says Halted
        await page.click('button[data-action="halt"]')
        await expect(page.locator("#confirm-text")).to_contain_text(
            f"Halt engine {sandbox.namespace}/btc-live?"
        )
        await page.click("#confirm-ok")
        await expect(page.locator("#notice")).to_contain_text("spec patched")
        await sandbox.wait("tradingengine/btc-live", "jsonpath={.status.phase}=Halted")
        await expect(page.locator('#panel-summary [data-field="phase"]')).to_have_text(
            "Halted", timeout=30_000
        )

        # halted, the books are still: the console, the engine and the exchange agree
        engine_fills = await asyncio.to_thread(
            source.engine_history, sandbox.namespace, "btc-live", "fills"
        )
        await expect(page.locator("#fills-table tr[data-trade-id]")).to_have_count(
            len(engine_fills), timeout=30_000
        )
        shown = await console_fills(page)
        assert [r["tradeId"] for r in shown] == [str(f["tradeId"]) for f in reversed(engine_fills)]
        for row, fill in zip(shown, reversed(engine_fills), strict=True):
            for key in ("orderId", "side", "price", "quantity", "fee", "feeCurrency"):
                assert row[key] == str(fill[key]), (key, row, fill)
        exchange = {str(t.id): t for t in sim.trades(KEY.api_key)}
        assert set(exchange) == {r["tradeId"] for r in shown}
        for row in shown:
            trade = exchange[row["tradeId"]]
            assert row["orderId"] == str(trade.order_id)
            assert row["side"] == ("buy" if trade.is_buyer else "sell")
            assert _same_decimal(row["price"], trade.price)
            assert _same_decimal(row["quantity"], trade.qty)
            assert _same_decimal(row["fee"], trade.commission)
            assert row["feeCurrency"] == trade.commission_asset
    desk.close()

    overview_ms = statistics.median(t["load"] for t in loads)
    engine_ms = statistics.median(t["load"] for t in engine_loads)
    print(
        f"\nconsole page load (median of 3, loadEventEnd): overview {overview_ms:.0f} ms "
        f"(live stream open {statistics.median(t['live'] for t in loads):.0f} ms), "
        f"engine page {engine_ms:.0f} ms "
        f"(live {statistics.median(t['live'] for t in engine_loads):.0f} ms)"
        f"\nfill -> console: {len(latencies)} fills, median {statistics.median(latencies):.0f} ms, "
        f"max {max(latencies):.0f} ms (from first seen in the engine's /fills, read every "
        f"100 ms + {statistics.median(cycles):.0f} ms per read through the pod proxy)"
    )
    assert overview_ms < 5000 and engine_ms < 10_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_kubectl_hean_console_serves_the_engines_then_refuses_a_viewer(
    sandbox: Scenario,
) -> None:
    assert sandbox.box is not None and sandbox.kubeconfig is not None
    await start_paper_engine(sandbox, "btc")
    await sandbox.wait("tradingengine/btc", "condition=Ready")

    # the contract: `kubectl hean console --port PORT --no-browser` serves on 127.0.0.1:PORT
    # until interrupted, and its first page lists the engines
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hean_desk.plugin",
        "--kubeconfig",
        str(sandbox.kubeconfig),
        "console",
        "--port",
        str(port),
        "--no-browser",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        banner = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        assert f"http://127.0.0.1:{port}/" in banner, banner
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/") as page:
            assert page.status == 200
            assert f'data-key="{sandbox.namespace}/btc"' in await page.text()
    finally:
        process.send_signal(signal.SIGINT)
        # communicate(), not wait(): it drains stderr, so the console never blocks (or
        # aborts at interpreter shutdown) writing its log to a full pipe nobody reads.
        _, log = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, log.decode(errors="replace")[-2000:]

    # a viewer: may read TradingEngines in this namespace, nothing more
    await sandbox.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "engine-viewer"},
            "rules": [
                {
                    "apiGroups": ["hean.io"],
                    "resources": ["tradingengines"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        }
    )
    await sandbox.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "engine-viewer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "engine-viewer",
            },
            "subjects": [
                {"kind": "User", "name": "viewer", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
    )
    cluster = sandbox.box.options.control_plane
    assert cluster is not None
    pair = await asyncio.to_thread(cluster.issue_client, f"viewer-{sandbox.namespace}", "viewer")
    kubeconfig = cluster.write_kubeconfig(
        sandbox.kubeconfig.parent / "viewer.kubeconfig",  # type: ignore[union-attr]
        pair,
        user="viewer",
        namespace=sandbox.namespace,
    )
    desk = DeskClient(kubeconfig=str(kubeconfig))
    async with serving(DeskSource(desk)) as url, chromium() as browser:
        page = await browser.new_page()
        await page.goto(url)
        row = page.locator(f'tr[data-key="{sandbox.namespace}/btc"]')
        await expect(row).to_be_visible()
        await row.locator("a").click()
        await expect(page.locator("body")).to_have_attribute("data-live", "open")
        await page.click('button[data-action="halt"]')
        await page.click("#confirm-ok")
        notice = page.locator("#notice")
        await expect(notice).to_contain_text("Refused by Kubernetes RBAC")
        await expect(notice).to_contain_text("patch")
        await expect(notice).to_have_class("refusal")
    desk.close()
    engine = await sandbox.get("tradingengine", "btc")
    assert not engine["spec"].get("halt")
    assert engine["status"]["phase"] == "Running"
