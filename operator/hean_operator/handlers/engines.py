"""kopf handlers for TradingEngine: thin wrappers over the reconcile functions.

- create / update of the spec / resume at operator start: `reconcile_children`
- `spec.paused` and `spec.halt`: sent to the engine through its control API
- a timer per engine: poll `/status`, write `status`, re-assert pause/halt,
  and heal missing children
- delete (with kopf's finalizer): halt the engine so that it cancels its
  open orders, wait (bounded) for that, and record the outcome as an Event

Handlers are registered on an explicit registry by `register()`, so that the
poll interval and other settings come from the command line.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import kopf
from kubernetes.client.exceptions import ApiException

from hean_contract.spec import Mode, TradingEngineSpec, parse_spec
from hean_contract.status import Condition, ConditionStatus, ConditionType, Phase
from hean_engine.model.errors import ConfigError
from hean_engine.model.timefmt import now_iso
from hean_operator.api.messages import truncate_message
from hean_operator.api.resources import ENGINES, GROUP, VERSION
from hean_operator.approvals.evaluate import condition_fields
from hean_operator.builders.common import (
    ANNOTATION_REVISION,
    CONTROL_TOKEN_KEY,
    LABEL_COMPONENT,
    EngineRef,
    name_problems,
    owned_by,
)
from hean_operator.builders.config import spec_revision
from hean_operator.engines.client import (
    Command,
    CommandRefused,
    EngineClient,
    EngineUnreachable,
    Unauthorized,
)
from hean_operator.engines.status import (
    Observation,
    PodView,
    derive_conditions,
    derive_phase,
    reconcile_status,
)
from hean_operator.kube.cluster import Cluster
from hean_operator.metrics import OperatorMetrics
from hean_operator.reconcile.children import ensure_children, failure_reason, taken_message
from hean_operator.settings import OperatorSettings

if TYPE_CHECKING:
    from hean_operator.handlers.approvals import ApprovalEnforcer

# The Event reason when RBAC refuses one of the operator's calls.
FORBIDDEN = "Forbidden"


@dataclass
class Runtime:
    """What handlers share; kept in kopf's memo."""

    cluster: Cluster
    settings: OperatorSettings
    metrics: OperatorMetrics
    session: aiohttp.ClientSession | None = None
    tokens: dict[str, str] = field(default_factory=dict)  # uid -> control token
    # uid -> (generation, spec revision, parsed spec): polls are frequent, specs change rarely
    revisions: dict[str, tuple[int, str, TradingEngineSpec]] = field(default_factory=dict)
    approvals: ApprovalEnforcer | None = None  # LiveApproval enforcement (set at start-up)
    # uid -> why the engine's children cannot be made (a name held by an object it
    # does not own); the status says so, and the Warning Event is posted once per change.
    taken: dict[str, str] = field(default_factory=dict)

    @property
    def stopping(self) -> bool:
        """The operator is shutting down (the cleanup handler closed the session)."""
        return self.session is None or self.session.closed

    @property
    def client(self) -> EngineClient:
        assert self.session is not None, "the startup handler opens the session"
        return EngineClient(self.session)


Handler = Callable[..., Awaitable[None]]


def counted(name: str) -> Callable[[Handler], Handler]:
    """Count a handler's runs and failures in the operator's metrics."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(*args: Any, **kwargs: Any) -> None:
            metrics: OperatorMetrics = kwargs["memo"]["runtime"].metrics
            metrics.reconciles.labels(handler=name).inc()
            try:
                await handler(*args, **kwargs)
            except Exception:
                metrics.errors.labels(handler=name).inc()
                raise

        return run

    return wrap


def _ref(meta: kopf.Meta) -> EngineRef:
    return EngineRef(
        name=str(meta["name"]),
        namespace=str(meta["namespace"]),
        uid=str(meta["uid"]),
        generation=int(meta.get("generation") or 1),
    )


def _invalid(
    body: kopf.Body, patch: kopf.Patch, exc: ConfigError, generation: int, runtime: Runtime
) -> None:
    message = "; ".join(exc.problems)
    patch.status["phase"] = Phase.INVALID.value
    patch.status["message"] = truncate_message(message)
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = [
        Condition(
            type=ConditionType.SPEC_VALID,
            status=ConditionStatus.FALSE,
            reason="InvalidSpec",
            message=message[:32768],
            last_transition_time=now_iso(),
            observed_generation=generation,
        ).model_dump(mode="json", by_alias=True, exclude_none=True)
    ]
    kopf.warn(body, reason="InvalidSpec", message=truncate_message(message))
    runtime.metrics.observe_phase(body.metadata["namespace"], body.metadata["name"], Phase.INVALID)


def _parsed(
    runtime: Runtime, meta: Mapping[str, Any], spec: Mapping[str, Any]
) -> tuple[str, TradingEngineSpec]:
    """The spec revision and model of the resource's generation, parsed once per generation.

    Raises ConfigError when the model rejects the spec (or the name cannot name children).
    """
    uid, generation = str(meta["uid"]), int(meta.get("generation") or 1)
    cached = runtime.revisions.get(uid)
    if cached is not None and cached[0] == generation:
        return cached[1], cached[2]
    problems = name_problems(str(meta["name"]))
    if problems:
        raise ConfigError(problems)
    model = parse_spec(dict(spec))
    revision = spec_revision(model)
    runtime.revisions[uid] = (generation, revision, model)
    return revision, model


def _revision(runtime: Runtime, meta: Mapping[str, Any], spec: Mapping[str, Any]) -> str:
    return _parsed(runtime, meta, spec)[0]


@dataclass(frozen=True)
class ApprovalView:
    """A live engine's approval verdict as status and control need it."""

    approved: bool
    condition: tuple[ConditionStatus, str, str] | None
    blocked: str | None


def _approval_view(runtime: Runtime, engine: EngineRef, spec: TradingEngineSpec) -> ApprovalView:
    if spec.mode is not Mode.LIVE:
        return ApprovalView(True, None, None)
    if runtime.approvals is None:
        return ApprovalView(False, None, "waiting for a valid LiveApproval")
    decision = runtime.approvals.condition(engine, spec)
    blocked = None if decision.valid else f"waiting for a valid LiveApproval: {decision.message}"
    return ApprovalView(decision.valid, condition_fields(decision), blocked)


def _parse(body: kopf.Body, patch: kopf.Patch, runtime: Runtime) -> TradingEngineSpec | None:
    try:
        # Parsed once per generation (the polls reuse it); a name the children cannot
        # carry is invalid too: a CRD without the name rule (an old chart) lets it
        # through, and its children's names would be refused (422) on every retry.
        return _parsed(runtime, body.metadata, body.get("spec") or {})[1]
    except ConfigError as exc:
        _invalid(body, patch, exc, int(body.metadata.get("generation") or 1), runtime)
        return None


def _api_message(exc: ApiException) -> str:
    """The API server's own sentence (its Status message), for a person."""
    try:
        message = str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        message = str(exc.reason)
    return truncate_message(f"the API server refused the operator: {message}")


def reconcile_children(
    body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    """Create or replace the engine's children for the current spec generation."""
    runtime: Runtime = memo["runtime"]
    runtime.metrics.reconciles.labels(handler="reconcile").inc()
    spec = _parse(body, patch, runtime)
    if spec is None:
        return  # nothing is created for an invalid spec; a new generation retries
    engine = _ref(meta)
    gate = None
    if spec.mode is Mode.LIVE and runtime.approvals is not None:
        gate = runtime.approvals.gate(engine, spec)
    try:
        outcome = ensure_children(runtime.cluster, engine, spec, runtime.settings.image, gate)
    except ApiException as exc:
        runtime.metrics.errors.labels(handler="reconcile").inc()
        if exc.status == 403:
            # RBAC refused a call: the user must see it on the engine, not only in
            # the operator's log (kopf retries the handler meanwhile).
            kopf.warn(body, reason=FORBIDDEN, message=_api_message(exc))
        raise
    except Exception:
        runtime.metrics.errors.labels(handler="reconcile").inc()
        raise
    status = body.get("status") or {}
    if outcome.taken:
        approval = _approval_view(runtime, engine, spec)
        _name_taken(body, patch, runtime, engine, taken_message(outcome.taken), approval)
        return  # no retry loop: the poll looks again, and heals once the name is free
    runtime.taken.pop(engine.uid, None)
    for reason, message in outcome.events:
        kopf.info(body, reason=reason, message=message)
    for reason, message in outcome.warnings:
        kopf.warn(body, reason=reason, message=message)
    if outcome.replaced is not None:
        runtime.metrics.pods_replaced.labels(reason=_replaced_reason(outcome.replaced)).inc()
    if outcome.waiting is not None:
        raise kopf.TemporaryError(outcome.waiting, delay=1)
    if status.get("observedGeneration") != engine.generation:
        patch.status["observedGeneration"] = engine.generation
    if outcome.blocked is not None:
        # No pod until an approval is valid; the approval enforcement starts it then.
        if cluster_pod_missing(runtime, engine):
            patch.status["phase"] = Phase.PENDING.value
            patch.status["message"] = truncate_message(outcome.blocked)
        return
    if status.get("phase") in (None, Phase.INVALID.value, Phase.PENDING.value):
        patch.status["phase"] = Phase.STARTING.value
        patch.status["message"] = "the engine pod is starting"


def _replaced_reason(failure: str) -> str:
    """The metric's label: the pod's status reason (Evicted, NodeLost...) or its phase."""
    phase, _, detail = failure.partition(": ")
    return detail if detail.isalnum() and len(detail) <= 64 else phase


def _name_taken(
    body: kopf.Body,
    patch: kopf.Patch,
    runtime: Runtime,
    engine: EngineRef,
    message: str,
    approval: ApprovalView,
) -> None:
    """Mark the engine: Failed, Ready=False NameTaken, and a Warning Event when it changes."""
    if runtime.taken.get(engine.uid) != message:
        kopf.warn(body, reason="NameTaken", message=truncate_message(message))
    runtime.taken[engine.uid] = message
    status = dict(body.get("status") or {})
    _write_status(
        body,
        patch.status,
        runtime,
        engine,
        PodView(exists=False),
        None,
        None,
        str((body.get("spec") or {}).get("mode", "paper")),
        approval,  # a live engine keeps its LiveApproved condition
    )
    if status.get("observedGeneration") != engine.generation:
        patch.status["observedGeneration"] = engine.generation


def cluster_pod_missing(runtime: Runtime, engine: EngineRef) -> bool:
    pod = runtime.cluster.get("pods", engine.namespace, engine.pod_name)
    return pod is None or not owned_by(pod, engine)


def _is_ready(status: dict[str, Any]) -> bool:
    """A `Ready` condition with status True (pods and TradingEngines alike)."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _pod_view(
    pod: dict[str, Any] | None, revision: str | None, engine: EngineRef
) -> tuple[PodView, str | None]:
    """The pod as the status logic sees it, and its IP if it runs this spec revision.

    With `revision` None any pod of the engine counts (deletion halts whatever runs).
    A pod of that name that the engine does not own is not its pod: never polled,
    never sent its token.
    """
    if pod is None or not owned_by(pod, engine):
        return PodView(exists=False), None
    annotations = pod["metadata"].get("annotations") or {}
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or [{}]
    waiting = (statuses[0].get("state") or {}).get("waiting") or {}
    ready = _is_ready(status)
    current = revision is None or annotations.get(ANNOTATION_REVISION) == revision
    view = PodView(
        exists=current,
        phase=str(status.get("phase") or ""),
        failure=failure_reason(pod) or "",
        ready=ready and current,
        restarts=int(statuses[0].get("restartCount") or 0),
        waiting_reason=str(waiting.get("reason") or ""),
    )
    return view, status.get("podIP") if current else None


async def _token(runtime: Runtime, engine: EngineRef) -> str:
    token = runtime.tokens.get(engine.uid)
    if token is None:
        secret = await asyncio.to_thread(
            runtime.cluster.get, "secrets", engine.namespace, engine.secret_name
        )
        if secret is None or not owned_by(secret, engine):
            raise EngineUnreachable("the engine's control Secret does not exist yet")
        token = base64.b64decode(secret["data"][CONTROL_TOKEN_KEY]).decode()
        runtime.tokens[engine.uid] = token
    return token


async def _send(runtime: Runtime, engine: EngineRef, base: str, command: Command) -> dict[str, Any]:
    """POST /control with the engine's token; a refused token is re-read once.

    The token is cached per engine; after a rotation (a new Secret, a new pod)
    the engine refuses the old one, so the cache is dropped and the Secret read
    again rather than failing every command until the operator restarts.
    """
    try:
        return await runtime.client.control(base, await _token(runtime, engine), command)
    except Unauthorized:
        runtime.tokens.pop(engine.uid, None)
        return await runtime.client.control(base, await _token(runtime, engine), command)


async def _fetch_status(runtime: Runtime, ip: str) -> tuple[dict[str, Any] | None, str | None]:
    """GET /status of the engine at `ip`, timed into the poll metrics."""
    started = time.perf_counter()
    try:
        return await runtime.client.status(f"http://{ip}:{runtime.settings.engine_port}"), None
    except EngineUnreachable as exc:
        runtime.metrics.poll_failures.inc()
        return None, str(exc)
    finally:
        runtime.metrics.poll_seconds.observe(time.perf_counter() - started)


def _desired_command(spec: dict[str, Any], engine: dict[str, Any]) -> Command | None:
    """The control command that brings the engine to what the spec asks, if any.

    Never `reset-halt`: a halt (a risk limit, drift, a lost approval) is lifted
    only by a user's explicit spec.halt true -> false (`halt_changed`), never by
    this automatic reconciliation; and `resume` only unpauses.
    """
    halted = engine.get("risk_state") == "HALTED"
    if spec.get("halt") and not halted:
        return "halt"
    if spec.get("paused") and not engine.get("paused"):
        return "pause"
    if not spec.get("paused") and engine.get("paused"):
        return "resume"
    return None


@counted("poll")
async def poll_engine(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    **_: Any,
) -> None:
    """Observe the engine, write its status, and steer pause/halt toward the spec."""
    runtime: Runtime = memo["runtime"]
    if runtime.stopping:
        return
    status = dict(body.get("status") or {})
    if status.get("phase") == Phase.INVALID.value and status.get("observedGeneration") == meta.get(
        "generation"
    ):
        return
    engine = _ref(meta)
    try:
        revision, model = _parsed(runtime, meta, spec)
    except ConfigError as exc:
        _invalid(body, patch, exc, engine.generation, runtime)
        return
    approval = _approval_view(runtime, engine, model)
    pod, ip = _pod_view(
        await asyncio.to_thread(runtime.cluster.get, "pods", engine.namespace, engine.pod_name),
        revision,
        engine,
    )
    if not pod.exists and "observedGeneration" not in status:
        # The create handler has not finished yet (it may be waiting for a thread):
        # nothing to report. Until it finishes, kopf hands this timer the body as it
        # was before that handler, so a status written now would be written again,
        # with another Pending Event, on every poll (7 per engine at N=300).
        return
    if (
        (not pod.exists or pod.failure)
        and status.get("observedGeneration") == engine.generation
        and approval.approved
    ):
        # The pod vanished (deleted by hand, node lost) or failed (evicted): heal at
        # once. A live engine without a valid approval gets no pod: its approval
        # enforcement starts it.
        await asyncio.to_thread(reconcile_children, body=body, meta=meta, patch=patch, memo=memo)
        if engine.uid in runtime.taken:
            return  # the status says why no pod: nothing more to observe
    report: dict[str, Any] | None = None
    error: str | None = None
    if ip is not None and pod.ready:
        report, error = await _fetch_status(runtime, ip)
    if report is not None and approval.approved:
        # (without a valid approval the enforcement halts the engine; nothing resumes it)
        command = _desired_command(dict(spec), report)
        if command is not None:
            try:
                report = await _send(
                    runtime, engine, f"http://{ip}:{runtime.settings.engine_port}", command
                )
                kopf.info(body, reason=command.capitalize(), message=f"engine told to {command}")
            except EngineUnreachable as exc:
                error = f"control {command} failed: {exc}"
    _write_status(
        body,
        patch.status,
        runtime,
        engine,
        pod,
        report,
        error,
        str(spec.get("mode", "paper")),
        approval,
    )


def _write_status(
    body: Any,
    status_patch: MutableMapping[str, Any],
    runtime: Runtime,
    engine: EngineRef,
    pod: PodView,
    report: dict[str, Any] | None,
    error: str | None,
    mode: str,
    approval: ApprovalView | None = None,
) -> None:
    current = dict(body.get("status") or {})
    obs = Observation(
        generation=engine.generation,
        pod=pod,
        engine=report,
        poll_error=error,
        mode=mode,
        deleting=bool(body["metadata"].get("deletionTimestamp")),
        approval=approval.condition if approval is not None else None,
        blocked=approval.blocked if approval is not None else None,
        taken=runtime.taken.get(engine.uid),
    )
    phase, message = derive_phase(obs)
    previous = [Condition.model_validate(c) for c in current.get("conditions") or []]
    conditions = derive_conditions(obs, previous, now_iso())
    desired: dict[str, Any] = {
        "phase": phase.value,
        "message": message,
        "mode": mode,
        "conditions": [
            c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in conditions
        ],
    }
    if report is not None:
        desired.update(
            {
                "equity": report.get("equity"),
                "pnl": report.get("pnl"),
                "maxDrawdown": (report.get("max_drawdown") or {}).get("amount")
                if isinstance(report.get("max_drawdown"), dict)
                else report.get("max_drawdown"),
                "position": report.get("position"),
                "openOrders": len(report.get("open_orders") or []),
                "riskState": report.get("risk_state"),
                "lastDataTime": report.get("last_data_time"),
            }
        )
        reconcile = reconcile_status(report)
        if reconcile is not None:
            desired["reconcile"] = reconcile.model_dump(mode="json", exclude_none=True)
    changed = {k: v for k, v in desired.items() if current.get(k) != v}
    if changed:
        status_patch.update(changed)
        if "phase" in changed:
            kopf.info(body, reason=phase.value, message=message)
    runtime.metrics.observe_phase(engine.namespace, engine.name, phase)


def _owning_engine(meta: dict[str, Any]) -> str | None:
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "TradingEngine" and owner.get("controller"):
            return str(owner["name"])
    return None


@counted("pod")
async def engine_pod_ready(
    body: kopf.Body, meta: kopf.Meta, type: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """An engine pod turned Ready: poll its engine now rather than at the next tick.

    Only the transition matters (an engine whose status already says Ready is
    left to its timer), and only status is written, so this adds no writes
    beyond the status change the timer would make a few seconds later.
    """
    if type == "DELETED":
        return
    name = _owning_engine(dict(meta))
    if name is None or not _is_ready(body.get("status") or {}):
        return
    runtime: Runtime = memo["runtime"]
    if runtime.stopping:
        return
    namespace = str(meta["namespace"])
    resource = await asyncio.to_thread(runtime.cluster.get_engine, namespace, name)
    if resource is None or resource["metadata"].get("deletionTimestamp"):
        return
    current = resource.get("status") or {}
    if _is_ready(current) or current.get("phase") == Phase.INVALID.value:
        return
    spec = resource.get("spec") or {}
    try:
        revision, model = _parsed(runtime, resource["metadata"], spec)
    except ConfigError:
        return  # the reconcile handler reports it
    engine = EngineRef(
        name=name,
        namespace=namespace,
        uid=str(resource["metadata"]["uid"]),
        generation=int(resource["metadata"].get("generation") or 1),
    )
    pod, ip = _pod_view(dict(body), revision, engine)
    if ip is None or not pod.ready:
        return  # a pod of an older spec revision (or of an engine gone meanwhile)
    report, _unreachable = await _fetch_status(runtime, ip)
    if report is None:
        return  # not answering yet: the timer keeps trying
    changes: dict[str, Any] = {}
    approval = _approval_view(runtime, engine, model)
    _write_status(
        resource, changes, runtime, engine, pod, report, None, spec.get("mode", "paper"), approval
    )
    if changes:
        await asyncio.to_thread(runtime.cluster.patch_engine_status, namespace, name, changes)


@counted("control")
async def halt_changed(
    body: kopf.Body,
    meta: kopf.Meta,
    spec: kopf.Spec,
    memo: kopf.Memo,
    old: Any = None,
    new: Any = None,
    **_: Any,
) -> None:
    """`spec.halt` changed. From true to false it is the user's explicit reset:
    `reset-halt` (which lifts any halt, a risk limit's included); otherwise as
    `control_changed`."""
    await _steer(body, meta, spec, memo, reset=bool(old) and not bool(new))


@counted("control")
async def control_changed(
    body: kopf.Body, meta: kopf.Meta, spec: kopf.Spec, memo: kopf.Memo, **_: Any
) -> None:
    """`spec.paused` changed: tell the engine now, not at the next poll (never a reset)."""
    await _steer(body, meta, spec, memo, reset=False)


async def _steer(
    body: kopf.Body, meta: kopf.Meta, spec: kopf.Spec, memo: kopf.Memo, *, reset: bool
) -> None:
    runtime: Runtime = memo["runtime"]
    engine = _ref(meta)
    try:
        revision, model = _parsed(runtime, meta, spec)
    except ConfigError:
        return  # the reconcile handler reports the invalid spec
    if not _approval_view(runtime, engine, model).approved:
        return  # no resume (nor anything else) for a live engine without a valid approval
    pod, ip = _pod_view(
        await asyncio.to_thread(runtime.cluster.get, "pods", engine.namespace, engine.pod_name),
        revision,
        engine,
    )
    if ip is None or not pod.ready:
        return  # a new engine reads paused/halt from its config; the timer re-asserts them
    base = f"http://{ip}:{runtime.settings.engine_port}"
    try:
        report = await runtime.client.status(base)
        command = _desired_command(dict(spec), report)
        if command is None and reset and report.get("risk_state") in ("HALTED", "REDUCING"):
            command = "reset-halt"  # the user set spec.halt true -> false: lift the halt
        if command is not None:
            try:
                await _send(runtime, engine, base, command)
            except CommandRefused:
                if command != "reset-halt":
                    raise
                # An engine image from before reset-halt (pods outlive an operator
                # upgrade): there `resume` is what lifts a halt, and the user asked
                # for exactly that.
                command = "resume"
                await _send(runtime, engine, base, command)
            kopf.info(body, reason=command.capitalize(), message=f"engine told to {command}")
    except EngineUnreachable as exc:
        raise kopf.TemporaryError(f"could not reach the engine: {exc}", delay=2) from None


@counted("delete")
async def engine_deleted(
    body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, logger: kopf.Logger, **_: Any
) -> None:
    """Before the pod goes: halt the engine so it cancels open orders, and wait for that."""
    runtime: Runtime = memo["runtime"]
    engine = _ref(meta)
    runtime.metrics.observe_phase(engine.namespace, engine.name, None)
    runtime.taken.pop(engine.uid, None)
    if runtime.approvals is not None:
        runtime.approvals.request((engine.namespace, engine.name))  # its approvals: orphaned
    pod, ip = _pod_view(
        await asyncio.to_thread(runtime.cluster.get, "pods", engine.namespace, engine.pod_name),
        None,
        engine,
    )
    if ip is None or not pod.ready:
        kopf.info(body, reason="Deleted", message="no running engine: nothing to cancel")
        return
    base = f"http://{ip}:{runtime.settings.engine_port}"
    deadline = time.monotonic() + runtime.settings.delete_timeout
    try:
        report = await _send(runtime, engine, base, "halt")
        while (report.get("open_orders") or []) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            report = await runtime.client.status(base)
    except EngineUnreachable as exc:
        kopf.warn(body, reason="DeleteUnconfirmed", message=f"could not halt the engine: {exc}")
        return
    left = len(report.get("open_orders") or [])
    if left:
        kopf.warn(
            body,
            reason="DeleteUnconfirmed",
            message=f"{left} open orders still open after {runtime.settings.delete_timeout:.0f}s",
        )
    else:
        kopf.info(body, reason="Deleted", message="engine halted with no open orders")
    runtime.tokens.pop(engine.uid, None)
    runtime.revisions.pop(engine.uid, None)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    resource = (GROUP, VERSION, ENGINES)
    for decorator in (kopf.on.create, kopf.on.resume):
        decorator(*resource, registry=registry, id="reconcile")(reconcile_children)
    kopf.on.update(*resource, registry=registry, id="reconcile", field="spec")(reconcile_children)
    # On update only: a new engine reads paused/halt from its config, and handlers
    # that also ran on create would cost kopf a progress-annotation patch each.
    kopf.on.update(*resource, registry=registry, field="spec.paused", id="control-spec.paused")(
        control_changed
    )
    kopf.on.update(*resource, registry=registry, field="spec.halt", id="control-spec.halt")(
        halt_changed
    )
    # kopf.on.event keeps no state on the pods: watching them costs no writes.
    kopf.on.event("", "v1", "pods", registry=registry, labels={LABEL_COMPONENT: "engine"})(
        engine_pod_ready
    )
    kopf.timer(
        *resource,
        registry=registry,
        id="poll",
        interval=settings.poll_interval,
        initial_delay=lambda **_: random.uniform(0, settings.poll_interval * settings.poll_jitter),
    )(poll_engine)
    kopf.on.delete(*resource, registry=registry, id="delete")(engine_deleted)
