"""Issue 14 items 7, 8 and 9 in the handlers: what the user sees (status, Events, metrics).

The cluster is the in-memory store of test_reconcile_children.py; kopf's Event
posters are recorded.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from test_reconcile_children import SPEC, StoreCluster

from hean_operator.handlers import engines as handlers
from hean_operator.handlers.engines import Runtime
from hean_operator.metrics import OperatorMetrics
from hean_operator.settings import OperatorSettings

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


def _runtime(cluster: StoreCluster) -> Runtime:
    return Runtime(cluster=cluster, settings=OperatorSettings(), metrics=OperatorMetrics())  # type: ignore[arg-type]


def _body(name: str = "app", uid: str = "uid-app", generation: int = 1) -> dict[str, Any]:
    meta = {"name": name, "namespace": "default", "uid": uid, "generation": generation}
    return {"metadata": meta, "spec": copy.deepcopy(SPEC)}


def _reconcile(runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    patch = kopf.Patch()
    handlers.reconcile_children(
        body=kopf.Body(body), meta=body["metadata"], patch=patch, memo={"runtime": runtime}
    )
    return dict(patch.get("status") or {})


def test_item7_a_taken_name_marks_the_engine_and_warns_once(events: Events) -> None:
    cluster = StoreCluster()
    theirs = {"metadata": {"name": "app-config", "namespace": "default"}, "data": {"a": "b"}}
    cluster.objects[("configmaps", "default", "app-config")] = copy.deepcopy(theirs)
    runtime = _runtime(cluster)
    body = _body()
    status = _reconcile(runtime, body)
    assert (
        cluster.writes == [] and cluster.objects[("configmaps", "default", "app-config")] == theirs
    )
    assert status["phase"] == "Failed"
    assert "ConfigMap app-config" in status["message"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NameTaken")
    assert "ConfigMap app-config" in ready["message"]
    assert [(kind, reason) for kind, reason, _ in events] == [
        ("Warning", "NameTaken"),
        ("Normal", "Failed"),
    ]
    # the poll looks again (no retry loop of its own): no second Warning
    body["status"] = status
    events.clear()
    _reconcile(runtime, body)
    assert [reason for _, reason, _ in events] == []
    # the name is freed: the engine's children are made
    del cluster.objects[("configmaps", "default", "app-config")]
    _reconcile(runtime, body)
    assert ("create", "pods") in cluster.writes and "uid-app" not in runtime.taken


async def test_item8_the_poll_replaces_an_evicted_pod_with_an_event_and_a_metric(
    events: Events,
) -> None:
    cluster = StoreCluster()
    runtime = _runtime(cluster)
    runtime.session = SimpleNamespace(closed=False)  # type: ignore[assignment]  # not stopping
    body = _body()
    body["status"] = _reconcile(runtime, body) | {"observedGeneration": 1}
    (pod,) = cluster.pods()
    pod["status"] = {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}
    events.clear()
    with pytest.raises(kopf.TemporaryError, match="terminate"):
        await handlers.poll_engine(
            body=kopf.Body(body),
            meta=body["metadata"],
            spec=body["spec"],
            patch=kopf.Patch(),
            memo={"runtime": runtime},
            logger=None,
        )
    assert cluster.writes[-1] == ("delete", "pods")
    assert [(kind, reason) for kind, reason, _ in events] == [
        ("Warning", "PodFailed"),
        ("Warning", "PaperAccountReset"),
    ]
    assert runtime.metrics.pods_replaced.labels(reason="Evicted")._value.get() == 1
    cluster.finish_deletions()
    _reconcile(runtime, body)
    assert cluster.writes[-1] == ("create", "pods") and len(cluster.pods()) == 1


def test_item9_a_name_too_long_for_its_children_is_invalid_without_a_write(
    events: Events,
) -> None:
    cluster = StoreCluster()
    runtime = _runtime(cluster)
    status = _reconcile(runtime, _body(name="a" * 70))
    assert cluster.writes == []
    assert status["phase"] == "Invalid"
    assert status["message"].startswith("metadata.name: 70 characters; at most 54")
    assert [(kind, reason) for kind, reason, _ in events] == [("Warning", "InvalidSpec")]
