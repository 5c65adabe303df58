"""Server-side apply and optimistic concurrency, as the real apiserver answers them.

- two field managers applying the same field of a TradingEngine: the second
  gets a 409 naming the field and its owner, unless it forces;
- an update carrying a stale resourceVersion: 409;
- the operator's own mapping of 409s (`hean_operator.kube.cluster.Conflict`),
  through `KubernetesCluster` over the official client, against the real thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import config
from kubernetes.client.exceptions import ApiException
from real_cluster_support import NOWHERE, Kube, engine_manifest, response_codes

from hean_contract.spec import parse_spec
from hean_operator.builders.common import EngineRef
from hean_operator.builders.config import build_configmap
from hean_operator.builders.pod import EngineImage, build_pod
from hean_operator.kube.cluster import Conflict, KubernetesCluster

ENGINES = "/apis/hean.io/v1alpha1/namespaces/{ns}/tradingengines"


def _partial(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """An apply configuration that states only `spec` (what this manager cares about)."""
    return {
        "apiVersion": "hean.io/v1alpha1",
        "kind": "TradingEngine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _managers_of(kube: Kube, namespace: str, name: str, field: str) -> set[str]:
    """The managers whose managedFields (fieldsV1) mention `field` (e.g. "f:maxOpenOrders")."""
    engine = kube.kubectl(
        "-n", namespace, "get", "tradingengine", name, "-o", "json", "--show-managed-fields"
    ).json()
    return {
        entry["manager"]
        for entry in engine["metadata"]["managedFields"]
        if field in json.dumps(entry.get("fieldsV1", {}))
    }


def test_two_managers_applying_one_field_conflict(kube: Kube, namespace: str) -> None:
    alice = ("--server-side", "--field-manager=alice")
    bob = ("--server-side", "--field-manager=bob")
    kube.apply(engine_manifest("shared", namespace), *alice)
    # the same value: no conflict, the field is simply owned by both
    kube.apply(_partial("shared", namespace, risk={"maxOpenOrders": 4}), *bob)
    assert _managers_of(kube, namespace, "shared", "f:maxOpenOrders") == {"alice", "bob"}
    # a different value: the apiserver refuses with 409 and names the field and its owner
    done = kube.apply(
        _partial("shared", namespace, risk={"maxOpenOrders": 8}), *bob, "-v=6", check=False
    )
    assert done.returncode != 0
    assert response_codes(done.stderr, "PATCH") == [409], done.stderr[-1500:]
    assert 'Apply failed with 1 conflict: conflict with "alice"' in done.stderr
    assert ".spec.risk.maxOpenOrders" in done.stderr
    assert kube.get("tradingengine", "shared", namespace)["spec"]["risk"]["maxOpenOrders"] == 4
    # forcing takes the field over: bob alone owns it now, and alice's next apply conflicts
    kube.apply(_partial("shared", namespace, risk={"maxOpenOrders": 8}), *bob, "--force-conflicts")
    assert kube.get("tradingengine", "shared", namespace)["spec"]["risk"]["maxOpenOrders"] == 8
    assert _managers_of(kube, namespace, "shared", "f:maxOpenOrders") == {"bob"}
    again = kube.apply(engine_manifest("shared", namespace), *alice, check=False)
    assert again.returncode != 0
    assert 'conflict with "bob"' in again.stderr and ".spec.risk.maxOpenOrders" in again.stderr


def test_an_apply_conflict_is_a_409_status_with_the_field_as_its_cause(
    kube: Kube, namespace: str
) -> None:
    """The raw answer (what kopf and the official client see): a Status object."""
    base = ENGINES.format(ns=namespace)
    kube.apply(engine_manifest("raw", namespace), "--server-side", "--field-manager=alice")
    body = json.dumps(_partial("raw", namespace, paused=True))
    code, status = kube.api(
        "PATCH",
        f"{base}/raw?fieldManager=bob",
        body,
        content_type="application/apply-patch+yaml",
    )
    # paused is unset by alice (only defaulted): no conflict
    assert code == 200, status
    code, status = kube.api(
        "PATCH",
        f"{base}/raw?fieldManager=carol",
        json.dumps(_partial("raw", namespace, paused=False)),
        content_type="application/apply-patch+yaml",
    )
    assert code == 409, status
    assert status["kind"] == "Status" and status["reason"] == "Conflict"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "bob"',
            "field": ".spec.paused",
        }
    ]


def test_an_update_with_a_stale_resource_version_is_a_409(kube: Kube, namespace: str) -> None:
    kube.apply(engine_manifest("stale", namespace))
    old = kube.get("tradingengine", "stale", namespace)
    kube.kubectl(
        "-n", namespace, "patch", "te", "stale", "--type=merge", "-p", '{"spec":{"paused":true}}'
    )
    current = kube.get("tradingengine", "stale", namespace)
    assert current["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]
    # kubectl replace sends the object as read, resourceVersion included
    old["spec"]["halt"] = True
    done = kube.kubectl("replace", "-f", "-", "-v=6", stdin=json.dumps(old), check=False)
    assert done.returncode != 0
    assert response_codes(done.stderr, "PUT") == [409], done.stderr[-1500:]
    assert (
        "the object has been modified; please apply your changes to the latest version"
        in done.stderr
    )
    # the status subresource is guarded the same way
    old["status"] = {"phase": "Running"}
    path = f"{ENGINES.format(ns=namespace)}/stale/status"
    code, status = kube.api("PUT", path, old)
    assert (code, status["reason"]) == (409, "Conflict"), status
    # nothing of the stale writes landed
    after = kube.get("tradingengine", "stale", namespace)
    assert after["spec"]["paused"] is True and after["spec"]["halt"] is False
    assert "status" not in after


# -- the operator's mapping of 409s, through its own client ------------------------------


@pytest.fixture
def operator_cluster(kube: Kube) -> Iterator[KubernetesCluster]:
    api = config.new_client_from_config(config_file=str(kube.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield KubernetesCluster(api)
    finally:
        api.close()


def test_the_operator_maps_the_real_409s_to_conflict(
    kube: Kube, namespace: str, operator_cluster: KubernetesCluster
) -> None:
    created = kube.kubectl(
        "create", "-f", "-", "-o", "json", stdin=json.dumps(engine_manifest("mapped", namespace))
    ).json()
    engine = EngineRef("mapped", namespace, created["metadata"]["uid"], 1)
    spec = parse_spec(created["spec"])
    cluster = operator_cluster

    # create of an existing object: 409 AlreadyExists -> Conflict
    configmap = build_configmap(engine, spec)
    cluster.create("configmaps", configmap)  # the answer is not decoded: read it
    first = cluster.get("configmaps", namespace, engine.configmap_name)
    assert first is not None
    with pytest.raises(Conflict, match="create configmaps"):
        cluster.create("configmaps", build_configmap(engine, spec))

    # the one engine pod per engine: a second pod of the fixed name is a Conflict,
    # which the reconciler reads as "the previous engine pod still exists"
    pod = build_pod(engine, spec, EngineImage())
    pod["spec"]["nodeSelector"] = NOWHERE
    cluster.create("pods", pod)
    with pytest.raises(Conflict):
        cluster.create("pods", pod)

    # replace with the resourceVersion read: fine; with a stale one: Conflict
    fresh = dict(configmap, data={"engine.yaml": "changed: 1\n"})
    fresh["metadata"] = dict(
        configmap["metadata"], resourceVersion=first["metadata"]["resourceVersion"]
    )
    cluster.replace("configmaps", fresh)
    with pytest.raises(Conflict, match="replace configmaps"):
        cluster.replace("configmaps", fresh)  # the same, now stale, resourceVersion
    assert kube.get("configmap", engine.configmap_name, namespace)["data"] == {
        "engine.yaml": "changed: 1\n"
    }

    # 404s are None (get, delete), not errors
    assert cluster.get("configmaps", namespace, "missing") is None
    cluster.delete("pods", namespace, "missing")  # no exception
    assert cluster.get_engine(namespace, "missing") is None

    # status patches are merge patches; without a resourceVersion they never conflict
    written = cluster.patch_engine_status(
        namespace, "mapped", {"phase": "Pending", "message": "a"}, None
    )
    assert written is not None and written["status"]["message"] == "a"
    version = written["metadata"]["resourceVersion"]
    newer = cluster.patch_engine_status(namespace, "mapped", {"message": "b"}, version)
    assert newer is not None
    status = kube.get("tradingengine", "mapped", namespace)["status"]
    assert status == {"phase": "Pending", "message": "b"}
    # with one, a write computed from an older version is the API server's 409: Conflict
    with pytest.raises(Conflict, match="tradingengines/status"):
        cluster.patch_engine_status(namespace, "mapped", {"message": "stale"}, version)
    assert kube.get("tradingengine", "mapped", namespace)["status"]["message"] == "b"
    assert cluster.patch_engine_status(namespace, "missing", {"message": "x"}, None) is None
    # ... but the status schema still holds: a 422 is not a Conflict, it propagates
    with pytest.raises(ApiException) as refused:
        cluster.patch_engine_status(namespace, "mapped", {"phase": "Exploded"}, None)
    assert refused.value.status == 422
    assert "status.phase" in str(refused.value.body)
