"""Reading a Backtest's HTML report off its output volume, the Kubernetes way.

The report is a file on the Backtest's output claim (`status.report`:
claimName and path). Neither the desk nor the API server can read a volume,
and the operator deliberately cannot either (it would need a pod of its own
per read, and the Backtest's pods run with no API access: a run's code must not
write objects). So the desk, as the user, with the user's RBAC:

1. creates a short-lived *reader pod* (this module builds it): the image the
   Backtest's Job ran (so a user's derived image works, and the pull secrets,
   security context and node constraints are those the Job already had), the
   claim mounted read-only with `subPath` = the Backtest's report directory
   only, running `hean engine serve-reports` (a read-only file server) on port
   8080, with a readiness probe; owned by the Backtest (an ownerReference,
   not a controller one: the Backtest's controller did not make it), so it is
   garbage-collected with the Backtest at the latest;
2. waits for it to be Ready (a watch of that one pod);
3. reads the file through the API server's pod proxy;
4. deletes it (`kubectl hean backtest report`), or keeps it while the console
   is open and deletes it when the console stops.

A reader pod that its client never deleted (a killed process) ends itself:
the server exits after `IDLE_SECONDS` without a request, and
`activeDeadlineSeconds` bounds the pod's life.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hean_contract.spec import API_VERSION
from hean_desk.errors import EXIT_USAGE, DeskError
from hean_desk.views import BacktestView

READER_PORT = 8080
READER_DIR = "/var/lib/hean/reports"
CONTAINER = "reports"
COMPONENT = "report-reader"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_BACKTEST = "hean.io/backtest"
JOB_SUFFIX = "-backtest"
IDLE_SECONDS = 900  # the server ends after this long without a request
DEADLINE_SECONDS = 3600  # and the pod after this long whatever happens
READY_SECONDS = 120  # how long a client waits for the pod to be Ready
# The reader needs little; a 1 MiB report is read whole into memory once.
RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}
DEFAULT_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


class ReportMissing(DeskError):
    """The reader pod answers, but the report file is not on the claim."""


@dataclass(frozen=True)
class ReportTarget:
    """Which file of which claim a reader pod serves, and for whom."""

    namespace: str
    backtest: str
    uid: str
    job: str
    claim: str
    directory: str  # inside the claim: the Backtest's report directory
    file: str  # inside the directory: INDEX.html

    @property
    def path(self) -> str:
        return f"{self.directory}/{self.file}"


@dataclass(frozen=True)
class ReportFile:
    """A Backtest's report as read: the Backtest, the file and its bytes.

    `cleanup`: why the reader pod could not be deleted (None: it was)."""

    backtest: BacktestView
    target: ReportTarget
    content: bytes
    reader: str
    cleanup: str | None = None


def report_target(view: BacktestView, run: int | None = None) -> ReportTarget:
    """Where the report of `view` (or of its sweep's run `run`) is; DeskError with exit
    status 2 when there is none to read: no output claim, not Succeeded, no run `run`."""
    where = f"Backtest {view.namespace}/{view.name}"
    if not view.spec.get("output"):
        raise DeskError(
            f"{where} has no report: it has no spec.output claim, so only its summary was "
            f"kept (kubectl hean backtest {view.name} shows it)",
            EXIT_USAGE,
        )
    status = view.status
    if view.phase != "Succeeded" or status is None:
        why = f" ({status.message})" if status is not None and status.message else ""
        if view.phase == "Failed":
            raise DeskError(f"{where} Failed{why}: it has no report", EXIT_USAGE)
        raise DeskError(
            f"{where} is {view.phase}{why}: its report is written when it has Succeeded "
            f"(kubectl hean backtest {view.name} shows its progress)",
            EXIT_USAGE,
        )
    if status.report is None:
        raise DeskError(f"{where} Succeeded but its status names no report", EXIT_USAGE)
    path = status.report.path
    directory, file = posixpath.split(path)
    if path.startswith("/") or ".." in path.split("/") or not directory or not file:
        raise DeskError(f"{where}: status.report.path {path!r} is not a report path")
    if run is not None:
        runs = status.sweep.runs if status.sweep is not None else 1
        if not 0 <= run < runs:
            raise DeskError(
                f"--run: {run} is not a run of {where} (it has {runs}: 0 to {runs - 1})",
                EXIT_USAGE,
            )
        file = f"{run}.html"
    uid = str((view.raw.get("metadata") or {}).get("uid") or "")
    return ReportTarget(
        namespace=view.namespace,
        backtest=view.name,
        uid=uid,
        job=status.job_name or f"{view.name}{JOB_SUFFIX}",
        claim=status.report.claim_name,
        directory=directory,
        file=file,
    )


def labels(target: ReportTarget) -> dict[str, str]:
    return {
        LABEL_NAME: "hean-backtest",
        LABEL_COMPONENT: COMPONENT,
        LABEL_MANAGED_BY: "kubectl-hean",
        LABEL_BACKTEST: target.backtest,
    }


def selector(target: ReportTarget) -> str:
    """The label selector of this Backtest's reader pods."""
    return f"{LABEL_COMPONENT}={COMPONENT},{LABEL_BACKTEST}={target.backtest}"


def reader_pod(target: ReportTarget, job: Mapping[str, Any]) -> dict[str, Any]:
    """The reader pod's manifest, from the Backtest's Job (its image and pod settings).

    DeskError when the Job has no container to take the image from."""
    template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = template.get("containers") or []
    if not containers or not containers[0].get("image"):
        raise DeskError(
            f"Job {target.namespace}/{target.job} has no container image to read the report with"
        )
    ran = containers[0]
    command = list(ran.get("command") or ["hean"])[:1]  # the image's `hean` executable
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": ran["image"],
        "imagePullPolicy": ran.get("imagePullPolicy") or "IfNotPresent",
        "command": [
            *command,
            "engine",
            "serve-reports",
            "--dir",
            READER_DIR,
            "--port",
            str(READER_PORT),
            "--idle-exit",
            str(IDLE_SECONDS),
        ],
        "ports": [{"name": "http", "containerPort": READER_PORT}],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": READER_PORT},
            "periodSeconds": 1,
            "failureThreshold": 3,
        },
        "resources": RESOURCES,
        "securityContext": dict(ran.get("securityContext") or DEFAULT_SECURITY),
        "volumeMounts": [
            {
                "name": "output",
                "mountPath": READER_DIR,
                "subPath": target.directory,
                "readOnly": True,
            }
        ],
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": DEADLINE_SECONDS,
        "terminationGracePeriodSeconds": 5,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [
            {
                "name": "output",
                "persistentVolumeClaim": {"claimName": target.claim, "readOnly": True},
            }
        ],
    }
    for key in ("securityContext", "imagePullSecrets", "nodeSelector", "tolerations", "affinity"):
        if template.get(key):
            spec[key] = template[key]
    metadata: dict[str, Any] = {
        "generateName": f"{target.backtest}-report-",
        "namespace": target.namespace,
        "labels": labels(target),
    }
    if target.uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": "Backtest",
                "name": target.backtest,
                "uid": target.uid,
                # Not the controller (the operator is the Backtest's); no blockOwnerDeletion,
                # which would need the right to update the Backtest's finalizers.
            }
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def pod_problem(pod: Mapping[str, Any]) -> str | None:
    """Why a reader pod will never be Ready (ended, image not pulled, bad config), or None."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason in (
            "ErrImagePull",
            "ImagePullBackOff",
            "InvalidImageName",
            "CreateContainerConfigError",
            "CreateContainerError",
            "CrashLoopBackOff",
        ):
            return f"{reason}: {waiting.get('message') or ''}".rstrip(": ")
        terminated = state.get("terminated") or {}
        if terminated:
            message = str(terminated.get("message") or terminated.get("reason") or "")
            code = terminated.get("exitCode")
            return (
                f"its server ended (exit {code}){': ' + message.strip() if message else ''}; "
                "is the image one with `hean engine serve-reports` (this client's version "
                "or newer)?"
            )
    if phase in ("Succeeded", "Failed"):
        why = " ".join(str(status.get(k) or "") for k in ("reason", "message")).strip()
        return f"the pod is {phase}" + (f": {why}" if why else "")
    return None  # pending (scheduling, a claim binding, pulling): wait


def is_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
