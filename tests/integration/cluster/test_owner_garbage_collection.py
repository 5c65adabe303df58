"""Children go with their TradingEngine through the real garbage collector.

No operator runs in these namespaces: the engine's children are made by the
operator's own builders (ConfigMap, control Secret, Pod, each with the
controller ownerReference the operator sets), and only kube-controller-manager's
garbage collector can remove them when the engine is deleted. An object without
the ownerReference survives.

What the real collector showed: it learns of a new resource type (the
TradingEngine CRD) by rediscovering the API every 30 s, so in the first half
minute after the CRD is installed an engine's deletion leaves its children (and,
in foreground, the engine itself, held by its `foregroundDeletion` finalizer)
until the next rediscovery. Nothing is lost, it is only late; the module fixture
waits for that once, so that each test's own waits are short.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from real_cluster_support import NOWHERE, WAIT, Kube, engine_manifest, wait_until

from cluster_support import unique
from hean_contract.spec import parse_spec
from hean_operator.builders.common import EngineRef
from hean_operator.builders.config import build_configmap, build_control_secret
from hean_operator.builders.pod import EngineImage, build_pod

CHILD_KINDS = ("configmap", "secret", "pod")


@pytest.fixture(scope="module", autouse=True)
def _collector_watches_engines(kube: Kube) -> Iterator[None]:
    """Wait until the garbage collector watches TradingEngines (up to its 30 s rediscovery)."""
    namespace = kube.create_namespace(unique("gc-probe"))
    try:
        _engine_with_children(kube, namespace, "probe")
        kube.kubectl("-n", namespace, "delete", "tradingengine", "probe", "--cascade=background")
        kube.kubectl(
            "-n", namespace, "wait", "--for=delete", "configmap/probe-config", "--timeout=120s"
        )
        yield
    finally:
        kube.delete_namespaces(namespace)


def _engine_with_children(kube: Kube, namespace: str, name: str) -> list[str]:
    """The engine, its three children as the operator builds them, and a bystander;
    returns the children as kubectl targets (kind/name)."""
    manifest = engine_manifest(name, namespace)
    created = kube.kubectl("create", "-f", "-", "-o", "json", stdin=_json(manifest)).json()
    engine = EngineRef(
        name, namespace, created["metadata"]["uid"], created["metadata"]["generation"]
    )
    spec = parse_spec(manifest["spec"])
    pod = build_pod(engine, spec, EngineImage())
    # no node may run it: the pod stays Pending, so its deletion is the apiserver's alone
    pod["spec"]["nodeSelector"] = NOWHERE
    children = [
        build_configmap(engine, spec),
        build_control_secret(engine, "t0ken"),
        pod,
    ]
    for child in children:
        (reference,) = child["metadata"]["ownerReferences"]
        assert reference["controller"] is True and reference["blockOwnerDeletion"] is True
        assert reference["uid"] == engine.uid
        kube.kubectl("create", "-f", "-", stdin=_json(child))
    bystander = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-notes", "namespace": namespace},
        "data": {"owner": "nobody"},
    }
    kube.kubectl("create", "-f", "-", stdin=_json(bystander))
    targets = [f"{c['kind'].lower()}/{c['metadata']['name']}" for c in children]
    assert [t.split("/")[0] for t in targets] == list(CHILD_KINDS)
    return targets


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


def _remaining(kube: Kube, namespace: str, targets: list[str]) -> list[str]:
    done = kube.kubectl(
        "-n", namespace, "get", *targets, "--ignore-not-found", "-o", "name", check=False
    )
    return done.stdout.split()


def test_foreground_deletion_removes_the_children_before_the_engine(
    kube: Kube, namespace: str
) -> None:
    children = _engine_with_children(kube, namespace, "fg")
    assert len(_remaining(kube, namespace, children)) == len(children)
    # kubectl returns once the engine itself is gone; in foreground the garbage
    # collector removes the blocking dependents first, so none may be left then.
    kube.kubectl(
        "-n",
        namespace,
        "delete",
        "tradingengine",
        "fg",
        "--cascade=foreground",
        f"--timeout={WAIT}",
    )
    assert _remaining(kube, namespace, children) == []
    assert kube.exists("configmap", "fg-notes", namespace)


def test_background_deletion_removes_the_children_after_the_engine(
    kube: Kube, namespace: str
) -> None:
    children = _engine_with_children(kube, namespace, "bg")
    kube.kubectl("-n", namespace, "delete", "tradingengine", "bg", "--cascade=background")
    assert not kube.exists("tradingengine", "bg", namespace)
    kube.kubectl("-n", namespace, "wait", "--for=delete", *children, f"--timeout={WAIT}")
    assert _remaining(kube, namespace, children) == []
    assert kube.exists("configmap", "bg-notes", namespace)


def test_orphaning_keeps_the_children_and_drops_their_owner(kube: Kube, namespace: str) -> None:
    """The contrast: with --cascade=orphan the collector keeps the children and only
    removes their ownerReferences (what a user does to keep an engine's pod)."""
    children = _engine_with_children(kube, namespace, "orphan")
    kube.kubectl(
        "-n",
        namespace,
        "delete",
        "tradingengine",
        "orphan",
        "--cascade=orphan",
        f"--timeout={WAIT}",
    )
    namespaced_get = ("-n", namespace, "get", *children, "-o", "json")

    def owners_dropped() -> bool:
        items = kube.kubectl(*namespaced_get).json()["items"]
        return len(items) == len(children) and not any(
            i["metadata"].get("ownerReferences") for i in items
        )

    wait_until("the collector to drop the children's ownerReferences", owners_dropped)
    assert sorted(_remaining(kube, namespace, children)) == sorted(children)


def test_an_owner_reference_to_a_missing_engine_is_collected(kube: Kube, namespace: str) -> None:
    """A child whose owner never existed (a stale uid) is garbage: the collector
    removes it, as it would an engine's child created after the engine went."""
    ghost = EngineRef("ghost", namespace, "00000000-0000-0000-0000-000000000000", 1)
    child = build_configmap(ghost, parse_spec(engine_manifest("ghost", namespace)["spec"]))
    kube.kubectl("create", "-f", "-", stdin=_json(child))
    kube.kubectl(
        "-n", namespace, "wait", "--for=delete", "configmap/ghost-config", f"--timeout={WAIT}"
    )
