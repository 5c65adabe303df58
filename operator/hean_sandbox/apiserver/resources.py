"""What the server serves: one `ResourceInfo` per resource, built-ins and CRD-defined."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]
Converter = Callable[[JsonDict], JsonDict]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def _identity(obj: JsonDict) -> JsonDict:
    return obj


@dataclass
class ResourceInfo:
    """One served resource of one group/version."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status_subresource: bool = False
    # True for custom resources: schema, printer columns, merge-patch only, generation.
    custom: bool = False
    schema: JsonDict | None = None
    printer_columns: list[JsonDict] = field(default_factory=list)
    # Resources that count spec changes in metadata.generation.
    has_generation: bool = False
    # DELETE answers with the object (else with a `Status` of success).
    return_deleted_object: bool = False
    # Field paths (besides metadata.name/namespace) usable in a field selector.
    selectable_fields: tuple[str, ...] = ()
    # Field selector aliases: the name a client uses -> the stored field path.
    field_aliases: dict[str, str] = field(default_factory=dict)
    # Several group/versions may share one storage (events and events.k8s.io events).
    storage: tuple[str, str] | None = None
    to_view: Converter = _identity
    from_view: Converter = _identity

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def storage_key(self) -> tuple[str, str]:
        return self.storage or (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """`plural.group` as error messages name it (`pods`, `tradingengines.hean.io`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def subresources(self) -> tuple[str, ...]:
        subs: list[str] = []
        if self.status_subresource:
            subs.append("status")
        if self.group == "" and self.plural == "pods":
            subs.extend(["binding", "log"])
        return tuple(subs)


# -- events: one storage, two views ------------------------------------------------

_EVENT_RENAMES = {
    # events.k8s.io/v1 field -> core/v1 field (k8s.io/kubernetes pkg/apis/events/v1 conversion).
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}


def _events_v1_to_core(obj: JsonDict) -> JsonDict:
    out = copy.deepcopy(obj)
    for new, old in _EVENT_RENAMES.items():
        if new in out:
            out[old] = out.pop(new)
    out["apiVersion"] = "v1"
    out["kind"] = "Event"
    return out


def _core_to_events_v1(obj: JsonDict) -> JsonDict:
    out = copy.deepcopy(obj)
    for new, old in _EVENT_RENAMES.items():
        if old in out:
            out[new] = out.pop(old)
    out["apiVersion"] = "events.k8s.io/v1"
    out["kind"] = "Event"
    return out


_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


def builtin_resources() -> list[ResourceInfo]:
    """The built-in kinds the sandbox serves."""
    return [
        ResourceInfo(
            "",
            "v1",
            "namespaces",
            "namespace",
            "Namespace",
            False,
            short_names=("ns",),
            verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
            status_subresource=True,
            return_deleted_object=True,
            selectable_fields=("status.phase",),
        ),
        ResourceInfo(
            "",
            "v1",
            "pods",
            "pod",
            "Pod",
            True,
            short_names=("po",),
            categories=("all",),
            status_subresource=True,
            return_deleted_object=True,
            selectable_fields=(
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ),
        ),
        ResourceInfo(
            "",
            "v1",
            "services",
            "service",
            "Service",
            True,
            short_names=("svc",),
            categories=("all",),
            verbs=(
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ),
            status_subresource=True,
            return_deleted_object=True,
        ),
        ResourceInfo("", "v1", "configmaps", "configmap", "ConfigMap", True, short_names=("cm",)),
        ResourceInfo("", "v1", "secrets", "secret", "Secret", True, selectable_fields=("type",)),
        ResourceInfo(
            "",
            "v1",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            True,
            short_names=("sa",),
        ),
        ResourceInfo(
            "",
            "v1",
            "events",
            "event",
            "Event",
            True,
            short_names=("ev",),
            selectable_fields=_EVENT_FIELDS,
        ),
        ResourceInfo(
            "events.k8s.io",
            "v1",
            "events",
            "event",
            "Event",
            True,
            short_names=("ev",),
            selectable_fields=_EVENT_FIELDS,
            field_aliases={
                **{f"regarding.{f.split('.', 1)[1]}": f for f in _EVENT_FIELDS if "." in f},
                "deprecatedSource": "source",
                "reportingController": "reportingComponent",
            },
            storage=("", "events"),
            to_view=_core_to_events_v1,
            from_view=_events_v1_to_core,
        ),
        ResourceInfo(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            status_subresource=True,
            return_deleted_object=True,
            has_generation=True,
        ),
        ResourceInfo(
            "coordination.k8s.io",
            "v1",
            "leases",
            "lease",
            "Lease",
            True,
        ),
    ]


def crd_resources(crd: JsonDict) -> list[ResourceInfo]:
    """The resources (one per served version) a CustomResourceDefinition defines."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    result = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        subresources = version.get("subresources") or {}
        selectable = tuple(
            str(f.get("jsonPath", "")).lstrip(".") for f in version.get("selectableFields", [])
        )
        result.append(
            ResourceInfo(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames", [])),
                categories=tuple(names.get("categories", [])),
                status_subresource="status" in subresources,
                custom=True,
                schema=schema,
                printer_columns=list(version.get("additionalPrinterColumns", [])),
                has_generation=True,
                return_deleted_object=True,
                selectable_fields=selectable,
            )
        )
    return result
