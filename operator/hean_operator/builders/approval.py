"""The ConfigMap that carries a live engine's approval and the trust policy into its pod.

The engine checks its approval itself (`hean engine run --approval-dir`), from
files: `approval.yaml` (the LiveApproval the operator chose) and `trust/`
(the trust ConfigMap's files). ConfigMap keys cannot hold a `/`, so the trust
files are stored as `trust.<file>` and the pod's volume maps them back to
`trust/<file>`. Mounted ConfigMaps change in place, so an updated approval or a
revoked key reaches the running engine without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from hean_operator.builders.common import EngineRef, metadata

APPROVAL_DIR = "/etc/hean/approval"
APPROVAL_FILE = "approval.yaml"
TRUST_PREFIX = "trust."


def approval_configmap_name(engine: EngineRef) -> str:
    return f"{engine.name}-approval"


def approval_data(
    manifest: Mapping[str, Any] | None, trust_files: Mapping[str, str]
) -> dict[str, str]:
    """The ConfigMap's data: the approval (when one is chosen) and every trust file."""
    data = {f"{TRUST_PREFIX}{name}": text for name, text in sorted(trust_files.items())}
    if manifest is not None:
        data[APPROVAL_FILE] = yaml.safe_dump(dict(manifest), sort_keys=False)
    return data


def build_approval_configmap(engine: EngineRef, data: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(engine, approval_configmap_name(engine), "approval"),
        "data": dict(data),
    }


def approval_volume(engine: EngineRef, data: Mapping[str, str]) -> dict[str, Any]:
    """The pod volume: `approval.yaml` and `trust.X` -> `trust/X`.

    `optional` so that a key later removed from the ConfigMap (a trust file
    deleted, the approval withdrawn) leaves the file out instead of failing the
    volume. Keys are fixed when the pod is created: a trust file added later
    reaches the engine with its next pod (the operator's own verdict sees it at once).
    """
    items = [{"key": APPROVAL_FILE, "path": APPROVAL_FILE}]
    items += [
        {"key": key, "path": f"trust/{key[len(TRUST_PREFIX) :]}"}
        for key in sorted(data)
        if key.startswith(TRUST_PREFIX)
    ]
    return {
        "name": "approval",
        "configMap": {
            "name": approval_configmap_name(engine),
            "items": items,
            "optional": True,
        },
    }
