"""The LiveApproval CustomResourceDefinition, generated from its typed models."""

from __future__ import annotations

from typing import Any

from hean_operator.approvals.model import (
    CATEGORIES,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    LiveApprovalSpec,
    LiveApprovalStatus,
)
from hean_operator.crds.schema import structural_schema
from hean_operator.crds.tradingengine import GROUP, VERSION

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
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A signed approval of live trading for one "
                            "TradingEngine (its uid and trading spec), valid for a time window.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }
