"""Make an engine's children match its spec: ConfigMap, control Secret, the history's
PersistentVolumeClaim (unless it is kept in PostgreSQL), one pod.

Level-triggered and idempotent: called on create, update, resume and by the
status timer, it compares what exists with what should, and does only the
difference. So an operator restarted in the middle of a change converges,
and never makes a second pod.

One pod per account: the pod has a fixed name, so the apiserver refuses a
second one while the first exists. A new spec generation first deletes the
old pod, and the new one is created only once the old is confirmed gone
(`Outcome.waiting`); the caller retries shortly.

Live engines also get the ConfigMap with their LiveApproval and the trust
files, and their pod is created only while the operator's verdict on the
approval is valid (`PodApproval`); otherwise `Outcome.blocked` says why.

Only what the engine owns is ever changed: an object of a child's name whose
controller owner reference is not this engine (an unrelated ConfigMap
`app-config` when the engine is `app`) is left exactly as it is, and no pod is
started (`Outcome.taken` names the objects). A reconcile that reads first
writes nothing at all then; a new engine's first one (`fresh`) creates without
reading, so its free children may already be made (they are its own).

An engine's independent calls go out at once (the children's threads), the
pod after the others: a hundred engines created together are otherwise a
hundred queues of ten round trips each.

The PersistentVolumeClaim is only ever created: its class and size are read
when it is made (a claim's class cannot change, and growing one is the
StorageClass's business), and a spec that moves the history to PostgreSQL
leaves the claim, and the data on it, where it is. It goes with the engine
(its owner reference: the garbage collector deletes it).

A pod that failed (evicted, its node lost: phase Failed or Succeeded; the
pod's restartPolicy never lets the engine itself end there) is deleted, and
its replacement created once it is gone, as for a new spec (`Outcome.replaced`).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hean_contract.spec import Mode, TradingEngineSpec
from hean_operator.builders.approval import approval_configmap_name, build_approval_configmap
from hean_operator.builders.common import (
    ANNOTATION_GENERATION,
    ANNOTATION_REVISION,
    EngineRef,
    owned_by,
    owner_description,
)
from hean_operator.builders.config import build_configmap, build_control_secret, spec_revision
from hean_operator.builders.pod import EngineImage, build_pod
from hean_operator.builders.storage import build_history_claim, needs_claim
from hean_operator.engines.pods import failure_reason
from hean_operator.kube.cluster import Cluster, Conflict


@dataclass
class Outcome:
    """What a reconcile did; `events` become Kubernetes Events on the engine."""

    events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    waiting: str | None = None  # set when the caller must retry (old pod still terminating)
    writes: int = 0
    blocked: str | None = None  # a live engine without a valid approval: why no pod
    # Objects with a child's name that this engine does not own ("ConfigMap app-config
    # (controlled by ...)"): nothing was written.
    taken: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # Warning Events
    replaced: str | None = None  # a failed pod was deleted: why it failed (e.g. Evicted)


class NameTaken(Exception):
    """A child's name is held by an object this engine does not own."""

    def __init__(self, taken: list[str]) -> None:
        super().__init__("; ".join(taken))
        self.taken = taken


# Threads for the children's calls (blocking client calls), shared by all engines: an
# engine's independent calls run at once, each a round trip to the API server.
CALL_THREADS = 64
_CALLS = ThreadPoolExecutor(max_workers=CALL_THREADS, thread_name_prefix="children")
# Threads that run `ensure_children` itself (each waits on its calls above): apart
# from the loop's default executor, so that engines waiting for their children
# never hold up the status writes (an engine's Ready) of the others.
RECONCILE_THREADS = 32
RECONCILES = ThreadPoolExecutor(max_workers=RECONCILE_THREADS, thread_name_prefix="reconcile")

KINDS = {
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "pods": "Pod",
    "persistentvolumeclaims": "PersistentVolumeClaim",
}


def taken_message(taken: list[str]) -> str:
    return (
        "a child's name is taken by an object this engine does not own, left untouched: "
        + "; ".join(taken)
        + ". Rename the engine or remove that object."
    )


@dataclass(frozen=True)
class PodApproval:
    """The operator's verdict on a live engine's approval, as its pod needs it: whether
    the pod may start, and the files of the approval ConfigMap it mounts."""

    approved: bool
    reason: str  # why not (a condition reason), or "Approved"
    message: str
    data: Mapping[str, str]  # the approval ConfigMap's data


def _annotation(obj: dict[str, Any], key: str) -> str | None:
    annotations: dict[str, str] = obj.get("metadata", {}).get("annotations") or {}
    return annotations.get(key)


def ensure_children(
    cluster: Cluster,
    engine: EngineRef,
    spec: TradingEngineSpec,
    image: EngineImage,
    approval: PodApproval | None = None,
    *,
    fresh: bool = False,
) -> Outcome:
    """Make the children match; a live engine needs `approval` (None counts as not approved).

    `fresh`: the engine's first reconcile, when none of its children is expected
    to exist. Each child is then created without being read first, and read only
    when the API server answers that its name exists (409): one call per child
    instead of two. Otherwise every child is read first (at once) and only the
    difference is written, and a name taken by someone else stops everything
    before any write.

    Either way the pod comes last, once every other child is known to be the
    engine's: it mounts the ConfigMap, the Secret and the claim, so it never
    starts on an object of someone else's. In a fresh reconcile that finds a
    name taken, the free children were already created (they are the engine's
    own, deleted with it); the object of the taken name is never changed.
    """
    out = Outcome()
    live = spec.mode is Mode.LIVE
    data: Mapping[str, str] | None = None
    if live:
        data = approval.data if approval is not None else {}
    # The children the pod needs, each with its desired body (built once).
    desired: dict[tuple[str, str], dict[str, Any]] = {
        ("configmaps", engine.configmap_name): build_configmap(engine, spec),
        ("secrets", engine.secret_name): build_control_secret(engine, secrets.token_urlsafe(32)),
    }
    if needs_claim(spec.storage):
        # The scheduler holds the pod back until its claim is bound, so the claim
        # goes out with the first calls.
        desired[("persistentvolumeclaims", engine.history_claim_name)] = build_history_claim(
            engine, spec.storage
        )
    if live:
        desired[("configmaps", approval_configmap_name(engine))] = build_approval_configmap(
            engine, data or {}
        )
    pod_key = ("pods", engine.pod_name)
    if fresh:
        current = _create_first(cluster, desired, out)
    else:
        keys = [*desired, pod_key]
        found = _at_once(lambda key: cluster.get(key[0], engine.namespace, key[1]), keys)
        current = dict(zip(keys, found, strict=True))
    out.taken = [
        f"{KINDS[kind]} {name} ({owner_description(obj)})"
        for (kind, name), obj in current.items()
        if obj is not _CREATED and obj is not None and not owned_by(obj, engine)
    ]
    if out.taken:
        return out  # no pod, and nothing of someone else's is changed
    # What exists and is the engine's: bring the ConfigMaps' data up to date; create
    # what is missing (a reconcile that read first). All at once.
    calls: list[Callable[[], Any]] = []
    for key, body in desired.items():
        obj = current.get(key)
        if obj is _CREATED:
            continue
        if obj is None:
            calls.append(functools.partial(cluster.create, key[0], body))
        elif key[0] == "configmaps" and (obj.get("data") or {}) != body["data"]:
            body["metadata"]["resourceVersion"] = obj["metadata"].get("resourceVersion")
            calls.append(functools.partial(cluster.replace, key[0], body))
    _at_once(lambda call: call(), calls)
    out.writes += len(calls)
    if live and (approval is None or not approval.approved):
        out.blocked = (
            f"waiting for a valid LiveApproval: {approval.message}"
            if approval is not None
            else "waiting for a valid LiveApproval"
        )
    _ensure_pod(cluster, engine, spec, image, out, data, current.get(pod_key), fresh=fresh)
    return out


# A child that this reconcile has just created (nothing to compare it with).
_CREATED: Any = object()


def _at_once(call: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """`call` on each item, at once on the children's threads (inline for one)."""
    if len(items) <= 1:
        return [call(item) for item in items]
    return list(_CALLS.map(call, items))


def _create_first(
    cluster: Cluster, desired: dict[tuple[str, str], dict[str, Any]], out: Outcome
) -> dict[tuple[str, str], Any]:
    """Create each child at once; a name that exists is read (`_CREATED` for the made)."""

    def create(key: tuple[str, str]) -> Any:
        try:
            cluster.create(key[0], desired[key])
        except Conflict:
            return cluster.get(key[0], desired[key]["metadata"]["namespace"], key[1])
        return _CREATED

    keys = list(desired)
    current = dict(zip(keys, _at_once(create, keys), strict=True))
    out.writes += sum(1 for obj in current.values() if obj is _CREATED)
    return current


_UNREAD: Any = object()


def ensure_approval_config(
    cluster: Cluster,
    engine: EngineRef,
    data: Mapping[str, str],
    out: Outcome | None = None,
    current: dict[str, Any] | None = _UNREAD,
) -> bool:
    """Create or update the engine's approval ConfigMap; returns whether it wrote.

    Raises NameTaken when a ConfigMap of that name exists that the engine does not own.
    """
    desired = build_approval_configmap(engine, data)
    if current is _UNREAD:
        current = cluster.get("configmaps", engine.namespace, approval_configmap_name(engine))
    if current is not None and not owned_by(current, engine):
        name = approval_configmap_name(engine)
        raise NameTaken([f"ConfigMap {name} ({owner_description(current)})"])
    if current is None:
        cluster.create("configmaps", desired)
    elif (current.get("data") or {}) != desired["data"]:
        desired["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        cluster.replace("configmaps", desired)
    else:
        return False
    if out is not None:
        out.writes += 1
    return True


def _ensure_pod(
    cluster: Cluster,
    engine: EngineRef,
    spec: TradingEngineSpec,
    image: EngineImage,
    out: Outcome,
    approval_data: Mapping[str, str] | None,
    pod: dict[str, Any] | None,
    *,
    fresh: bool = False,
) -> None:
    if pod is None and fresh and out.blocked is None:
        try:
            _create(cluster, "pods", build_pod(engine, spec, image, approval_data), out)
        except Conflict:
            pod = cluster.get("pods", engine.namespace, engine.pod_name)
            if pod is not None and not owned_by(pod, engine):
                out.taken = [f"Pod {engine.pod_name} ({owner_description(pod)})"]
                return
        else:
            out.events.append(_pod_created(engine))
            return
    if pod is not None:
        old = _annotation(pod, ANNOTATION_GENERATION)
        failed = failure_reason(pod)
        if _annotation(pod, ANNOTATION_REVISION) == spec_revision(spec) and failed is None:
            return  # the same trading spec: pause/halt go through the control API
        if not pod["metadata"].get("deletionTimestamp"):
            cluster.delete("pods", engine.namespace, engine.pod_name)
            out.writes += 1
            if failed is not None:
                out.replaced = failed
                out.warnings.append(
                    (
                        "PodFailed",
                        f"the engine pod {engine.pod_name} failed ({failed}): deleting it to "
                        "start a new one",
                    )
                )
            else:
                out.events.append(
                    (
                        "Replacing",
                        f"spec generation {engine.generation}: stopping the engine pod of "
                        f"generation {old} before starting the new one",
                    )
                )
        out.waiting = f"waiting for the engine pod of generation {old} to terminate"
        return
    if out.blocked is not None:
        return  # never start a live engine without a valid approval
    try:
        _create(cluster, "pods", build_pod(engine, spec, image, approval_data), out)
    except Conflict:
        out.waiting = "the previous engine pod still exists"
        return
    out.events.append(_pod_created(engine))


def _pod_created(engine: EngineRef) -> tuple[str, str]:
    return (
        "PodCreated",
        f"engine pod {engine.pod_name} created for generation {engine.generation}",
    )


def _create(cluster: Cluster, kind: str, body: dict[str, Any], out: Outcome) -> None:
    cluster.create(kind, body)
    out.writes += 1
