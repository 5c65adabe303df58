"""ensure_children against an in-memory stand-in for the apiserver's object store."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from operator_fakes import FakeCluster

from hean_contract.spec import parse_spec
from hean_operator.builders.common import EngineRef
from hean_operator.builders.pod import EngineImage
from hean_operator.children.ensure import ensure_children

SPEC: dict[str, Any] = {
    "market": {"symbol": "BTC/USDT"},
    "strategy": {"name": "ema_cross", "params": {"quantity": "0.01"}},
    "risk": {
        "maxOrderNotional": "1000",
        "maxPositionNotional": "5000",
        "maxDailyLoss": "500",
        "maxDrawdownPct": "20",
    },
}


class StoreCluster(FakeCluster):
    """Objects by (kind, namespace, name); a deleted pod lingers until `finish_deletions`."""

    def __init__(self) -> None:
        super().__init__(linger=True)
        self.reads: list[str] = []  # the kinds read, one entry per GET

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append(kind)
        return super().get(kind, namespace, name)


def _engine(generation: int) -> EngineRef:
    return EngineRef(name="btc", namespace="default", uid="u1", generation=generation)


def test_first_reconcile_creates_four_children_then_nothing() -> None:
    cluster = StoreCluster()
    out = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    assert sorted(kind for _, kind in cluster.writes) == [
        "configmaps",
        "persistentvolumeclaims",
        "pods",
        "secrets",
    ]
    # the claim first: the scheduler holds the pod back until it is bound
    kinds = [kind for _, kind in cluster.writes]
    assert kinds.index("persistentvolumeclaims") < kinds.index("pods")
    assert out.writes == 4
    assert out.waiting is None
    assert ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage()).writes == 0


def test_a_fresh_reconcile_creates_without_reading_then_reads_only_what_exists() -> None:
    cluster = StoreCluster()
    out = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage(), fresh=True)
    assert out.writes == 4 and out.taken == [] and out.waiting is None
    assert cluster.reads == []  # one call per child: its create
    kinds = [kind for _, kind in cluster.writes]
    assert kinds[-1] == "pods"  # the pod once every child it mounts is the engine's
    assert [reason for reason, _ in out.events] == ["PodCreated"]
    # the create retried (kopf's retry after an error): each 409 is read, nothing doubles
    cluster.writes.clear()
    again = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage(), fresh=True)
    assert again.writes == 0 and again.taken == [] and cluster.writes == []
    assert sorted(cluster.reads) == sorted(
        ["configmaps", "secrets", "persistentvolumeclaims", "pods"]
    )
    assert len(cluster.pods()) == 1


def test_a_fresh_reconcile_never_starts_a_pod_beside_a_taken_name() -> None:
    cluster = StoreCluster()
    theirs = _unrelated("secrets", "btc-control")
    cluster.objects[("secrets", "default", "btc-control")] = copy.deepcopy(theirs)
    out = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage(), fresh=True)
    assert out.taken == ["Secret btc-control (not created by this engine (no controller owner))"]
    assert cluster.objects[("secrets", "default", "btc-control")] == theirs
    assert not cluster.pods() and ("create", "pods") not in cluster.writes
    assert cluster.reads == ["secrets"]  # only the name the API server said exists


def test_a_fresh_reconcile_leaves_someone_elses_pod_of_the_pods_name() -> None:
    cluster = StoreCluster()
    other = {"kind": "ReplicaSet", "name": "search-rs", "uid": "rs-1", "controller": True}
    theirs = _unrelated("pods", "btc-engine", ownerReferences=[other])
    cluster.objects[("pods", "default", "btc-engine")] = copy.deepcopy(theirs)
    out = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage(), fresh=True)
    assert out.taken == ["Pod btc-engine (controlled by ReplicaSet search-rs (uid rs-1))"]
    assert cluster.objects[("pods", "default", "btc-engine")] == theirs
    assert ("delete", "pods") not in cluster.writes and out.events == []


def test_spec_change_stops_the_old_pod_before_starting_the_new_one() -> None:
    cluster = StoreCluster()
    ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    changed = {**SPEC, "risk": {**SPEC["risk"], "maxOrderNotional": "2000"}}
    out = ensure_children(cluster, _engine(2), parse_spec(changed), EngineImage())
    assert out.waiting is not None
    assert [reason for reason, _ in out.events] == ["Replacing"]
    # Retried while the old pod terminates: still one pod, no second delete.
    again = ensure_children(cluster, _engine(2), parse_spec(changed), EngineImage())
    assert again.waiting is not None
    assert again.writes == 0
    assert len(cluster.pods()) == 1
    cluster.finish_deletions()
    done = ensure_children(cluster, _engine(2), parse_spec(changed), EngineImage())
    assert done.waiting is None
    (pod,) = cluster.pods()
    assert pod["metadata"]["annotations"]["hean.io/spec-generation"] == "2"


def test_pause_and_halt_do_not_restart_the_engine() -> None:
    cluster = StoreCluster()
    ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    cluster.writes.clear()
    out = ensure_children(
        cluster, _engine(2), parse_spec({**SPEC, "paused": True, "halt": True}), EngineImage()
    )
    assert out.waiting is None
    assert cluster.writes == [("replace", "configmaps")]  # the config follows; the pod stays


# -- issue 14 item 7: the operator touches only what it owns ------------------------------


def _unrelated(kind: str, name: str, **extra: Any) -> dict[str, Any]:
    """Someone else's object: no owner, or another controller."""
    return {"metadata": {"name": name, "namespace": "default", **extra}, "data": {"k": "theirs"}}


def test_item7_a_configmap_of_the_same_name_owned_by_no_one_is_left_untouched() -> None:
    cluster = StoreCluster()
    theirs = _unrelated("configmaps", "btc-config")
    cluster.objects[("configmaps", "default", "btc-config")] = copy.deepcopy(theirs)
    out = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    assert cluster.writes == []  # nothing at all: not even the free names
    assert cluster.objects[("configmaps", "default", "btc-config")] == theirs
    assert out.taken == ["ConfigMap btc-config (not created by this engine (no controller owner))"]
    assert out.writes == 0 and out.waiting is None


def test_item7_an_unrelated_pod_of_the_engine_pods_name_is_never_deleted() -> None:
    cluster = StoreCluster()
    other = {"kind": "ReplicaSet", "name": "search-rs", "uid": "rs-1", "controller": True}
    cluster.objects[("pods", "default", "btc-engine")] = _unrelated(
        "pods", "btc-engine", ownerReferences=[other]
    )
    out = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    assert cluster.writes == []
    assert not cluster.objects[("pods", "default", "btc-engine")]["metadata"].get(
        "deletionTimestamp"
    )
    assert out.taken == ["Pod btc-engine (controlled by ReplicaSet search-rs (uid rs-1))"]


def test_item7_children_of_an_earlier_engine_of_the_same_name_are_not_adopted() -> None:
    cluster = StoreCluster()
    ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    cluster.writes.clear()
    recreated = EngineRef(name="btc", namespace="default", uid="u2", generation=1)
    changed = {**SPEC, "risk": {**SPEC["risk"], "maxOrderNotional": "2000"}}
    out = ensure_children(cluster, recreated, parse_spec(changed), EngineImage())
    assert cluster.writes == []
    assert len(out.taken) == 4  # until the garbage collector removes the old engine's


def test_item7_the_approval_configmap_is_not_replaced_when_someone_else_owns_it() -> None:
    from hean_operator.children.ensure import NameTaken, ensure_approval_config

    cluster = StoreCluster()
    cluster.objects[("configmaps", "default", "btc-approval")] = _unrelated(
        "configmaps", "btc-approval"
    )
    with pytest.raises(NameTaken) as raised:
        ensure_approval_config(cluster, _engine(1), {"approval.yaml": "x"})
    assert raised.value.taken == [
        "ConfigMap btc-approval (not created by this engine (no controller owner))"
    ]
    assert cluster.writes == []


# -- issue 14 item 8: a failed (evicted) pod is replaced, one pod at a time -----------------


def test_item8_an_evicted_pod_is_deleted_then_replaced() -> None:
    cluster = StoreCluster()
    ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    (pod,) = cluster.pods()
    pod["status"] = {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}
    cluster.writes.clear()
    out = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    assert cluster.writes == [("delete", "pods")]
    assert out.replaced == "Failed: Evicted"
    # the paper account is on the claim: the new pod continues it, nothing to warn of
    assert [reason for reason, _ in out.warnings] == ["PodFailed"]
    assert out.waiting is not None  # the new pod only once the failed one is gone
    again = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    assert again.writes == 0 and again.replaced is None and len(cluster.pods()) == 1
    cluster.finish_deletions()
    done = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    assert done.waiting is None and cluster.writes[-1] == ("create", "pods")
    (new,) = cluster.pods()
    assert "status" not in new


# -- issue 15: the history's claim; a new pod continues the paper account -----------------


def test_a_spec_change_keeps_the_claim_and_warns_of_no_account_reset() -> None:
    cluster = StoreCluster()
    ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    claim = cluster.get("persistentvolumeclaims", "default", "btc-history")
    assert claim is not None
    changed = {**SPEC, "risk": {**SPEC["risk"], "maxOrderNotional": "2000"}}
    cluster.writes.clear()
    out = ensure_children(cluster, _engine(2), parse_spec(changed), EngineImage())
    assert out.warnings == [] and out.replaced is None
    # the ConfigMap takes the new spec, the pod goes; the claim is neither replaced nor deleted
    assert cluster.writes == [("replace", "configmaps"), ("delete", "pods")]
    cluster.finish_deletions()
    ensure_children(cluster, _engine(2), parse_spec(changed), EngineImage())
    assert cluster.get("persistentvolumeclaims", "default", "btc-history") == claim
    (pod,) = cluster.pods()
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "history"]
    assert volume["persistentVolumeClaim"] == {"claimName": "btc-history"}


def test_a_claim_of_the_same_name_owned_by_no_one_is_name_taken() -> None:
    cluster = StoreCluster()
    theirs = _unrelated("persistentvolumeclaims", "btc-history")
    cluster.objects[("persistentvolumeclaims", "default", "btc-history")] = copy.deepcopy(theirs)
    out = ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    assert cluster.writes == []
    assert out.taken == [
        "PersistentVolumeClaim btc-history (not created by this engine (no controller owner))"
    ]


def test_with_postgres_there_is_no_claim_and_a_left_claim_is_kept() -> None:
    cluster = StoreCluster()
    ensure_children(cluster, _engine(1), parse_spec(SPEC), EngineImage())
    postgres = {**SPEC, "storage": {"postgres": {"secretName": "history-db"}}}
    cluster.finish_deletions()
    out = ensure_children(cluster, _engine(2), parse_spec(postgres), EngineImage())
    assert out.waiting is not None  # the pod of the SQLite spec goes first
    cluster.finish_deletions()
    ensure_children(cluster, _engine(2), parse_spec(postgres), EngineImage())
    # the data on the claim is never deleted implicitly: it goes with the engine
    assert cluster.get("persistentvolumeclaims", "default", "btc-history") is not None
    assert ("delete", "persistentvolumeclaims") not in cluster.writes
    fresh = StoreCluster()
    ensure_children(fresh, _engine(1), parse_spec(postgres), EngineImage())
    assert not [w for w in fresh.writes if w[1] == "persistentvolumeclaims"]
