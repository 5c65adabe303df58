"""The one writer of `TradingEngine.status`.

Every status the operator writes goes through `StatusWriter.write`: the
reconcile, the status poll, the pod watch and the approval enforcement alike.
Each caller passes a function from the status as stored to the fields it
decides (`Desired`), and the writer:

- writes only the fields that differ from the stored status (nothing at all
  when none does: no write, no Event, no watch event for kopf to process);
- sets conditions by type (`set_condition`, Kubernetes' `meta.SetStatusCondition`):
  a caller's conditions replace those of the same type, the others stay as
  stored, and a condition's lastTransitionTime moves only when its status does;
- guards each write with the resourceVersion it was computed from (a JSON merge
  patch of the status subresource carrying `metadata.resourceVersion`): a write
  computed from a stale read is refused by the API server (409), and the writer
  reads the engine again and recomputes, so a write never lands over a newer one;
- drops an observation older than the one last written for the engine
  (`observed_at`): the poll and the pod watch each observe the engine, and a
  poll that began before the pod turned Ready must not write Ready=False after
  the pod watch wrote Ready=True.

Writes of one engine are serialised inside the operator (a lock per engine);
the resourceVersion guards against every other writer of the API object.
The writer is blocking (the Kubernetes client is): async callers run it in a
thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hean_contract.status import Condition, ConditionType, Phase
from hean_operator.builders.common import EngineRef
from hean_operator.kube.cluster import Cluster, Conflict
from hean_operator.status.derive import (
    ConditionFields,
    Observation,
    condition,
    derive_conditions,
    derive_phase,
    dump_conditions,
    parse_conditions,
    report_fields,
    set_conditions,
)

StatusFields = dict[str, Any]  # camelCase, as stored; None removes a field
Desired = Callable[[Mapping[str, Any]], StatusFields]  # the stored status -> the fields it sets

ATTEMPTS = 5  # writes tried before giving up (each after a 409 and a fresh read)


class StatusConflict(Exception):
    """Every attempt met a newer version of the engine: the caller retries later."""


@dataclass(frozen=True)
class Written:
    """What a write did: the fields that changed, and the status as it stands now."""

    changes: StatusFields
    status: Mapping[str, Any]
    stale: bool = False  # dropped: a newer observation of the engine had been written

    @property
    def phase_changed(self) -> bool:
        return "phase" in self.changes

    @property
    def phase(self) -> Phase | None:
        value = self.status.get("phase")
        return Phase(value) if value else None


def merge_conditions(current: Mapping[str, Any], new: Iterable[Condition]) -> list[dict[str, Any]]:
    """The stored conditions with `new` set by type, as stored."""
    stored = parse_conditions(current.get("conditions") or [])
    return dump_conditions(set_conditions(stored, new))


def observed_status(obs: Observation, current: Mapping[str, Any], now: str) -> StatusFields:
    """The fields one observation of the engine decides (phase, conditions, the report's)."""
    phase, message = derive_phase(obs)
    fields: StatusFields = {
        "phase": phase.value,
        "message": message,
        "mode": obs.mode,
        "conditions": merge_conditions(current, derive_conditions(obs, now)),
    }
    if obs.engine is not None:
        fields.update(report_fields(obs.engine))
    return fields


def condition_status(
    kind: ConditionType,
    fields: ConditionFields,
    generation: int,
    current: Mapping[str, Any],
    now: str,
) -> StatusFields:
    """One condition set by type (the others left as stored)."""
    return {"conditions": merge_conditions(current, [condition(kind, fields, generation, now)])}


def _differences(current: Mapping[str, Any], fields: StatusFields) -> StatusFields:
    return {
        key: value
        for key, value in fields.items()
        if current.get(key) != value and not (value is None and key not in current)
    }


def _applied(current: Mapping[str, Any], changes: StatusFields) -> dict[str, Any]:
    out = dict(current)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _version(resource: Mapping[str, Any]) -> int | None:
    try:
        return int((resource.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


def _newest(
    given: Mapping[str, Any] | None, written: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The caller's copy of the engine, or the writer's own last write when that is newer.

    resourceVersions are opaque: where they are not numbers, the caller's copy is
    tried. Either way the API server has the last word (409), so this only saves
    a refused write when the caller's copy predates the writer's last write.
    """
    if given is None or written is None:
        return given if written is None else written if given is None else given
    mine, theirs = _version(written), _version(given)
    if mine is not None and theirs is not None and mine > theirs:
        return written
    return given


class StatusWriter:
    def __init__(self, cluster: Cluster, attempts: int = ATTEMPTS) -> None:
        self._cluster = cluster
        self._attempts = attempts
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}  # engine uid -> its writes' lock
        self._observed: dict[str, float] = {}  # engine uid -> the newest observation written
        self._written: dict[str, Mapping[str, Any]] = {}  # engine uid -> as the last write left it

    def forget(self, engine: EngineRef) -> None:
        """The engine is gone: drop what the writer keeps about it."""
        with self._guard:
            self._locks.pop(engine.uid, None)
            self._observed.pop(engine.uid, None)
            self._written.pop(engine.uid, None)

    def last_written(self, uid: str) -> Mapping[str, Any] | None:
        """The engine as the writer's last write of it returned it (None: none yet).

        A copy that may have aged (a spec changed since): good for deciding
        whether to write, since the write itself is guarded by its resourceVersion.
        """
        with self._guard:
            return self._written.get(uid)

    def _lock(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    def _seen(self, engine: EngineRef, observed_at: float | None) -> None:
        if observed_at is not None:
            self._observed[engine.uid] = max(observed_at, self._observed.get(engine.uid, -1.0))

    def write(
        self,
        engine: EngineRef,
        desired: Desired,
        *,
        resource: Mapping[str, Any] | None = None,
        observed_at: float | None = None,
    ) -> Written | None:
        """Write the fields `desired` decides from the stored status; None if the engine is gone.

        `resource` is the engine as the caller last saw it (kopf's body): the first
        attempt is computed from it, and a 409 reads the engine again. `observed_at`
        (a monotonic time) marks the write as an observation: it is dropped
        (`Written.stale`) when an observation taken later has been written already.
        """
        with self._lock(engine.uid):
            current = _newest(resource, self._written.get(engine.uid))
            for _ in range(self._attempts):
                if current is None:
                    current = self._cluster.get_engine(engine.namespace, engine.name)
                    if current is None:
                        return None
                meta = current.get("metadata") or {}
                if str(meta.get("uid") or engine.uid) != engine.uid:
                    return None  # deleted, and another engine made under the same name
                status = dict(current.get("status") or {})
                if observed_at is not None and self._observed.get(engine.uid, -1.0) > observed_at:
                    return Written({}, status, stale=True)
                changes = _differences(status, desired(status))
                if not changes:
                    self._seen(engine, observed_at)  # already as this observation says
                    return Written({}, status)
                version = meta.get("resourceVersion")
                try:
                    written = self._cluster.patch_engine_status(
                        engine.namespace, engine.name, changes, str(version) if version else None
                    )
                except Conflict:
                    current = None  # a newer version: read it, and decide again
                    continue
                if written is None:
                    return None
                self._written[engine.uid] = written
                self._seen(engine, observed_at)
                return Written(changes, _applied(status, changes))
            raise StatusConflict(
                f"the status of {engine.namespace}/{engine.name} kept changing under the "
                f"operator's write ({self._attempts} attempts)"
            )
