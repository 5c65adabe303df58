"""kopf's index of LiveApprovals by the engine they name: `(namespace, engine name)`.

kopf keeps the index from its own watch of LiveApprovals and fills it before
any handler runs, so a restarted operator never judges a running engine with
its approvals not known yet. Handlers receive it as the keyword argument
`INDEX` (the indexer's id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INDEX = "liveapprovals_by_engine"

EngineKey = tuple[str, str]  # (namespace, engine name)
ApprovalIndex = Mapping[EngineKey, Iterable[Mapping[str, Any]]]


def target(manifest: Mapping[str, Any]) -> str:
    """The name of the engine an approval is for (`spec.engineRef.name`)."""
    return str(((manifest.get("spec") or {}).get("engineRef") or {}).get("name") or "")


def index_entry(body: Mapping[str, Any]) -> dict[EngineKey, dict[str, Any]]:
    """One approval's entry in the index: under the engine it names, the approval as read."""
    meta = dict(body.get("metadata") or {})
    name = target(body)
    if not name:
        return {}
    manifest = {
        "apiVersion": body.get("apiVersion", "hean.io/v1alpha1"),
        "kind": body.get("kind", "LiveApproval"),
        "metadata": meta,
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
    return {(str(meta.get("namespace") or ""), name): manifest}


def approvals_of(index: ApprovalIndex | None, key: EngineKey) -> list[dict[str, Any]]:
    """The approvals that name the engine `key`, by name (stable)."""
    found = index.get(key, ()) if index is not None else ()
    return sorted((dict(m) for m in found), key=lambda m: str(m["metadata"].get("name") or ""))


def fingerprint(approvals: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, str, int], ...]:
    """What of an engine's approvals a verdict depends on: which ones, and their specs.

    A LiveApproval's generation moves with its spec only, so the operator's own
    writes of their status do not count as a change.
    """
    return tuple(
        sorted(
            (
                str(m["metadata"].get("name") or ""),
                str(m["metadata"].get("uid") or ""),
                int(m["metadata"].get("generation") or 0),
            )
            for m in approvals
        )
    )
