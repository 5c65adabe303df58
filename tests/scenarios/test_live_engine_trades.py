"""A real live engine in the sandbox: it trades on the simulator only while approved.

Sandbox only: the engine pod is a real `hean engine run` process (no fake pods),
managed by the real operator, and trades through ccxt's binance client on the
sandbox's in-process exchange simulator, which holds the account the engine's
credentials Secret names (the kind backend has no simulator with known accounts).
The scenario: no pod and no order without a signed LiveApproval; with one, the
pod starts, passes its startup reconcile and sends orders carrying its client-id
prefix; once the approving key is revoked the engine halts and sends no more.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from scenario_support import (
    Scenario,
    credentials_secret,
    live_engine,
    sandbox_with_account,
    trust_configmap,
)

from hean_contract.spec import parse_spec
from hean_engine.approval.manifest import approval_manifest
from hean_engine.approval.sign import add_signature, new_approval
from hean_engine.execution.client_ids import engine_tag
from hean_sim.exchange import SimExchange
from hean_sim.exchange.config import ApiKey

ALICE = Ed25519PrivateKey.generate()
KEY = ApiKey("sandbox-live-apikey-7Gq2wX9", "sandbox-live-secret-Rt58kLm3Pz")
CONDITION = '{.status.conditions[?(@.type=="LiveApproved")]'
LIMIT = 45.0  # seconds any one condition may take


def _trust(scenario: Scenario, policy: dict[str, Any]) -> dict[str, Any]:
    return trust_configmap(scenario, {"alice": ALICE}, policy)


def _prefix(scenario: Scenario) -> str:
    """The client-id prefix of this engine's orders."""
    return f"hean-{engine_tag(scenario.namespace, 'btc')}-"


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Scenario]:
    async with sandbox_with_account(tmp_path, KEY) as scenario:
        yield scenario


def _sim(scenario: Scenario) -> SimExchange:
    assert scenario.box is not None and isinstance(scenario.box.exchange, SimExchange)
    return scenario.box.exchange


def _our_orders(scenario: Scenario) -> list[str]:
    """Client ids of the orders the simulator holds for the engine's account."""
    return [o.client_order_id for o in _sim(scenario).orders(KEY.api_key)]


def _engine(scenario: Scenario) -> dict[str, Any]:
    return live_engine(scenario, "btc")


async def _until(check: Callable[[], Awaitable[Any]], what: str, limit: float = LIMIT) -> Any:
    """Poll `check` until it returns something truthy; fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_live_engine_trades_only_while_approved(live: Scenario) -> None:
    await live.apply(_trust(live, {"required": 1}))
    await live.apply(credentials_secret(KEY))
    await live.apply(_engine(live))

    # no approval: no pod, nothing on the exchange
    await live.wait("tradingengine/btc", f"jsonpath={CONDITION}.reason}}=no_approval")
    engine = await live.get("tradingengine", "btc")
    assert engine["status"]["phase"] == "Pending"
    assert (await live.kubectl("get", "pod", "btc-engine", check=False)).returncode != 0
    assert _our_orders(live) == []

    # a valid approval for this uid and spec: the real engine starts and trades
    approval = new_approval(
        namespace=live.namespace,
        engine="btc",
        engine_uid=engine["metadata"]["uid"],
        spec=parse_spec(engine["spec"]),
        ttl=timedelta(hours=1),
        now=datetime.now(UTC),
        name="ok",
    )
    manifest = approval_manifest(add_signature(approval, "alice", ALICE))
    await live.apply(manifest)
    await live.wait("tradingengine/btc", f"jsonpath={CONDITION}.reason}}=Approved")
    await live.wait("tradingengine/btc", "condition=Ready")
    pod_ip = (await live.get("pod", "btc-engine"))["status"]["podIP"]

    async with aiohttp.ClientSession() as http:

        async def status() -> dict[str, Any]:
            async with http.get(f"http://{pod_ip}:8080/status") as response:
                return dict(await response.json())

        first = await status()
        assert first["mode"] == "live"
        assert first["lastReconcile"]["result"] == "ok"

        async def filled() -> dict[str, Any] | None:
            report = await status()
            return report if report["fills"] > 0 else None

        report = await _until(filled, "the engine's first fill")
        orders = _our_orders(live)
        assert orders and all(cid.startswith(_prefix(live)) for cid in orders), orders
        assert _sim(live).trades(KEY.api_key)
        assert report["riskState"] == "ACTIVE"

        async def shown() -> bool:
            # the operator's status poll carries the fill into the TradingEngine
            current = (await live.get("tradingengine", "btc"))["status"]
            return current.get("equity") not in (None, "10000") and current["riskState"] == "ACTIVE"

        await _until(shown, "the fill in the TradingEngine's status")

        # the key is revoked: the engine halts and sends nothing more
        await live.apply(_trust(live, {"required": 1, "revoked": ["alice"]}))
        await live.wait("tradingengine/btc", f"jsonpath={CONDITION}.reason}}=revoked_key")
        await live.wait("tradingengine/btc", "jsonpath={.status.phase}=Halted")
        await live.wait("tradingengine/btc", "jsonpath={.status.riskState}=HALTED")

        async def halted() -> dict[str, Any] | None:
            report = await status()
            return report if report["riskState"] == "HALTED" else None

        report = await _until(halted, "the engine to report HALTED")
        # Whichever came first: the operator's halt command, or the engine's own
        # recheck of its mounted approval files (the ConfigMap changes in place).
        reason = report["riskStateReason"] or ""
        assert reason == "control command: halt" or reason.startswith("approval"), reason

        async def own_check_revoked() -> dict[str, Any] | None:
            report = await status()
            approval = report.get("approval") or {}
            return report if approval.get("reason") == "revoked_key" else None

        # The engine's own check sees the revocation too: checked twice.
        report = await _until(own_check_revoked, "the engine's own check to see the revocation")
        assert report["approval"]["valid"] is False
        count = len(_our_orders(live))
        seen = {report["lastDataTime"]}

        async def polls_pass() -> bool:
            # three more market-data polls of the engine, the order count unchanged
            assert len(_our_orders(live)) == count, _our_orders(live)[count:]
            current = await status()
            assert current["riskState"] == "HALTED"
            seen.add(current["lastDataTime"])
            return len(seen) > 3

        await _until(polls_pass, "three engine polls after the halt")
        assert len(_our_orders(live)) == count
