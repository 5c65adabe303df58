"""The approval enforcement in-process: a fake cluster, a fake engine, a clock of the test's.

kopf's machinery is driven by hand: the index of LiveApprovals is a dict, and a
"tick" is one run of the approvals timer (`enforce_approvals`), as kopf runs it
every second for each live engine. Time never passes for real: the test moves
the context's clock to an approval's expiry and ticks, to see the engine told to
halt at that tick.
"""

from __future__ import annotations

import copy
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from operator_approval_support import LIVE_SPEC, live_spec, signed, trust_files
from operator_fakes import FakeCluster, make_context, memo

from hean_operator.approvals.index import INDEX, index_entry
from hean_operator.approvals.trust import trust_state
from hean_operator.context import OperatorContext
from hean_operator.handlers import approvals as handlers
from hean_sandbox.kubelet.fake_engine import FakeEngine

NOW = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
ALICE = Ed25519PrivateKey.generate()
KEY = ("trading", "btc")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class World:
    cluster: FakeCluster
    ctx: OperatorContext
    engine: FakeEngine
    events: list[tuple[str, str, str]]
    clock: list[datetime] = field(default_factory=lambda: [NOW])
    index: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    memo: kopf.Memo = field(default_factory=kopf.Memo)

    def at(self, when: datetime) -> None:
        self.clock[0] = when

    def add_engine(self, **spec: Any) -> None:
        self.cluster.add_engine(*KEY, "uid-1", {**LIVE_SPEC, **spec})

    def pod_runs(self) -> None:
        """The kubelet's part: the created pod runs, at the fake engine's address."""
        pod = self.cluster.objects[("pods", "trading", "btc-engine")]
        pod["status"] = {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        }

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """kopf's index after a watch event of `manifest` (a new spec: a new generation)."""
        stored = copy.deepcopy(manifest)
        name = stored["metadata"]["name"]
        ((key, entry),) = index_entry(stored).items()
        entries = self.index.setdefault(key, [])
        before = next((e for e in entries if e["metadata"]["name"] == name), None)
        entry["metadata"]["uid"] = before["metadata"]["uid"] if before else str(uuid.uuid4())
        generation = before["metadata"]["generation"] if before else 0
        if before is None or before["spec"] != entry["spec"]:
            generation += 1
        entry["metadata"]["generation"] = generation
        self.index[key] = [e for e in entries if e["metadata"]["name"] != name] + [entry]
        return entry

    async def tick(self) -> None:
        """One run of the engine's approvals timer."""
        body = self.cluster.engine(*KEY)
        await handlers.enforce_approvals(
            body=kopf.Body(copy.deepcopy(body)),
            meta=body["metadata"],
            spec=body["spec"],
            memo=self.memo,
            **{INDEX: self.index},
        )

    def condition(self) -> tuple[str, str]:
        found = self.cluster.condition(*KEY, "LiveApproved")
        return found["status"], found["reason"]

    @property
    def record(self) -> handlers.ApprovalRecord:
        found: handlers.ApprovalRecord = self.memo[handlers.RECORD]
        return found


@pytest.fixture
async def world(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    port = _free_port()
    engine = FakeEngine("127.0.0.1", port, name="btc-engine", namespace="trading")
    await engine.start()
    cluster = FakeCluster()
    events: list[tuple[str, str, str]] = []

    def recorder(kind: str) -> Any:
        def record(obj: Any, *, reason: str, message: str = "") -> None:
            events.append((obj["kind"], kind, reason))

        return record

    monkeypatch.setattr(kopf, "info", recorder("Normal"))
    monkeypatch.setattr(kopf, "warn", recorder("Warning"))
    clock = [NOW]
    ctx = make_context(cluster, port=port, now=lambda: clock[0])
    ctx.set_trust(trust_state(trust_files({"alice": ALICE})))
    await ctx.engines.open()
    world = World(cluster, ctx, engine, events, clock=clock)
    world.memo.update(memo(ctx))
    try:
        yield world
    finally:
        await ctx.engines.close()
        await engine.stop()


def _sample(world: World, name: str, **labels: str) -> float | None:
    return world.ctx.metrics.registry.get_sample_value(name, labels)


async def test_no_pod_until_approved_then_halt_at_the_exact_expiry(world: World) -> None:
    world.add_engine()
    await world.tick()
    assert ("pods", "trading", "btc-engine") not in world.cluster.objects
    assert world.condition() == ("False", "no_approval")
    status = world.cluster.engine(*KEY)["status"]
    assert status["phase"] == "Pending" and "LiveApproval" in status["message"]
    assert ("TradingEngine", "Warning", "NotApproved") in world.events

    approval = signed({"alice": ALICE}, now=NOW, ttl=timedelta(minutes=30), name="ok")
    world.apply(approval)
    await world.tick()
    assert ("pods", "trading", "btc-engine") in world.cluster.objects  # started now
    assert world.condition() == ("True", "Approved")
    assert world.cluster.approval_status["ok"]["valid"] is True
    mounted = world.cluster.objects[("configmaps", "trading", "btc-approval")]["data"]
    assert yaml.safe_load(mounted["approval.yaml"])["spec"] == approval["spec"]
    assert "trust.alice.pub" in mounted
    expiry = NOW + timedelta(minutes=30)
    assert world.record.next_change == expiry  # the next instant time alone changes it
    assert (
        _sample(
            world,
            "hean_operator_liveapproval_expiry_timestamp_seconds",
            namespace="trading",
            engine="btc",
            approval="ok",
        )
        == expiry.timestamp()
    )

    world.pod_runs()
    world.at(expiry - timedelta(seconds=1))
    await world.tick()
    assert world.engine.commands == []  # a second early: still approved
    world.at(expiry)
    await world.tick()
    assert world.engine.commands == ["halt"]
    assert world.condition() == ("False", "expired")
    assert world.cluster.approval_status["ok"]["reason"] == "expired"
    assert ("TradingEngine", "Warning", "ApprovalLost") in world.events
    assert ("LiveApproval", "Warning", "ApprovalLost") in world.events
    assert (
        _sample(
            world,
            "hean_operator_liveapproval_enforcements_total",
            command="halt",
            reason="expired",
        )
        == 1
    )
    assert (
        _sample(
            world,
            "hean_operator_liveapproval_expiry_timestamp_seconds",
            namespace="trading",
            engine="btc",
            approval="ok",
        )
        is None
    )
    # judged again (a new trust reading): a halted engine is not told twice
    world.ctx.set_trust(trust_state(trust_files({"alice": ALICE})))
    await world.tick()
    assert world.engine.commands == ["halt"]


async def test_the_timer_does_nothing_while_nothing_changed(world: World) -> None:
    world.add_engine()
    world.apply(signed({"alice": ALICE}, now=NOW, ttl=timedelta(minutes=30), name="ok"))
    await world.tick()
    judged = _sample(world, "hean_operator_reconciles_total", handler="approval")
    writes = list(world.cluster.writes)
    for seconds in range(1, 6):
        world.at(NOW + timedelta(seconds=seconds))
        await world.tick()
    assert _sample(world, "hean_operator_reconciles_total", handler="approval") == judged
    assert world.cluster.writes == writes
    # the operator's own write of an approval's status is no change of its spec
    world.index[KEY][0]["status"] = dict(world.cluster.approval_status["ok"])
    await world.tick()
    assert _sample(world, "hean_operator_reconciles_total", handler="approval") == judged


async def test_revocation_reduces_when_the_spec_says_so(world: World) -> None:
    world.add_engine(live={"onApprovalLoss": "reduce"})
    world.apply(signed({"alice": ALICE}, now=NOW, name="ok"))
    await world.tick()
    # signed for the spec without `live.onApprovalLoss`: the hash covers `live` too
    assert world.condition() == ("False", "spec_changed")
    spec = live_spec(live={"onApprovalLoss": "reduce"})
    world.apply(signed({"alice": ALICE}, now=NOW, spec=spec, name="ok"))
    await world.tick()
    assert world.condition() == ("True", "Approved")
    world.pod_runs()
    revoked = trust_files({"alice": ALICE}, {"revoked": ["alice"]})
    world.ctx.set_trust(trust_state(revoked))
    await world.tick()
    assert world.engine.commands == ["reduce"]
    assert world.condition() == ("False", "revoked_key")
    mounted = world.cluster.objects[("configmaps", "trading", "btc-approval")]["data"]
    assert "alice" in yaml.safe_load(mounted["trust.policy.yaml"])["revoked"]


async def test_an_engine_that_cannot_be_told_is_tried_again_by_kopf(world: World) -> None:
    world.add_engine()
    world.apply(signed({"alice": ALICE}, now=NOW, ttl=timedelta(minutes=30), name="ok"))
    await world.tick()
    world.pod_runs()
    await world.engine.stop()
    world.at(NOW + timedelta(minutes=30))
    with pytest.raises(kopf.TemporaryError, match="could not tell the engine"):
        await world.tick()
    assert world.condition() == ("False", "expired")  # the condition says so meanwhile
    await world.engine.start()
    await world.tick()  # kopf's retry: judged again, since the last one did not finish
    assert world.engine.commands == ["halt"]
    assert world.events.count(("TradingEngine", "Warning", "NotApproved")) == 1


async def test_an_approval_without_its_engine_says_so(world: World) -> None:
    entry = world.apply(signed({"alice": ALICE}, now=NOW, engine="eth", name="lost"))
    await handlers.approval_changed(
        body=kopf.Body(entry), type="ADDED", memo=world.memo, **{INDEX: world.index}
    )
    assert world.cluster.approval_status["lost"]["reason"] == "engine_not_found"


async def test_a_deleted_engine_orphans_its_approvals(world: World) -> None:
    world.add_engine()
    world.apply(signed({"alice": ALICE}, now=NOW, name="ok"))
    await world.tick()
    assert world.cluster.approval_status["ok"]["valid"] is True
    body = world.cluster.objects.pop(("tradingengines", *KEY))
    await handlers.engine_gone(
        body=kopf.Body(body), type="DELETED", memo=world.memo, **{INDEX: world.index}
    )
    assert world.cluster.approval_status["ok"]["reason"] == "engine_not_found"
