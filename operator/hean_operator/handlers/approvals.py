"""LiveApproval enforcement: keep every live engine in step with the verdict on its approvals.

The verdict on an engine's approvals is evaluated again whenever one of its inputs
changes:

- the engine (create, spec change, operator start: `gate()` from the reconcile),
- its approvals (the LiveApprovals of its namespace whose `spec.engineRef.name`
  names it: `approval_event`),
- the trust ConfigMap (`trust_changed`: every engine),
- time alone (`notBefore`, `expiresAt`, a key's `notAfter`): one in-memory timer
  per engine, set to the verdict's `next_change` on an injected clock.

Each evaluation (`enforce`) writes each approval's status and the engine's
`LiveApproved` condition, refreshes the engine's approval ConfigMap, starts the
engine pod once an approval is valid, and tells a running engine whose approval
stopped being valid to halt (or reduce, per `spec.live.onApprovalLoss`), with an
Event on both resources, a log line and a metric. The engine checks the same
approval itself from the mounted files, so neither side alone enables live trading.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from hean_contract.spec import Mode, TradingEngineSpec, parse_spec
from hean_contract.status import ConditionType, Phase
from hean_engine.approval.trust import TrustPolicy, trust_from_files
from hean_engine.model.errors import ConfigError
from hean_engine.model.timefmt import datetime_to_iso
from hean_operator.api.messages import truncate_message
from hean_operator.api.resources import APPROVALS, GROUP, VERSION
from hean_operator.approvals.evaluate import (
    TRUST_POLICY_INVALID,
    Decision,
    approval_status,
    condition_fields,
    decide,
    mounted_manifest,
    orphan_status,
    status_changed,
)
from hean_operator.approvals.scheduler import Clock, Scheduler
from hean_operator.builders.approval import approval_data
from hean_operator.builders.common import EngineRef, owned_by
from hean_operator.engines.client import Command, EngineUnreachable
from hean_operator.engines.status import with_condition
from hean_operator.handlers.engines import Runtime, _pod_view, _send
from hean_operator.reconcile.children import (
    ApprovalGate,
    NameTaken,
    ensure_approval_config,
    ensure_children,
    taken_message,
)

log = logging.getLogger("hean.operator.approvals")

EngineKey = tuple[str, str]  # (namespace, engine name)


@dataclass(frozen=True)
class TrustState:
    """The trust ConfigMap as last read: its files and the policy they make (or why none)."""

    files: Mapping[str, str]
    policy: TrustPolicy | None
    problem: str | None = None
    # The ConfigMap exists but is refused (a key twice, an unknown key id in the
    # policy...): reported as its own reason, not as "no trust policy".
    invalid: bool = False


def trust_state(files: Mapping[str, str] | None, configured: bool = True) -> TrustState:
    if not configured:
        return TrustState({}, None, "no trust ConfigMap configured (--trust-configmap)")
    if files is None:
        return TrustState({}, None, "the trust ConfigMap does not exist")
    try:
        return TrustState(dict(files), trust_from_files(files))
    except (ConfigError, ValueError) as exc:
        problems = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
        return TrustState(
            dict(files), None, f"the trust ConfigMap is invalid: {problems}", invalid=True
        )


def _engine_name(manifest: Mapping[str, Any]) -> str:
    return str(((manifest.get("spec") or {}).get("engineRef") or {}).get("name") or "")


def _loss_command(spec: Mapping[str, Any]) -> Command:
    on_loss = str((spec.get("live") or {}).get("onApprovalLoss") or "halt")
    return "reduce" if on_loss == "reduce" else "halt"


def _complies(report: Mapping[str, Any], command: Command) -> bool:
    """Whether the engine already does what `command` asks (never resume it from here)."""
    state = report.get("risk_state")
    return state == "HALTED" or (command == "reduce" and state == "REDUCING")


EventSink = Callable[[Mapping[str, Any], str, str, str], None]  # (object, type, reason, message)


class ApprovalEnforcer:
    def __init__(
        self,
        runtime: Runtime,
        clock: Clock,
        trust: TrustState,
        events: EventSink | None = None,
    ) -> None:
        self.runtime = runtime
        # Events go straight to the API (not kopf.info): evaluations also run from
        # timers and the trust watch, outside the handler context kopf's poster needs.
        self._sink: EventSink = events or runtime.cluster.create_event
        self.clock = clock
        self.trust = trust
        self.scheduler = Scheduler(clock, self._due)
        self._approvals: dict[EngineKey, dict[str, dict[str, Any]]] = {}
        self._targets: dict[tuple[str, str], str] = {}  # (namespace, approval) -> engine
        self._decisions: dict[EngineKey, Decision] = {}
        # Validity as of the last full evaluation: Events say when it changes. (The
        # decisions above also move with the reconcile's and the poll's checks.)
        self._enforced: dict[EngineKey, bool] = {}
        self._reasons: dict[EngineKey, str] = {}  # the last reason, for the Events
        self._locks: dict[EngineKey, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: contextvars.Context | None = None

    # -- wiring ----------------------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop, context: contextvars.Context) -> None:
        """Run evaluations on `loop`, in `context` (kopf's, so Events can be posted)."""
        self._loop = loop
        self._context = context

    def request(self, key: EngineKey) -> None:
        """Evaluate `key` soon; safe from any thread."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._spawn, key, context=self._context)

    def _spawn(self, key: EngineKey) -> None:
        task = asyncio.create_task(self._enforce_logged(key), name=f"approval-{key[0]}/{key[1]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _due(self, key: Hashable) -> None:
        assert isinstance(key, tuple)
        namespace, name = key
        self._spawn((str(namespace), str(name)))

    async def drain(self) -> None:
        """Wait for the evaluations in flight, and those they start (tests; shutdown)."""
        await asyncio.sleep(0)  # requests made with call_soon_threadsafe spawn first
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await asyncio.sleep(0)

    def engines(self) -> set[EngineKey]:
        return set(self._decisions) | set(self._approvals)

    # -- inputs ----------------------------------------------------------------------
    def index(self, manifest: Mapping[str, Any], deleted: bool = False) -> set[EngineKey]:
        """Record (or forget) one LiveApproval; returns the engines whose verdict may change."""
        meta = manifest.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        target = _engine_name(manifest)
        previous = self._targets.pop((namespace, name), None)
        affected: set[EngineKey] = set()
        before: dict[str, Any] | None = None
        if previous is not None:
            before = self._approvals.get((namespace, previous), {}).pop(name, None)
            if not self._approvals.get((namespace, previous), True):
                del self._approvals[(namespace, previous)]
            affected.add((namespace, previous))
        if not deleted and target:
            self._targets[(namespace, name)] = target
            self._approvals.setdefault((namespace, target), {})[name] = dict(manifest)
            if (
                before is not None
                and previous == target
                and before.get("spec") == manifest.get("spec")
            ):
                return set()  # only its status changed (our own write): nothing to evaluate
            affected.add((namespace, target))
        return affected

    def approvals_of(self, key: EngineKey) -> list[dict[str, Any]]:
        return list(self._approvals.get(key, {}).values())

    def set_trust(self, trust: TrustState) -> None:
        self.trust = trust
        if trust.problem:
            log.warning("trust policy: %s", trust.problem)
        for key in self.engines():
            self.request(key)

    # -- the verdict -----------------------------------------------------------------
    def decide(self, namespace: str, name: str, uid: str, spec: TradingEngineSpec) -> Decision:
        decision = decide(
            self.approvals_of((namespace, name)),
            self.trust.policy,
            namespace=namespace,
            engine=name,
            engine_uid=uid,
            spec=spec,
            now=self.clock.now(),
        )
        if self.trust.policy is None and (decision.chosen is not None or self.trust.invalid):
            decision = Decision(
                namespace,
                name,
                decision.chosen,
                decision.evaluated,
                TRUST_POLICY_INVALID if self.trust.invalid else decision.reason,
                f"{self.trust.problem}: no approval can be valid",
            )
        self._decisions[(namespace, name)] = decision
        return decision

    def gate(self, engine: EngineRef, spec: TradingEngineSpec) -> ApprovalGate:
        """The verdict as the reconcile needs it (called from kopf's worker threads).

        It also asks for a full evaluation on the loop: statuses, the condition,
        the timer.
        """
        decision = self.decide(engine.namespace, engine.name, engine.uid, spec)
        self.request((engine.namespace, engine.name))
        return self._gate(decision)

    def _gate(self, decision: Decision) -> ApprovalGate:
        chosen = mounted_manifest(decision.chosen) if decision.chosen is not None else None
        return ApprovalGate(
            approved=decision.valid,
            reason=decision.reason,
            message=decision.message,
            data=approval_data(chosen, self.trust.files),
        )

    def condition(self, engine: EngineRef, spec: TradingEngineSpec) -> Decision:
        """The verdict for the status poll: evaluated afresh (a timer may be late).

        A verdict that differs from the last one asks for a full evaluation.
        """
        before = self._decisions.get((engine.namespace, engine.name))
        decision = self.decide(engine.namespace, engine.name, engine.uid, spec)
        if before is None or (before.valid, before.reason) != (decision.valid, decision.reason):
            self.request((engine.namespace, engine.name))
        return decision

    async def _event(
        self, resource: Mapping[str, Any], kind: str, reason: str, message: str
    ) -> None:
        try:
            await asyncio.to_thread(self._sink, resource, kind, reason, truncate_message(message))
        except Exception as exc:  # an Event is a report: never a reason to stop enforcing
            log.warning("event %s not posted: %s", reason, type(exc).__name__)

    # -- enforcement -----------------------------------------------------------------
    async def _enforce_logged(self, key: EngineKey) -> None:
        try:
            await self.enforce(key)
        except Exception:
            self.runtime.metrics.errors.labels(handler="approval").inc()
            log.exception("evaluating the LiveApprovals of %s/%s failed", *key)
            if self._loop is not None:  # try again shortly: the verdict must not go stale
                self._loop.call_later(2.0, self._spawn, key, context=self._context)

    async def enforce(self, key: EngineKey) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            await self._enforce(key)

    async def _enforce(self, key: EngineKey) -> None:
        namespace, name = key
        runtime = self.runtime
        runtime.metrics.reconciles.labels(handler="approval").inc()
        resource = await asyncio.to_thread(runtime.cluster.get_engine, namespace, name)
        if resource is None or resource["metadata"].get("deletionTimestamp"):
            await self._orphaned(key)
            return
        spec_doc = dict(resource.get("spec") or {})
        try:
            spec = parse_spec(spec_doc)
        except ConfigError:
            self.scheduler.cancel(key)
            return  # Invalid: the reconcile reports it, and nothing runs
        meta = resource["metadata"]
        engine = EngineRef(
            name=name,
            namespace=namespace,
            uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 1),
        )
        decision = self.decide(namespace, name, engine.uid, spec)
        self.scheduler.schedule(key, decision.next_change)
        now = self.clock.now()
        for item in decision.evaluated:
            desired = approval_status(item, now)
            if status_changed(item.manifest.get("status"), desired):
                await asyncio.to_thread(
                    runtime.cluster.patch_approval_status, namespace, item.name, desired
                )
                stored = self._approvals.get(key, {}).get(item.name)
                if stored is not None:
                    stored["status"] = desired
        if spec.mode is not Mode.LIVE:
            runtime.metrics.observe_expiry(namespace, name, None, None)
            return
        result = "valid" if decision.valid else "invalid"
        runtime.metrics.approval_evaluations.labels(result=result, reason=decision.reason).inc()
        chosen = decision.chosen
        expires = chosen.verdict.expires_at if chosen is not None and decision.valid else None
        runtime.metrics.observe_expiry(
            namespace,
            name,
            chosen.name if expires is not None and chosen is not None else None,
            expires.timestamp() if expires is not None else None,
        )
        gate = self._gate(decision)
        taken = False
        try:
            await asyncio.to_thread(ensure_approval_config, runtime.cluster, engine, gate.data)
        except NameTaken as exc:  # someone else's ConfigMap: left as it is, and no pod
            taken = True
            await self._taken(resource, engine, exc.taken)
        pod_doc = await asyncio.to_thread(runtime.cluster.get, "pods", namespace, engine.pod_name)
        if pod_doc is not None and not owned_by(pod_doc, engine):
            pod_doc = None  # a pod of that name the engine does not own: not its pod
        before = self._enforced.get(key)
        self._enforced[key] = decision.valid
        if decision.valid:
            await self._write_condition(resource, engine, decision, pod_doc is not None)
            if before is not True:
                await self._event(resource, "Normal", "Approved", decision.message)
            if pod_doc is None and not taken:
                await self._start(resource, engine, spec, gate)
            return
        # Stop the trading first, then report: the halt must not wait for a status write.
        if pod_doc is not None:
            await self._stop_trading(resource, engine, decision, pod_doc)
        await self._write_condition(resource, engine, decision, pod_doc is not None)
        if before is not False or (
            decision.reason == TRUST_POLICY_INVALID
            and self._reasons.get(key) != TRUST_POLICY_INVALID
        ):
            await self._event(
                resource, "Warning", "NotApproved", f"{decision.reason}: {decision.message}"
            )
        self._reasons[key] = decision.reason

    async def _taken(self, resource: dict[str, Any], engine: EngineRef, taken: list[str]) -> None:
        """A child's name is held by an object the engine does not own: say so, once."""
        message = taken_message(taken)
        if self.runtime.taken.get(engine.uid) != message:
            self.runtime.taken[engine.uid] = message
            await self._event(resource, "Warning", "NameTaken", message)

    async def _orphaned(self, key: EngineKey) -> None:
        """The engine is gone: its approvals say so, and its timer and series go."""
        namespace, name = key
        self.scheduler.cancel(key)
        self._decisions.pop(key, None)
        self._enforced.pop(key, None)
        self._reasons.pop(key, None)
        self.runtime.metrics.observe_expiry(namespace, name, None, None)
        now = self.clock.now()
        for manifest in self.approvals_of(key):
            desired = orphan_status(name, now)
            if status_changed(manifest.get("status"), desired):
                approval = str(manifest["metadata"]["name"])
                await asyncio.to_thread(
                    self.runtime.cluster.patch_approval_status, namespace, approval, desired
                )
                manifest["status"] = desired

    async def _write_condition(
        self, resource: dict[str, Any], engine: EngineRef, decision: Decision, has_pod: bool
    ) -> None:
        status = dict(resource.get("status") or {})
        fields = condition_fields(decision)
        current = {c.get("type"): c for c in status.get("conditions") or []}
        mine = current.get(ConditionType.LIVE_APPROVED.value) or {}
        patch: dict[str, Any] = {}
        if (mine.get("status"), mine.get("reason"), mine.get("message")) != (
            fields[0].value,
            fields[1],
            truncate_message(fields[2]),
        ):
            patch["conditions"] = with_condition(
                list(status.get("conditions") or []),
                ConditionType.LIVE_APPROVED,
                fields,
                engine.generation,
                datetime_to_iso(self.clock.now()),
            )
        if not decision.valid and not has_pod and status.get("phase") != Phase.INVALID.value:
            message = truncate_message(f"waiting for a valid LiveApproval: {decision.message}")
            if status.get("phase") != Phase.PENDING.value or status.get("message") != message:
                patch["phase"] = Phase.PENDING.value
                patch["message"] = message
        if patch:
            await asyncio.to_thread(
                self.runtime.cluster.patch_engine_status, engine.namespace, engine.name, patch
            )

    async def _start(
        self,
        resource: dict[str, Any],
        engine: EngineRef,
        spec: TradingEngineSpec,
        gate: ApprovalGate,
    ) -> None:
        """A valid approval arrived for an engine that has no pod: start it now."""
        runtime = self.runtime
        outcome = await asyncio.to_thread(
            ensure_children, runtime.cluster, engine, spec, runtime.settings.image, gate
        )
        if outcome.taken:
            await self._taken(resource, engine, outcome.taken)
            return
        for reason, message in outcome.events:
            await self._event(resource, "Normal", reason, message)
        for reason, message in outcome.warnings:
            await self._event(resource, "Warning", reason, message)

    async def _stop_trading(
        self,
        resource: dict[str, Any],
        engine: EngineRef,
        decision: Decision,
        pod_doc: dict[str, Any],
    ) -> None:
        """The engine runs without a valid approval: tell it to halt (or reduce) now."""
        runtime = self.runtime
        # Whatever spec revision the pod runs: any engine pod may be trading.
        _, ip = _pod_view(pod_doc, None, engine)
        if ip is None:
            return  # not scheduled yet: it checks its approval itself when it starts
        base = f"http://{ip}:{runtime.settings.engine_port}"
        command = _loss_command(resource.get("spec") or {})
        try:
            report = await runtime.client.status(base)
            if _complies(report, command):
                return
            await _send(runtime, engine, base, command)
        except EngineUnreachable as exc:
            # Not answering: the engine checks its approval itself, from the updated
            # ConfigMap; the next evaluation (poll, timer) tries again.
            log.warning(
                "could not tell %s/%s to %s: %s", engine.namespace, engine.name, command, exc
            )
            return
        chosen = decision.chosen
        approval = chosen.name if chosen is not None else ""
        # who signed the approval that was lost (its verdict counts none of them now)
        signatures = (chosen.manifest.get("spec") or {}).get("signatures") if chosen else None
        keys = sorted({str(s.get("keyId")) for s in signatures or [] if isinstance(s, dict)})
        message = f"LiveApproval no longer valid ({decision.reason}): engine told to {command}"
        runtime.metrics.approval_enforcements.labels(command=command, reason=decision.reason).inc()
        detail = truncate_message(f"{message}. {decision.message}")
        await self._event(resource, "Warning", "ApprovalLost", detail)
        if chosen is not None:
            body = dict(chosen.manifest)
            body.setdefault("apiVersion", "hean.io/v1alpha1")
            body.setdefault("kind", "LiveApproval")
            await self._event(
                body,
                "Warning",
                "ApprovalLost",
                f"engine {engine.name} told to {command}: {decision.reason}",
            )
        log.warning(
            "%s",
            message,
            extra={
                # k8s_ref: kopf's JSON formatter writes it as "object", as for handlers' lines
                "k8s_ref": {
                    "apiVersion": "hean.io/v1alpha1",
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


async def approval_event(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A LiveApproval appeared, changed or went: evaluate the engines it names."""
    runtime: Runtime = memo["runtime"]
    enforcer = runtime.approvals
    if enforcer is None:
        return
    manifest = {
        "apiVersion": body.get("apiVersion", "hean.io/v1alpha1"),
        "kind": body.get("kind", "LiveApproval"),
        "metadata": dict(body.metadata),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
    for key in enforcer.index(manifest, deleted=type == "DELETED"):
        enforcer.request(key)


def register(registry: kopf.OperatorRegistry) -> None:
    # kopf.on.event keeps no state on the approvals: watching them costs no writes
    # (their status is written by the evaluation, only when it changes).
    kopf.on.event(GROUP, VERSION, APPROVALS, registry=registry)(approval_event)
