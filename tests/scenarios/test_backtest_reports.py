"""A Backtest's HTML report, opened from `kubectl hean` and the console, on the sandbox.

The report is on the Backtest's output claim; the desk reads it through a
short-lived reader pod (`hean engine serve-reports`, the claim mounted
read-only) and the API server's pod proxy, with the user's kubeconfig. What a
person would check: the saved HTML's statistics are those in status; the
console's Backtest page opens the report in Chromium with its equity chart and
statistics; the reader pods go away; a Backtest with no report, or not
finished, is exit status 2 with the reason; a user who may not create pods is
told so.

Sandbox only (hostPath volumes, as in test_backtests.py).
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect
from scenario_support import Scenario, make_sandbox_scenario, stop_recording
from test_backtests import _backtest, _slice, _volume

from cluster_support import unique
from console_browser_support import chromium, serving
from hean_desk.client import DeskClient
from hean_desk.console.desk_source import DeskSource

READERS = "app.kubernetes.io/component=report-reader"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Scenario]:
    current, recorder = await make_sandbox_scenario(tmp_path, exchange=False)
    try:
        yield current
    finally:
        await stop_recording(recorder)
        assert current.box is not None
        await current.box.stop()


async def hean(kubeconfig: Path | None, *args: str) -> tuple[int, str, str]:
    """`kubectl hean ARGS` as a user runs it: a process with a kubeconfig, no terminal."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "hean_desk.plugin", *args),
        *(("--kubeconfig", str(kubeconfig)) if kubeconfig is not None else ()),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 180)
    return process.returncode or 0, out.decode(), err.decode()


def html_stats(page: str) -> dict[str, str]:
    """The statistics table of a report: each figure's exact value (its data-value)."""
    table = re.search(r'<table id="stats">(.*?)</table>', page, re.S)
    assert table is not None, page[:500]
    return {
        key: html.unescape(value)
        for key, value in re.findall(r'data-key="([^"]+)" data-value="([^"]*)"', table.group(1))
    }


def same_figures(report: dict[str, str], status: dict[str, Any]) -> list[str]:
    """The statistics status and the report both have; fails on any that differ."""
    shared = sorted(k for k in status if k in report and k != "undefined")
    for key in shared:
        assert report[key] == str(status[key]), (key, report[key], status[key])
    return shared


async def readers(scenario: Scenario) -> list[dict[str, Any]]:
    found = await scenario.kubectl("get", "pods", "-l", READERS, "-o", "json")
    items: list[dict[str, Any]] = found.json()["items"]
    return items


async def test_the_report_opens_from_kubectl_hean_and_the_console(
    sandbox: Scenario, tmp_path: Path
) -> None:
    ns, kubeconfig = sandbox.namespace, sandbox.kubeconfig
    data = _slice(tmp_path / "data")
    await _volume(sandbox, "market-data", data.parent)
    await _volume(sandbox, "backtest-results", tmp_path / "results")
    await sandbox.apply(_backtest("ema"))
    await sandbox.wait("backtest/ema", "jsonpath={.status.phase}=Succeeded")
    backtest = await sandbox.get("backtest", "ema")
    status = backtest["status"]

    # kubectl hean backtest report: the HTML, whose statistics are status's
    saved = tmp_path / "ema.html"
    started = time.perf_counter()
    code, out, err = await hean(
        kubeconfig, "backtest", "report", "ema", "-n", ns, "--save", str(saved)
    )
    fetch_seconds = time.perf_counter() - started
    assert code == 0, err
    assert out.startswith(f"report of backtest.hean.io/ema saved to {saved} (")
    assert "Traceback" not in err and "warning" not in err
    page = saved.read_text(encoding="utf-8")
    assert page == (tmp_path / "results" / status["report"]["path"]).read_text(encoding="utf-8")
    compared = same_figures(html_stats(page), status["stats"])
    assert {"totalReturnPct", "sharpe", "maxDrawdownPct", "trades", "finalEquity"} <= set(compared)
    print(f"\nkubectl hean backtest report: {fetch_seconds:.2f} s, {len(page):,} bytes")
    # the reader pod was the Backtest's, and is gone
    await sandbox.kubectl("wait", "--for=delete", "pod", "-l", READERS, "--timeout=60s")
    assert await readers(sandbox) == []

    # the console: the Backtest's page opens the report in the browser
    desk = DeskClient(kubeconfig=str(kubeconfig) if kubeconfig else None)
    async with serving(DeskSource(desk)) as url, chromium() as browser:
        tab = await browser.new_page()
        await tab.goto(f"{url}backtests/{ns}/ema")
        await expect(tab.locator("#backtest-name")).to_have_text("ema")
        started = time.perf_counter()
        await tab.click("#open-report")
        await expect(tab.locator("svg#equity-chart")).to_be_visible(timeout=120_000)
        open_seconds = time.perf_counter() - started
        sharpe = tab.locator('#stats [data-key="sharpe"]')
        await expect(sharpe).to_have_attribute("data-value", str(status["stats"]["sharpe"]))
        await expect(sharpe).to_be_visible()
        trades = tab.locator('#stats [data-key="trades"]')
        await expect(trades).to_have_attribute("data-value", str(status["stats"]["trades"]))
        assert await tab.locator("svg#equity-chart path, svg#equity-chart polyline").count() > 0
        # while the console is open, its reader pod is kept (one), owned by the Backtest
        (reader,) = await readers(sandbox)
        assert [(o["kind"], o["uid"]) for o in reader["metadata"]["ownerReferences"]] == [
            ("Backtest", backtest["metadata"]["uid"])
        ]
        await tab.go_back()
        started = time.perf_counter()
        await tab.click("#open-report")
        await expect(tab.locator("svg#equity-chart")).to_be_visible()
        again_seconds = time.perf_counter() - started
        assert len(await readers(sandbox)) == 1  # the same pod served it again
        await tab.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    print(f"console: report opened in {open_seconds:.2f} s, again in {again_seconds:.2f} s")
    # the console stopped: its reader pod is deleted
    await sandbox.kubectl("wait", "--for=delete", "pod", "-l", READERS, "--timeout=60s")
    desk.close()


async def test_no_report_to_read_is_exit_2_and_no_rbac_for_pods_is_said(
    sandbox: Scenario, tmp_path: Path
) -> None:
    if sandbox.box is None or sandbox.box.control_plane is None:
        pytest.skip("needs the sandbox's certificate authority to make a user")
    ns, kubeconfig = sandbox.namespace, sandbox.kubeconfig
    data = _slice(tmp_path / "data")
    await _volume(sandbox, "market-data", data.parent)
    await _volume(sandbox, "backtest-results", tmp_path / "results")
    # no output claim: only the summary is kept
    await sandbox.apply(_backtest("summary-only", output=None))
    code, _, err = await hean(kubeconfig, "backtest", "report", "summary-only", "-n", ns)
    assert code == 2
    assert err.startswith(
        f"error: Backtest {ns}/summary-only has no report: it has no spec.output claim"
    ), err
    # not finished: its data claim does not exist, so its pod waits (Pending)
    stuck = _backtest("stuck")
    stuck["spec"]["data"] = {"volume": {"claimName": "no-such-claim", "path": "x.csv.gz"}}
    await sandbox.apply(stuck)
    await sandbox.wait("backtest/stuck", "jsonpath={.status.jobName}=stuck-backtest")
    code, _, err = await hean(kubeconfig, "backtest", "report", "stuck", "-n", ns)
    assert code == 2
    assert re.match(
        rf"error: Backtest {ns}/stuck is (Pending|Running).*: its report is written when it "
        r"has Succeeded \(kubectl hean backtest stuck shows its progress\)",
        err,
    ), err
    # a user who may read Backtests and Jobs but not create pods
    await sandbox.apply(_backtest("ema"))
    await sandbox.wait("backtest/ema", "jsonpath={.status.phase}=Succeeded")
    user = unique("reader")
    cluster = sandbox.box.control_plane
    pair = await asyncio.to_thread(cluster.issue_client, user, user)
    viewer = cluster.write_kubeconfig(tmp_path / "viewer", pair, user=user, namespace=ns)
    await sandbox.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "backtest-viewer", "namespace": ns},
            "rules": [
                {"apiGroups": ["hean.io"], "resources": ["backtests"], "verbs": ["get", "list"]},
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]},
            ],
        }
    )
    await sandbox.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "backtest-viewer", "namespace": ns},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "backtest-viewer",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
    )
    code, out, err = await hean(viewer, "backtest", "report", "ema")
    assert code == 1, out
    assert err.startswith(
        f"error: forbidden: your Kubernetes user may not create pods in namespace '{ns}' "
        "(needed for a short-lived pod that reads the report from claim backtest-results): "
    ), err
    assert f'User "{user}" cannot create resource "pods"' in err
    assert "Traceback" not in err
    assert await readers(sandbox) == []
