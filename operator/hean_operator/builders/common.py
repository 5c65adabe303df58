"""Names, labels and owner references shared by every object of one engine."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hean_contract.spec import API_VERSION, KIND

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
HISTORY_DIR = "/var/lib/hean/history"

# Suffixes of the children's names (`<engine>-<suffix>`).
CHILD_SUFFIXES = ("config", "control", "engine", "approval", "history")
# Label values and DNS labels have at most 63 characters; an engine name of at
# most this length keeps every child's name within 63 too. The CRD refuses longer
# names at admission, and the operator marks the engine Invalid if an old CRD let
# one through.
MAX_NAME_LENGTH = 63 - 1 - max(len(suffix) for suffix in CHILD_SUFFIXES)
# A DNS-1035 label (starts with a letter, no dots): the engine's name is every
# child's name prefix and a label value, and stays valid as a DNS name.
NAME_PATTERN = "^[a-z]([-a-z0-9]*[a-z0-9])?$"


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
    def pod_name(self) -> str:
        # One fixed name: the apiserver itself then guarantees that at most one
        # engine pod exists, because a replacement cannot be created until the
        # old pod is gone (docs/operator.md: "one pod per account").
        return f"{self.name}-engine"

    @property
    def history_claim_name(self) -> str:
        # The PersistentVolumeClaim with the engine's history (storage.py).
        return f"{self.name}-history"


def labels(engine: EngineRef, component: str) -> dict[str, str]:
    return {
        LABEL_NAME: "hean-engine",
        LABEL_INSTANCE: engine.name,
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: "hean-operator",
        LABEL_ENGINE: engine.name,
    }


def name_problems(name: str) -> list[str]:
    """Why `name` cannot be a TradingEngine's name (its children's names derive from it)."""
    problems = []
    if len(name) > MAX_NAME_LENGTH:
        problems.append(
            f"metadata.name: {len(name)} characters; at most {MAX_NAME_LENGTH} "
            f"(its children's names, such as {name[:8]}...-approval, must fit 63)"
        )
    if not re.fullmatch(NAME_PATTERN, name):
        problems.append(
            "metadata.name: must start with a letter and hold only lowercase letters, digits "
            "and '-' (it is a DNS label: its children and labels carry it)"
        )
    return problems


def owned_by(obj: Mapping[str, Any], engine: EngineRef) -> bool:
    """Whether `obj` is this engine's (its controller owner reference names the engine's uid)."""
    owners = obj.get("metadata", {}).get("ownerReferences") or []
    return any(o.get("controller") and o.get("uid") == engine.uid for o in owners)


def owner_description(obj: Mapping[str, Any]) -> str:
    """Who controls `obj`, for a person: "TradingEngine x (uid ...)", or "no owner"."""
    owners = obj.get("metadata", {}).get("ownerReferences") or []
    controller = next((o for o in owners if o.get("controller")), None)
    if controller is None:
        return "not created by this engine (no controller owner)"
    return (
        f"controlled by {controller.get('kind')} {controller.get('name')} "
        f"(uid {controller.get('uid')})"
    )


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


def restricted_security_context() -> dict[str, Any]:
    """A container's security context under the `restricted` Pod Security Standard: no
    privilege escalation, no capabilities, non-root, a read-only root filesystem (what
    the engine writes goes to its volumes). A new dict each call: callers add to it."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
