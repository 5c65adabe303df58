"""Names, labels and owner references shared by every object of one engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hean_engine.model.spec import API_VERSION, KIND

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_ENGINE = "hean.io/engine"
ANNOTATION_GENERATION = "hean.io/spec-generation"
# The pod is replaced when this changes: a hash of the spec without the fields
# the engine takes through its control API (paused, halt).
ANNOTATION_REVISION = "hean.io/spec-revision"

CONTROL_PORT = 8080
CONFIG_DIR = "/etc/hean/config"
CONFIG_FILE = "engine.yaml"
CONTROL_DIR = "/etc/hean/control"
CONTROL_TOKEN_KEY = "token"  # noqa: S105 - the key name in the Secret, not a secret
CREDENTIALS_DIR = "/etc/hean/credentials"
JOURNAL_DIR = "/var/lib/hean/journal"


@dataclass(frozen=True)
class EngineRef:
    """The owning TradingEngine, as the builders need it."""

    name: str
    namespace: str
    uid: str
    generation: int

    @property
    def configmap_name(self) -> str:
        return f"{self.name}-config"

    @property
    def secret_name(self) -> str:
        return f"{self.name}-control"

    @property
    def service_name(self) -> str:
        return self.name

    @property
    def pod_name(self) -> str:
        # One fixed name: the apiserver itself then guarantees that at most one
        # engine pod exists, because a replacement cannot be created until the
        # old pod is gone (docs/operator.md: "one pod per account").
        return f"{self.name}-engine"


def labels(engine: EngineRef, component: str) -> dict[str, str]:
    return {
        LABEL_NAME: "hean-engine",
        LABEL_INSTANCE: engine.name,
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: "hean-operator",
        LABEL_ENGINE: engine.name,
    }


def selector(engine: EngineRef) -> dict[str, str]:
    return {LABEL_ENGINE: engine.name, LABEL_COMPONENT: "engine"}


def owner_reference(engine: EngineRef) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": engine.name,
        "uid": engine.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(engine: EngineRef, name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": engine.namespace,
        "labels": labels(engine, component),
        "ownerReferences": [owner_reference(engine)],
    }
