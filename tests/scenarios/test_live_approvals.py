"""LiveApproval scenarios: the real operator in the sandbox, driven with kubectl.

Sandbox only, with fake pods (`--fake-pods`): a real live engine needs exchange
credentials and a live venue, neither of which the sandbox has. The fake engine
answers the operator's /status and /control as the real one does and keeps the
commands it was told, so these scenarios show what the operator enforces: no pod
without a valid approval, and a halt the moment the approval stops being valid.
(The engine's own check of the mounted approval is tested in tests/engine/approval.)
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from scenario_support import (
    Scenario,
    make_sandbox_scenario,
    public_pem,
    stop_recording,
    trust_configmap,
)

from hean_contract.spec import parse_spec
from hean_engine.approval.manifest import approval_manifest
from hean_engine.approval.sign import add_signature, new_approval

ALICE = Ed25519PrivateKey.generate()
LIVE = {
    "mode": "live",
    "exchange": {"id": "binance", "credentialsSecret": "binance-keys"},
}
CONDITION = '{.status.conditions[?(@.type=="LiveApproved")]'


def _trust(scenario: Scenario, policy: dict[str, Any]) -> dict[str, Any]:
    return trust_configmap(scenario, {"alice": ALICE}, policy)


async def _scenario(tmp_path: Path, poll: float) -> tuple[Scenario, Any]:
    return await make_sandbox_scenario(
        tmp_path,
        fake_pods=True,
        exchange=False,
        poll=poll,
    )


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Scenario]:
    scenario, recorder = await _scenario(tmp_path, poll=1.0)
    try:
        yield scenario
    finally:
        await stop_recording(recorder)
        assert scenario.box is not None
        await scenario.box.stop()


def _engine(scenario: Scenario) -> dict[str, Any]:
    manifest = scenario.engine("btc")
    manifest["spec"].update(LIVE)
    del manifest["spec"]["paper"]
    return manifest


async def _approval(
    scenario: Scenario,
    *,
    name: str,
    now: datetime,
    ttl: timedelta = timedelta(hours=1),
    uid: str | None = None,
    spec: dict[str, Any] | None = None,
    namespace: str | None = None,
    key: Ed25519PrivateKey = ALICE,
) -> dict[str, Any]:
    """A LiveApproval of the engine as the cluster holds it, signed by `key` as alice."""
    engine = await scenario.get("tradingengine", "btc")
    approval = new_approval(
        namespace=namespace or scenario.namespace,
        engine="btc",
        engine_uid=uid or engine["metadata"]["uid"],
        spec=parse_spec(spec or engine["spec"]),
        ttl=ttl,
        now=now,
        name=name,
    )
    manifest = approval_manifest(add_signature(approval, "alice", key))
    del manifest["metadata"]["namespace"]  # applied into the scenario's namespace
    return manifest


async def _reason(scenario: Scenario, name: str, reason: str) -> None:
    await scenario.wait(f"liveapproval/{name}", f"jsonpath={{.status.reason}}={reason}")


def _commands(scenario: Scenario, pod: str) -> list[str]:
    """What the fake engine of `pod` was told through its control API."""
    assert scenario.box is not None and scenario.box.node is not None
    runs = [r for r in scenario.box.node.pods.values() if r.name == pod]
    assert runs and runs[-1].fake_engine is not None
    return list(runs[-1].fake_engine.commands)


async def _events(scenario: Scenario, name: str) -> list[dict[str, Any]]:
    listed = await scenario.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
    )
    return list(listed.json()["items"])


async def test_no_pod_without_a_valid_approval_then_halt_on_revocation(live: Scenario) -> None:
    await live.apply(_trust(live, {"required": 1}))
    await live.apply(_engine(live))
    await live.wait("tradingengine/btc", f"jsonpath={CONDITION}.reason}}=no_approval")
    engine = await live.get("tradingengine", "btc")
    assert engine["status"]["phase"] == "Pending"
    assert "LiveApproval" in engine["status"]["message"]
    assert (await live.kubectl("get", "pod", "btc-engine", check=False)).returncode != 0

    # approvals that do not fit are refused, each with its reason in its status
    now = datetime.now(UTC)
    other_spec = json.loads(json.dumps(engine["spec"]))
    other_spec["risk"]["maxDailyLoss"] = "4000"
    for manifest, reason in [
        (await _approval(live, name="other-uid", now=now, uid="0000-other"), "wrong_uid"),
        (await _approval(live, name="other-spec", now=now, spec=other_spec), "spec_changed"),
        # signed for namespace `prod`, applied here: the signature does not cover it
        (await _approval(live, name="other-ns", now=now, namespace="prod"), "bad_signature"),
        (
            await _approval(live, name="untrusted", now=now, key=Ed25519PrivateKey.generate()),
            "bad_signature",
        ),
    ]:
        await live.apply(manifest)
        await _reason(live, manifest["metadata"]["name"], reason)
    approval = await live.get("liveapproval", "other-uid")
    assert approval["status"]["valid"] is False
    await live.wait("tradingengine/btc", f"jsonpath={CONDITION}.status}}=False")
    assert (await live.kubectl("get", "pod", "btc-engine", check=False)).returncode != 0

    # a valid approval: the pod is created, with the approval mounted
    await live.apply(await _approval(live, name="ok", now=now))
    await live.wait("tradingengine/btc", f"jsonpath={CONDITION}.reason}}=Approved")
    await live.wait("pod/btc-engine", "create")
    await live.wait("tradingengine/btc", "condition=Ready")
    ok = await live.get("liveapproval", "ok")
    assert ok["status"]["valid"] is True and ok["status"]["keyIds"] == ["alice"]
    pod = await live.get("pod", "btc-engine")
    command = pod["spec"]["containers"][0]["command"]
    assert command[command.index("--approval-dir") + 1] == "/etc/hean/approval"
    mounted = (await live.get("configmap", "btc-approval"))["data"]
    assert yaml.safe_load(mounted["approval.yaml"])["metadata"]["name"] == "ok"
    assert mounted["trust.alice.pub"] == public_pem(ALICE)
    table = (await live.kubectl("get", "liveapprovals")).stdout.splitlines()
    assert table[0].split() == ["NAME", "ENGINE", "VALID", "APPROVERS", "EXPIRES", "AGE"]
    assert any(line.split()[:3] == ["ok", "btc", "true"] for line in table[1:])
    assert _commands(live, "btc-engine") == []

    # the key is revoked: the running engine is told to halt at once
    await live.apply(_trust(live, {"required": 1, "revoked": ["alice"]}))
    await live.wait("tradingengine/btc", f"jsonpath={CONDITION}.reason}}=revoked_key")
    await live.wait("tradingengine/btc", "jsonpath={.status.phase}=Halted")
    assert _commands(live, "btc-engine") == ["halt"]
    await _reason(live, "ok", "revoked_key")
    assert "ApprovalLost" in {e["reason"] for e in await _events(live, "btc")}
    assert "ApprovalLost" in {e["reason"] for e in await _events(live, "ok")}
    log = await live.operator_log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    (lost,) = [line for line in lines if line.get("reason") == "revoked_key"]
    assert lost["approval"] == "ok" and lost["key_ids"] == ["alice"] and lost["engine"] == "btc"
    assert lost["object"]["name"] == "btc"
    # the revocation reached the engine's own files too
    mounted = (await live.get("configmap", "btc-approval"))["data"]
    assert yaml.safe_load(mounted["trust.policy.yaml"])["revoked"] == ["alice"]


async def test_expiry_halts_the_engine_at_the_expiry_time(tmp_path: Path) -> None:
    # A 30 s status poll: a halt within seconds of the expiry is the operator's
    # timer at `expiresAt`, not a poll that happened to come by. (The operator is
    # a separate process with the real clock, so the TTL is short and real; the
    # scheduler on a fake clock is tested in tests/operator.)
    scenario, recorder = await _scenario(tmp_path, poll=30.0)
    try:
        await scenario.apply(_trust(scenario, {"required": 1}))
        await scenario.apply(_engine(scenario))
        await scenario.wait("tradingengine/btc", f"jsonpath={CONDITION}.reason}}=no_approval")
        manifest = await _approval(
            scenario, name="short", now=datetime.now(UTC), ttl=timedelta(seconds=12)
        )
        expires = datetime.strptime(manifest["spec"]["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")
        await scenario.apply(manifest)
        await scenario.wait("tradingengine/btc", "condition=Ready")
        assert _commands(scenario, "btc-engine") == []
        await scenario.wait("tradingengine/btc", f"jsonpath={CONDITION}.reason}}=expired")
        seen = time.time()
        assert _commands(scenario, "btc-engine") == ["halt"]
        lag = seen - expires.replace(tzinfo=UTC).timestamp()
        assert 0 <= lag < 10, lag  # at expiry, not at the next 30 s poll
        await scenario.wait("tradingengine/btc", "jsonpath={.status.phase}=Halted")
        await _reason(scenario, "short", "expired")
    finally:
        await stop_recording(recorder)
        assert scenario.box is not None
        await scenario.box.stop()
