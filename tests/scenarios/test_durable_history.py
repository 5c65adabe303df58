"""Issue 15, done when: a paper engine's books survive a killed pod, a spec change and an
operator restart, on its PersistentVolumeClaim; its account continues and is reset only
by `spec.paper.resetRequest`. And a PostgreSQL URL from a Secret never leaks.

Sandbox only: the engine pods are real `hean engine run` processes trading paper on
the exchange simulator's market data, their claims provisioned by the sandbox's
local-path provisioner and bound by the real PV controller; the history is read as a
user reads it, with `kubectl hean` through the API server's pod proxy.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from scenario_support import Scenario, make_sandbox_scenario, stop_recording
from test_kubectl_hean import ENGINE, hean, place_test_order

from history_support import PG_PASSWORD, PostgresServer

STARTING = {"USDT": Decimal(100000)}


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Scenario]:
    current, recorder = await make_sandbox_scenario(tmp_path, poll=1.0)
    try:
        yield current
    finally:
        await stop_recording(recorder)
        assert current.box is not None
        await current.box.stop()


async def history(scenario: Scenario, what: str) -> list[dict[str, Any]]:
    """`kubectl hean trades|orders|positions|pnl ENGINE -o json`."""
    run = await hean(scenario.kubeconfig, what, ENGINE, "-n", scenario.namespace, "-o", "json")
    assert run.returncode == 0, run.stderr
    rows: list[dict[str, Any]] = run.json()  # type: ignore[assignment]
    return rows


def held(balances: dict[str, str]) -> dict[str, Decimal]:
    """Balances without the zero ones, as exact decimals."""
    return {c: Decimal(v) for c, v in balances.items() if Decimal(v)}


async def engine_events(scenario: Scenario, reason: str) -> list[dict[str, Any]]:
    listed = (await scenario.kubectl("get", "events", "-o", "json")).json()["items"]
    return [e for e in listed if e["reason"] == reason and e["involvedObject"]["name"] == ENGINE]


async def test_books_survive_a_killed_pod_a_spec_change_and_an_operator_restart(
    sandbox: Scenario,
) -> None:
    scenario = sandbox
    await scenario.apply(scenario.engine(ENGINE))
    await scenario.wait(f"tradingengine/{ENGINE}", "condition=Ready")
    claim = await scenario.get("pvc", f"{ENGINE}-history")
    assert claim["status"]["phase"] == "Bound"
    assert claim["metadata"]["ownerReferences"][0]["kind"] == "TradingEngine"
    first = await scenario.get("pod", f"{ENGINE}-engine")
    # trading: at least one fill of its own (a test order), besides the strategy's
    order = await place_test_order(scenario, "-o", "json")
    assert order.returncode == 0, order.stderr
    placed = order.json()["order"]["id"]
    fills: list[dict[str, Any]] = []
    for _ in range(120):  # the order fills on the simulator's next candle
        fills = await history(scenario, "trades")
        if any(placed in (f["orderId"], f["clientOrderId"]) for f in fills):
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"the test order {placed} never filled: {fills}")
    orders, equity = await history(scenario, "orders"), await history(scenario, "pnl")
    assert orders and equity
    # kill the pod mid-trading, change the spec, restart the operator
    await scenario.kubectl("delete", "pod", f"{ENGINE}-engine", "--wait=false")
    await scenario.kubectl(
        "patch",
        "tradingengine",
        ENGINE,
        "--type=merge",
        "-p",
        '{"spec": {"risk": {"maxOrderNotional": "9000"}}}',
    )
    await scenario.restart_operator()
    await scenario.wait(f"tradingengine/{ENGINE}", "jsonpath={.status.observedGeneration}=2")
    await scenario.wait(f"tradingengine/{ENGINE}", "condition=Ready")
    second = await scenario.get("pod", f"{ENGINE}-engine")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["metadata"]["annotations"]["hean.io/spec-generation"] == "2"
    # nothing lost: what was there before is there after, in the same order, to the digit
    after_fills = await history(scenario, "trades")
    assert after_fills[: len(fills)] == fills
    after_orders = await history(scenario, "orders")
    assert after_orders[: len(orders)] == orders
    after_equity = {p["time"]: p for p in await history(scenario, "pnl")}
    assert all(after_equity.get(p["time"]) == p for p in equity), "an equity point changed"
    # the paper account continued: each new run started from the balances the one
    # before it left (its last snapshot), never from spec.paper.startingBalances again
    snapshots = await history(scenario, "positions")
    starts = [i for i, s in enumerate(snapshots) if s["reason"] == "start"]
    assert len(starts) >= 2, snapshots
    assert held(snapshots[0]["balances"]) == STARTING
    for i in starts[1:]:
        assert snapshots[i]["balances"] == snapshots[i - 1]["balances"], snapshots[i - 1 : i + 1]
    assert held(snapshots[starts[-1]]["balances"]) != STARTING  # it had traded
    assert not await engine_events(scenario, "PaperAccountReset")
    # the one way to reset it: a new spec.paper.resetRequest; no new pod for it
    await scenario.kubectl(
        "patch",
        "tradingengine",
        ENGINE,
        "--type=merge",
        "-p",
        '{"spec": {"paper": {"resetRequest": "after-review-1"}}}',
    )
    await scenario.wait(f"tradingengine/{ENGINE}", "jsonpath={.status.observedGeneration}=3")
    resets: list[dict[str, Any]] = []
    for _ in range(120):
        resets = await engine_events(scenario, "PaperAccountReset")
        if resets:
            break
        await asyncio.sleep(0.5)
    (reset,) = resets
    assert reset["type"] == "Normal" and "after-review-1" in reset["message"]
    assert (await scenario.get("pod", f"{ENGINE}-engine"))["metadata"]["uid"] == second["metadata"][
        "uid"
    ]
    snapshots = await history(scenario, "positions")
    (reset_snapshot,) = [s for s in snapshots if s["reason"] == "reset"]
    assert held(reset_snapshot["balances"]) == STARTING
    # history is never rewritten by a reset
    assert (await history(scenario, "trades"))[: len(fills)] == fills
    # an operator restart does not reset it again
    await scenario.restart_operator()
    await scenario.wait(f"tradingengine/{ENGINE}", "condition=Ready")
    assert len(await engine_events(scenario, "PaperAccountReset")) == 1
    assert [s["reason"] for s in await history(scenario, "positions")].count("reset") == 1


async def test_a_postgres_url_from_a_secret_never_leaks(
    sandbox: Scenario, postgres_server: PostgresServer
) -> None:
    scenario = sandbox
    url = postgres_server.new_database()
    assert PG_PASSWORD in url
    await scenario.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "history-db"},
            "type": "Opaque",
            "data": {"uri": base64.b64encode(url.encode()).decode()},
        }
    )
    await scenario.apply(
        scenario.engine(ENGINE, storage={"postgres": {"secretName": "history-db"}})
    )
    await scenario.wait(f"tradingengine/{ENGINE}", "condition=Ready")
    order = await place_test_order(scenario, "-o", "json")
    assert order.returncode == 0, order.stderr
    placed = order.json()["order"]["id"]
    for _ in range(120):  # the history is in PostgreSQL, read back through the engine
        if any(
            placed in (f["orderId"], f["clientOrderId"]) for f in await history(scenario, "trades")
        ):
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError("the test order never reached the PostgreSQL history")
    claims = (await scenario.kubectl("get", "pvc", "-o", "json")).json()["items"]
    assert claims == []  # no claim with PostgreSQL
    pod = await scenario.get("pod", f"{ENGINE}-engine")
    engine = await scenario.get("tradingengine", ENGINE)
    listed = (await scenario.kubectl("get", "events", "-o", "json")).json()["items"]
    assert scenario.box is not None
    pod_logs = "".join(
        p.read_text(errors="replace") for p in scenario.box.pods_dir.rglob("logs/*.log")
    )
    assert "history opened" in pod_logs  # the engine's own log line is among them
    described = await scenario.kubectl("describe", "pod", f"{ENGINE}-engine")
    for where, text in (
        ("pod spec", json.dumps(pod["spec"])),
        ("status", json.dumps(engine["status"])),
        ("events", json.dumps(listed)),
        ("pod and operator logs", pod_logs + scenario.box.operator_logs()),
        ("kubectl describe", described.stdout),
    ):
        assert PG_PASSWORD not in text, where
        assert url not in text, where
    (env,) = [e for e in pod["spec"]["containers"][0]["env"] if e["name"] == "HEAN_HISTORY"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "history-db", "key": "uri"}
