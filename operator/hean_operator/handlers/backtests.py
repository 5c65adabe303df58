"""kopf handlers for Backtest: create its Job, and follow the Job to the summary in status.

- create / resume: parse the spec (an invalid one is Failed with SpecValid=False
  naming the field, and nothing is created), then create the Backtest's
  ConfigMap (engine config and runs) and its Indexed Job (builders/job.py),
  each owned by the Backtest (controller ownerReference: garbage-collected
  with it). A name held by an object the Backtest does not own is left
  untouched: the Backtest is Failed with JobCreated=False, reason NameTaken.
- every event of a Backtest's Job (kopf.on.event: no state, no writes on the
  Job): read the Job and its pods, derive the status (`derive_status`, pure)
  and write what changed through the status subresource. A run's summary is
  its pod's termination message (`hean engine backtest` writes it, at most
  4 KiB); the full report is on the output volume, and status says where.

The spec is immutable (a CRD rule), so there is no update handler: a Backtest
is the record of one run.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import kopf
from pydantic import ValidationError

from hean_contract.backtest import (
    BacktestCondition,
    BacktestConditionType,
    BacktestPhase,
    BacktestSpec,
    BacktestStats,
    RankedRun,
    RankMetric,
    ReportLocation,
    SweepStatus,
    combinations,
    parse_backtest_spec,
)
from hean_contract.errors import ConfigError
from hean_engine.model.timefmt import now_iso
from hean_operator.api.messages import truncate_message
from hean_operator.api.resources import BACKTESTS, GROUP, VERSION
from hean_operator.builders.common import LABEL_COMPONENT, NAME_PATTERN
from hean_operator.builders.job import (
    COMPONENT,
    MAX_NAME_LENGTH,
    BacktestRef,
    JobSettings,
    build_configmap,
    build_job,
    owned_by,
)
from hean_operator.kube.backtests import AlreadyExists, BacktestCluster
from hean_operator.settings import OperatorSettings

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


@dataclass
class BacktestRuntime:
    """What the Backtest handlers share; kept in kopf's memo under "backtests"."""

    cluster: BacktestCluster
    settings: OperatorSettings
    job: JobSettings


@dataclass(frozen=True)
class RunResult:
    index: int
    stats: BacktestStats
    report: str | None


@dataclass(frozen=True)
class RunFailure:
    index: int
    message: str


def _ref(meta: Mapping[str, Any]) -> BacktestRef:
    return BacktestRef(
        name=str(meta["name"]),
        namespace=str(meta["namespace"]),
        uid=str(meta["uid"]),
        generation=int(meta.get("generation") or 1),
    )


def name_problems(name: str) -> list[str]:
    """Why `name` cannot be a Backtest's (its Job and ConfigMap are named after it)."""
    problems = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(
            f"metadata.name: {len(name)} characters; at most {MAX_NAME_LENGTH} "
            "(its Job, NAME-backtest, is a label value of its pods: at most 63)"
        )
    if not re.fullmatch(NAME_PATTERN, name):
        problems.append(
            "metadata.name: must start with a letter and hold only lowercase letters, "
            "digits and '-'"
        )
    return problems


def parse(meta: Mapping[str, Any], spec: Mapping[str, Any]) -> BacktestSpec:
    """The spec's model; ConfigError with `field: problem` lines (the name's included)."""
    problems = name_problems(str(meta["name"]))
    if problems:
        raise ConfigError(problems)
    return parse_backtest_spec(dict(spec))


# -- reading runs from pods ---------------------------------------------------------


def run_outcome(pod: Mapping[str, Any]) -> RunResult | RunFailure | None:
    """What one finished pod says: its summary, or why it failed; None while it runs."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase not in ("Succeeded", "Failed"):
        return None
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        index = int(annotations.get(INDEX_ANNOTATION, ""))
    except ValueError:
        return None  # not a pod of an Indexed Job
    statuses = status.get("containerStatuses") or [{}]
    terminated = (statuses[0].get("state") or {}).get("terminated") or {}
    message = str(terminated.get("message") or "")
    if phase == "Failed":
        code = terminated.get("exitCode")
        return RunFailure(index, message.strip() or f"exit status {code}")
    try:
        summary = json.loads(message)
        stats = BacktestStats.model_validate(summary.get("stats") or {}, strict=False)
    except (ValueError, ValidationError, AttributeError) as exc:
        return RunFailure(index, f"the run's summary is unreadable: {exc}")
    report = summary.get("report")
    return RunResult(index, stats, str(report) if report else None)


def collect(pods: Iterable[Mapping[str, Any]]) -> tuple[dict[int, RunResult], dict[int, str]]:
    """Each index's result; the failures of indexes that have none (a retry may succeed)."""
    results: dict[int, RunResult] = {}
    failures: dict[int, str] = {}
    for pod in pods:
        outcome = run_outcome(pod)
        if isinstance(outcome, RunResult):
            results[outcome.index] = outcome
        elif isinstance(outcome, RunFailure):
            failures[outcome.index] = outcome.message
    return results, {i: m for i, m in failures.items() if i not in results}


def metric_value(stats: BacktestStats, metric: RankMetric) -> Decimal | None:
    """The statistic as a number; None when the run has it undefined."""
    if metric.value in stats.undefined:
        return None
    text = stats.model_dump(by_alias=True).get(metric.value)
    if text is None:
        return None
    try:
        return Decimal(str(text))
    except InvalidOperation:
        return None


def rank(results: Iterable[RunResult], metric: RankMetric) -> list[RunResult]:
    """Best first; an undefined figure last; ties in index order (deterministic)."""

    def key(result: RunResult) -> tuple[int, Decimal, int]:
        value = metric_value(result.stats, metric)
        if value is None:
            return (1, Decimal(0), result.index)
        return (0, value if metric.lower_is_better else -value, result.index)

    return sorted(results, key=key)


# -- the status -----------------------------------------------------------------------


def _job_condition(job: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def _condition(
    kind: BacktestConditionType,
    status: str,
    reason: str,
    message: str,
    previous: Mapping[str, Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    """A condition whose transition time moves only when its status does."""
    before = previous.get(kind.value) or {}
    moved = before.get("status") != status
    return BacktestCondition(
        type=kind,
        status=status,
        reason=reason,
        message=truncate_message(message),
        last_transition_time=now if moved else str(before.get("lastTransitionTime") or now),
    ).model_dump(mode="json", by_alias=True)


def _previous(current: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in current.get("conditions") or []}


def derive_status(
    ref: BacktestRef,
    spec: BacktestSpec,
    runs: list[dict[str, Any]],
    skipped: int,
    job: Mapping[str, Any] | None,
    pods: Iterable[Mapping[str, Any]],
    current: Mapping[str, Any],
    now: str,
) -> dict[str, Any]:
    """The whole status the Backtest should have, from its Job and the Job's pods."""
    previous = _previous(current)
    valid = _condition(BacktestConditionType.SPEC_VALID, "True", "Valid", "", previous, now)
    results, failures = collect(pods)
    status: dict[str, Any] = {"observedGeneration": ref.generation, "jobName": ref.job_name}
    if job is None:
        status.update(phase=BacktestPhase.PENDING.value, message="creating the Job")
        created = _condition(
            BacktestConditionType.JOB_CREATED, "False", "Creating", "", previous, now
        )
        status["conditions"] = [valid, created]
        return status
    job_status = job.get("status") or {}
    complete = _job_condition(job, "Complete")
    failed = _job_condition(job, "Failed")
    if complete is not None:
        phase, message = BacktestPhase.SUCCEEDED, f"{len(results)} of {len(runs)} runs finished"
    elif failed is not None:
        first = next(iter(sorted(failures.items())), None)
        why = f": run {first[0]}: {first[1]}" if first else ""
        phase = BacktestPhase.FAILED
        message = f"{failed.get('reason') or 'Failed'}{why}"
    elif job_status.get("active") or results or failures:
        phase, message = BacktestPhase.RUNNING, f"{len(results)} of {len(runs)} runs finished"
    else:
        phase, message = BacktestPhase.PENDING, "waiting for the Job's pods"
    status.update(phase=phase.value, message=truncate_message(message))
    if job_status.get("startTime"):
        status["startTime"] = job_status["startTime"]
    finished = complete or failed
    if finished is not None:
        status["completionTime"] = job_status.get("completionTime") or finished.get(
            "lastTransitionTime"
        )
    metric = spec.sweep.rank_by if spec.sweep is not None else RankMetric.SHARPE
    ranked = rank(results.values(), metric)
    if ranked:
        best = ranked[0]
        status["stats"] = best.stats.model_dump(mode="json", by_alias=True, exclude_none=True)
        status["params"] = {**spec.strategy.params, **runs[best.index]}
        if spec.output is not None and best.report is not None:
            status["report"] = ReportLocation(
                claim_name=spec.output.claim_name, path=f"{ref.report_dir}/{best.report}"
            ).model_dump(mode="json", by_alias=True)
    if spec.sweep is not None:
        status["sweep"] = SweepStatus(
            runs=len(runs),
            succeeded=len(results),
            failed=len(failures),
            skipped=skipped,
            rank_by=metric,
            top=[
                RankedRun(
                    index=r.index,
                    params=runs[r.index],
                    value=_text(metric_value(r.stats, metric)),
                    stats=r.stats,
                )
                for r in ranked[: spec.sweep.top]
            ],
        ).model_dump(mode="json", by_alias=True, exclude_none=True)
    done_status = "True" if complete else "False" if failed else "Unknown"
    done_reason = "Succeeded" if complete else "Failed" if failed else "Running"
    status["conditions"] = [
        valid,
        _condition(BacktestConditionType.JOB_CREATED, "True", "Created", "", previous, now),
        _condition(
            BacktestConditionType.COMPLETE, done_status, done_reason, message, previous, now
        ),
    ]
    return status


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def invalid_status(
    ref: BacktestRef, problems: list[str], current: Mapping[str, Any], now: str
) -> dict[str, Any]:
    message = "; ".join(problems)
    return {
        "phase": BacktestPhase.FAILED.value,
        "message": truncate_message(message),
        "observedGeneration": ref.generation,
        "conditions": [
            _condition(
                BacktestConditionType.SPEC_VALID,
                "False",
                "InvalidSpec",
                message,
                _previous(current),
                now,
            )
        ],
    }


def taken_status(
    ref: BacktestRef, message: str, current: Mapping[str, Any], now: str
) -> dict[str, Any]:
    previous = _previous(current)
    return {
        "phase": BacktestPhase.FAILED.value,
        "message": truncate_message(message),
        "observedGeneration": ref.generation,
        "jobName": ref.job_name,
        "conditions": [
            _condition(BacktestConditionType.SPEC_VALID, "True", "Valid", "", previous, now),
            _condition(
                BacktestConditionType.JOB_CREATED, "False", "NameTaken", message, previous, now
            ),
        ],
    }


def changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level status fields that differ (a merge patch of just those)."""
    return {key: value for key, value in desired.items() if current.get(key) != value}


# -- creating the children ------------------------------------------------------------


def ensure_children(
    cluster: BacktestCluster, ref: BacktestRef, configmap: dict[str, Any], job: dict[str, Any]
) -> str | None:
    """Create the ConfigMap, then the Job, if missing; a message if a name is someone else's.

    The Job is not created when the ConfigMap's name is taken: it would run with
    another object's data."""
    for kind, body, get, create in (
        ("ConfigMap", configmap, cluster.get_configmap, cluster.create_configmap),
        ("Job", job, cluster.get_job, cluster.create_job),
    ):
        name = body["metadata"]["name"]
        found = get(ref.namespace, name)
        if found is None:
            try:
                create(body)
                continue
            except AlreadyExists:
                found = get(ref.namespace, name)
        if found is not None and not owned_by(found, ref):
            return (
                f"a child's name is taken by an object this Backtest does not own, left "
                f"untouched: {kind} {name} ({_holder(found)}). Rename the Backtest "
                "or remove that object."
            )
    return None


def _holder(obj: Mapping[str, Any]) -> str:
    """Who controls `obj`, for a person."""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    controller = next((o for o in owners if o.get("controller")), None)
    if controller is None:
        return "not created by this Backtest: no controller owner"
    return (
        f"controlled by {controller.get('kind')} {controller.get('name')} "
        f"(uid {controller.get('uid')})"
    )


# -- handlers -------------------------------------------------------------------------


def _runtime(memo: kopf.Memo) -> BacktestRuntime:
    runtime: BacktestRuntime = memo["backtests"]
    return runtime


def start_backtest(
    body: kopf.Body, meta: kopf.Meta, spec: kopf.Spec, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    """Create (or find) the Backtest's children and write the status they give."""
    runtime = _runtime(memo)
    ref = _ref(meta)
    current = dict(body.get("status") or {})
    try:
        model = parse(meta, spec)
        runs, skipped = combinations(model)
        configmap = build_configmap(ref, model, runs)
        job = build_job(ref, model, len(runs), runtime.settings.image, runtime.job)
    except ConfigError as exc:
        desired = invalid_status(ref, exc.problems, current, now_iso())
        patch.status.update(changes(current, desired))
        if current.get("phase") != BacktestPhase.FAILED.value:
            kopf.warn(body, reason="InvalidSpec", message=truncate_message(desired["message"]))
        return
    taken = ensure_children(runtime.cluster, ref, configmap, job)
    if taken is not None:
        desired = taken_status(ref, taken, current, now_iso())
        if current.get("message") != desired["message"]:
            kopf.warn(body, reason="NameTaken", message=truncate_message(taken))
        patch.status.update(changes(current, desired))
        return
    found = runtime.cluster.get_job(ref.namespace, ref.job_name)
    pods = runtime.cluster.job_pods(ref.namespace, ref.job_name) if found is not None else []
    desired = derive_status(ref, model, runs, skipped, found, pods, current, now_iso())
    patch.status.update(changes(current, desired))


def _owner(meta: Mapping[str, Any]) -> str | None:
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "Backtest" and owner.get("controller"):
            return str(owner["name"])
    return None


def sync_from_job(runtime: BacktestRuntime, namespace: str, name: str, job_uid: str) -> None:
    """Read the Backtest, its Job and the Job's pods; write the status if it changed."""
    resource = runtime.cluster.get_backtest(namespace, name)
    if resource is None or resource["metadata"].get("deletionTimestamp"):
        return
    ref = _ref(resource["metadata"])
    current = dict(resource.get("status") or {})
    try:
        model = parse(resource["metadata"], resource.get("spec") or {})
        runs, skipped = combinations(model)
    except ConfigError:
        return  # the create handler reported it
    job = runtime.cluster.get_job(namespace, ref.job_name)
    if job is None or not owned_by(job, ref) or job["metadata"].get("uid") != job_uid:
        return  # not this Backtest's Job (or an old one): nothing of ours to report
    pods = runtime.cluster.job_pods(namespace, ref.job_name)
    desired = derive_status(ref, model, runs, skipped, job, pods, current, now_iso())
    patch = changes(current, desired)
    if patch:
        runtime.cluster.patch_backtest_status(namespace, name, patch)


async def job_event(
    body: kopf.Body, meta: kopf.Meta, type: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A Backtest's Job changed (pods started, finished): bring the status up to date."""
    if type == "DELETED":
        return
    name = _owner(dict(meta))
    if name is None:
        return
    await asyncio.to_thread(
        sync_from_job, _runtime(memo), str(meta["namespace"]), name, str(meta["uid"])
    )


def register(registry: kopf.OperatorRegistry) -> None:
    resource = (GROUP, VERSION, BACKTESTS)
    for decorator in (kopf.on.create, kopf.on.resume):
        decorator(*resource, registry=registry, id="start")(start_backtest)
    # kopf.on.event keeps no state on the Jobs: watching them costs no writes.
    kopf.on.event("batch", "v1", "jobs", registry=registry, labels={LABEL_COMPONENT: COMPONENT})(
        job_event
    )
