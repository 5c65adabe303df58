"""The LiveApproval CustomResourceDefinition, generated from its typed models."""

from __future__ import annotations

from typing import Any

from hean_operator.api.resources import APPROVALS, GROUP, VERSION
from hean_operator.approvals.model import (
    CATEGORIES,
    KIND,
    SHORT_NAMES,
    SINGULAR,
    LiveApprovalSpec,
    LiveApprovalStatus,
)
from hean_operator.crds.schema import namespaced_crd, structural_schema

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Engine", "type": "string", "jsonPath": ".spec.engineRef.name"},
    {"name": "Valid", "type": "boolean", "jsonPath": ".status.valid"},
    {"name": "Approvers", "type": "string", "jsonPath": ".status.keyIds"},
    {"name": "Expires", "type": "string", "jsonPath": ".spec.expiresAt"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_liveapproval_crd() -> dict[str, Any]:
    spec_schema = structural_schema(LiveApprovalSpec)
    # keyId is unique within the list: the same key counts once however often it signs,
    # and the schema says so rather than leaving it to the verifier alone.
    signatures = spec_schema["properties"]["signatures"]
    signatures["x-kubernetes-list-type"] = "map"
    signatures["x-kubernetes-list-map-keys"] = ["keyId"]
    status_schema = structural_schema(LiveApprovalStatus)
    return namespaced_crd(
        group=GROUP,
        version=VERSION,
        kind=KIND,
        plural=APPROVALS,
        singular=SINGULAR,
        short_names=SHORT_NAMES,
        categories=CATEGORIES,
        printer_columns=PRINTER_COLUMNS,
        description="A signed approval of live trading for one "
        "TradingEngine (its uid and trading spec), valid for a time window.",
        spec_schema=spec_schema,
        status_schema=status_schema,
    )
