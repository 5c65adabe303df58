"""An engine's pod as the operator sees it: whether it runs this spec, is Ready, failed.

Pure functions over the pod's manifest (as the API server returns it). A pod
of the engine's pod name that the engine does not own is not its pod: it is
never polled and never sent the engine's control token.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hean_contract.errors import EXIT_INVALID
from hean_operator.builders.common import ANNOTATION_REVISION, EngineRef, owned_by


@dataclass(frozen=True)
class PodView:
    """What the operator reads from the engine pod."""

    exists: bool
    phase: str = ""  # Pending, Running, Succeeded, Failed
    ready: bool = False
    restarts: int = 0
    waiting_reason: str = ""  # e.g. CrashLoopBackOff
    failure: str = ""  # the pod ended (Failed/Succeeded) and why, e.g. "Failed: Evicted"
    # The engine refused its spec at start-up (`refused_message`): why, naming the field.
    refused: str = ""


MISSING = PodView(exists=False)


def is_ready(status: Mapping[str, Any]) -> bool:
    """A `Ready` condition with status True (pods and TradingEngines alike)."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def failure_reason(pod: Mapping[str, Any]) -> str | None:
    """Why the pod ended (it never runs again: Failed or Succeeded), or None if it has not."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase not in ("Failed", "Succeeded"):
        return None
    detail = status.get("reason") or status.get("message") or ""
    return f"{phase}: {detail}" if detail else str(phase)


def refused_message(pod: Mapping[str, Any] | None) -> str:
    """Why the engine refused its spec, from its container's last termination ("" if it did not).

    An engine exits with status 2 and writes its reason as the termination
    message when its configuration cannot run: checks only the engine can make,
    such as a strategy installed in its image and that strategy's params.
    """
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
    container = statuses[0]
    for state in (container.get("state") or {}, container.get("lastState") or {}):
        terminated = state.get("terminated") or {}
        if terminated.get("exitCode") == EXIT_INVALID:
            message = str(terminated.get("message") or "").strip()
            return message or f"the engine exited with status {EXIT_INVALID} (invalid spec)"
    return ""


def pod_view(
    pod: Mapping[str, Any] | None, revision: str | None, engine: EngineRef
) -> tuple[PodView, str | None]:
    """The pod as the status logic sees it, and its IP if it runs this spec revision.

    With `revision` None any pod of the engine counts (deletion and the approval
    enforcement halt whatever runs).
    """
    if pod is None or not owned_by(pod, engine):
        return MISSING, None
    annotations = pod["metadata"].get("annotations") or {}
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or [{}]
    waiting = (statuses[0].get("state") or {}).get("waiting") or {}
    current = revision is None or annotations.get(ANNOTATION_REVISION) == revision
    view = PodView(
        exists=current,
        phase=str(status.get("phase") or ""),
        failure=failure_reason(pod) or "",
        ready=is_ready(status) and current,
        restarts=int(statuses[0].get("restartCount") or 0),
        waiting_reason=str(waiting.get("reason") or ""),
        refused=refused_message(pod) if current else "",
    )
    return view, status.get("podIP") if current else None


# kopf's index of the engine pods by (namespace, name), filled from the watch the
# operator keeps on them anyway (`engine_pod_ready`): the status timer reads an
# engine's pod from it instead of asking the API server every tick, which at a
# hundred engines was most of the API server's load.
POD_INDEX = "engine_pods_by_name"
PodKey = tuple[str, str]
PodIndex = Mapping[PodKey, Iterable[Mapping[str, Any]]]


def pod_index_entry(body: Mapping[str, Any]) -> dict[PodKey, dict[str, Any]]:
    """The index's entry for one pod: what `pod_view` reads of it, as plain data."""
    meta = body.get("metadata") or {}
    entry = {"metadata": dict(meta), "status": dict(body.get("status") or {})}
    return {(str(meta.get("namespace")), str(meta.get("name"))): entry}


def indexed_pod(index: PodIndex, namespace: str, name: str) -> Mapping[str, Any] | None:
    """The pod of that name as last watched, or None if there is none."""
    for pod in index.get((namespace, name), ()):
        return pod
    return None
