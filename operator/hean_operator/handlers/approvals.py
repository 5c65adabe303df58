"""kopf handlers for LiveApprovals: keep every live engine in step with the verdict on them.

All of it is kopf's own machinery:

- `liveapprovals_by_engine`, a kopf index of the approvals by the engine they name
  (kopf fills it from its watch before any handler runs, so a restarted operator
  never judges a running engine before its approvals are known);
- `enforce_approvals`, a kopf timer on each live TradingEngine, every second: it
  judges the engine again when what the verdict depends on has changed (its spec
  generation, its approvals, the trust policy) or when time alone changes it (an
  approval's `notBefore`, `expiresAt`, a key's `notAfter`: `next_change`), and
  does nothing otherwise. A failure is retried by kopf (`kopf.TemporaryError`);
- `approval_changed` and `engine_gone`, kopf event handlers (no state kept on the
  objects): the status of approvals that name no live engine (a paper engine's,
  or one that does not exist or is gone).

Each judgement (`enforce`) writes the approvals' status and the engine's
`LiveApproved` condition, refreshes the engine's approval ConfigMap, starts the
engine pod once an approval is valid, and tells a running engine whose approval
stopped being valid to halt (or reduce, per `spec.live.onApprovalLoss`), with an
Event on both resources, a log line and a metric. The engine checks the same
approval itself from the mounted files, so neither side alone enables live trading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf

from hean_contract.commands import Command
from hean_contract.errors import ConfigError
from hean_contract.report import EngineReport
from hean_contract.spec import Mode, RiskPolicy, TradingEngineSpec
from hean_contract.status import ConditionType, Phase
from hean_engine.model.timefmt import datetime_to_iso
from hean_operator.api import reasons
from hean_operator.api.messages import truncate_message
from hean_operator.api.resources import APPROVALS, ENGINES, GROUP, VERSION
from hean_operator.approvals.evaluate import (
    TRUST_POLICY_INVALID,
    ApprovalDecision,
    approval_status,
    condition_fields,
    orphan_status,
    status_changed,
)
from hean_operator.approvals.index import (
    INDEX,
    approvals_of,
    fingerprint,
    index_entry,
)
from hean_operator.approvals.trust import mounted_files, verdict
from hean_operator.builders.common import EngineRef, owned_by
from hean_operator.children.ensure import (
    NameTaken,
    PodApproval,
    ensure_approval_config,
    ensure_children,
    taken_message,
)
from hean_operator.context import CONTEXT, OperatorContext, engine_ref
from hean_operator.engines.api import EngineUnreachable
from hean_operator.engines.pods import pod_view
from hean_operator.kube import events
from hean_operator.status.writer import StatusFields, condition_status

log = logging.getLogger("hean.operator.approvals")

RECHECK_INTERVAL = 1.0  # seconds between a live engine's checks (a halt comes this soon)
RECORD = "approvals"  # the per-engine record's key in kopf's per-object memo


@dataclass
class ApprovalRecord:
    """What the last judgement of one engine was made from, and what it found."""

    inputs: tuple[Any, ...] | None = None  # (generation, approvals, trust version)
    next_change: datetime | None = None
    enforced: bool | None = None  # the verdict's validity: Events say when it changes
    reason: str | None = None  # the last invalid verdict's reason


def _is_live(spec: Mapping[str, Any] | None, **_: Any) -> bool:
    return str((spec or {}).get("mode") or "") == Mode.LIVE.value


def _loss_command(spec: TradingEngineSpec) -> Command:
    return "reduce" if spec.live.on_approval_loss is RiskPolicy.REDUCE else "halt"


def _complies(report: EngineReport, command: Command) -> bool:
    """Whether the engine already does what `command` asks (never resume it from here)."""
    return report.halted or (command == "reduce" and report.risk_state == "REDUCING")


# -- the index ---------------------------------------------------------------------


def liveapprovals_by_engine(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """kopf's index: each LiveApproval under `(namespace, spec.engineRef.name)`."""
    return index_entry(body)


# -- judging one engine ------------------------------------------------------------


async def _write_statuses(
    ctx: OperatorContext, namespace: str, decision: ApprovalDecision, now: datetime
) -> None:
    for item in decision.evaluated:
        desired = approval_status(item, now)
        if status_changed(item.manifest.get("status"), desired):
            await asyncio.to_thread(
                ctx.cluster.patch_approval_status, namespace, item.name, desired
            )


def _taken(
    ctx: OperatorContext, resource: Mapping[str, Any], engine: EngineRef, taken: list[str]
) -> None:
    """A child's name is held by an object the engine does not own: say so, once."""
    message = taken_message(taken)
    if ctx.taken.get(engine.uid) != message:
        ctx.taken[engine.uid] = message
        events.warning(resource, reasons.NAME_TAKEN, truncate_message(message))


async def enforce(
    ctx: OperatorContext,
    resource: Mapping[str, Any],
    engine: EngineRef,
    spec: TradingEngineSpec,
    decision: ApprovalDecision,
    record: ApprovalRecord,
) -> None:
    """Bring the engine, its approvals' status and its LiveApproved condition in step
    with `decision`. Raises kopf.TemporaryError when the engine could not be told."""
    ctx.metrics.reconciles.labels(handler="approval").inc()
    try:
        await _enforce(ctx, resource, engine, spec, decision, record)
    except kopf.TemporaryError:
        raise
    except Exception:
        ctx.metrics.errors.labels(handler="approval").inc()
        raise


async def _enforce(
    ctx: OperatorContext,
    resource: Mapping[str, Any],
    engine: EngineRef,
    spec: TradingEngineSpec,
    decision: ApprovalDecision,
    record: ApprovalRecord,
) -> None:
    namespace, name = engine.namespace, engine.name
    now = ctx.now()
    await _write_statuses(ctx, namespace, decision, now)
    if spec.mode is not Mode.LIVE:
        ctx.metrics.observe_expiry(namespace, name, None, None)
        return
    result = "valid" if decision.valid else "invalid"
    ctx.metrics.approval_evaluations.labels(result=result, reason=decision.reason).inc()
    chosen = decision.chosen
    expires = chosen.verdict.expires_at if chosen is not None and decision.valid else None
    ctx.metrics.observe_expiry(
        namespace,
        name,
        chosen.name if expires is not None and chosen is not None else None,
        expires.timestamp() if expires is not None else None,
    )
    approval = PodApproval(
        approved=decision.valid,
        reason=decision.reason,
        message=decision.message,
        data=mounted_files(decision, ctx.trust),
    )
    taken = False
    try:
        await asyncio.to_thread(ensure_approval_config, ctx.cluster, engine, approval.data)
    except NameTaken as exc:  # someone else's ConfigMap: left as it is, and no pod
        taken = True
        _taken(ctx, resource, engine, exc.taken)
    pod_doc = await asyncio.to_thread(ctx.cluster.get, "pods", namespace, engine.pod_name)
    if pod_doc is not None and not owned_by(pod_doc, engine):
        pod_doc = None  # a pod of that name the engine does not own: not its pod
    before = record.enforced
    record.enforced = decision.valid
    if decision.valid:
        await _write_condition(ctx, resource, engine, decision, pod_doc is not None)
        if before is not True:
            events.normal(resource, reasons.APPROVED, truncate_message(decision.message))
        if pod_doc is None and not taken:
            await _start(ctx, resource, engine, spec, approval)
        return
    # Stop the trading first, then report: the halt must not wait for a status write.
    told = True
    if pod_doc is not None:
        told = await _stop_trading(ctx, resource, engine, spec, decision, pod_doc)
    await _write_condition(ctx, resource, engine, decision, pod_doc is not None)
    if before is not False or (
        decision.reason == TRUST_POLICY_INVALID and record.reason != TRUST_POLICY_INVALID
    ):
        events.warning(
            resource,
            reasons.NOT_APPROVED,
            truncate_message(f"{decision.reason}: {decision.message}"),
        )
    record.reason = decision.reason
    if not told:
        raise kopf.TemporaryError(
            f"could not tell the engine to stop trading ({decision.reason})", delay=2
        )


async def _write_condition(
    ctx: OperatorContext,
    resource: Mapping[str, Any],
    engine: EngineRef,
    decision: ApprovalDecision,
    has_pod: bool,
) -> None:
    """LiveApproved, set by type; Pending while no pod may start."""
    now = datetime_to_iso(ctx.now())

    def desired(current: Mapping[str, Any]) -> StatusFields:
        fields = condition_status(
            ConditionType.LIVE_APPROVED, condition_fields(decision), engine.generation, current, now
        )
        if not decision.valid and not has_pod and current.get("phase") != Phase.INVALID.value:
            fields["phase"] = Phase.PENDING.value
            fields["message"] = truncate_message(
                f"waiting for a valid LiveApproval: {decision.message}"
            )
        return fields

    await asyncio.to_thread(ctx.status.write, engine, desired, resource=resource)


async def _start(
    ctx: OperatorContext,
    resource: Mapping[str, Any],
    engine: EngineRef,
    spec: TradingEngineSpec,
    approval: PodApproval,
) -> None:
    """A valid approval arrived for an engine that has no pod: start it now."""
    outcome = await asyncio.to_thread(
        ensure_children, ctx.cluster, engine, spec, ctx.settings.image, approval
    )
    if outcome.taken:
        _taken(ctx, resource, engine, outcome.taken)
        return
    for reason, message in outcome.events:
        events.normal(resource, reason, message)
    for reason, message in outcome.warnings:
        events.warning(resource, reason, message)


async def _stop_trading(
    ctx: OperatorContext,
    resource: Mapping[str, Any],
    engine: EngineRef,
    spec: TradingEngineSpec,
    decision: ApprovalDecision,
    pod_doc: Mapping[str, Any],
) -> bool:
    """The engine runs without a valid approval: tell it to halt (or reduce) now.

    False when the engine could not be told (kopf tries again shortly); the
    engine checks its approval itself meanwhile, from the updated ConfigMap.
    """
    # Whatever spec revision the pod runs: any engine pod may be trading.
    _, ip = pod_view(pod_doc, None, engine)
    if ip is None:
        return True  # not scheduled yet: it checks its approval itself when it starts
    command = _loss_command(spec)
    try:
        if _complies(await ctx.engines.report(ip), command):
            return True
        await ctx.engines.send(engine, ip, command)
    except EngineUnreachable as exc:
        log.warning("could not tell %s/%s to %s: %s", engine.namespace, engine.name, command, exc)
        return False
    chosen = decision.chosen
    approval = chosen.name if chosen is not None else ""
    # who signed the approval that was lost (its verdict counts none of them now)
    signatures = (chosen.manifest.get("spec") or {}).get("signatures") if chosen else None
    keys = sorted({str(s.get("keyId")) for s in signatures or [] if isinstance(s, dict)})
    message = f"LiveApproval no longer valid ({decision.reason}): engine told to {command}"
    ctx.metrics.approval_enforcements.labels(command=command, reason=decision.reason).inc()
    events.warning(
        resource,
        reasons.APPROVAL_LOST,
        truncate_message(f"{message}. {decision.message}"),
    )
    if chosen is not None:
        events.warning(
            dict(chosen.manifest),
            reasons.APPROVAL_LOST,
            truncate_message(f"engine {engine.name} told to {command}: {decision.reason}"),
        )
    log.warning(
        "%s",
        message,
        extra={
            # k8s_ref: kopf's JSON formatter writes it as "object", as for handlers' lines
            "k8s_ref": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TradingEngine",
                "namespace": engine.namespace,
                "name": engine.name,
                "uid": engine.uid,
            },
            "engine": engine.name,
            "namespace": engine.namespace,
            "approval": approval,
            "key_ids": keys,
            "reason": decision.reason,
            "command": command,
        },
    )
    return True


# -- handlers ----------------------------------------------------------------------


async def enforce_approvals(
    body: kopf.Body, meta: kopf.Meta, spec: kopf.Spec, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A live engine's timer: judge it again when its inputs or the time changed the verdict."""
    ctx: OperatorContext = memo[CONTEXT]
    if ctx.stopping or meta.get("deletionTimestamp"):
        return
    engine = engine_ref(meta)
    try:
        _, model = ctx.parsed(meta, spec)
    except ConfigError:
        return  # Invalid: the reconcile reports it, and nothing runs
    approvals = approvals_of(kwargs.get(INDEX), (engine.namespace, engine.name))
    record: ApprovalRecord = memo.setdefault(RECORD, ApprovalRecord())
    now = ctx.now()
    inputs = (engine.generation, fingerprint(approvals), ctx.trust_version)
    if record.inputs == inputs and (record.next_change is None or now < record.next_change):
        return
    decision = verdict(
        approvals,
        ctx.trust,
        namespace=engine.namespace,
        engine=engine.name,
        engine_uid=engine.uid,
        spec=model,
        now=now,
    )
    await enforce(ctx, body, engine, model, decision, record)
    record.inputs, record.next_change = inputs, decision.next_change


async def approval_changed(
    body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any
) -> None:
    """A LiveApproval appeared or changed: its status, when no live engine's timer judges it."""
    if type == "DELETED":
        return  # its engine's next judgement goes without it
    entry = index_entry(body)
    if not entry:
        return  # no engineRef: the CRD requires one
    ctx: OperatorContext = memo[CONTEXT]
    ((namespace, name),) = entry
    resource = await asyncio.to_thread(ctx.cluster.get_engine, namespace, name)
    now = ctx.now()
    if resource is None or resource["metadata"].get("deletionTimestamp"):
        approval = str(body.metadata["name"])
        desired = orphan_status(name, now)
        if status_changed(body.get("status"), desired):
            await asyncio.to_thread(ctx.cluster.patch_approval_status, namespace, approval, desired)
        return
    if _is_live(resource.get("spec")):
        return  # its engine's timer judges it within a second
    try:
        _, model = ctx.parsed(resource["metadata"], resource.get("spec") or {})
    except ConfigError:
        return
    engine = engine_ref(resource["metadata"])
    decision = verdict(
        approvals_of(kwargs.get(INDEX), (namespace, name)),
        ctx.trust,
        namespace=namespace,
        engine=name,
        engine_uid=engine.uid,
        spec=model,
        now=now,
    )
    await _write_statuses(ctx, namespace, decision, now)


async def engine_gone(body: kopf.Body, type: str | None, memo: kopf.Memo, **kwargs: Any) -> None:
    """A TradingEngine is gone: its approvals say so, and its expiry series goes."""
    if type != "DELETED":
        return
    ctx: OperatorContext = memo[CONTEXT]
    namespace, name = str(body.metadata["namespace"]), str(body.metadata["name"])
    ctx.metrics.observe_expiry(namespace, name, None, None)
    now = ctx.now()
    for manifest in approvals_of(kwargs.get(INDEX), (namespace, name)):
        desired = orphan_status(name, now)
        if status_changed(manifest.get("status"), desired):
            approval = str(manifest["metadata"]["name"])
            await asyncio.to_thread(ctx.cluster.patch_approval_status, namespace, approval, desired)


def register(registry: kopf.OperatorRegistry) -> None:
    approvals = (GROUP, VERSION, APPROVALS)
    kopf.index(*approvals, registry=registry, id=INDEX)(liveapprovals_by_engine)
    # kopf.on.event keeps no state on the objects: watching them costs no writes
    # (their status is written by a judgement, only when it changes).
    kopf.on.event(*approvals, registry=registry, id="approval-status")(approval_changed)
    engines = (GROUP, VERSION, ENGINES)
    kopf.on.event(*engines, registry=registry, id="approvals-orphaned")(engine_gone)
    kopf.timer(
        *engines,
        registry=registry,
        id="approvals",
        interval=RECHECK_INTERVAL,
        when=_is_live,
    )(enforce_approvals)
