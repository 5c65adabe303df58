"""Issue 14 in the operator: a refused trust ConfigMap is reported as such (items 1 and 2),
and no automatic reconciliation lifts a halt (item 3).

The engine side of item 3 is the engine's real control server (a real kernel,
halted by its daily loss limit) on a loopback port; the cluster is a dict.
"""

from __future__ import annotations

import base64
import copy
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from operator_approval_support import LIVE_SPEC, signed, trust_files
from operator_fakes import FakeCluster, make_context, memo, report_doc
from operator_fakes import report as engine_report

from engine_support import build_scripted_engine, spec_dict
from hean_contract.spec import parse_spec
from hean_engine.control.runtime import Runtime as EngineRuntime
from hean_engine.control.server import ControlServer
from hean_engine.data.exchange_feed import FeedHealth
from hean_engine.model.orders import RiskState
from hean_operator.approvals.index import INDEX, index_entry
from hean_operator.approvals.trust import trust_state
from hean_operator.builders.common import ANNOTATION_REVISION, CONTROL_TOKEN_KEY
from hean_operator.context import OperatorContext
from hean_operator.handlers import approvals as approval_handlers
from hean_operator.handlers import engines as handlers
from hean_operator.handlers.engines import desired_command

NOW = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
ALICE = Ed25519PrivateKey.generate()
BOB = Ed25519PrivateKey.generate()
KEY = ("trading", "btc")
TOKEN = "operator-test-token-41d2"


def _live_engine(cluster: FakeCluster) -> None:
    cluster.add_engine(*KEY, "uid-1", dict(LIVE_SPEC))


Events = list[tuple[str, str, str]]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    seen: Events = []
    monkeypatch.setattr(
        kopf, "info", lambda body, *, reason, message: seen.append(("Normal", reason, message))
    )
    monkeypatch.setattr(
        kopf, "warn", lambda body, *, reason, message: seen.append(("Warning", reason, message))
    )
    return seen


async def _enforce(
    files: dict[str, str],
    approvals: list[dict[str, Any]],
    objects: dict[tuple[str, str, str], dict[str, Any]] | None = None,
) -> FakeCluster:
    """One judgement of the live engine `btc` (the approvals timer's first run)."""
    cluster = FakeCluster()
    cluster.objects.update(copy.deepcopy(objects or {}))
    _live_engine(cluster)
    ctx = make_context(cluster, now=lambda: NOW)
    ctx.set_trust(trust_state(files))
    index: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for manifest in approvals:
        for key, entry in index_entry(manifest).items():
            entry["metadata"].update(uid=entry["metadata"]["name"], generation=1)
            index.setdefault(key, []).append(entry)
    body = cluster.engine(*KEY)
    await ctx.engines.open()
    try:
        await approval_handlers.enforce_approvals(
            body=kopf.Body(copy.deepcopy(body)),
            meta=body["metadata"],
            spec=body["spec"],
            memo=memo(ctx),
            **{INDEX: index},
        )
    finally:
        await ctx.engines.close()
    return cluster


# -- items 1 and 2: the trust ConfigMap's refusal is the engine's condition and Event --------


async def test_item1_a_key_twice_in_the_trust_configmap_is_the_engines_condition(
    events: Events,
) -> None:
    files = trust_files({"alice": ALICE, "bob": BOB}, {"required": 2})
    files["alice-2027.pub"] = files["alice.pub"]
    approval = signed({"alice": ALICE}, now=NOW, name="ok")
    cluster = await _enforce(files, [approval])
    condition = cluster.condition(*KEY, "LiveApproved")
    assert (condition["status"], condition["reason"]) == ("False", "trust_policy_invalid")
    assert "alice.pub and alice-2027.pub hold the same public key" in condition["message"]
    (event,) = [e for e in events if e[1] == "NotApproved"]
    assert event[0] == "Warning"
    assert event[2].startswith("trust_policy_invalid: the trust ConfigMap is invalid: alice.pub")


async def test_item2_an_unknown_revoked_id_is_the_engines_condition_and_event(
    events: Events,
) -> None:
    files = trust_files({"alice": ALICE}, {"revoked": ["alcie"]})
    cluster = await _enforce(files, [])
    condition = cluster.condition(*KEY, "LiveApproved")
    assert condition["reason"] == "trust_policy_invalid"
    assert "revoked: 'alcie' is not a key in the trust directory" in condition["message"]
    assert any(e[1] == "NotApproved" and "'alcie' is not a key" in e[2] for e in events)


# -- item 7: the approval ConfigMap of someone else is never replaced -----------------------


async def test_item7_a_foreign_approval_configmap_is_left_alone_and_no_pod_starts(
    events: Events,
) -> None:
    files = trust_files({"alice": ALICE}, {"required": 1})
    approval = signed({"alice": ALICE}, now=NOW, name="ok")
    theirs = {
        "metadata": {"name": "btc-approval", "namespace": "trading"},
        "data": {"approval.yaml": "someone else's"},
    }
    key = ("configmaps", "trading", "btc-approval")
    cluster = await _enforce(files, [approval], {key: theirs})
    assert cluster.objects[key] == theirs
    assert ("pods", "trading", "btc-engine") not in cluster.objects
    (taken,) = [e for e in events if e[1] == "NameTaken"]
    assert taken[0] == "Warning" and "ConfigMap btc-approval" in taken[2]


# -- item 3: no automatic reconciliation lifts a halt ----------------------------------------


def test_item3_the_automatic_reconciliation_never_asks_for_a_reset() -> None:
    base = parse_spec(spec_dict())
    for halt, paused, state, engine_paused in itertools.product(
        (False, True), (False, True), ("ACTIVE", "REDUCING", "HALTED"), (False, True)
    ):
        command = desired_command(
            base.model_copy(update={"halt": halt, "paused": paused}),
            engine_report(risk_state=state, paused=engine_paused),
        )
        assert command in (None, "halt", "pause", "resume")


@dataclass
class Engine:
    runtime: EngineRuntime
    operator: OperatorContext
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
    operator = make_context(FakeCluster(), port=server.port)
    await operator.engines.open()
    sent: list[str] = []
    monkeypatch.setattr(kopf, "info", lambda body, *, reason, message: sent.append(reason))
    try:
        yield Engine(runtime, operator, sent)
    finally:
        await operator.engines.close()
        await server.stop()


def _resource(operator: OperatorContext, **spec: Any) -> dict[str, Any]:
    """The engine `btc` with this spec, its pod running the spec's revision, its token."""
    cluster: FakeCluster = operator.cluster  # type: ignore[assignment]
    key = ("tradingengines", "trading", "btc")
    if key not in cluster.objects:
        cluster.add_engine("trading", "btc", "uid-p", spec_dict(**spec))
    engine = cluster.objects[key]
    if engine["spec"] != spec_dict(**spec):
        engine["spec"] = spec_dict(**spec)
        engine["metadata"]["generation"] += 1
    body = copy.deepcopy(engine)
    revision, _ = operator.parsed(body["metadata"], body["spec"])
    # the engine's own children: controlled by it (the operator touches nothing else)
    owners = [{"kind": "TradingEngine", "name": "btc", "uid": "uid-p", "controller": True}]
    cluster.objects[("pods", "trading", "btc-engine")] = {
        "metadata": {
            "name": "btc-engine",
            "namespace": "trading",
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
        "metadata": {"name": "btc-control", "namespace": "trading", "ownerReferences": owners},
        "data": {CONTROL_TOKEN_KEY: base64.b64encode(TOKEN.encode()).decode()},
    }
    return body


async def _update(operator: OperatorContext, old: dict[str, Any], new: dict[str, Any]) -> None:
    """kopf's update of the spec from `old` to `new` (the reconcile handler)."""
    await handlers.reconcile(
        body=kopf.Body(new),
        meta=new["metadata"],
        spec=new["spec"],
        memo=memo(operator),
        reason="update",
        old=old["spec"],
        new=new["spec"],
    )


async def test_item3_unpausing_does_not_lift_a_risk_halt(halted_engine: Engine) -> None:
    operator = halted_engine.operator
    start = _resource(operator)
    paused = _resource(operator, paused=True)
    await _update(operator, start, paused)
    assert halted_engine.runtime.kernel.risk.paused
    unpaused = _resource(operator, paused=False)
    await _update(operator, paused, unpaused)
    assert not halted_engine.runtime.kernel.risk.paused
    assert halted_engine.state is RiskState.HALTED  # the bug: this was ACTIVE
    assert halted_engine.runtime.kernel.risk.state_reason == "max_daily_loss"
    assert halted_engine.sent == ["Pause", "Resume"]


async def test_item3_a_user_toggling_spec_halt_is_the_explicit_reset(halted_engine: Engine) -> None:
    operator = halted_engine.operator
    start = _resource(operator)
    halted = _resource(operator, halt=True)
    await _update(operator, start, halted)
    assert halted_engine.state is RiskState.HALTED
    released = _resource(operator, halt=False)
    await _update(operator, halted, released)
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
        return web.json_response(report_doc(risk_state="HALTED"))

    async def control(request: web.Request) -> web.Response:
        command = (await request.json())["command"]
        if command not in ("pause", "resume", "reduce", "halt"):
            return web.json_response({"error": "command: must be one of ..."}, status=400)
        told.append(command)
        return web.json_response(
            {"command": command, "risk_state": "ACTIVE", "paused": False, "open_orders": 0}
        )

    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_post("/control", control)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    operator = make_context(FakeCluster(), port=port)
    await operator.engines.open()
    sent: list[str] = []
    monkeypatch.setattr(kopf, "info", lambda body, *, reason, message: sent.append(reason))
    try:
        halted = _resource(operator, halt=True)
        released = _resource(operator, halt=False)
        await _update(operator, halted, released)
        assert told == ["resume"] and sent == ["Resume"]
        paused = _resource(operator, paused=True)
        unpaused = _resource(operator, paused=False)
        told.clear()
        await _update(operator, paused, unpaused)
        assert told == []  # not an explicit reset: nothing is sent to a halted engine
    finally:
        await operator.engines.close()
        await runner.cleanup()
