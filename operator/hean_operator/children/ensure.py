"""Make an engine's children match its spec: ConfigMap, control Secret, Service, one pod.

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
`app-config` when the engine is `app`) is left exactly as it is, and nothing
at all is written for the engine (`Outcome.taken` names the objects).

A pod that failed (evicted, its node lost: phase Failed or Succeeded; the
pod's restartPolicy never lets the engine itself end there) is deleted, and
its replacement created once it is gone, as for a new spec (`Outcome.replaced`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
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
from hean_operator.builders.pod import EngineImage, build_pod, build_service
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


# Threads for the children's reads (blocking client calls), shared by all engines.
_READS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="children-read")

KINDS = {"configmaps": "ConfigMap", "secrets": "Secret", "services": "Service", "pods": "Pod"}


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
) -> Outcome:
    """Make the children match; a live engine needs `approval` (None counts as not approved)."""
    out = Outcome()
    names = [
        ("configmaps", engine.configmap_name),
        ("secrets", engine.secret_name),
        ("services", engine.service_name),
        ("pods", engine.pod_name),
    ]
    if spec.mode is Mode.LIVE:
        names.append(("configmaps", approval_configmap_name(engine)))
    # The reads at once: they are independent, and each is a round trip to the API server.
    found = list(_READS.map(lambda key: cluster.get(key[0], engine.namespace, key[1]), names))
    current = dict(zip(names, found, strict=True))
    out.taken = [
        f"{KINDS[kind]} {name} ({owner_description(obj)})"
        for (kind, name), obj in current.items()
        if obj is not None and not owned_by(obj, engine)
    ]
    if out.taken:
        return out  # touch nothing: not even the children that are free
    _ensure_config(cluster, engine, spec, out, current[("configmaps", engine.configmap_name)])
    if current[("secrets", engine.secret_name)] is None:
        _create(cluster, "secrets", build_control_secret(engine, secrets.token_urlsafe(32)), out)
    if current[("services", engine.service_name)] is None:
        _create(cluster, "services", build_service(engine), out)
    data: Mapping[str, str] | None = None
    if spec.mode is Mode.LIVE:
        data = approval.data if approval is not None else {}
        ensure_approval_config(
            cluster, engine, data, out, current[("configmaps", approval_configmap_name(engine))]
        )
        if approval is None or not approval.approved:
            out.blocked = (
                f"waiting for a valid LiveApproval: {approval.message}"
                if approval is not None
                else "waiting for a valid LiveApproval"
            )
    _ensure_pod(cluster, engine, spec, image, out, data, current[("pods", engine.pod_name)])
    return out


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


def _ensure_config(
    cluster: Cluster,
    engine: EngineRef,
    spec: TradingEngineSpec,
    out: Outcome,
    current: dict[str, Any] | None,
) -> None:
    desired = build_configmap(engine, spec)
    if current is None:
        _create(cluster, "configmaps", desired, out)
    elif current.get("data") != desired["data"]:
        desired["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        cluster.replace("configmaps", desired)
        out.writes += 1


def _ensure_pod(
    cluster: Cluster,
    engine: EngineRef,
    spec: TradingEngineSpec,
    image: EngineImage,
    out: Outcome,
    approval_data: Mapping[str, str] | None,
    pod: dict[str, Any] | None,
) -> None:
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
            if spec.mode is not Mode.LIVE:
                out.warnings.append(
                    (
                        "PaperAccountReset",
                        "the new engine pod starts a fresh paper account: equity back to "
                        "spec.paper.startingBalances, PnL, position, orders and trade history "
                        "of the old pod are lost (docs/concepts.md)",
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
    out.events.append(
        ("PodCreated", f"engine pod {engine.pod_name} created for generation {engine.generation}")
    )


def _create(cluster: Cluster, kind: str, body: dict[str, Any], out: Outcome) -> None:
    cluster.create(kind, body)
    out.writes += 1
