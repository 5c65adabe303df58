"""Where an engine keeps its history: its PersistentVolumeClaim, or a PostgreSQL URL.

The default is an SQLite file on a PersistentVolumeClaim `<engine>-history`
that the operator creates, owned by the TradingEngine (so it is garbage
collected with it: docs/operator.md says so). With `spec.storage.postgres`
there is no claim: the engine reads the URL from the user's Secret through
the environment variable HEAN_HISTORY (`hean engine run` takes `--history`
from it), so the URL and its password never appear in the pod's arguments,
the operator's status, its Events or its logs.
"""

from __future__ import annotations

from typing import Any

from hean_contract.spec import StorageSpec
from hean_operator.builders.common import HISTORY_DIR, EngineRef, metadata

# The engine's CLI reads `--history` from this variable when the flag is absent.
HISTORY_ENV = "HEAN_HISTORY"
HISTORY_VOLUME = "history"


def build_history_claim(engine: EngineRef, storage: StorageSpec) -> dict[str, Any]:
    """The engine's PersistentVolumeClaim (ReadWriteOnce: one node, as one pod per account)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name is not None:
        # Absent, not "": an absent class means the cluster's default StorageClass,
        # while "" would ask for a pre-created volume of no class.
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(engine, engine.history_claim_name, "history"),
        "spec": spec,
    }


def needs_claim(storage: StorageSpec) -> bool:
    return storage.postgres is None


def history_args(storage: StorageSpec) -> list[str]:
    """The engine's `--history` arguments: the claim's mount, or none (the URL is in env)."""
    return ["--history", HISTORY_DIR] if needs_claim(storage) else []


def history_env(storage: StorageSpec) -> list[dict[str, Any]]:
    """The PostgreSQL URL from the user's Secret, by reference only (never its value)."""
    if storage.postgres is None:
        return []
    ref = {"name": storage.postgres.secret_name, "key": storage.postgres.key}
    return [{"name": HISTORY_ENV, "valueFrom": {"secretKeyRef": ref}}]


def history_volume(engine: EngineRef, storage: StorageSpec) -> tuple[dict[str, Any], ...]:
    """(mount, volume) of the claim, or () with PostgreSQL."""
    if not needs_claim(storage):
        return ()
    return (
        {"name": HISTORY_VOLUME, "mountPath": HISTORY_DIR},
        {
            "name": HISTORY_VOLUME,
            "persistentVolumeClaim": {"claimName": engine.history_claim_name},
        },
    )
