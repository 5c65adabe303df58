"""The approval enforcement in-process: a fake cluster, a fake engine and a fake clock.

Time never passes for real here: the scheduler takes the injected clock, and the
test moves it to an approval's expiry to see the engine told to halt at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from operator_approval_support import LIVE_SPEC, live_spec, signed, trust_files

from hean_operator.approvals.scheduler import Scheduler
from hean_operator.handlers.approvals import ApprovalEnforcer, trust_state
from hean_operator.handlers.engines import Runtime
from hean_operator.kube.cluster import Conflict
from hean_operator.metrics import OperatorMetrics
from hean_operator.settings import OperatorSettings
from hean_sandbox.kubelet.fake_engine import FakeEngine

NOW = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
ALICE = Ed25519PrivateKey.generate()
KEY = ("trading", "btc")


@dataclass
class _Handle:
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClock:
    """Time that moves only when the test says; timers fire as it passes them."""

    current: datetime
    timers: list[tuple[datetime, Callable[[], None], _Handle]] = field(default_factory=list)

    def now(self) -> datetime:
        return self.current

    def call_at(self, when: datetime, callback: Callable[[], None]) -> _Handle:
        handle = _Handle()
        self.timers.append((when, callback, handle))
        return handle

    def advance(self, to: datetime) -> None:
        self.current = to
        due = sorted((t for t in self.timers if t[0] <= to), key=lambda t: t[0])
        self.timers = [t for t in self.timers if t[0] > to]
        for _, callback, handle in due:
            if not handle.cancelled:
                callback()


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.approval_status: dict[str, dict[str, Any]] = {}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (kind, body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.objects:
            raise Conflict("exists")
        self.objects[key] = copy.deepcopy(body)
        return body

    def replace(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        self.objects[(kind, body["metadata"]["namespace"], body["metadata"]["name"])] = body
        return body

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((kind, namespace, name), None)

    def get_engine(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("tradingengines", namespace, name)

    def patch_engine_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        engine = self.objects[("tradingengines", namespace, name)]
        engine.setdefault("status", {}).update(copy.deepcopy(status))

    def list_approvals(self, namespace: str | None) -> list[dict[str, Any]]:
        return []

    def patch_approval_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.approval_status[name] = copy.deepcopy(status)

    def create_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str
    ) -> None:
        raise AssertionError("the tests record Events with their own sink")

    def condition(self) -> tuple[str, str]:
        engine = self.objects[("tradingengines", *KEY)]
        (found,) = [c for c in engine["status"]["conditions"] if c["type"] == "LiveApproved"]
        return found["status"], found["reason"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class World:
    cluster: FakeCluster
    clock: FakeClock
    enforcer: ApprovalEnforcer
    runtime: Runtime
    events: list[tuple[str, str, str]]
    engine: FakeEngine

    async def settle(self) -> None:
        await self.enforcer.drain()

    def add_engine(self, **spec: Any) -> None:
        self.cluster.objects[("tradingengines", *KEY)] = {
            "apiVersion": "hean.io/v1alpha1",
            "kind": "TradingEngine",
            "metadata": {"name": "btc", "namespace": "trading", "uid": "uid-1", "generation": 1},
            "spec": {**LIVE_SPEC, **spec},
        }

    def pod_runs(self) -> None:
        """The kubelet's part: the created pod runs, at the fake engine's address."""
        pod = self.cluster.objects[("pods", "trading", "btc-engine")]
        pod["status"] = {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        }

    def apply(self, manifest: dict[str, Any]) -> None:
        for key in self.enforcer.index(manifest):
            self.enforcer.request(key)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    port = _free_port()
    engine = FakeEngine("127.0.0.1", port, name="btc-engine", namespace="trading")
    await engine.start()
    cluster = FakeCluster()
    runtime = Runtime(
        cluster=cluster, settings=OperatorSettings(engine_port=port), metrics=OperatorMetrics()
    )
    runtime.session = aiohttp.ClientSession()
    clock = FakeClock(NOW)
    events: list[tuple[str, str, str]] = []

    def record(obj: Any, kind: str, reason: str, message: str) -> None:
        events.append((obj["kind"], kind, reason))

    enforcer = ApprovalEnforcer(
        runtime, clock, trust_state(trust_files({"alice": ALICE})), events=record
    )
    enforcer.bind(asyncio.get_running_loop(), contextvars.copy_context())
    runtime.approvals = enforcer
    try:
        yield World(cluster, clock, enforcer, runtime, events, engine)
    finally:
        await enforcer.drain()
        await runtime.session.close()
        await engine.stop()


def _sample(world: World, name: str, **labels: str) -> float | None:
    return world.runtime.metrics.registry.get_sample_value(name, labels)


async def test_no_pod_until_approved_then_halt_at_the_exact_expiry(world: World) -> None:
    world.add_engine()
    world.enforcer.request(KEY)
    await world.settle()
    assert ("pods", "trading", "btc-engine") not in world.cluster.objects
    assert world.cluster.condition() == ("False", "no_approval")
    status = world.cluster.objects[("tradingengines", *KEY)]["status"]
    assert status["phase"] == "Pending" and "LiveApproval" in status["message"]
    assert ("TradingEngine", "Warning", "NotApproved") in world.events

    approval = signed({"alice": ALICE}, now=NOW, ttl=timedelta(minutes=30), name="ok")
    world.apply(approval)
    await world.settle()
    assert ("pods", "trading", "btc-engine") in world.cluster.objects  # started now
    assert world.cluster.condition() == ("True", "Approved")
    assert world.cluster.approval_status["ok"]["valid"] is True
    mounted = world.cluster.objects[("configmaps", "trading", "btc-approval")]["data"]
    assert yaml.safe_load(mounted["approval.yaml"])["spec"] == approval["spec"]
    assert "trust.alice.pub" in mounted
    expiry = NOW + timedelta(minutes=30)
    assert world.enforcer.scheduler.pending() == {KEY: expiry}
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
    world.clock.advance(expiry - timedelta(seconds=1))
    await world.settle()
    assert world.engine.commands == []  # a second early: still approved
    world.clock.advance(expiry)
    await world.settle()
    assert world.engine.commands == ["halt"]
    assert world.cluster.condition() == ("False", "expired")
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
    # evaluated again (a poll, another event): a halted engine is not told twice
    world.enforcer.request(KEY)
    await world.settle()
    assert world.engine.commands == ["halt"]


async def test_revocation_reduces_when_the_spec_says_so(world: World) -> None:
    world.add_engine(live={"onApprovalLoss": "reduce"})
    world.apply(signed({"alice": ALICE}, now=NOW, name="ok"))
    await world.settle()
    # signed for the spec without `live.onApprovalLoss`: the hash covers `live` too
    assert world.cluster.condition() == ("False", "spec_changed")
    spec = live_spec(live={"onApprovalLoss": "reduce"})
    world.apply(signed({"alice": ALICE}, now=NOW, spec=spec, name="ok"))
    await world.settle()
    assert world.cluster.condition() == ("True", "Approved")
    world.pod_runs()
    revoked = trust_files({"alice": ALICE}, {"revoked": ["alice"]})
    world.enforcer.set_trust(trust_state(revoked))
    await world.settle()
    assert world.engine.commands == ["reduce"]
    assert world.cluster.condition() == ("False", "revoked_key")
    mounted = world.cluster.objects[("configmaps", "trading", "btc-approval")]["data"]
    assert "alice" in yaml.safe_load(mounted["trust.policy.yaml"])["revoked"]


async def test_an_approval_without_its_engine_says_so(world: World) -> None:
    world.apply(signed({"alice": ALICE}, now=NOW, engine="eth", name="lost"))
    await world.settle()
    assert world.cluster.approval_status["lost"]["reason"] == "engine_not_found"


def test_scheduler_keeps_one_timer_per_key_on_the_injected_clock() -> None:
    clock = FakeClock(NOW)
    fired: list[object] = []
    scheduler = Scheduler(clock, fired.append)
    scheduler.schedule("a", NOW + timedelta(seconds=10))
    scheduler.schedule("a", NOW + timedelta(seconds=5))  # replaces the first
    scheduler.schedule("b", NOW + timedelta(seconds=7))
    scheduler.schedule("c", NOW + timedelta(seconds=1))
    scheduler.schedule("c", None)  # cancelled
    clock.advance(NOW + timedelta(seconds=6))
    assert fired == ["a"]
    assert scheduler.pending() == {"b": NOW + timedelta(seconds=7)}
    clock.advance(NOW + timedelta(seconds=60))
    assert fired == ["a", "b"]
    assert scheduler.pending() == {}
