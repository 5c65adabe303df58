"""Issue 15's desk for a LIVE engine in the sandbox: `kubectl hean approve`, `status` and
`trades`, against what the engine and the exchange say.

Sandbox only: the engine pod is a real `hean engine run` process trading through ccxt's
binance client on the sandbox's exchange simulator, which holds the account the
engine's credentials Secret names; the operator trusts alice's public key (the chart's
trust ConfigMap). The user's side is `kubectl hean` run as a process with the
sandbox's kubeconfig: approvals are signed with a key file on disk, as a person
would keep it, and everything is read through the API server (the pod proxy).

- approve: an untrusted key and a stale spec are refused (exit 2, the reason said, no
  traceback, no pod); alice's key approves, and the engine goes live;
- status: `kubectl hean status -o json` equals the engine's own /status, /orders and
  /fills (through the pod proxy) and the simulator's balances, open orders and trades;
- durable history: the pod killed mid-trading, a trading-spec change re-approved with
  `kubectl hean approve --generation 2` as a user would (the approval is bound to the
  trading spec), the operator restarted: `kubectl hean trades` equals the simulator's
  trade list for the account exactly, no order, fill or equity point lost, and the
  PnL baseline kept.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from scenario_support import (
    Scenario,
    credentials_secret,
    live_engine,
    sandbox_with_account,
    trust_configmap,
)
from test_kubectl_hean import hean

from hean_desk.client import DeskClient
from hean_sim.exchange import SimExchange
from hean_sim.exchange.config import ApiKey

ENGINE = "btc"
KEY = ApiKey("sandbox-desk-apikey-4Hq8Zr1", "sandbox-desk-secret-Wm27xBv9Kd")
CONDITION = '{.status.conditions[?(@.type=="LiveApproved")]'
LIMIT = 60.0  # seconds any one thing may take on a loaded machine


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Scenario]:
    async with sandbox_with_account(tmp_path, KEY) as scenario:
        yield scenario


def _key_file(folder: Path, key_id: str, key: Ed25519PrivateKey) -> Path:
    """A private key as `hean approval keygen` writes it: KEY_ID.key, mode 600."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key_id}.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(path, 0o600)
    return path


async def _setup(scenario: Scenario, alice: Ed25519PrivateKey) -> None:
    """Trust alice, give the engine its exchange credentials, apply the live engine."""
    await scenario.apply(trust_configmap(scenario, {"alice": alice}, {"required": 1}))
    await scenario.apply(credentials_secret(KEY))
    await scenario.apply(live_engine(scenario, ENGINE))
    await scenario.wait(f"tradingengine/{ENGINE}", f"jsonpath={CONDITION}.reason}}=no_approval")


async def _plugin(scenario: Scenario, *args: str) -> Any:
    """`kubectl hean ARGS -n NS -o json`, which must succeed; its JSON."""
    run = await hean(scenario.kubeconfig, *args, "-n", scenario.namespace, "-o", "json")
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    return run.json()


def _sim(scenario: Scenario) -> SimExchange:
    assert scenario.box is not None and isinstance(scenario.box.exchange, SimExchange)
    return scenario.box.exchange


async def _until(check: Callable[[], Awaitable[Any]], what: str, limit: float = LIMIT) -> Any:
    """Ask `check` until it returns something truthy (each ask is a round trip through
    the API server to the engine or the exchange); fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


async def _engine_api(scenario: Scenario, path: str) -> Any:
    """The engine's own answer at `path` (a first page of at most 1000 rows for the history
    routes), through the API server's pod proxy with the control token from its Secret:
    the raw JSON, not the plugin's rendering of it."""
    desk = DeskClient(str(scenario.kubeconfig))
    try:
        return await asyncio.to_thread(
            desk._engine_get, scenario.namespace, ENGINE, path, {"limit": "1000"}, True
        )
    finally:
        desk.close()


def _exchange_trades(scenario: Scenario) -> list[dict[str, Any]]:
    """The simulator's own trade list for the account, in the contract's shape."""
    sim = _sim(scenario)
    client_ids = {o.order_id: o.client_order_id for o in sim.orders(KEY.api_key)}
    return [
        {
            "tradeId": str(t.id),
            "orderId": str(t.order_id),
            "clientOrderId": client_ids[t.order_id],
            "side": "buy" if t.is_buyer else "sell",
            "price": t.price,
            "quantity": t.qty,
            "fee": t.commission,
            "feeCurrency": t.commission_asset,
            "time": datetime.fromtimestamp(t.time / 1000, UTC),
        }
        for t in sim.trades(KEY.api_key)
    ]


def _as_exchange(fills: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`kubectl hean trades -o json` rows with their money and times as values."""
    return [
        {
            "tradeId": f["tradeId"],
            "orderId": f["orderId"],
            "clientOrderId": f["clientOrderId"],
            "side": f["side"],
            "price": Decimal(f["price"]),
            "quantity": Decimal(f["quantity"]),
            "fee": Decimal(f["fee"]),
            "feeCurrency": f["feeCurrency"],
            "time": datetime.fromisoformat(f["time"].replace("Z", "+00:00")),
        }
        for f in fills
    ]


async def _approve_refused(scenario: Scenario, *args: str) -> str:
    run = await hean(scenario.kubeconfig, "approve", ENGINE, "-n", scenario.namespace, *args)
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr, run.stderr
    return run.stderr


async def test_approve_then_status_equals_the_engine_and_the_exchange(
    live: Scenario, tmp_path: Path
) -> None:
    alice, mallory = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    keys = tmp_path / "keys"
    await _setup(live, alice)
    ns = live.namespace

    # an untrusted key: the operator's verdict, said by the plugin; no pod
    refused = await _approve_refused(live, "--key", str(_key_file(keys, "mallory", mallory)))
    assert "the operator refused liveapproval" in refused and "untrusted_key" in refused, refused
    # a key file named alice but not alice's key: the signature does not verify
    forged = await _approve_refused(
        live, "--key", str(_key_file(tmp_path / "forged", "alice", mallory))
    )
    assert "bad_signature" in forged, forged
    # a stale spec: the spec changed after the generation the user reviewed
    await live.kubectl(
        "patch",
        "tradingengine",
        ENGINE,
        "--type=merge",
        "-p",
        '{"spec": {"risk": {"maxOrderNotional": "9000"}}}',
    )
    alice_key = _key_file(keys, "alice", alice)
    stale = await _approve_refused(live, "--key", str(alice_key), "--generation", "1")
    assert "is at generation 2, you reviewed generation 1" in stale, stale
    # alice's key file is never shown, whatever happened
    secret_text = alice_key.read_text()
    assert all(secret_text not in text for text in (refused, forged, stale))
    assert (await live.kubectl("get", "pod", f"{ENGINE}-engine", check=False)).returncode != 0
    assert _sim(live).orders(KEY.api_key) == []

    # alice approves generation 2: the operator says valid, the engine goes live
    approved = await _plugin(live, "approve", ENGINE, "--key", str(alice_key), "--generation", "2")
    assert approved["status"]["valid"] is True, approved
    assert [s["keyId"] for s in approved["spec"]["signatures"]] == ["alice"]
    await live.wait(f"tradingengine/{ENGINE}", f"jsonpath={CONDITION}.reason}}=Approved")
    await live.wait(f"tradingengine/{ENGINE}", "condition=Ready")

    async def traded() -> bool:
        return len(_sim(live).trades(KEY.api_key)) >= 2

    await _until(traded, "two fills on the exchange")

    # status, the engine and the exchange: compared at a still moment, one snapshot: no
    # order working, the same trades on the exchange before and after, and the plugin's
    # report the same as the engine's (its last candle and last reconcile); else again
    Snapshot = tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], Any, Any]

    async def still() -> Snapshot | None:
        sim = _sim(live)
        before = len(sim.trades(KEY.api_key))
        status = await _plugin(live, "status", ENGINE)
        report = await _engine_api(live, "status")
        fills = (await _engine_api(live, "fills"))["items"]
        # the exchange's side, read after the engine's: the same if nothing moved
        trades = _exchange_trades(live)
        balances = {a: b.free + b.locked for a, b in sim.balances(KEY.api_key).items()}
        working = sim.orders(KEY.api_key, open_only=True)
        if len(trades) != before or working or report["openOrders"]:
            return None
        if report["fills"] != before or status["lastDataTime"] != report["lastDataTime"]:
            return None
        if status["reconcile"]["time"] != report["lastReconcile"]["time"]:
            return None
        return status, report, fills, trades, balances

    status, report, fills, trades, balances = await _until(still, "a still moment to compare")
    # the contract's fields, equal to the engine's own report
    assert status["mode"] == "live" and status["phase"] == "Running"
    assert status["reportError"] is None and status["historyError"] is None
    for field, key in (
        ("riskState", "riskState"),
        ("equity", "equity"),
        ("pnl", "pnl"),
        ("maxDrawdown", "maxDrawdown"),
        ("fees", "fees"),
        ("balances", "balances"),
        ("openOrders", "openOrders"),
    ):
        assert status[field] == report[key], (field, status[field], report[key])
    assert status["riskState"] == "ACTIVE"
    # positions and balances equal the exchange's
    position = balances.get("BTC", Decimal(0))
    expected = [{"symbol": "BTC/USDT", "quantity": report["position"]}] if position else []
    assert status["positions"] == expected
    assert Decimal(report["position"]) == position
    assert {c: Decimal(v) for c, v in status["balances"].items() if Decimal(v)} == {
        c: v for c, v in balances.items() if v
    }
    assert status["openOrders"] == []  # and none on the exchange (still())
    # the last fills are the exchange's last trades
    last = status["lastFills"]
    assert last and _as_exchange(last) == trades[-len(last) :]
    assert _as_exchange(fills) == trades
    # PnL against the recorded baseline: equity at the exchange's balances minus the baseline
    equity = await _plugin(live, "pnl", ENGINE)
    assert equity and Decimal(status["pnl"]) == Decimal(status["equity"]) - Decimal(
        equity[0]["baseline"]
    )
    # reconcile: the engine's last comparison, no drift
    assert status["reconcile"] == {
        "result": "ok",
        "time": report["lastReconcile"]["time"],
        "drift": None,
        "since": None,
    }
    assert report["lastReconcile"]["result"] == "ok" and report["live"]["drift"] is False
    # the approval: alice's, valid, its expiry the engine's and the LiveApproval's
    approval = status["approval"]
    assert approval["condition"] == "True" and approval["reason"] == "Approved"
    assert approval["name"] == approved["metadata"]["name"] and approval["signers"] == ["alice"]
    assert approval["valid"] is True is report["approval"]["valid"]
    assert approval["expiresAt"] == report["approval"]["expiresAt"]
    assert approval["expiresAt"] == approved["spec"]["expiresAt"]
    table = await hean(live.kubeconfig, "status", ENGINE, "-n", ns)
    assert table.returncode == 0 and "Traceback" not in table.stderr


async def _history(scenario: Scenario, what: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await _plugin(scenario, what, ENGINE)
    return rows


async def _settled(scenario: Scenario) -> list[dict[str, Any]]:
    """`kubectl hean trades` once nothing is working on the exchange and the history has
    every trade the exchange has (or it is an AssertionError after LIMIT)."""

    async def settled() -> list[dict[str, Any]] | None:
        sim = _sim(scenario)
        if sim.orders(KEY.api_key, open_only=True):
            return None
        if (await _engine_api(scenario, "status"))["openOrders"]:
            return None  # one on its way to the exchange
        fills = await _history(scenario, "trades")
        return fills if len(fills) == len(sim.trades(KEY.api_key)) else None

    fills: list[dict[str, Any]] = await _until(settled, "the history to hold every trade")
    return fills


async def test_live_history_survives_a_killed_pod_a_spec_change_and_an_operator_restart(
    live: Scenario, tmp_path: Path
) -> None:
    alice = Ed25519PrivateKey.generate()
    alice_key = _key_file(tmp_path / "keys", "alice", alice)
    await _setup(live, alice)
    await _plugin(live, "approve", ENGINE, "--key", str(alice_key), "--generation", "1")
    await live.wait(f"tradingengine/{ENGINE}", "condition=Ready")
    first = await live.get("pod", f"{ENGINE}-engine")

    async def trades_at_least(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(_sim(live).trades(KEY.api_key)) >= count

        return check

    await _until(await trades_at_least(2), "two fills on the exchange")
    fills = await _history(live, "trades")
    orders, equity = await _history(live, "orders"), await _history(live, "pnl")
    assert fills and orders and equity
    baseline = equity[0]["baseline"]
    assert all(p["baseline"] == baseline for p in equity)

    # kill the pod mid-trading (no grace: SIGKILL), change the trading spec (the
    # approval no longer fits it: no pod until alice approves the new one), restart
    # the operator
    await live.kubectl("delete", "pod", f"{ENGINE}-engine", "--grace-period=0", "--force")
    await live.kubectl(
        "patch",
        "tradingengine",
        ENGINE,
        "--type=merge",
        "-p",
        '{"spec": {"risk": {"maxOrderNotional": "9000"}}}',
    )
    await live.restart_operator()
    await live.wait(f"tradingengine/{ENGINE}", "jsonpath={.status.observedGeneration}=2")
    await live.wait(f"tradingengine/{ENGINE}", f"jsonpath={CONDITION}.reason}}=spec_changed")
    assert (await live.kubectl("get", "pod", f"{ENGINE}-engine", check=False)).returncode != 0
    # as a user would: review generation 2 and approve it
    approved = await _plugin(live, "approve", ENGINE, "--key", str(alice_key), "--generation", "2")
    assert approved["status"]["valid"] is True
    await live.wait(f"tradingengine/{ENGINE}", "condition=Ready")
    second = await live.get("pod", f"{ENGINE}-engine")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["metadata"]["annotations"]["hean.io/spec-generation"] == "2"
    # the new run trades too; then it is paused (kubectl hean pause: not a trading-spec
    # change, the approval still fits) so that the exchange and the history hold still
    before = len(_sim(live).trades(KEY.api_key))
    await _until(await trades_at_least(before + 1), "a fill after the restart")
    paused = await _plugin(live, "pause", ENGINE, "--yes")
    assert paused["spec"]["paused"] is True
    await live.wait(f"tradingengine/{ENGINE}", "jsonpath={.status.phase}=Paused")

    # the history is the exchange's trade list, exactly, every field
    after_fills = await _settled(live)
    assert _as_exchange(after_fills) == _exchange_trades(live)
    assert after_fills[: len(fills)] == fills  # what was there is there, unchanged
    assert len({f["runId"] for f in after_fills}) >= 2, "fills of both runs"
    # no order lost: every order of the account is in the history, as the exchange has it
    after_orders = await _history(live, "orders")
    assert after_orders[: len(orders)] == orders
    last_change = {o["clientOrderId"]: o for o in after_orders}
    for order in _sim(live).orders(KEY.api_key):
        change = last_change[order.client_order_id]
        assert change["exchangeOrderId"] == str(order.order_id)
        assert (change["status"], Decimal(change["filled"])) == ("filled", order.executed_qty)
    # no equity point lost or changed, and the PnL baseline kept across the runs
    after_equity = await _history(live, "pnl")
    by_time = {p["time"]: p for p in after_equity}
    assert all(by_time.get(p["time"]) == p for p in equity), "an equity point changed"
    assert len(after_equity) > len(equity)
    assert {p["baseline"] for p in after_equity} == {baseline}
    status = await _plugin(live, "status", ENGINE)
    report = await _engine_api(live, "status")
    # the running engine's PnL is against that baseline too, not this run's start
    assert Decimal(report["pnl"]) == Decimal(report["equity"]) - Decimal(baseline)
    assert status["phase"] == "Paused" and status["riskState"] == "ACTIVE"
    assert status["approval"]["valid"] is True
    assert status["approval"]["name"] == approved["metadata"]["name"]
