"""Per-kind rules: defaults, status handling, and validation on create and update."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

from . import schema as schemas
from .cel import NO_OLD
from .errors import ApiError, Cause, bad_request, invalid
from .resources import ResourceInfo

JsonDict = dict[str, Any]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

# Names that are DNS-1123 labels (at most 63 characters) rather than subdomains.
_LABEL_NAMED = {("", "namespaces"), ("", "services")}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp_in(seconds: int) -> str:
    moment = datetime.now(UTC).timestamp() + seconds
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_kind(info: ResourceInfo) -> str:
    return info.kind


def fail(info: ResourceInfo, name: str, causes: list[Cause]) -> ApiError:
    return invalid(_error_kind(info), name, info.group, causes)


# -- metadata ------------------------------------------------------------------------


def name_causes(info: ResourceInfo, name: str, path: str = "metadata.name") -> list[Cause]:
    if info.storage_key in _LABEL_NAMED:
        ok, limit, what = bool(_DNS_LABEL.match(name)), 63, "RFC 1123 label"
    else:
        ok, limit, what = bool(_DNS_SUBDOMAIN.match(name)), 253, "RFC 1123 subdomain"
    if ok and len(name) <= limit:
        return []
    message = (
        f'Invalid value: "{name}": a lowercase {what} must consist of lower case '
        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character"
    )
    if len(name) > limit:
        message = f'Invalid value: "{name}": must be no more than {limit} characters'
    return [Cause("FieldValueInvalid", message, path)]


def metadata_causes(obj: JsonDict) -> list[Cause]:
    causes: list[Cause] = []
    meta: JsonDict = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [Cause("FieldValueTypeInvalid", "Invalid value: must be a map", "metadata.labels")]
    for key, value in labels.items():
        prefix, _, label = str(key).rpartition("/")
        if (
            (prefix and not _DNS_SUBDOMAIN.match(prefix))
            or not _LABEL_NAME.match(label)
            or len(label) > 63
        ):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                    "metadata.labels",
                )
            )
        if not isinstance(value, str) or not _LABEL_VALUE.match(value) or len(value) > 63:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{value}": a valid label must be an empty string or '
                    "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                    "end with an alphanumeric character",
                    "metadata.labels",
                )
            )
    annotations = meta.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: annotation values must be strings",
                "metadata.annotations",
            )
        )
    return causes


# -- create --------------------------------------------------------------------------


def prepare_create(info: ResourceInfo, obj: JsonDict) -> None:
    """Defaults and status resets of a new object (in place)."""
    if info.status_subresource and info.custom:
        obj.pop("status", None)
    key = info.storage_key
    if key == ("", "pods"):
        _pod_defaults(obj)
    elif key == ("", "namespaces"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif key == ("", "services"):
        _service_defaults(obj)
    elif key == ("", "secrets"):
        obj.setdefault("type", "Opaque")
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        obj.pop("status", None)
    if key == ("", "namespaces"):
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _pod_defaults(pod: JsonDict) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    tolerations = spec.setdefault("tolerations", [])
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == taint for t in tolerations if isinstance(t, dict)):
            tolerations.append(
                {
                    "key": taint,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            )
    qos = "BestEffort"
    for group in ("initContainers", "containers"):
        for container in spec.get(group) or []:
            if not isinstance(container, dict):
                continue
            image = str(container.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            resources = container.setdefault("resources", {})
            if resources.get("requests") or resources.get("limits"):
                qos = "Burstable"
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
    pod["status"] = {"phase": "Pending", "qosClass": qos}


_next_cluster_ip = [10]


def _service_defaults(svc: JsonDict) -> None:
    spec = svc.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        if not spec.get("clusterIP"):
            _next_cluster_ip[0] += 1
            n = _next_cluster_ip[0]
            spec["clusterIP"] = f"10.96.{n // 250}.{n % 250}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    svc.setdefault("status", {"loadBalancer": {}})


# -- update --------------------------------------------------------------------------

_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def prepare_update(info: ResourceInfo, new: JsonDict, old: JsonDict) -> None:
    key = info.storage_key
    if key == ("", "namespaces"):
        new.setdefault("spec", old.get("spec", {}))
        labels = new["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = new["metadata"]["name"]
    elif key == ("", "services"):
        spec = new.setdefault("spec", {})
        old_spec = old.get("spec") or {}
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if field not in spec and field in old_spec:
                spec[field] = old_spec[field]
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))


def _without_images(spec: JsonDict) -> JsonDict:
    stripped = {k: v for k, v in spec.items() if k not in _POD_MUTABLE}
    for group in ("initContainers", "containers"):
        if isinstance(stripped.get(group), list):
            stripped[group] = [
                {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                for c in stripped[group]
            ]
    return stripped


# -- validation of built-in kinds ----------------------------------------------------


def builtin_causes(info: ResourceInfo, obj: JsonDict, old: JsonDict | None) -> list[Cause]:
    key = info.storage_key
    causes: list[Cause] = []
    if key == ("", "pods"):
        spec = obj.get("spec") or {}
        containers = spec.get("containers")
        if not containers:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.containers"))
        names: set[str] = set()
        for index, container in enumerate(containers or []):
            path = f"spec.containers[{index}]"
            if not isinstance(container, dict):
                causes.append(
                    Cause("FieldValueTypeInvalid", "Invalid value: must be an object", path)
                )
                continue
            name = container.get("name")
            if not name:
                causes.append(Cause("FieldValueRequired", "Required value", f"{path}.name"))
            elif name in names:
                causes.append(
                    Cause("FieldValueDuplicate", f'Duplicate value: "{name}"', f"{path}.name")
                )
            names.add(str(name))
            if not container.get("image"):
                causes.append(Cause("FieldValueRequired", "Required value", f"{path}.image"))
        if old is not None and _without_images(spec) != _without_images(old.get("spec") or {}):
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                    "it was previously negative)",
                    "spec",
                )
            )
    elif key in (("", "configmaps"), ("", "secrets")):
        for field in ("data", "binaryData", "stringData"):
            for data_key in obj.get(field) or {}:
                if not _CONFIG_KEY.match(str(data_key)):
                    causes.append(
                        Cause(
                            "FieldValueInvalid",
                            f'Invalid value: "{data_key}": a valid config key must consist of '
                            "alphanumeric characters, '-', '_' or '.'",
                            f"{field}[{data_key}]",
                        )
                    )
        if (
            old is not None
            and old.get("immutable")
            and any(obj.get(f) != old.get(f) for f in ("data", "binaryData", "immutable"))
        ):
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: field is immutable when `immutable` is set",
                    "data",
                )
            )
        if key == ("", "secrets"):
            for data_key, value in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(str(value), validate=True)
                except (binascii.Error, ValueError):
                    causes.append(
                        Cause(
                            "FieldValueInvalid",
                            "Invalid value: illegal base64 data",
                            f"data[{data_key}]",
                        )
                    )
            if old is not None and obj.get("type") != old.get("type"):
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        f'Invalid value: "{obj.get("type")}": field is immutable',
                        "type",
                    )
                )
    elif key == ("", "services"):
        spec = obj.get("spec") or {}
        if (
            spec.get("type") != "ExternalName"
            and not spec.get("ports")
            and (spec.get("clusterIP") != "None")
        ):
            causes.append(Cause("FieldValueRequired", "Required value", "spec.ports"))
        if old is not None:
            old_ip = (old.get("spec") or {}).get("clusterIP")
            if old_ip and spec.get("clusterIP") != old_ip:
                causes.append(
                    Cause(
                        "FieldValueInvalid",
                        f'Invalid value: "{spec.get("clusterIP")}": field is immutable',
                        "spec.clusterIP",
                    )
                )
    elif key == ("", "events"):
        involved = obj.get("involvedObject") or {}
        namespace = obj.get("metadata", {}).get("namespace")
        if involved.get("namespace") and involved.get("namespace") != namespace:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "{involved.get("namespace")}": does not match event.namespace',
                    "involvedObject.namespace",
                )
            )
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        causes += _crd_causes(obj)
    return causes


def _crd_causes(crd: JsonDict) -> list[Cause]:
    causes: list[Cause] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append(Cause("FieldValueRequired", "Required value", f"spec.names.{field}"))
    if not spec.get("group"):
        causes.append(Cause("FieldValueRequired", "Required value", "spec.group"))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(Cause("FieldValueRequired", "Required value", "spec.versions"))
    if sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    expected = f"{names.get('plural')}.{spec.get('group')}"
    name = crd.get("metadata", {}).get("name")
    if names.get("plural") and spec.get("group") and name != expected:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "metadata.name",
            )
        )
    return causes


def crd_status(crd: JsonDict) -> JsonDict:
    spec = crd.get("spec") or {}
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stamp = now()
    return {
        "acceptedNames": names,
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": stamp,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": stamp,
            },
        ],
        "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
    }


def secret_string_data(obj: JsonDict) -> None:
    """Fold `stringData` into base64 `data`, as the apiserver does on write."""
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


# -- custom resources ----------------------------------------------------------------


def process_custom(
    info: ResourceInfo,
    obj: JsonDict,
    old: JsonDict | None,
    field_validation: str,
) -> list[str]:
    """Prune, default and validate a custom resource; returns warnings."""
    warnings: list[str] = []
    if info.schema is None:
        return warnings
    dropped = schemas.prune(obj, info.schema)
    if dropped:
        if field_validation == "Strict":
            fields = ", ".join(f'unknown field "{d}"' for d in dropped)
            raise bad_request(
                f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                f"strict decoding error: {fields}"
            )
        if field_validation != "Ignore":
            warnings += [f'unknown field "{d}"' for d in dropped]
    schemas.apply_defaults(obj, info.schema)
    validator = schemas.validate(obj, info.schema, old if old is not None else NO_OLD)
    if validator.causes:
        raise fail(info, str(obj.get("metadata", {}).get("name", "")), validator.causes)
    return warnings
