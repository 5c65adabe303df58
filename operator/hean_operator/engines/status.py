"""From what the engine and its pod report to `TradingEngine.status`: pure functions.

The phase answers "what is this engine doing?" at a glance in `kubectl get`:

| phase | when |
| --- | --- |
| Invalid | the spec fails the engine's model (nothing is created) |
| Terminating | the resource is being deleted |
| Pending | no engine pod exists yet |
| Starting | the pod exists but the engine is not ready (or its status is unknown) |
| Failed | the pod failed or keeps crashing, the engine refused its spec, a child's name is taken |

An engine refuses its spec at start-up (exit status 2, its reason as the
container's termination message) for what only it can check: a strategy that
is not installed in its image, or params that strategy's model refuses. The
phase is then Failed (not Invalid: the operator keeps observing the pod, whose
image may change) and the SpecValid condition is False, reason
RefusedByEngine, with the engine's reason naming the field.
| Halted | the engine's risk state is HALTED (by itself or by `spec.halt`) |
| Paused | the engine is paused |
| Running | the engine is ready and trading |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hean_contract.errors import EXIT_INVALID
from hean_contract.status import (
    Condition,
    ConditionStatus,
    ConditionType,
    Phase,
    ReconcileStatus,
)
from hean_operator.api.messages import truncate_message

CRASH_LOOP_RESTARTS = 3


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


def refused_message(pod: dict[str, Any] | None) -> str:
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


@dataclass(frozen=True)
class Observation:
    """One look at an engine: its pod, and its /status if the poll succeeded."""

    generation: int
    pod: PodView
    engine: dict[str, Any] | None = None  # the engine's /status JSON
    poll_error: str | None = None
    mode: str = "paper"
    deleting: bool = False
    # A live engine's LiveApproved condition, from the operator's approval verdict:
    # (status, reason, message). None for paper engines, or before any verdict.
    approval: tuple[ConditionStatus, str, str] | None = None
    blocked: str | None = None  # why no pod is started (a live engine without approval)
    taken: str | None = None  # a child's name is held by an object the engine does not own


def derive_phase(obs: Observation) -> tuple[Phase, str]:
    if obs.deleting:
        return Phase.TERMINATING, "the resource is being deleted"
    if obs.taken is not None:
        return Phase.FAILED, obs.taken
    pod = obs.pod
    if not pod.exists:
        return Phase.PENDING, obs.blocked or "the engine pod is being created"
    if pod.refused and not pod.ready:
        return Phase.FAILED, f"the engine refused its spec: {pod.refused}"
    if pod.failure:
        return Phase.FAILED, f"the engine pod failed ({pod.failure}): replacing it"
    if pod.phase == "Failed":
        return Phase.FAILED, "the engine pod failed"
    if pod.waiting_reason == "CrashLoopBackOff" or (
        pod.restarts >= CRASH_LOOP_RESTARTS and not pod.ready
    ):
        return Phase.FAILED, f"the engine keeps crashing ({pod.restarts} restarts)"
    engine = obs.engine
    if not pod.ready or engine is None:
        return Phase.STARTING, obs.poll_error or "waiting for the engine to become ready"
    if engine.get("risk_state") == "HALTED":
        return Phase.HALTED, f"halted: {engine.get('risk_state_reason', 'unknown reason')}"
    if engine.get("paused"):
        return Phase.PAUSED, "paused: no new orders"
    return Phase.RUNNING, "trading"


def _condition(
    kind: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    previous: dict[ConditionType, Condition],
    now: str,
) -> Condition:
    """A condition whose lastTransitionTime moves only when its status changes."""
    before = previous.get(kind)
    since = before.last_transition_time if before and before.status == status else now
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=truncate_message(message),
        last_transition_time=since,
        observed_generation=generation,
    )


def derive_conditions(obs: Observation, previous: list[Condition], now: str) -> list[Condition]:
    prev = {c.type: c for c in previous}
    gen = obs.generation
    refused = obs.pod.refused if not obs.pod.ready else ""
    conds = [
        _condition(
            ConditionType.SPEC_VALID,
            ConditionStatus.FALSE if refused else ConditionStatus.TRUE,
            "RefusedByEngine" if refused else "Valid",
            refused or "the spec is valid",
            gen,
            prev,
            now,
        )
    ]
    if obs.taken is not None:
        ready = _condition(
            ConditionType.READY,
            ConditionStatus.FALSE,
            "NameTaken",
            obs.taken,
            gen,
            prev,
            now,
        )
    elif obs.pod.ready and obs.engine is not None:
        ready = _condition(
            ConditionType.READY,
            ConditionStatus.TRUE,
            "EngineReady",
            "the engine is ready",
            gen,
            prev,
            now,
        )
    elif obs.poll_error is not None:
        ready = _condition(
            ConditionType.READY,
            ConditionStatus.FALSE,
            "StatusPollFailed",
            obs.poll_error,
            gen,
            prev,
            now,
        )
    elif not obs.pod.exists:
        ready = _condition(
            ConditionType.READY,
            ConditionStatus.FALSE,
            "PodMissing",
            "no engine pod",
            gen,
            prev,
            now,
        )
    else:
        ready = _condition(
            ConditionType.READY,
            ConditionStatus.FALSE,
            "EngineNotReady",
            "the engine is not ready yet",
            gen,
            prev,
            now,
        )
    conds.append(ready)
    reconcile = (obs.engine or {}).get("last_reconcile")
    if obs.mode != "live":
        conds.append(
            _condition(
                ConditionType.RECONCILED,
                ConditionStatus.TRUE,
                "PaperAccount",
                "paper mode: the books are the simulated account",
                gen,
                prev,
                now,
            )
        )
        conds.append(
            _condition(
                ConditionType.LIVE_APPROVED,
                ConditionStatus.TRUE,
                "NotRequired",
                "paper mode needs no approval",
                gen,
                prev,
                now,
            )
        )
    else:
        if obs.approval is not None:
            status, reason, message = obs.approval
            conds.append(
                _condition(ConditionType.LIVE_APPROVED, status, reason, message, gen, prev, now)
            )
        if isinstance(reconcile, dict) and reconcile.get("result") == "ok":
            conds.append(
                _condition(
                    ConditionType.RECONCILED,
                    ConditionStatus.TRUE,
                    "InSync",
                    "books match the exchange",
                    gen,
                    prev,
                    now,
                )
            )
        elif isinstance(reconcile, dict):
            drifted = reconcile.get("result") == "drift"
            conds.append(
                _condition(
                    ConditionType.RECONCILED,
                    ConditionStatus.FALSE,
                    "Drift" if drifted else "ReconcileFailed",
                    _reconcile_detail(reconcile) or str(reconcile.get("result")),
                    gen,
                    prev,
                    now,
                )
            )
        else:
            conds.append(
                _condition(
                    ConditionType.RECONCILED,
                    ConditionStatus.UNKNOWN,
                    "NotYetReconciled",
                    "no reconcile reported yet",
                    gen,
                    prev,
                    now,
                )
            )
    return conds


def with_condition(
    conditions: list[dict[str, Any]],
    kind: ConditionType,
    fields: tuple[ConditionStatus, str, str],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """`conditions` (as stored) with the one of type `kind` set to `fields`."""
    previous = [Condition.model_validate(c) for c in conditions]
    status, reason, message = fields
    new = _condition(kind, status, reason, message, generation, {c.type: c for c in previous}, now)
    out = [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in previous]
    dumped = new.model_dump(mode="json", by_alias=True, exclude_none=True)
    for i, c in enumerate(out):
        if c["type"] == kind.value:
            out[i] = dumped
            return out
    return [*out, dumped]


def _reconcile_detail(rec: dict[str, Any]) -> str | None:
    """What differed (drift), or why the comparison could not be made (failed)."""
    if rec.get("result") == "drift":
        return str(rec.get("summary") or "") or None
    if rec.get("result") == "failed":
        return str(rec.get("reason") or "") or None
    return None


def reconcile_status(engine: dict[str, Any] | None) -> ReconcileStatus | None:
    rec = (engine or {}).get("last_reconcile")
    if not isinstance(rec, dict):
        return None
    since = rec.get("drift_since")
    return ReconcileStatus(
        time=rec.get("time"),
        result=rec.get("result"),
        drift=_reconcile_detail(rec),
        since=str(since) if since else None,
    )
