"""The engine pod."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hean_contract.errors import TERMINATION_MESSAGE_ENV
from hean_contract.spec import Mode, TradingEngineSpec
from hean_operator.builders.approval import APPROVAL_DIR, approval_volume
from hean_operator.builders.common import (
    ANNOTATION_GENERATION,
    ANNOTATION_REVISION,
    CONFIG_DIR,
    CONFIG_FILE,
    CONTROL_DIR,
    CONTROL_PORT,
    CONTROL_TOKEN_KEY,
    CREDENTIALS_DIR,
    JOURNAL_DIR,
    EngineRef,
    metadata,
    restricted_security_context,
)
from hean_operator.builders.config import spec_revision
from hean_operator.builders.images import engine_image_ref
from hean_operator.builders.storage import history_args, history_env, history_volume

# Kubernetes' default path of a container's termination message.
TERMINATION_MESSAGE_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class EngineImage:
    """How engine pods run: the operator's settings (Helm values), not the user's spec."""

    image: str = "ghcr.io/hean-io/hean-engine:0.1.0"
    pull_policy: str = "IfNotPresent"
    command: tuple[str, ...] = ("hean",)
    requests: dict[str, str] = field(default_factory=lambda: {"cpu": "100m", "memory": "128Mi"})
    limits: dict[str, str] = field(default_factory=lambda: {"memory": "512Mi"})
    # Repositories a spec's `image` may come from besides `image`'s own
    # (builders.images; Helm value engine.allowedImageRepositories).
    allowed_repositories: tuple[str, ...] = ()


def engine_command(engine: EngineRef, spec: TradingEngineSpec, image: EngineImage) -> list[str]:
    command = [
        *image.command,
        "engine",
        "run",
        "--config",
        f"{CONFIG_DIR}/{CONFIG_FILE}",
        "--port",
        str(CONTROL_PORT),
        "--control-token-file",
        f"{CONTROL_DIR}/{CONTROL_TOKEN_KEY}",
        *history_args(spec.storage),
    ]
    if spec.mode is Mode.LIVE:
        command += [
            "--credentials-dir",
            CREDENTIALS_DIR,
            "--journal-dir",
            JOURNAL_DIR,
            "--approval-dir",
            APPROVAL_DIR,
        ]
    return command


def build_pod(
    engine: EngineRef,
    spec: TradingEngineSpec,
    image: EngineImage,
    approval: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The engine pod; `approval` is the data of the engine's approval ConfigMap (live).

    It runs `spec.image` when the spec names one the operator allows (a
    ConfigError naming `spec.image` otherwise), else the operator's engine image.
    """
    meta = metadata(engine, engine.pod_name, "engine")
    meta["annotations"] = {
        ANNOTATION_GENERATION: str(engine.generation),
        ANNOTATION_REVISION: spec_revision(spec),
    }
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "control", "mountPath": CONTROL_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the read-only root needs a scratch dir
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": engine.configmap_name}},
        {"name": "control", "secret": {"secretName": engine.secret_name, "defaultMode": 0o400}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    if spec.mode is Mode.LIVE:
        # The intent journal outlives a crashed container (restarted in the same
        # pod). A replaced pod starts with an empty one and still loses nothing:
        # its predecessor's orders carry this engine's client-id prefix and are
        # found on the exchange at start-up.
        mounts.append({"name": "journal", "mountPath": JOURNAL_DIR})
        volumes.append({"name": "journal", "emptyDir": {"sizeLimit": "64Mi"}})
    # The engine's books and their read API (GET /fills, ...: what `kubectl hean` and
    # the console show), on the engine's PersistentVolumeClaim: they outlive the pod,
    # so a replaced pod continues the paper account (builders.storage). With
    # PostgreSQL there is no volume: the URL comes through the environment.
    claim = history_volume(engine, spec.storage)
    if claim:
        mounts.append(claim[0])
        volumes.append(claim[1])
    if spec.mode is Mode.LIVE:
        # The engine checks its LiveApproval again itself, from these files.
        mounts.append({"name": "approval", "mountPath": APPROVAL_DIR, "readOnly": True})
        volumes.append(approval_volume(engine, approval or {}))
    if spec.mode is Mode.LIVE and spec.exchange.credentials_secret:
        mounts.append({"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "credentials",
                "secret": {"secretName": spec.exchange.credentials_secret, "defaultMode": 0o400},
            }
        )
    probe_port = {"port": "http"}
    container = {
        "name": "engine",
        "image": engine_image_ref(spec, image),
        "imagePullPolicy": image.pull_policy,
        "command": engine_command(engine, spec, image),
        "ports": [{"name": "http", "containerPort": CONTROL_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            # The engine's reason for refusing to start (an unknown strategy, bad
            # params) becomes the container's termination message, in its status.
            {"name": TERMINATION_MESSAGE_ENV, "value": TERMINATION_MESSAGE_PATH},
            *history_env(spec.storage),
        ],
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        # A crash without a message (a traceback) still leaves its last log lines.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "readinessProbe": {
            "httpGet": {"path": "/readyz", **probe_port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", **probe_port},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": {"requests": dict(image.requests), "limits": dict(image.limits)},
        "securityContext": restricted_security_context(),
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            # A crashed engine restarts in place; a new spec replaces the pod.
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
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
    }
