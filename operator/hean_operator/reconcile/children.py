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
approval is valid (`ApprovalGate`); otherwise `Outcome.blocked` says why.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hean_engine.model.spec import Mode, TradingEngineSpec
from hean_operator.builders.approval import approval_configmap_name, build_approval_configmap
from hean_operator.builders.common import ANNOTATION_GENERATION, ANNOTATION_REVISION, EngineRef
from hean_operator.builders.config import build_configmap, build_control_secret, spec_revision
from hean_operator.builders.pod import EngineImage, build_pod, build_service
from hean_operator.kube.cluster import Cluster, Conflict


@dataclass
class Outcome:
    """What a reconcile did; `events` become Kubernetes Events on the engine."""

    events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    waiting: str | None = None  # set when the caller must retry (old pod still terminating)
    writes: int = 0
    blocked: str | None = None  # a live engine without a valid approval: why no pod


@dataclass(frozen=True)
class ApprovalGate:
    """The operator's verdict on a live engine's approval, as the reconcile needs it."""

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
    gate: ApprovalGate | None = None,
) -> Outcome:
    """Make the children match; a live engine needs `gate` (None counts as not approved)."""
    out = Outcome()
    _ensure_config(cluster, engine, spec, out)
    if cluster.get("secrets", engine.namespace, engine.secret_name) is None:
        _create(cluster, "secrets", build_control_secret(engine, secrets.token_urlsafe(32)), out)
    if cluster.get("services", engine.namespace, engine.service_name) is None:
        _create(cluster, "services", build_service(engine), out)
    data: Mapping[str, str] | None = None
    if spec.mode is Mode.LIVE:
        data = gate.data if gate is not None else {}
        ensure_approval_config(cluster, engine, data, out)
        if gate is None or not gate.approved:
            out.blocked = (
                f"waiting for a valid LiveApproval: {gate.message}"
                if gate is not None
                else "waiting for a valid LiveApproval"
            )
    _ensure_pod(cluster, engine, spec, image, out, data)
    return out


def ensure_approval_config(
    cluster: Cluster, engine: EngineRef, data: Mapping[str, str], out: Outcome | None = None
) -> bool:
    """Create or update the engine's approval ConfigMap; returns whether it wrote."""
    desired = build_approval_configmap(engine, data)
    current = cluster.get("configmaps", engine.namespace, approval_configmap_name(engine))
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
    cluster: Cluster, engine: EngineRef, spec: TradingEngineSpec, out: Outcome
) -> None:
    desired = build_configmap(engine, spec)
    current = cluster.get("configmaps", engine.namespace, engine.configmap_name)
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
    approval: Mapping[str, str] | None,
) -> None:
    pod = cluster.get("pods", engine.namespace, engine.pod_name)
    if pod is not None:
        if _annotation(pod, ANNOTATION_REVISION) == spec_revision(spec):
            return  # the same trading spec: pause/halt go through the control API
        old = _annotation(pod, ANNOTATION_GENERATION)
        if not pod["metadata"].get("deletionTimestamp"):
            cluster.delete("pods", engine.namespace, engine.pod_name)
            out.writes += 1
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
        _create(cluster, "pods", build_pod(engine, spec, image, approval), out)
    except Conflict:
        out.waiting = "the previous engine pod still exists"
        return
    out.events.append(
        ("PodCreated", f"engine pod {engine.pod_name} created for generation {engine.generation}")
    )


def _create(cluster: Cluster, kind: str, body: dict[str, Any], out: Outcome) -> None:
    cluster.create(kind, body)
    out.writes += 1
