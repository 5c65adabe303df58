"""kopf handlers for TradingEngine: thin wrappers over the children, the engine API and
the status writer.

- create / spec change / operator start (`reconcile`): make the engine's children
  for the spec, tell a running engine a change of `spec.paused` or `spec.halt`
  (from true to false: the user's explicit reset) or of
  `spec.paper.resetRequest` (the user's explicit paper account reset), and write
  the status with the spec handled (kopf's diff base, `status.lastHandledSpec`);
- a timer per engine (`poll_engine`): read its pod and `GET /status`, write the
  status, re-assert pause/halt, and heal missing or failed children;
- an engine pod turning Ready (`engine_pod_ready`): poll its engine at once;
- delete, under kopf's finalizer (`engine_deleted`): halt the engine so that it
  cancels its open orders, wait (bounded) for that, and say how it went.

Every status write goes through the status writer (`hean_operator.status.writer`);
a live engine's approval verdict is read from kopf's index of LiveApprovals
(`hean_operator.approvals.index`). Handlers are registered on an explicit
registry by `register()`, so that the poll interval comes from the command line.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from hean_contract.commands import Command
from hean_contract.errors import ConfigError
from hean_contract.report import EngineReport
from hean_contract.spec import Mode, TradingEngineSpec
from hean_contract.status import (
    Condition,
    ConditionStatus,
    ConditionType,
    Phase,
)
from hean_engine.model.timefmt import now_iso
from hean_operator.api import reasons
from hean_operator.api.messages import truncate_message
from hean_operator.api.resources import ENGINES, GROUP, VERSION
from hean_operator.approvals.evaluate import ApprovalDecision, condition_fields
from hean_operator.approvals.index import INDEX, ApprovalIndex, approvals_of
from hean_operator.approvals.trust import mounted_files, verdict
from hean_operator.builders.common import LABEL_COMPONENT, EngineRef, owned_by
from hean_operator.children.ensure import (
    RECONCILES,
    Outcome,
    PodApproval,
    ensure_children,
    taken_message,
)
from hean_operator.context import CONTEXT, OperatorContext, engine_ref
from hean_operator.engines.api import CommandRefused, EngineUnreachable, with_reply
from hean_operator.engines.pods import (
    MISSING,
    POD_INDEX,
    PodIndex,
    PodView,
    indexed_pod,
    is_ready,
    pod_index_entry,
    pod_view,
)
from hean_operator.kube import events
from hean_operator.metrics import OperatorMetrics
from hean_operator.settings import OperatorSettings
from hean_operator.status.derive import ConditionFields, Observation, set_condition
from hean_operator.status.handled import handled_fields
from hean_operator.status.writer import StatusFields, Written, observed_status

Handler = Callable[..., Awaitable[None]]

# An engine pod as it is just after its create: there, not Ready yet.
STARTING_POD = PodView(exists=True, phase="Pending")


def counted(name: str) -> Callable[[Handler], Handler]:
    """Count a handler's runs and failures in the operator's metrics."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(*args: Any, **kwargs: Any) -> None:
            metrics: OperatorMetrics = kwargs["memo"][CONTEXT].metrics
            metrics.reconciles.labels(handler=name).inc()
            try:
                await handler(*args, **kwargs)
            except Exception:
                metrics.errors.labels(handler=name).inc()
                raise

        return run

    return wrap


# -- the approval verdict, as these handlers need it ---------------------------------


@dataclass(frozen=True)
class ApprovalView:
    """A live engine's approval verdict as the status and the control need it."""

    approved: bool
    condition: ConditionFields | None = None  # the LiveApproved condition (live engines)
    blocked: str | None = None  # why no pod is started
    decision: ApprovalDecision | None = None


PAPER = ApprovalView(approved=True)


def approval_view(
    ctx: OperatorContext, engine: EngineRef, spec: TradingEngineSpec, index: ApprovalIndex | None
) -> ApprovalView:
    if spec.mode is not Mode.LIVE:
        return PAPER
    decision = verdict(
        approvals_of(index, (engine.namespace, engine.name)),
        ctx.trust,
        namespace=engine.namespace,
        engine=engine.name,
        engine_uid=engine.uid,
        spec=spec,
        now=ctx.now(),
    )
    blocked = None if decision.valid else f"waiting for a valid LiveApproval: {decision.message}"
    return ApprovalView(decision.valid, condition_fields(decision), blocked, decision)


def _pod_approval(ctx: OperatorContext, view: ApprovalView) -> PodApproval | None:
    decision = view.decision
    if decision is None:
        return None
    return PodApproval(
        approved=decision.valid,
        reason=decision.reason,
        message=decision.message,
        data=mounted_files(decision, ctx.trust),
    )


# -- status ------------------------------------------------------------------------


async def _write(
    ctx: OperatorContext,
    engine: EngineRef,
    desired: Callable[[Mapping[str, Any]], StatusFields],
    resource: Mapping[str, Any] | None,
    observed_at: float | None = None,
) -> Written | None:
    return await asyncio.to_thread(
        ctx.status.write, engine, desired, resource=resource, observed_at=observed_at
    )


def _announce(body: Mapping[str, Any], written: Written | None) -> None:
    """A Normal Event named after the new phase, when the write changed it."""
    if written is not None and written.phase_changed and written.phase is not None:
        events.normal(body, written.phase.value, str(written.status.get("message")))


async def _write_observation(
    ctx: OperatorContext,
    resource: Mapping[str, Any],
    engine: EngineRef,
    spec: TradingEngineSpec,
    index: ApprovalIndex | None,
    pod: PodView,
    report: EngineReport | None,
    error: str | None,
    *,
    observed_at: float | None = None,
    extra: StatusFields | None = None,
) -> Written | None:
    """Write what one look at the engine found; the phase's Event and metric follow it."""
    deleting = bool((resource.get("metadata") or {}).get("deletionTimestamp"))

    def desired(current: Mapping[str, Any]) -> StatusFields:
        # The verdict is taken at write time: an approval's window may close meanwhile.
        approval = approval_view(ctx, engine, spec, index)
        obs = Observation(
            generation=engine.generation,
            pod=pod,
            engine=report,
            poll_error=error,
            mode=spec.mode.value,
            deleting=deleting,
            approval=approval.condition,
            blocked=approval.blocked,
            taken=ctx.taken.get(engine.uid),
        )
        return observed_status(obs, current, now_iso()) | (extra or {})

    written = await _write(ctx, engine, desired, resource, observed_at)
    _announce(resource, written)
    if written is not None and not written.stale and written.phase is not None:
        ctx.metrics.observe_phase(engine.namespace, engine.name, written.phase)
    return written


async def _invalid(
    ctx: OperatorContext,
    body: Mapping[str, Any],
    engine: EngineRef,
    exc: ConfigError,
    *,
    handled: bool,
) -> None:
    """The spec fails the model: Invalid, SpecValid=False, a Warning; nothing is created."""
    message = "; ".join(exc.problems)

    def desired(current: Mapping[str, Any]) -> StatusFields:
        spec_valid = Condition(
            type=ConditionType.SPEC_VALID,
            status=ConditionStatus.FALSE,
            reason=reasons.INVALID_SPEC,
            message=message[:32768],
            last_transition_time=now_iso(),
            observed_generation=engine.generation,
        )
        # Only SpecValid describes an engine whose spec is refused.
        stored = [
            Condition.model_validate(c)
            for c in current.get("conditions") or []
            if c.get("type") == ConditionType.SPEC_VALID.value
        ]
        fields: StatusFields = {
            "phase": Phase.INVALID.value,
            "message": truncate_message(message),
            "observedGeneration": engine.generation,
            "conditions": [
                c.model_dump(mode="json", by_alias=True, exclude_none=True)
                for c in set_condition(stored, spec_valid)
            ],
        }
        return fields | (handled_fields(body) if handled else {})

    await _write(ctx, engine, desired, body)
    events.warning(body, reasons.INVALID_SPEC, truncate_message(message))
    ctx.metrics.observe_phase(engine.namespace, engine.name, Phase.INVALID)


async def _name_taken(
    ctx: OperatorContext,
    body: Mapping[str, Any],
    engine: EngineRef,
    spec: TradingEngineSpec,
    index: ApprovalIndex | None,
    outcome: Outcome,
    *,
    handled: bool,
) -> None:
    """Mark the engine: Failed, Ready=False NameTaken, and a Warning Event when it changes."""
    message = taken_message(outcome.taken)
    if ctx.taken.get(engine.uid) != message:
        events.warning(body, reasons.NAME_TAKEN, truncate_message(message))
    ctx.taken[engine.uid] = message
    extra: StatusFields = {"observedGeneration": engine.generation}
    if handled:
        extra |= handled_fields(body)
    await _write_observation(ctx, body, engine, spec, index, MISSING, None, None, extra=extra)


# -- the engine's children ---------------------------------------------------------


def _api_message(exc: ApiException) -> str:
    """The API server's own sentence (its Status message), for a person."""
    try:
        message = str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        message = str(exc.reason)
    return truncate_message(f"the API server refused the operator: {message}")


def _replaced_reason(failure: str) -> str:
    """The metric's label: the pod's status reason (Evicted, NodeLost...) or its phase."""
    phase, _, detail = failure.partition(": ")
    return detail if detail.isalnum() and len(detail) <= 64 else phase


async def make_children(
    ctx: OperatorContext,
    body: Mapping[str, Any],
    engine: EngineRef,
    spec: TradingEngineSpec,
    approval: ApprovalView,
    *,
    fresh: bool = False,
) -> Outcome:
    """Create or replace the engine's children for the spec; Events and metrics for what
    was done. Raises kopf.TemporaryError while an old pod terminates. `fresh`: the
    engine's first reconcile (its children are created without reading them first)."""
    try:
        outcome = await asyncio.get_running_loop().run_in_executor(
            RECONCILES,
            functools.partial(
                ensure_children,
                ctx.cluster,
                engine,
                spec,
                ctx.settings.image,
                _pod_approval(ctx, approval),
                fresh=fresh,
            ),
        )
    except ApiException as exc:
        ctx.metrics.errors.labels(handler="reconcile").inc()
        if exc.status == 403:
            # RBAC refused a call: the user must see it on the engine, not only in
            # the operator's log (kopf retries the handler meanwhile).
            events.warning(body, reasons.FORBIDDEN, _api_message(exc))
        raise
    except Exception:
        ctx.metrics.errors.labels(handler="reconcile").inc()
        raise
    if outcome.taken:
        return outcome
    ctx.taken.pop(engine.uid, None)
    for reason, message in outcome.events:
        events.normal(body, reason, message)
    for reason, message in outcome.warnings:
        events.warning(body, reason, message)
    if outcome.replaced is not None:
        ctx.metrics.pods_replaced.labels(reason=_replaced_reason(outcome.replaced)).inc()
    if outcome.waiting is not None:
        raise kopf.TemporaryError(outcome.waiting, delay=1)
    return outcome


async def _pod(ctx: OperatorContext, engine: EngineRef) -> dict[str, Any] | None:
    return await asyncio.to_thread(ctx.cluster.get, "pods", engine.namespace, engine.pod_name)


async def _watched_pod(
    ctx: OperatorContext, engine: EngineRef, pods: PodIndex | None
) -> Mapping[str, Any] | None:
    """The engine's pod from kopf's index of the watched pods (no API call), or read."""
    if pods is None:
        return await _pod(ctx, engine)
    return indexed_pod(pods, engine.namespace, engine.pod_name)


# -- steering pause and halt -------------------------------------------------------


def desired_command(spec: TradingEngineSpec, engine: EngineReport) -> Command | None:
    """The control command that brings the engine to what the spec asks, if any.

    Never `reset-halt`: a halt (a risk limit, drift, a lost approval) is lifted
    only by a user's explicit spec.halt true -> false (`reconcile`), never by
    this automatic reconciliation; and `resume` only unpauses.
    """
    if spec.halt and not engine.halted:
        return "halt"
    if spec.paused and not engine.paused:
        return "pause"
    if not spec.paused and engine.paused:
        return "resume"
    return None


async def _steer(
    ctx: OperatorContext,
    body: Mapping[str, Any],
    engine: EngineRef,
    revision: str,
    spec: TradingEngineSpec,
    approval: ApprovalView,
    *,
    reset: bool,
) -> None:
    """Tell the running engine the spec's pause/halt now, not at the next poll."""
    if not approval.approved:
        return  # no resume (nor anything else) for a live engine without a valid approval
    pod, ip = pod_view(await _pod(ctx, engine), revision, engine)
    if ip is None or not pod.ready:
        return  # a new engine reads paused/halt from its config; the timer re-asserts them
    try:
        report = await ctx.engines.report(ip)
        command = desired_command(spec, report)
        if command is None and reset and report.risk_state in ("HALTED", "REDUCING"):
            command = "reset-halt"  # the user set spec.halt true -> false: lift the halt
        if command is None:
            return
        try:
            await ctx.engines.send(engine, ip, command)
        except CommandRefused:
            if command != "reset-halt":
                raise
            # An engine image from before reset-halt (pods outlive an operator
            # upgrade): there `resume` is what lifts a halt, and the user asked
            # for exactly that.
            command = "resume"
            await ctx.engines.send(engine, ip, command)
        events.normal(body, command.capitalize(), f"engine told to {command}")
    except EngineUnreachable as exc:
        raise kopf.TemporaryError(f"could not reach the engine: {exc}", delay=2) from None


def reset_requested(old: Any, new: Any) -> str | None:
    """The new `spec.paper.resetRequest` when the user changed it to a value, else None.

    Only a change of a handled spec counts: a create, an operator restart (resume)
    and the timer never reset an account, and clearing the field resets nothing.
    """
    before = (dict(old or {}).get("paper") or {}).get("resetRequest")
    after = (dict(new or {}).get("paper") or {}).get("resetRequest")
    return str(after) if after and after != before else None


async def _reset_paper_account(
    ctx: OperatorContext,
    body: Mapping[str, Any],
    engine: EngineRef,
    revision: str,
    request: str,
) -> None:
    """Send `reset-paper-account` to the engine pod of this spec revision, once it is Ready.

    Until then kopf retries (the spec stays unhandled, so an operator restarted
    meanwhile still owes the reset); the engine answers only once it applied it.
    """
    pod, ip = pod_view(await _pod(ctx, engine), revision, engine)
    if ip is None or not pod.ready:
        raise kopf.TemporaryError(
            "waiting for the engine pod to be Ready to reset its paper account", delay=2
        )
    try:
        await ctx.engines.send(engine, ip, "reset-paper-account")
    except EngineUnreachable as exc:
        raise kopf.TemporaryError(f"could not reset the paper account: {exc}", delay=2) from None
    events.normal(
        body,
        reasons.PAPER_ACCOUNT_RESET,
        truncate_message(
            f"paper account reset to spec.paper.startingBalances (resetRequest {request!r}); "
            "orders, fills and equity history are kept"
        ),
    )


def _control_changed(old: Any, new: Any) -> bool:
    before, after = dict(old or {}), dict(new or {})
    return any(bool(before.get(k)) != bool(after.get(k)) for k in ("paused", "halt"))


# -- handlers ----------------------------------------------------------------------


async def reconcile(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    memo: kopf.Memo,
    reason: str | None = None,
    old: Any = None,
    new: Any = None,
    **kwargs: Any,
) -> None:
    """Create or replace the engine's children for the spec's generation; steer pause/halt."""
    ctx: OperatorContext = memo[CONTEXT]
    ctx.metrics.reconciles.labels(handler="reconcile").inc()
    engine = engine_ref(meta)
    index: ApprovalIndex | None = kwargs.get(INDEX)
    try:
        revision, model = ctx.parsed(meta, spec)
    except ConfigError as exc:
        await _invalid(ctx, body, engine, exc, handled=True)
        return  # nothing is created for an invalid spec; a new generation retries
    approval = approval_view(ctx, engine, model, index)
    # A new engine (never reconciled: no observedGeneration) has no children yet.
    fresh = reason == "create" and "observedGeneration" not in (body.get("status") or {})
    outcome = await make_children(ctx, body, engine, model, approval, fresh=fresh)
    if outcome.taken:
        await _name_taken(ctx, body, engine, model, index, outcome, handled=True)
        return  # no retry loop: the poll looks again, and heals once the name is free
    unsteered: kopf.TemporaryError | None = None
    if reason == "update" and _control_changed(old, new):
        reset = bool(dict(old or {}).get("halt")) and not bool(dict(new or {}).get("halt"))
        ctx.metrics.reconciles.labels(handler="control").inc()
        try:
            await _steer(ctx, body, engine, revision, model, approval, reset=reset)
        except kopf.TemporaryError as exc:
            ctx.metrics.errors.labels(handler="control").inc()
            unsteered = exc  # the status is written; the spec is handled once it is told
    request = reset_requested(old, new) if reason == "update" else None
    if unsteered is None and request is not None and model.mode is Mode.PAPER:
        ctx.metrics.reconciles.labels(handler="control").inc()
        try:
            await _reset_paper_account(ctx, body, engine, revision, request)
        except kopf.TemporaryError as exc:
            ctx.metrics.errors.labels(handler="control").inc()
            unsteered = exc
    pod_missing = False
    if outcome.blocked is not None:
        pod = await _pod(ctx, engine)
        pod_missing = pod is None or not owned_by(pod, engine)

    def desired(current: Mapping[str, Any]) -> StatusFields:
        fields: StatusFields = {"observedGeneration": engine.generation}
        if outcome.blocked is not None:
            # No pod until an approval is valid; the approval enforcement starts it then.
            if pod_missing:
                fields["phase"] = Phase.PENDING.value
                fields["message"] = truncate_message(outcome.blocked)
        elif current.get("phase") in (None, Phase.INVALID.value, Phase.PENDING.value):
            # What the poll would observe of the pod just made (there, not Ready yet):
            # written now, so that the poll finds nothing to write until it is Ready.
            obs = Observation(
                generation=engine.generation,
                pod=STARTING_POD,
                engine=None,
                poll_error=None,
                mode=model.mode.value,
                deleting=False,
                approval=approval.condition,
            )
            fields |= observed_status(obs, current, now_iso())
        if unsteered is None:
            fields |= handled_fields(body)
        return fields

    await _write(ctx, engine, desired, body)
    if unsteered is not None:
        raise unsteered


@counted("poll")
async def poll_engine(
    body: kopf.Body, meta: kopf.Meta, spec: kopf.Spec, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Observe the engine, write its status, and steer pause/halt toward the spec."""
    ctx: OperatorContext = memo[CONTEXT]
    if ctx.stopping:
        return
    status = body.get("status") or {}
    if status.get("phase") == Phase.INVALID.value and status.get("observedGeneration") == meta.get(
        "generation"
    ):
        return
    engine = engine_ref(meta)
    index: ApprovalIndex | None = kwargs.get(INDEX)
    try:
        revision, model = ctx.parsed(meta, spec)
    except ConfigError as exc:
        await _invalid(ctx, body, engine, exc, handled=False)
        return
    observed_at = time.monotonic()
    approval = approval_view(ctx, engine, model, index)
    found = await _watched_pod(ctx, engine, kwargs.get(POD_INDEX))
    if found is None and kwargs.get(POD_INDEX) is not None and "observedGeneration" in status:
        # Not in the index: gone, or made so recently that its watch event is not in
        # yet (a busy API server). Look before healing and writing Pending.
        found = await _pod(ctx, engine)
    pod, ip = pod_view(found, revision, engine)
    if not pod.exists and "observedGeneration" not in status:
        # The create handler has not finished yet: nothing to report (a status
        # written now would race the one it writes).
        return
    if (
        (not pod.exists or pod.failure)
        and status.get("observedGeneration") == engine.generation
        and approval.approved
    ):
        # The pod vanished (deleted by hand, node lost) or failed (evicted): heal at
        # once. A live engine without a valid approval gets no pod: its approval
        # enforcement starts it.
        ctx.metrics.reconciles.labels(handler="reconcile").inc()
        outcome = await make_children(ctx, body, engine, model, approval)
        if outcome.taken:
            await _name_taken(ctx, body, engine, model, index, outcome, handled=False)
            return  # the status says why no pod: nothing more to observe
    report: EngineReport | None = None
    error: str | None = None
    if ip is not None and pod.ready:
        report, error = await ctx.engines.observe(ip)
    if report is not None and ip is not None and approval.approved:
        # (without a valid approval the enforcement halts the engine; nothing resumes it)
        command = desired_command(model, report)
        if command is not None:
            try:
                report = with_reply(report, await ctx.engines.send(engine, ip, command))
                events.normal(body, command.capitalize(), f"engine told to {command}")
            except EngineUnreachable as exc:
                error = f"control {command} failed: {exc}"
    await _write_observation(
        ctx, body, engine, model, index, pod, report, error, observed_at=observed_at
    )


def _owning_engine(meta: Mapping[str, Any]) -> str | None:
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "TradingEngine" and owner.get("controller"):
            return str(owner["name"])
    return None


def _owning_uid(meta: Mapping[str, Any]) -> str:
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "TradingEngine" and owner.get("controller"):
            return str(owner.get("uid") or "")
    return ""


@counted("pod")
async def engine_pod_ready(
    body: kopf.Body, meta: kopf.Meta, type: str | None, memo: kopf.Memo, **kwargs: Any
) -> None:
    """An engine pod turned Ready: poll its engine now rather than at the next tick.

    Only the transition matters (an engine whose status already says Ready is
    left to its timer), and only status is written, so this adds no writes
    beyond the status change the timer would make a few seconds later.
    """
    if type == "DELETED":
        return
    name = _owning_engine(meta)
    if name is None or not is_ready(body.get("status") or {}):
        return
    ctx: OperatorContext = memo[CONTEXT]
    if ctx.stopping:
        return
    observed_at = time.monotonic()
    namespace = str(meta["namespace"])
    # The engine as the operator's own last status write left it, else read: the
    # writer's resourceVersion precondition catches a copy that has aged since.
    resource = ctx.status.last_written(_owning_uid(meta)) or await asyncio.to_thread(
        ctx.cluster.get_engine, namespace, name
    )
    if resource is None or resource["metadata"].get("deletionTimestamp"):
        return
    current = resource.get("status") or {}
    if is_ready(current) or current.get("phase") == Phase.INVALID.value:
        return
    try:
        revision, model = ctx.parsed(resource["metadata"], resource.get("spec") or {})
    except ConfigError:
        return  # the reconcile handler reports it
    engine = engine_ref(resource["metadata"])
    pod, ip = pod_view(body, revision, engine)
    if ip is None or not pod.ready:
        return  # a pod of an older spec revision (or of an engine gone meanwhile)
    report, _unreachable = await ctx.engines.observe(ip)
    if report is None:
        return  # not answering yet: the timer keeps trying
    await _write_observation(
        ctx, resource, engine, model, kwargs.get(INDEX), pod, report, None, observed_at=observed_at
    )


@counted("delete")
async def engine_deleted(body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> None:
    """Before the pod goes: halt the engine so it cancels open orders, and wait for that."""
    ctx: OperatorContext = memo[CONTEXT]
    engine = engine_ref(meta)
    ctx.metrics.observe_phase(engine.namespace, engine.name, None)
    try:
        await _halt_for_deletion(ctx, body, engine)
    finally:
        ctx.forget(engine)


async def _halt_for_deletion(ctx: OperatorContext, body: kopf.Body, engine: EngineRef) -> None:
    pod, ip = pod_view(await _pod(ctx, engine), None, engine)
    if ip is None or not pod.ready:
        events.normal(body, reasons.DELETED, "no running engine: nothing to cancel")
        return
    timeout = ctx.settings.delete_timeout
    deadline = time.monotonic() + timeout
    try:
        left = (await ctx.engines.send(engine, ip, "halt")).open_orders
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            left = len((await ctx.engines.report(ip)).open_orders)
    except EngineUnreachable as exc:
        events.warning(body, reasons.DELETE_UNCONFIRMED, f"could not halt the engine: {exc}")
        return
    if left:
        events.warning(
            body,
            reasons.DELETE_UNCONFIRMED,
            f"{left} open orders still open after {timeout:.0f}s",
        )
    else:
        events.normal(body, reasons.DELETED, "engine halted with no open orders")


def _index_pod(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return pod_index_entry(body)


def first_poll_delay(settings: OperatorSettings, body: Mapping[str, Any], **_: Any) -> float:
    """When an engine's timer first polls it: soon for an engine already running (the
    operator restarted: its status is looked at within the jitter), a whole interval
    later for a new one (nothing to see before its pod is Ready, and the pod's Ready
    event polls it then); jittered, so that engines are not polled in lockstep."""
    jitter = random.uniform(0, settings.poll_interval * settings.poll_jitter)
    if "observedGeneration" in (body.get("status") or {}):
        return jitter
    return settings.poll_interval + jitter


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    resource = (GROUP, VERSION, ENGINES)
    # One change handler: the spec's children and its pause/halt in one run, so kopf
    # keeps no per-handler progress, and the spec handled is written with the status.
    kopf.on.create(*resource, registry=registry, id="reconcile")(reconcile)
    kopf.on.resume(*resource, registry=registry, id="reconcile")(reconcile)
    kopf.on.update(*resource, registry=registry, id="reconcile", field="spec")(reconcile)
    # kopf.on.event keeps no state on the pods: watching them costs no writes.
    kopf.on.event("", "v1", "pods", registry=registry, labels={LABEL_COMPONENT: "engine"})(
        engine_pod_ready
    )
    kopf.index(
        "", "v1", "pods", registry=registry, id=POD_INDEX, labels={LABEL_COMPONENT: "engine"}
    )(_index_pod)
    kopf.timer(
        *resource,
        registry=registry,
        id="poll",
        interval=settings.poll_interval,
        initial_delay=functools.partial(first_poll_delay, settings),
    )(poll_engine)
    kopf.on.delete(*resource, registry=registry, id="delete")(engine_deleted)
