"""Issue 14 items 7, 8 and 9 in the handlers: what the user sees (status, Events, metrics).

The cluster is the in-memory store of test_reconcile_children.py; kopf's Event
posters are recorded.
"""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest
from operator_fakes import make_context, memo
from test_reconcile_children import SPEC, StoreCluster

from hean_operator.context import OperatorContext
from hean_operator.handlers import engines as handlers

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


def _runtime(cluster: StoreCluster) -> OperatorContext:
    return make_context(cluster)


def _body(cluster: StoreCluster, name: str = "app", uid: str = "uid-app") -> dict[str, Any]:
    """The engine as the cluster holds it (its status is written there)."""
    cluster.add_engine("default", name, uid, copy.deepcopy(SPEC))
    return cluster.engine("default", name)


async def _reconcile(ctx: OperatorContext, body: dict[str, Any]) -> dict[str, Any]:
    fresh = copy.deepcopy(body)
    await handlers.reconcile(
        body=kopf.Body(fresh),
        meta=fresh["metadata"],
        spec=fresh["spec"],
        memo=memo(ctx),
        reason="create",
    )
    return dict(body.get("status") or {})


async def test_item7_a_taken_name_marks_the_engine_and_warns_once(events: Events) -> None:
    cluster = StoreCluster()
    theirs = {"metadata": {"name": "app-config", "namespace": "default"}, "data": {"a": "b"}}
    cluster.objects[("configmaps", "default", "app-config")] = copy.deepcopy(theirs)
    runtime = _runtime(cluster)
    body = _body(cluster)
    status = await _reconcile(runtime, body)
    # A new engine's children are created without reading them first: the free
    # names are created (the engine's own, deleted with it), the taken one is
    # read on its 409 and left exactly as it is, and no pod is started.
    assert sorted(cluster.writes) == [
        ("create", "persistentvolumeclaims"),
        ("create", "secrets"),
        ("patch", "tradingengines/status"),
    ]
    assert not cluster.pods()
    assert cluster.objects[("configmaps", "default", "app-config")] == theirs
    assert status["phase"] == "Failed"
    assert "ConfigMap app-config" in status["message"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NameTaken")
    assert "ConfigMap app-config" in ready["message"]
    assert [(kind, reason) for kind, reason, _ in events] == [
        ("Warning", "NameTaken"),
        ("Normal", "Failed"),
    ]
    # the poll looks again (no retry loop of its own): no second Warning, no write
    events.clear()
    cluster.writes.clear()
    await _reconcile(runtime, body)
    assert [reason for _, reason, _ in events] == []
    assert cluster.writes == []
    # the name is freed: the engine's children are made
    del cluster.objects[("configmaps", "default", "app-config")]
    await _reconcile(runtime, body)
    assert ("create", "pods") in cluster.writes and "uid-app" not in runtime.taken


async def test_item8_the_poll_replaces_an_evicted_pod_with_an_event_and_a_metric(
    events: Events,
) -> None:
    cluster = StoreCluster()
    runtime = _runtime(cluster)
    await runtime.engines.open()  # not stopping
    body = _body(cluster)
    await _reconcile(runtime, body)
    assert body["status"]["observedGeneration"] == 1
    (pod,) = cluster.pods()
    pod["status"] = {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}
    events.clear()
    with pytest.raises(kopf.TemporaryError, match="terminate"):
        await handlers.poll_engine(
            body=kopf.Body(body), meta=body["metadata"], spec=body["spec"], memo=memo(runtime)
        )
    await runtime.engines.close()
    assert cluster.writes[-1] == ("delete", "pods")
    assert [(kind, reason) for kind, reason, _ in events] == [
        ("Warning", "PodFailed"),
    ]
    assert runtime.metrics.pods_replaced.labels(reason="Evicted")._value.get() == 1
    cluster.finish_deletions()
    await _reconcile(runtime, body)
    assert cluster.writes[-1] == ("create", "pods") and len(cluster.pods()) == 1


async def test_item9_a_name_too_long_for_its_children_is_invalid_without_a_write(
    events: Events,
) -> None:
    cluster = StoreCluster()
    runtime = _runtime(cluster)
    status = await _reconcile(runtime, _body(cluster, name="a" * 70))
    assert cluster.writes == [("patch", "tradingengines/status")]  # no child: only the status
    assert status["phase"] == "Invalid"
    assert status["message"].startswith("metadata.name: 70 characters; at most 54")
    assert [(kind, reason) for kind, reason, _ in events] == [("Warning", "InvalidSpec")]


async def test_the_poll_writes_nothing_between_the_create_and_the_pod_turning_ready(
    events: Events,
) -> None:
    """The create's status already says what the poll sees of a pod not Ready yet: one
    status write on the way to Starting, the next at Ready (issue 13: writes per create)."""
    cluster = StoreCluster()
    runtime = _runtime(cluster)
    await runtime.engines.open()  # not stopping
    body = _body(cluster)
    status = await _reconcile(runtime, body)
    assert cluster.writes.count(("patch", "tradingengines/status")) == 1
    assert status["phase"] == "Starting" and status["mode"] == "paper"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    cluster.writes.clear()
    fresh = copy.deepcopy(body)
    await handlers.poll_engine(
        body=kopf.Body(fresh), meta=fresh["metadata"], spec=fresh["spec"], memo=memo(runtime)
    )
    await runtime.engines.close()
    assert cluster.writes == []


async def test_a_pod_not_yet_in_the_watch_index_is_looked_up_not_healed(events: Events) -> None:
    """The poll's index of watched pods lags a pod just created (its watch event not in
    yet): the poll reads the pod instead of writing Pending and re-running the children."""
    from hean_operator.engines.pods import POD_INDEX

    cluster = StoreCluster()
    runtime = _runtime(cluster)
    await runtime.engines.open()  # not stopping
    body = _body(cluster)
    await _reconcile(runtime, body)
    cluster.writes.clear()
    cluster.reads.clear()
    fresh = copy.deepcopy(body)
    await handlers.poll_engine(
        body=kopf.Body(fresh),
        meta=fresh["metadata"],
        spec=fresh["spec"],
        memo=memo(runtime),
        **{POD_INDEX: {}},  # an index without the pod
    )
    await runtime.engines.close()
    assert cluster.writes == []  # no Pending, no heal
    assert cluster.reads == ["pods"]
    assert body["status"]["phase"] == "Starting"
