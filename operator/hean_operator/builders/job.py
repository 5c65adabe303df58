"""A Backtest's children: the ConfigMap with its runs, and the Indexed Job that replays them.

One Job for a single run and a sweep alike: `completions` is the number of
parameter combinations and `parallelism` the sweep's limit, so the Job
controller itself enforces the limit. Each pod is one run: `hean engine
backtest` reads its combination by `JOB_COMPLETION_INDEX` (the Job controller
sets it in Indexed mode), replays the range and writes its summary (the
statistics, at most 4 KiB) as its termination message, which the operator
reads from the pod's status. The full report goes to the output volume.

Pure functions: the handler (handlers/backtests.py) creates what they return.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from hean_contract.backtest import KIND, BacktestSpec
from hean_contract.errors import EXIT_INVALID, TERMINATION_MESSAGE_ENV
from hean_contract.spec import API_VERSION
from hean_operator.builders.common import (
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    restricted_security_context,
)
from hean_operator.builders.images import EngineImageSettings, check_engine_image

SUFFIX = "-backtest"
# The Job's name is a label value of its pods (job-name): at most 63 characters.
MAX_NAME_LENGTH = 63 - len(SUFFIX)
LABEL_BACKTEST = "hean.io/backtest"
COMPONENT = "backtest"
CONTAINER = "backtest"
CONFIG_DIR = "/etc/hean/backtest"
ENGINE_FILE = "engine.yaml"
RUNS_FILE = "runs.json"
DATA_DIR = "/var/lib/hean/data"
CACHE_DIR = "/var/lib/hean/cache"
OUTPUT_DIR = "/var/lib/hean/output"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class BacktestRef:
    """The owning Backtest, as the builders need it."""

    name: str
    namespace: str
    uid: str
    generation: int

    @property
    def job_name(self) -> str:
        return f"{self.name}{SUFFIX}"

    @property
    def configmap_name(self) -> str:
        return f"{self.name}{SUFFIX}"

    @property
    def report_dir(self) -> str:
        """The run's reports inside the output volume (the uid keeps re-created names apart)."""
        return f"reports/{self.namespace}/{self.name}/{self.uid[:8]}"


@dataclass(frozen=True)
class JobSettings:
    """What the operator's settings say about backtest pods."""

    command: tuple[str, ...] = ("hean",)
    pull_policy: str = "IfNotPresent"
    requests: tuple[tuple[str, str], ...] = (("cpu", "100m"), ("memory", "128Mi"))
    limits: tuple[tuple[str, str], ...] = (("memory", "1Gi"),)
    # A run that fails for a reason other than its configuration (a node lost) is
    # retried once, in its own index (the others carry on).
    retries_per_index: int = 1


def labels(ref: BacktestRef) -> dict[str, str]:
    return {
        LABEL_NAME: "hean-backtest",
        LABEL_INSTANCE: ref.name,
        LABEL_COMPONENT: COMPONENT,
        LABEL_MANAGED_BY: "hean-operator",
        LABEL_BACKTEST: ref.name,
    }


def owner_reference(ref: BacktestRef) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: dict[str, Any], ref: BacktestRef) -> bool:
    """Whether `obj` is this Backtest's (its controller owner reference names the uid)."""
    owners = obj.get("metadata", {}).get("ownerReferences") or []
    return any(o.get("controller") and o.get("uid") == ref.uid for o in owners)


def _metadata(ref: BacktestRef, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": ref.namespace,
        "labels": labels(ref),
        "ownerReferences": [owner_reference(ref)],
    }


def engine_manifest(ref: BacktestRef, spec: BacktestSpec) -> dict[str, Any]:
    """The TradingEngine manifest each run replays (its params overridden per run)."""
    engine = spec.engine_spec()
    return {
        "apiVersion": API_VERSION,
        "kind": "TradingEngine",
        "metadata": {"name": ref.name, "namespace": ref.namespace},
        "spec": engine.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def build_configmap(
    ref: BacktestRef, spec: BacktestSpec, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The engine config and the runs' parameter overrides (index -> params)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ref, ref.configmap_name),
        "data": {
            ENGINE_FILE: yaml.safe_dump(engine_manifest(ref, spec), sort_keys=True),
            RUNS_FILE: json.dumps(runs, sort_keys=True, separators=(",", ":")),
        },
    }


def _data_source(
    spec: BacktestSpec,
) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """The command's data arguments, and the volumes and mounts they need."""
    data = spec.data
    if data.volume is not None:
        return (
            ["--data", f"{DATA_DIR}/{data.volume.path}"],
            [
                {
                    "name": "data",
                    "persistentVolumeClaim": {
                        "claimName": data.volume.claim_name,
                        "readOnly": True,
                    },
                }
            ],
            [{"name": "data", "mountPath": DATA_DIR, "readOnly": True}],
        )
    if data.config_map is not None:
        key = data.config_map.key
        return (
            ["--data", f"{DATA_DIR}/{key}"],
            [
                {
                    "name": "data",
                    "configMap": {
                        "name": data.config_map.name,
                        "items": [{"key": key, "path": key}],
                    },
                }
            ],
            [{"name": "data", "mountPath": DATA_DIR, "readOnly": True}],
        )
    assert data.fetch is not None  # the model holds exactly one source
    if data.fetch.cache_claim_name is None:
        return (["--fetch"], [], [])
    return (
        ["--fetch", "--cache-dir", CACHE_DIR],
        [{"name": "cache", "persistentVolumeClaim": {"claimName": data.fetch.cache_claim_name}}],
        [{"name": "cache", "mountPath": CACHE_DIR}],
    )


def backtest_command(ref: BacktestRef, spec: BacktestSpec, settings: JobSettings) -> list[str]:
    data_args, _, _ = _data_source(spec)
    command = [
        *settings.command,
        "engine",
        "backtest",
        "--config",
        f"{CONFIG_DIR}/{ENGINE_FILE}",
        "--runs",
        f"{CONFIG_DIR}/{RUNS_FILE}",
        "--from",
        spec.start,
        "--to",
        spec.end,
        "--warmup",
        str(spec.warmup),
        *data_args,
    ]
    if spec.output is not None:
        command += ["--output-dir", f"{OUTPUT_DIR}/{ref.report_dir}"]
    return command


def build_job(
    ref: BacktestRef,
    spec: BacktestSpec,
    runs: int,
    image: EngineImageSettings,
    settings: JobSettings,
) -> dict[str, Any]:
    """The Indexed Job: `runs` completions, at most the sweep's parallelism at once.

    It runs `spec.image` when the operator allows it (ConfigError naming
    spec.image otherwise), else the operator's engine image.
    """
    engine = spec.engine_spec()
    check_engine_image(engine, image)
    _, data_volumes, data_mounts = _data_source(spec)
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": ref.configmap_name}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        *data_volumes,
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the read-only root needs a scratch dir
        *data_mounts,
    ]
    if spec.output is not None:
        volumes.append(
            {"name": "output", "persistentVolumeClaim": {"claimName": spec.output.claim_name}}
        )
        mounts.append({"name": "output", "mountPath": OUTPUT_DIR})
    parallelism = min(spec.sweep.parallelism if spec.sweep is not None else 1, runs)
    container = {
        "name": CONTAINER,
        "image": engine.image if engine.image is not None else image.image,
        "imagePullPolicy": settings.pull_policy,
        "command": backtest_command(ref, spec, settings),
        "env": [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            # The run's summary (or its reason for refusing) is its last words.
            {"name": TERMINATION_MESSAGE_ENV, "value": TERMINATION_MESSAGE_PATH},
        ],
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": dict(settings.requests), "limits": dict(settings.limits)},
        "securityContext": restricted_security_context(),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(ref, ref.job_name),
        "spec": {
            "completionMode": "Indexed",
            "completions": runs,
            "parallelism": parallelism,
            "backoffLimitPerIndex": settings.retries_per_index,
            "podFailurePolicy": {
                "rules": [
                    {
                        # A refused configuration or data file fails the same way again.
                        "action": "FailIndex",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_INVALID],
                        },
                    }
                ]
            },
            "template": {
                "metadata": {"labels": labels(ref)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
