"""`kubectl hean` against the real control plane: its pod proxy, RBAC and the operator.

The plugin runs as a user would run it (a process, `python -m hean_desk.plugin`,
with a kubeconfig); engines are real `hean engine run` processes trading
paper on the exchange simulator. The API server reaches them through its pod
proxy, which needs pod IPs it will proxy to (hean_sandbox.kubelet.podnet).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from scenario_support import Scenario

from cluster_support import unique

ENGINE = "btc"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


async def hean(kubeconfig: Path | None, *args: str) -> Run:
    """`kubectl hean ARGS` with `kubeconfig` (None: the user's default), no terminal."""
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hean_desk.plugin",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return Run(process.returncode or 0, out.decode(), err.decode())


async def ready_engine(scenario: Scenario) -> str:
    """A Ready paper engine; returns its control token (to check it never leaks)."""
    await scenario.apply(scenario.engine(ENGINE))
    await scenario.wait(f"tradingengine/{ENGINE}", "condition=Ready")
    secret = await scenario.get("secret", f"{ENGINE}-control")
    return base64.b64decode(secret["data"]["token"]).decode()


async def place_test_order(scenario: Scenario, *args: str) -> Run:
    """`kubectl hean test-order`, once the engine has a market price (its next live candle:
    the engine is Ready when data flows, its first price comes with the next candle)."""
    for _ in range(60):
        run = await hean(scenario.kubeconfig, "test-order", ENGINE, "-n", scenario.namespace, *args)
        if "no_price" not in run.stderr:
            return run
        await asyncio.sleep(0.5)
    raise AssertionError(f"the engine saw no price in 30 s: {run.stderr}")


def _rfc3339(text: str) -> None:
    assert datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None, text


async def test_status_of_a_trading_paper_engine_as_json(scenario: Scenario) -> None:
    token = await ready_engine(scenario)
    ns = scenario.namespace
    shown = await hean(scenario.kubeconfig, "status", ENGINE, "-n", ns, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    status = shown.json()
    assert isinstance(status, dict)
    # the contract's fields, from the engine's own report through the pod proxy
    assert status["phase"] == "Running" and status["riskState"] == "ACTIVE"
    assert status["mode"] == "paper" and status["reportError"] is None, status["reportError"]
    assert Decimal(status["equity"]) == Decimal("100000") and Decimal(status["pnl"]) == 0
    assert status["positions"] == [] and status["openOrders"] == []
    assert status["balances"] == {"BTC": "0", "USDT": "100000"}
    table = await hean(scenario.kubeconfig, "status", "-n", ns)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "MODE", "PHASE", "RISK", "EQUITY"]
    assert row.split()[:5] == [ENGINE, "paper", "Running", "ACTIVE", "100000"]
    # a test order goes through the pod proxy with the token (X-Hean-Token) and fills
    order = await place_test_order(scenario, "--quantity", "0.01", "-o", "json")
    assert order.returncode == 0, order.stderr
    placed = order.json()
    assert isinstance(placed, dict) and placed["order"]["quantity"] == "0.01"
    logs = await hean(scenario.kubeconfig, "logs", ENGINE, "-n", ns, "--tail", "-1")
    assert logs.returncode == 0 and placed["order"]["id"] in logs.stdout
    for run in (shown, table, order, logs):
        assert token not in run.stdout + run.stderr


async def test_trades_as_json_match_the_engines_fills(scenario: Scenario) -> None:
    token = await ready_engine(scenario)
    ns = scenario.namespace
    order = await place_test_order(scenario, "-o", "json")
    assert order.returncode == 0, order.stderr
    placed = order.json()
    assert isinstance(placed, dict)
    order_id = placed["order"]["id"]
    first = await hean(scenario.kubeconfig, "trades", ENGINE, "-n", ns, "-o", "json")
    if first.returncode != 0 and "has no /fills" in first.stderr:
        pytest.skip("this engine has no history API yet (branch i15-history)")
    fills: list[dict[str, str]] = []
    for _ in range(60):  # the fill lands on the exchange simulator's next candle
        run = await hean(scenario.kubeconfig, "trades", ENGINE, "-n", ns, "-o", "json")
        assert run.returncode == 0, run.stderr
        assert token not in run.stdout + run.stderr
        fills = run.json()  # type: ignore[assignment]
        if any(order_id in (f["orderId"], f["clientOrderId"]) for f in fills):
            break
        await asyncio.sleep(0.5)
    mine = [f for f in fills if order_id in (f["orderId"], f["clientOrderId"])]
    assert mine, fills
    for fill in fills:
        for key in ("tradeId", "orderId", "side", "price", "quantity", "fee", "feeCurrency"):
            assert isinstance(fill[key], str) and fill[key], (key, fill)
        Decimal(fill["price"]), Decimal(fill["quantity"]), Decimal(fill["fee"])
        _rfc3339(fill["time"])
    assert [f["time"] for f in fills] == sorted(f["time"] for f in fills)  # oldest first
    assert mine[0]["side"] == "buy" and Decimal(mine[0]["quantity"]) == Decimal("0.001")


async def test_pause_through_the_plugin_changes_the_spec_and_the_phase(
    scenario: Scenario,
) -> None:
    await ready_engine(scenario)
    ns = scenario.namespace
    declined = await hean(scenario.kubeconfig, "pause", ENGINE, "-n", ns)
    assert declined.returncode == 2 and "use --yes" in declined.stderr
    assert f"engine {ENGINE} in namespace {ns}" in declined.stderr
    assert not (await scenario.get("te", ENGINE))["spec"].get("paused", False)
    paused = await hean(scenario.kubeconfig, "pause", ENGINE, "-n", ns, "--yes")
    assert paused.returncode == 0, paused.stderr
    assert (await scenario.get("te", ENGINE))["spec"]["paused"] is True
    await scenario.wait(f"tradingengine/{ENGINE}", "jsonpath={.status.phase}=Paused")
    resumed = await hean(scenario.kubeconfig, "resume", ENGINE, "-n", ns, "-y", "-o", "json")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.json() == {
        "name": ENGINE,
        "namespace": ns,
        "spec": {"paused": False, "halt": False},
    }
    await scenario.wait(f"tradingengine/{ENGINE}", "jsonpath={.status.phase}=Running")


async def test_unknown_engines_and_bad_options_are_clear_errors(
    scenario: Scenario,
) -> None:
    ns = scenario.namespace
    missing = await hean(scenario.kubeconfig, "status", "nope", "-n", ns, "-o", "json")
    assert missing.returncode == 1
    assert missing.stderr == f"error: no TradingEngine 'nope' in namespace '{ns}'\n"
    bad = await hean(scenario.kubeconfig, "trades", "nope", "-n", ns, "--since", "yesterday")
    assert bad.returncode == 2 and "--since: 'yesterday'" in bad.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


async def test_a_user_without_rbac_to_patch_is_refused_clearly(
    scenario: Scenario, tmp_path: Path
) -> None:
    if scenario.box is None or scenario.box.control_plane is None:
        pytest.skip("needs the sandbox's certificate authority to make a user")
    await ready_engine(scenario)
    ns = scenario.namespace
    user = unique("viewer")
    cluster = scenario.box.control_plane
    pair = await asyncio.to_thread(cluster.issue_client, user, user)
    kubeconfig = cluster.write_kubeconfig(tmp_path / "viewer", pair, user=user, namespace=ns)
    # read-only: the engines, their pods' proxy (GET: /status), nothing else
    await scenario.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "hean-viewer", "namespace": ns},
            "rules": [
                {
                    "apiGroups": ["hean.io"],
                    "resources": ["tradingengines", "liveapprovals"],
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]},
            ],
        }
    )
    await scenario.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "hean-viewer", "namespace": ns},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "hean-viewer",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
    )
    # the context's namespace is the default: no -n
    seen = await hean(kubeconfig, "status", ENGINE, "-o", "json")
    assert seen.returncode == 0, seen.stderr
    assert seen.json()["phase"] == "Running"  # type: ignore[index]
    refused = await hean(kubeconfig, "halt", ENGINE, "--yes")
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        f"error: forbidden: your Kubernetes user may not patch tradingengines.hean.io in "
        f"namespace '{ns}': "
    ), refused.stderr
    assert f'User "{user}" cannot patch' in refused.stderr
    assert not (await scenario.get("te", ENGINE))["spec"].get("halt", False)
    # the engine's token is in a Secret this user may not read: said, not leaked
    no_token = await hean(kubeconfig, "test-order", ENGINE)
    assert no_token.returncode == 1
    assert f"may not get secrets/{ENGINE}-control" in no_token.stderr
    assert "Traceback" not in seen.stderr + refused.stderr + no_token.stderr
