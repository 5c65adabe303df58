"""From what the engine and its pod report to `TradingEngine.status`: pure functions.

The phase answers "what is this engine doing?" at a glance in `kubectl get`:

| phase | when |
| --- | --- |
| Invalid | the spec fails the engine's model (nothing is created) |
| Terminating | the resource is being deleted |
| Pending | no engine pod exists yet |
| Starting | the pod exists but the engine is not ready (or its status is unknown) |
| Failed | the pod failed or keeps crashing, the engine refused its spec, a child's name is taken |
| Halted | the engine's risk state is HALTED (by itself or by `spec.halt`) |
| Paused | the engine is paused |
| Running | the engine is ready and trading |

An engine refuses its spec at start-up (exit status 2, its reason as the
container's termination message) for what only it can check: a strategy that
is not installed in its image, or params that strategy's model refuses. The
phase is then Failed (not Invalid: the operator keeps observing the pod, whose
image may change) and the SpecValid condition is False, reason
RefusedByEngine, with the engine's reason naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hean_contract.report import EngineReport, ReconcileReport
from hean_contract.status import (
    Condition,
    ConditionStatus,
    ConditionType,
    Phase,
    ReconcileStatus,
)
from hean_operator.api import reasons
from hean_operator.api.messages import truncate_message
from hean_operator.engines.pods import PodView

CRASH_LOOP_RESTARTS = 3

# (status, reason, message) of one condition, as the logic above the model decides it
ConditionFields = tuple[ConditionStatus, str, str]


@dataclass(frozen=True)
class Observation:
    """One look at an engine: its pod, and its report if the poll succeeded."""

    generation: int
    pod: PodView
    engine: EngineReport | None = None  # the engine's GET /status, typed
    poll_error: str | None = None
    mode: str = "paper"
    deleting: bool = False
    # A live engine's LiveApproved condition, from the operator's approval verdict.
    # None for paper engines, or before any verdict (the condition is left as it is).
    approval: ConditionFields | None = None
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
    if engine.halted:
        return Phase.HALTED, f"halted: {engine.risk_state_reason or 'unknown reason'}"
    if engine.paused:
        return Phase.PAUSED, "paused: no new orders"
    return Phase.RUNNING, "trading"


def condition(kind: ConditionType, fields: ConditionFields, generation: int, now: str) -> Condition:
    """A condition as observed now (its transition time is settled by `set_condition`)."""
    status, reason, message = fields
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=truncate_message(message),
        last_transition_time=now,
        observed_generation=generation,
    )


def set_condition(conditions: Sequence[Condition], new: Condition) -> list[Condition]:
    """`conditions` with the one of `new`'s type set to `new` (added if absent).

    Kubernetes' `meta.SetStatusCondition`: the lastTransitionTime of the stored
    condition is kept when the status does not change, so it says when the
    status last changed, not when it was last looked at. The order is kept.
    """
    out = list(conditions)
    for i, old in enumerate(out):
        if old.type == new.type:
            if old.status == new.status:
                new = new.model_copy(update={"last_transition_time": old.last_transition_time})
            out[i] = new
            return out
    return [*out, new]


def set_conditions(conditions: Sequence[Condition], new: Iterable[Condition]) -> list[Condition]:
    out = list(conditions)
    for item in new:
        out = set_condition(out, item)
    return out


def parse_conditions(stored: Iterable[Mapping[str, Any]]) -> list[Condition]:
    """The conditions as stored in a status (unknown types, written by someone else, dropped)."""
    out = []
    for item in stored:
        try:
            out.append(Condition.model_validate(item))
        except ValueError:
            continue
    return out


def dump_conditions(conditions: Iterable[Condition]) -> list[dict[str, Any]]:
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in conditions]


def _ready(obs: Observation) -> ConditionFields:
    if obs.taken is not None:
        return ConditionStatus.FALSE, reasons.NAME_TAKEN, obs.taken
    if obs.pod.ready and obs.engine is not None:
        return ConditionStatus.TRUE, reasons.ENGINE_READY, "the engine is ready"
    if obs.poll_error is not None:
        return ConditionStatus.FALSE, reasons.STATUS_POLL_FAILED, obs.poll_error
    if not obs.pod.exists:
        return ConditionStatus.FALSE, reasons.POD_MISSING, "no engine pod"
    return ConditionStatus.FALSE, reasons.ENGINE_NOT_READY, "the engine is not ready yet"


def _reconciled(obs: Observation) -> ConditionFields:
    """The engine's books against the exchange's (live), or the paper account."""
    if obs.mode != "live":
        return (
            ConditionStatus.TRUE,
            reasons.PAPER_ACCOUNT,
            "paper mode: the books are the simulated account",
        )
    last = obs.engine.last_reconcile if obs.engine is not None else None
    if last is None:
        return ConditionStatus.UNKNOWN, reasons.NOT_YET_RECONCILED, "no reconcile reported yet"
    if last.result == "ok":
        return ConditionStatus.TRUE, reasons.IN_SYNC, "books match the exchange"
    drifted = last.result == "drift"
    return (
        ConditionStatus.FALSE,
        reasons.DRIFT if drifted else reasons.RECONCILE_FAILED,
        _reconcile_detail(last) or str(last.result),
    )


def derive_conditions(obs: Observation, now: str) -> list[Condition]:
    """The conditions this observation decides, each as observed `now`.

    A live engine's LiveApproved is among them only when `obs.approval` is set;
    merge them into the stored ones with `set_conditions`.
    """
    gen = obs.generation
    refused = obs.pod.refused if not obs.pod.ready else ""
    spec_valid: ConditionFields = (
        (ConditionStatus.FALSE, reasons.REFUSED_BY_ENGINE, refused)
        if refused
        else (ConditionStatus.TRUE, reasons.VALID, "the spec is valid")
    )
    out = [
        condition(ConditionType.SPEC_VALID, spec_valid, gen, now),
        condition(ConditionType.READY, _ready(obs), gen, now),
    ]
    if obs.mode != "live":
        out.append(condition(ConditionType.RECONCILED, _reconciled(obs), gen, now))
        not_required: ConditionFields = (
            ConditionStatus.TRUE,
            reasons.NOT_REQUIRED,
            "paper mode needs no approval",
        )
        out.append(condition(ConditionType.LIVE_APPROVED, not_required, gen, now))
        return out
    if obs.approval is not None:
        out.append(condition(ConditionType.LIVE_APPROVED, obs.approval, gen, now))
    out.append(condition(ConditionType.RECONCILED, _reconciled(obs), gen, now))
    return out


def _reconcile_detail(rec: ReconcileReport) -> str | None:
    """What differed (drift), or why the comparison could not be made (failed)."""
    if rec.result == "drift":
        return rec.summary or None
    if rec.result == "failed":
        return rec.reason or None
    return None


def reconcile_status(engine: EngineReport | None) -> ReconcileStatus | None:
    rec = engine.last_reconcile if engine is not None else None
    if rec is None:
        return None
    return ReconcileStatus(
        time=rec.time,
        result=rec.result,
        drift=_reconcile_detail(rec),
        since=rec.drift_since or None,
    )


def report_fields(engine: EngineReport) -> dict[str, Any]:
    """What of the engine's report the resource's status carries (camelCase, as stored)."""
    fields: dict[str, Any] = {
        "equity": engine.equity,
        "pnl": engine.pnl,
        "maxDrawdown": engine.max_drawdown,
        "position": engine.position,
        "openOrders": len(engine.open_orders),
        "riskState": engine.risk_state,
        "lastDataTime": engine.last_data_time,
    }
    reconcile = reconcile_status(engine)
    if reconcile is not None:
        fields["reconcile"] = reconcile.model_dump(mode="json", exclude_none=True)
    return fields
