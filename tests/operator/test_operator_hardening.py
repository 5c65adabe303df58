"""Issue 14 in the operator: a refused trust ConfigMap is reported as such (items 1 and 2),
and no automatic reconciliation lifts a halt (item 3).

The engine side of item 3 is the engine's real control server (a real kernel,
halted by its daily loss limit) on a loopback port; the cluster is a dict.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import copy
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from operator_approval_support import LIVE_SPEC, signed, trust_files

from engine_support import build_scripted_engine, spec_dict
from hean_engine.control.runtime import Runtime as EngineRuntime
from hean_engine.control.server import ControlServer
from hean_engine.data.exchange_feed import FeedHealth
from hean_engine.model.orders import RiskState
from hean_operator.builders.common import ANNOTATION_REVISION, CONTROL_TOKEN_KEY
from hean_operator.handlers import engines as handlers
from hean_operator.handlers.approvals import ApprovalEnforcer, trust_state
from hean_operator.handlers.engines import Runtime, _desired_command
from hean_operator.metrics import OperatorMetrics
from hean_operator.settings import OperatorSettings

NOW = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
ALICE = Ed25519PrivateKey.generate()
BOB = Ed25519PrivateKey.generate()
KEY = ("trading", "btc")
TOKEN = "operator-test-token-41d2"


class Clock:
    def now(self) -> datetime:
        return NOW

    def call_at(self, when: datetime, callback: Any) -> Any:
        return asyncio.get_running_loop().call_later(3600, callback)


class DictCluster:
    """What the handlers read and write, in a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        self.objects[(kind, body["metadata"]["namespace"], body["metadata"]["name"])] = body
        return body

    replace = create

    def get_engine(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("tradingengines", namespace, name)

    def patch_engine_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        engine = self.objects[("tradingengines", namespace, name)]
        engine.setdefault("status", {}).update(copy.deepcopy(status))

    def patch_approval_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        pass

    def condition(self) -> dict[str, Any]:
        engine = self.objects[("tradingengines", *KEY)]
        (found,) = [c for c in engine["status"]["conditions"] if c["type"] == "LiveApproved"]
        return found


def _live_engine(cluster: DictCluster) -> None:
    cluster.objects[("tradingengines", *KEY)] = {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": "btc", "namespace": "trading", "uid": "uid-1", "generation": 1},
        "spec": dict(LIVE_SPEC),
    }


async def _enforce(
    files: dict[str, str],
    approvals: list[dict[str, Any]],
    objects: dict[tuple[str, str, str], dict[str, Any]] | None = None,
) -> tuple[DictCluster, list[tuple[str, str, str]]]:
    cluster = DictCluster()
    cluster.objects.update(copy.deepcopy(objects or {}))
    _live_engine(cluster)
    runtime = Runtime(cluster=cluster, settings=OperatorSettings(), metrics=OperatorMetrics())  # type: ignore[arg-type]
    events: list[tuple[str, str, str]] = []

    def record(obj: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        events.append((kind, reason, message))

    enforcer = ApprovalEnforcer(runtime, Clock(), trust_state(files), events=record)  # type: ignore[arg-type]
    enforcer.bind(asyncio.get_running_loop(), contextvars.copy_context())
    for manifest in approvals:
        enforcer.index(manifest)
    await enforcer.enforce(KEY)
    enforcer.scheduler.cancel(KEY)
    return cluster, events


# -- items 1 and 2: the trust ConfigMap's refusal is the engine's condition and Event --------


async def test_item1_a_key_twice_in_the_trust_configmap_is_the_engines_condition() -> None:
    files = trust_files({"alice": ALICE, "bob": BOB}, {"required": 2})
    files["alice-2027.pub"] = files["alice.pub"]
    approval = signed({"alice": ALICE}, now=NOW, name="ok")
    cluster, events = await _enforce(files, [approval])
    condition = cluster.condition()
    assert (condition["status"], condition["reason"]) == ("False", "trust_policy_invalid")
    assert "alice.pub and alice-2027.pub hold the same public key" in condition["message"]
    (event,) = [e for e in events if e[1] == "NotApproved"]
    assert event[0] == "Warning"
    assert event[2].startswith("trust_policy_invalid: the trust ConfigMap is invalid: alice.pub")


async def test_item2_an_unknown_revoked_id_is_the_engines_condition_and_event() -> None:
    files = trust_files({"alice": ALICE}, {"revoked": ["alcie"]})
    cluster, events = await _enforce(files, [])
    condition = cluster.condition()
    assert condition["reason"] == "trust_policy_invalid"
    assert "revoked: 'alcie' is not a key in the trust directory" in condition["message"]
    assert any(e[1] == "NotApproved" and "'alcie' is not a key" in e[2] for e in events)


# -- item 7: the approval ConfigMap of someone else is never replaced -----------------------


async def test_item7_a_foreign_approval_configmap_is_left_alone_and_no_pod_starts() -> None:
    files = trust_files({"alice": ALICE}, {"required": 1})
    approval = signed({"alice": ALICE}, now=NOW, name="ok")
    theirs = {
        "metadata": {"name": "btc-approval", "namespace": "trading"},
        "data": {"approval.yaml": "someone else's"},
    }
    key = ("configmaps", "trading", "btc-approval")
    cluster, events = await _enforce(files, [approval], {key: theirs})
    assert cluster.objects[key] == theirs
    assert ("pods", "trading", "btc-engine") not in cluster.objects
    (taken,) = [e for e in events if e[1] == "NameTaken"]
    assert taken[0] == "Warning" and "ConfigMap btc-approval" in taken[2]


# -- item 3: no automatic reconciliation lifts a halt ----------------------------------------


def test_item3_the_automatic_reconciliation_never_asks_for_a_reset() -> None:
    for halt, paused, state, engine_paused in itertools.product(
        (False, True), (False, True), ("ACTIVE", "REDUCING", "HALTED"), (False, True)
    ):
        command = _desired_command(
            {"halt": halt, "paused": paused}, {"risk_state": state, "paused": engine_paused}
        )
        assert command in (None, "halt", "pause", "resume")


@dataclass
class Engine:
    runtime: EngineRuntime
    operator: Runtime
    sent: list[str]

    @property
    def state(self) -> RiskState:
        return self.runtime.kernel.risk.state


@pytest.fixture
async def halted_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Engine]:
    """A paper engine HALTED by max_daily_loss, behind its real control server."""
    engine, _ = build_scripted_engine()
    kernel = engine.kernel
    kernel.set_risk_state(RiskState.HALTED, "max_daily_loss")
    runtime = EngineRuntime(
        identity=engine.identity, spec=engine.spec, kernel=kernel, mode="paper", run_id="r",
        feed=FeedHealth(),
    )  # fmt: skip
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    server = ControlServer(runtime, "127.0.0.1", 0, token_file)
    await server.start()
    assert server.port is not None
    cluster = DictCluster()
    operator = Runtime(
        cluster=cluster,  # type: ignore[arg-type]
        settings=OperatorSettings(engine_port=server.port),
        metrics=OperatorMetrics(),
    )
    operator.session = aiohttp.ClientSession()
    sent: list[str] = []
    monkeypatch.setattr(kopf, "info", lambda body, *, reason, message: sent.append(reason))
    try:
        yield Engine(runtime, operator, sent)
    finally:
        await operator.session.close()
        await server.stop()


def _resource(operator: Runtime, cluster: DictCluster, **spec: Any) -> dict[str, Any]:
    meta = {"name": "btc", "namespace": "trading", "uid": "uid-p", "generation": 1}
    body = {"metadata": meta, "spec": spec_dict(**spec)}
    revision = handlers._revision(operator, meta, body["spec"])
    # the engine's own children: controlled by it (the operator touches nothing else)
    owners = [{"kind": "TradingEngine", "name": "btc", "uid": "uid-p", "controller": True}]
    cluster.objects[("pods", "trading", "btc-engine")] = {
        "metadata": {
            "name": "btc-engine",
            "annotations": {ANNOTATION_REVISION: revision},
            "ownerReferences": owners,
        },
        "status": {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    cluster.objects[("secrets", "trading", "btc-control")] = {
        "metadata": {"name": "btc-control", "ownerReferences": owners},
        "data": {CONTROL_TOKEN_KEY: base64.b64encode(TOKEN.encode()).decode()},
    }
    return body


async def _call(handler: Any, body: dict[str, Any], operator: Runtime, **kwargs: Any) -> None:
    await handler(
        body=body, meta=body["metadata"], spec=body["spec"], memo={"runtime": operator}, **kwargs
    )


async def test_item3_unpausing_does_not_lift_a_risk_halt(halted_engine: Engine) -> None:
    operator = halted_engine.operator
    cluster: DictCluster = operator.cluster  # type: ignore[assignment]
    paused = _resource(operator, cluster, paused=True)
    await _call(handlers.control_changed, paused, operator, old=False, new=True)
    assert halted_engine.runtime.kernel.risk.paused
    unpaused = _resource(operator, cluster, paused=False)
    await _call(handlers.control_changed, unpaused, operator, old=True, new=False)
    assert not halted_engine.runtime.kernel.risk.paused
    assert halted_engine.state is RiskState.HALTED  # the bug: this was ACTIVE
    assert halted_engine.runtime.kernel.risk.state_reason == "max_daily_loss"
    assert halted_engine.sent == ["Pause", "Resume"]


async def test_item3_a_user_toggling_spec_halt_is_the_explicit_reset(halted_engine: Engine) -> None:
    operator = halted_engine.operator
    cluster: DictCluster = operator.cluster  # type: ignore[assignment]
    halted = _resource(operator, cluster, halt=True)
    await _call(handlers.halt_changed, halted, operator, old=False, new=True)
    assert halted_engine.state is RiskState.HALTED
    released = _resource(operator, cluster, halt=False)
    await _call(handlers.halt_changed, released, operator, old=True, new=False)
    assert halted_engine.state is RiskState.ACTIVE
    assert halted_engine.runtime.kernel.risk.state_reason == "reset-halt command"
    assert halted_engine.sent == ["Reset-halt"]


async def test_item3_an_engine_image_without_reset_halt_gets_resume_on_the_explicit_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine pods outlive an operator upgrade: an older engine answers 400 to `reset-halt`;
    on the user's explicit spec.halt true -> false it is told `resume` (its way to lift)."""
    from aiohttp import web

    told: list[str] = []

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"risk_state": "HALTED", "paused": False})

    async def control(request: web.Request) -> web.Response:
        command = (await request.json())["command"]
        if command not in ("pause", "resume", "reduce", "halt"):
            return web.json_response({"error": "command: must be one of ..."}, status=400)
        told.append(command)
        return web.json_response({"command": command, "risk_state": "ACTIVE"})

    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_post("/control", control)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cluster = DictCluster()
    operator = Runtime(
        cluster=cluster,  # type: ignore[arg-type]
        settings=OperatorSettings(engine_port=port),
        metrics=OperatorMetrics(),
    )
    operator.session = aiohttp.ClientSession()
    sent: list[str] = []
    monkeypatch.setattr(kopf, "info", lambda body, *, reason, message: sent.append(reason))
    try:
        released = _resource(operator, cluster, halt=False)
        await _call(handlers.halt_changed, released, operator, old=True, new=False)
        assert told == ["resume"] and sent == ["Resume"]
        unpaused = _resource(operator, cluster, paused=False)
        told.clear()
        await _call(handlers.control_changed, unpaused, operator, old=True, new=False)
        assert told == []  # not an explicit reset: nothing is sent to a halted engine
    finally:
        await operator.session.close()
        await runner.cleanup()
