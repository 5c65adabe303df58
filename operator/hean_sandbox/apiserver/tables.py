"""Server-side printing: the `meta.k8s.io/v1` `Table` kubectl asks for."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import jsonpath
from .resources import ResourceInfo

JsonDict = dict[str, Any]

TABLE_ACCEPT_MARKER = "as=Table"


def wants_table(accept: str) -> bool:
    """True when the first acceptable media type asks for a meta.k8s.io Table."""
    for part in accept.split(","):
        params = {p.strip() for p in part.split(";")[1:]}
        if "as=Table" in params:
            return "g=meta.k8s.io" in params
        if part.strip():
            return False
    return False


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        rest = total % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = total // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, (hours // 24) % 365
    if hours < 24 * 365 * 8:
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{years}y"


def age(value: Any, now: datetime | None = None) -> str:
    moment = parse_time(value)
    if moment is None:
        return "<unknown>"
    now = now or datetime.now(UTC)
    return human_duration((now - moment).total_seconds())


def _column(
    name: str, kind: str = "string", priority: int = 0, fmt: str = "", description: str = ""
) -> JsonDict:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


_NAME = _column("Name", fmt="name", description="Name must be unique within a namespace.")
_AGE = _column(
    "Age",
    description="CreationTimestamp is a timestamp representing the server "
    "time when this object was created.",
)


def _meta(obj: JsonDict) -> JsonDict:
    meta: JsonDict = obj.get("metadata") or {}
    return meta


def _name_age(obj: JsonDict) -> list[Any]:
    return [_meta(obj).get("name"), age(_meta(obj).get("creationTimestamp"))]


# -- built-in printers ---------------------------------------------------------------


def _pod_status(pod: JsonDict) -> str:
    status: JsonDict = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if _meta(pod).get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_row(pod: JsonDict) -> list[Any]:
    spec: JsonDict = pod.get("spec") or {}
    status: JsonDict = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    gates = spec.get("readinessGates") or []
    return [
        _meta(pod).get("name"),
        f"{ready}/{len(spec.get('containers') or [])}",
        _pod_status(pod),
        restarts,
        age(_meta(pod).get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"{len(gates)}" if gates else "<none>",
    ]


def _service_row(svc: JsonDict) -> list[Any]:
    spec: JsonDict = svc.get("spec") or {}
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
        f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [
        _meta(svc).get("name"),
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        ",".join(spec.get("externalIPs") or []) or "<none>",
        ports or "<none>",
        age(_meta(svc).get("creationTimestamp")),
        selector or "<none>",
    ]


def _event_row(event: JsonDict) -> list[Any]:
    involved: JsonDict = event.get("involvedObject") or event.get("regarding") or {}
    last = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or _meta(event).get("creationTimestamp")
    )
    first = event.get("firstTimestamp") or event.get("eventTime") or last
    source: JsonDict = event.get("source") or {}
    count = event.get("count") or 1
    last_seen = age(last)
    if count > 1:
        last_seen = f"{last_seen} (x{count} over {age(first)})"
    return [
        last_seen,
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        source.get("component") or event.get("reportingComponent") or "",
        event.get("message") or event.get("note") or "",
        age(first),
        count,
        _meta(event).get("name"),
    ]


Printer = tuple[list[JsonDict], Callable[[JsonDict], list[Any]]]

_BUILTIN: dict[tuple[str, str], Printer] = {
    ("", "pods"): (
        [
            _NAME,
            _column("Ready"),
            _column("Status"),
            _column("Restarts", "integer"),
            _AGE,
            _column("IP", priority=1),
            _column("Node", priority=1),
            _column("Nominated Node", priority=1),
            _column("Readiness Gates", priority=1),
        ],
        _pod_row,
    ),
    ("", "namespaces"): (
        [_NAME, _column("Status"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            (o.get("status") or {}).get("phase", ""),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    ("", "configmaps"): (
        [_NAME, _column("Data", "integer"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    ("", "secrets"): (
        [_NAME, _column("Type"), _column("Data", "integer"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            o.get("type", ""),
            len(o.get("data") or {}),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    ("", "serviceaccounts"): (
        [_NAME, _column("Secrets", "integer"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            len(o.get("secrets") or []),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    ("", "services"): (
        [
            _NAME,
            _column("Type"),
            _column("Cluster-IP"),
            _column("External-IP"),
            _column("Port(s)"),
            _AGE,
            _column("Selector", priority=1),
        ],
        _service_row,
    ),
    ("", "events"): (
        [
            _column("Last Seen"),
            _column("Type"),
            _column("Reason"),
            _column("Object"),
            _column("Subobject", priority=1),
            _column("Source", priority=1),
            _column("Message"),
            _column("First Seen", priority=1),
            _column("Count", "integer", priority=1),
            _column("Name", priority=1),
        ],
        _event_row,
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [_NAME, _column("Created At", "date")],
        lambda o: [_meta(o).get("name"), _meta(o).get("creationTimestamp")],
    ),
    ("coordination.k8s.io", "leases"): (
        [_NAME, _column("Holder"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            (o.get("spec") or {}).get("holderIdentity", ""),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
}


# -- custom resources ----------------------------------------------------------------


def _cell(obj: JsonDict, column: JsonDict) -> Any:
    values = jsonpath.find(obj, str(column.get("jsonPath", "")))
    if not values:
        return None
    value = values[0]
    kind = column.get("type", "string")
    if kind == "date":
        return age(value)
    if kind == "string":
        if len(values) > 1:
            return ",".join(_text(v) for v in values)
        return _text(value)
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _custom_printer(info: ResourceInfo) -> Printer:
    columns = [dict(_NAME)]
    for column in info.printer_columns:
        kind = column.get("type", "string")
        columns.append(
            _column(
                column["name"],
                kind,
                int(column.get("priority", 0)),
                column.get("format", ""),
                column.get("description", ""),
            )
        )
    if not info.printer_columns:
        columns.append(dict(_AGE))
        return columns, _name_age

    def row(obj: JsonDict) -> list[Any]:
        return [_meta(obj).get("name"), *(_cell(obj, c) for c in info.printer_columns)]

    return columns, row


def printer(info: ResourceInfo) -> Printer:
    if info.custom:
        return _custom_printer(info)
    builtin = _BUILTIN.get(info.storage_key)
    if builtin is not None:
        return builtin
    return [dict(_NAME), dict(_AGE)], _name_age


def _row_object(obj: JsonDict, include: str) -> JsonDict | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    info: ResourceInfo,
    objects: list[JsonDict],
    *,
    include_object: str = "Metadata",
    list_meta: JsonDict | None = None,
    headers: bool = True,
) -> JsonDict:
    """A `Table` of `objects` (already in the client's view) with the resource's columns."""
    columns, make_row = printer(info)
    rows = []
    for obj in objects:
        row: JsonDict = {"cells": make_row(obj)}
        row_object = _row_object(obj, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    result: JsonDict = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "rows": rows,
    }
    if headers:
        result["columnDefinitions"] = columns
    else:
        result["columnDefinitions"] = None
    return result
