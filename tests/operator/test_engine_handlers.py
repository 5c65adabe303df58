"""handlers/engines.py without a cluster: the in-memory cluster, a fake engine on a port.

What a TradingEngine's life costs in writes (children, status), what the status
says, what the engine is told, and kopf's diff base kept in the status.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import kopf
import pytest
from aiohttp import web
from operator_fakes import FakeCluster, make_context, memo
from test_reconcile_children import SPEC

from hean_operator.context import OperatorContext
from hean_operator.engines.pods import indexed_pod, pod_index_entry
from hean_operator.handlers import engines as handlers
from hean_operator.status.handled import FIELD, HandledSpecStorage, RetryProgressStorage
from hean_sandbox.kubelet.fake_engine import FakeEngine

NS, NAME, UID = "trading", "btc", "uid-1"
Events = list[tuple[str, str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Operator:
    cluster: FakeCluster
    ctx: OperatorContext
    engine: FakeEngine
    events: Events

    def body(self) -> dict[str, Any]:
        """The engine as kopf hands it to a handler: a copy of the cluster's."""
        return copy.deepcopy(self.cluster.engine(NS, NAME))

    def status(self) -> dict[str, Any]:
        return dict(self.cluster.engine(NS, NAME).get("status") or {})

    def status_writes(self) -> int:
        return self.cluster.writes.count(("patch", "tradingengines/status"))

    def set_spec(self, **changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        old = self.body()
        engine = self.cluster.engine(NS, NAME)
        engine["spec"] = {**engine["spec"], **changes}
        engine["metadata"]["generation"] += 1
        return old, self.body()

    def pod_runs(self) -> dict[str, Any]:
        pod = self.cluster.objects[("pods", NS, f"{NAME}-engine")]
        pod["status"] = {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"restartCount": 0, "state": {"running": {}}}],
        }
        return copy.deepcopy(pod)

    async def reconcile(self, reason: str = "create", **kwargs: Any) -> None:
        body = kwargs.pop("body", None) or self.body()
        await handlers.reconcile(
            body=kopf.Body(body),
            meta=body["metadata"],
            spec=body["spec"],
            memo=memo(self.ctx),
            reason=reason,
            **kwargs,
        )

    async def poll(self) -> None:
        body = self.body()
        await handlers.poll_engine(
            body=kopf.Body(body), meta=body["metadata"], spec=body["spec"], memo=memo(self.ctx)
        )

    async def pod_ready(self, pod: dict[str, Any]) -> None:
        await handlers.engine_pod_ready(
            body=kopf.Body(pod), meta=pod["metadata"], type="MODIFIED", memo=memo(self.ctx)
        )


@pytest.fixture
async def operator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Operator]:
    port = _free_port()
    engine = FakeEngine("127.0.0.1", port, name=f"{NAME}-engine", namespace=NS)
    await engine.start()
    events: Events = []
    monkeypatch.setattr(kopf, "info", lambda o, *, reason, message: events.append(("N", reason)))
    monkeypatch.setattr(kopf, "warn", lambda o, *, reason, message: events.append(("W", reason)))
    cluster = FakeCluster()
    cluster.add_engine(NS, NAME, UID, copy.deepcopy(SPEC))
    ctx = make_context(cluster, port=port)
    await ctx.engines.open()
    try:
        yield Operator(cluster, ctx, engine, events)
    finally:
        await ctx.engines.close()
        await engine.stop()


async def test_a_create_costs_its_children_and_one_status_write(operator: Operator) -> None:
    await operator.reconcile()
    children = [w for w in operator.cluster.writes if w[1] != "tradingengines/status"]
    assert sorted(kind for _, kind in children) == [
        "configmaps",
        "persistentvolumeclaims",
        "pods",
        "secrets",
    ]
    assert operator.status_writes() == 1
    status = operator.status()
    assert (status["phase"], status["observedGeneration"]) == ("Starting", 1)
    assert operator.events == [("N", "PodCreated")]
    # kopf at the operator's next start (resume): nothing to make, nothing to write
    operator.cluster.writes.clear()
    await operator.reconcile("resume")
    assert operator.cluster.writes == []


async def test_the_spec_handled_is_kopfs_diff_base(operator: Operator) -> None:
    storage = HandledSpecStorage()
    before = kopf.Body(operator.body())
    assert storage.fetch(body=before) is None  # never handled: kopf's create
    await operator.reconcile()
    after = kopf.Body(operator.body())
    assert after["status"][FIELD]
    # read back from the status (a restarted operator): the same as kopf builds it
    assert storage.fetch(body=after) == storage.build(body=after)
    _, new = operator.set_spec(paused=True)
    changed = kopf.Body(new)
    assert storage.fetch(body=changed) != storage.build(body=changed)  # kopf's update
    # kopf stores what it handled, before the status shows it: read from memory
    storage.store(body=changed, patch=kopf.Patch(), essence=storage.build(body=changed))
    assert storage.fetch(body=changed) == storage.build(body=changed)


def test_kopf_keeps_a_copy_of_the_essence_not_the_engines_spec() -> None:
    # The diff base's `build` does not copy the spec: kopf's progress storage does,
    # before it compares or keeps an essence. Were it to stop, a later change to the
    # body would rewrite the state kopf compares with.
    body = kopf.Body({"metadata": {"uid": "u"}, "spec": {"risk": {"maxOpenOrders": 4}}})
    kept = RetryProgressStorage(prefix="hean.io").clear(
        essence=HandledSpecStorage().build(body=body)
    )
    assert kept == {"spec": {"risk": {"maxOpenOrders": 4}}}
    body["spec"]["risk"]["maxOpenOrders"] = 5
    assert kept == {"spec": {"risk": {"maxOpenOrders": 4}}}


async def test_an_earlier_releases_annotation_is_read_as_the_diff_base(operator: Operator) -> None:
    body = operator.body()
    body["metadata"]["annotations"] = {
        "hean.io/last-handled-configuration": '{"spec":{"mode":"paper"},"metadata":{"labels":{}}}'
    }
    assert HandledSpecStorage().fetch(body=kopf.Body(body)) == {"spec": {"mode": "paper"}}


async def test_the_pod_turning_ready_makes_the_engine_ready_at_once(operator: Operator) -> None:
    await operator.reconcile()
    await operator.pod_ready(operator.pod_runs())
    status = operator.status()
    assert status["phase"] == "Running"
    assert operator.cluster.condition(NS, NAME, "Ready")["reason"] == "EngineReady"
    assert status["equity"] == "0" and status["riskState"] == "ACTIVE"
    assert ("N", "Running") in operator.events
    assert operator.status_writes() == 2  # Starting, then Running: nothing else
    # the timer comes by: the engine says the same, so nothing is written
    await operator.poll()
    assert operator.status_writes() == 2
    assert operator.engine.commands == []


async def test_a_pause_is_told_at_once_and_the_halt_reset_only_on_the_toggle(
    operator: Operator,
) -> None:
    await operator.reconcile()
    operator.pod_runs()
    old, new = operator.set_spec(paused=True)
    await operator.reconcile("update", body=new, old=old["spec"], new=new["spec"])
    assert operator.engine.commands == ["pause"]
    assert operator.status()[FIELD] == '{"spec":' + handlers_spec_json(new)
    old, new = operator.set_spec(paused=False, halt=True)
    await operator.reconcile("update", body=new, old=old["spec"], new=new["spec"])
    assert operator.engine.commands == ["pause", "halt"]
    # the poll unpauses (one command at a time); `resume` never lifts the halt
    await operator.poll()
    await operator.poll()
    assert operator.engine.commands == ["pause", "halt", "resume"]
    assert operator.status()["phase"] == "Halted"
    old, new = operator.set_spec(halt=False)
    await operator.reconcile("update", body=new, old=old["spec"], new=new["spec"])
    assert operator.engine.commands == ["pause", "halt", "resume", "reset-halt"]


def handlers_spec_json(body: dict[str, Any]) -> str:
    return json.dumps(body["spec"], separators=(",", ":"), sort_keys=True) + "}"


async def test_the_poll_steers_toward_the_spec(operator: Operator) -> None:
    await operator.reconcile()
    operator.pod_runs()
    operator.set_spec(paused=True)  # changed while the operator was away
    await operator.poll()
    assert operator.engine.commands == ["pause"]
    assert operator.status()["phase"] == "Paused"  # from the engine's answer
    assert ("N", "Pause") in operator.events


async def test_a_report_outside_the_contract_is_a_failed_poll_not_a_traceback(
    operator: Operator,
) -> None:
    await operator.reconcile()
    operator.pod_runs()
    await operator.engine.stop()
    app = web.Application()

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"risk_state": "HALTED", "equity": 5})

    app.router.add_get("/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", operator.engine.port).start()
    try:
        await operator.poll()
    finally:
        await runner.cleanup()
    ready = operator.cluster.condition(NS, NAME, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "StatusPollFailed")
    assert "not an engine's EngineReport" in ready["message"]
    assert "name: Field required" in ready["message"]
    assert "Traceback" not in ready["message"] and "HALTED" not in ready["message"]
    assert operator.status()["phase"] == "Starting"


async def test_an_invalid_spec_is_reported_and_nothing_made(operator: Operator) -> None:
    operator.cluster.engine(NS, NAME)["spec"]["strategy"] = {"name": "Not a name!"}
    await operator.reconcile()
    assert operator.cluster.writes == [("patch", "tradingengines/status")]
    status = operator.status()
    assert status["phase"] == "Invalid" and FIELD in status
    assert operator.cluster.condition(NS, NAME, "SpecValid")["reason"] == "InvalidSpec"
    assert operator.events == [("W", "InvalidSpec")]


async def test_deletion_halts_the_engine_and_forgets_it(operator: Operator) -> None:
    await operator.reconcile()
    operator.pod_runs()
    await operator.poll()
    assert operator.ctx.revisions and UID in operator.ctx.status._observed
    body = operator.body()
    await handlers.engine_deleted(
        body=kopf.Body(body), meta=body["metadata"], memo=memo(operator.ctx)
    )
    assert operator.engine.commands == ["halt"]
    assert ("N", "Deleted") in operator.events
    assert not operator.ctx.revisions and UID not in operator.ctx.status._observed


async def test_a_paper_account_is_reset_only_when_the_user_changes_reset_request(
    operator: Operator,
) -> None:
    first = {**operator.cluster.engine(NS, NAME)["spec"], "paper": {"resetRequest": "one"}}
    operator.cluster.engine(NS, NAME)["spec"] = first
    await operator.reconcile()  # a create with a resetRequest already set: no reset
    operator.pod_runs()
    await operator.reconcile("resume")  # nor an operator restart
    old, new = operator.set_spec(paused=True)  # nor a pause/resume
    await operator.reconcile("update", body=new, old=old["spec"], new=new["spec"])
    await operator.poll()
    assert "reset-paper-account" not in operator.engine.commands
    operator.events.clear()
    old, new = operator.set_spec(paused=False, paper={"resetRequest": "two"})
    await operator.reconcile("update", body=new, old=old["spec"], new=new["spec"])
    assert operator.engine.commands[-1] == "reset-paper-account"
    assert operator.engine.commands.count("reset-paper-account") == 1
    assert ("N", "PaperAccountReset") in operator.events
    assert operator.status()[FIELD] == '{"spec":' + handlers_spec_json(new)
    # clearing the field resets nothing
    old, new = operator.set_spec(paper={})
    await operator.reconcile("update", body=new, old=old["spec"], new=new["spec"])
    assert operator.engine.commands.count("reset-paper-account") == 1


async def test_a_reset_waits_for_a_ready_engine_and_leaves_the_spec_unhandled(
    operator: Operator,
) -> None:
    await operator.reconcile()  # the pod exists but is not Ready
    handled = operator.status()[FIELD]
    old, new = operator.set_spec(paper={"resetRequest": "now"})
    with pytest.raises(kopf.TemporaryError, match="Ready to reset"):
        await operator.reconcile("update", body=new, old=old["spec"], new=new["spec"])
    assert operator.status()[FIELD] == handled  # kopf retries: the reset is still owed
    assert operator.engine.commands == []
    operator.pod_runs()
    await operator.reconcile("update", body=operator.body(), old=old["spec"], new=new["spec"])
    assert operator.engine.commands == ["reset-paper-account"]


def test_the_pod_index_holds_what_the_status_logic_reads() -> None:
    """The timer reads an engine's pod from kopf's index of the watched pods: the
    entry must carry what `pod_view` reads (owner, revision, readiness, IP)."""
    pod = {
        "metadata": {
            "namespace": NS,
            "name": f"{NAME}-engine",
            "annotations": {"hean.io/spec-revision": "r1"},
            "ownerReferences": [{"uid": "u", "controller": True, "kind": "TradingEngine"}],
        },
        "spec": {"containers": [{"name": "engine"}]},
        "status": {"phase": "Running", "podIP": "10.0.0.7"},
    }
    entry = pod_index_entry(pod)
    assert list(entry) == [(NS, f"{NAME}-engine")]
    index = {key: [value] for key, value in entry.items()}
    found = indexed_pod(index, NS, f"{NAME}-engine")
    assert found is not None
    assert found["metadata"]["ownerReferences"] == pod["metadata"]["ownerReferences"]
    assert found["status"]["podIP"] == "10.0.0.7" and "spec" not in found
    assert indexed_pod(index, NS, "other-engine") is None
    assert indexed_pod({}, NS, f"{NAME}-engine") is None
