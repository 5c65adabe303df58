"""A minimal OpenAPI v3 discovery: enough for kubectl to find server-side field validation.

kubectl looks for the `fieldValidation` parameter of each kind's PATCH operation
before it sends `?fieldValidation=Strict` (else it validates client-side and
needs the full OpenAPI v2 document, which the sandbox does not have). Custom
resources also carry their structural schema, so `kubectl explain` works for
them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from .resources import ResourceInfo
from .store import Registry

JsonDict = dict[str, Any]

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(info: ResourceInfo) -> str:
    group = ".".join(reversed(info.group.split("."))) if info.group else "io.k8s.api.core"
    return f"{group}.{info.version}.{info.kind}"


def group_version_doc(registry: Registry, group: str, version: str) -> JsonDict | None:
    infos = [i for i in registry.all() if i.group == group and i.version == version]
    if not infos:
        return None
    paths: JsonDict = {}
    schemas: JsonDict = {}
    for info in infos:
        gvk = {"group": info.group, "version": info.version, "kind": info.kind}
        base = f"/{_gv_path(group, version)}"
        if info.namespaced:
            base += "/namespaces/{namespace}"
        item_path = f"{base}/{info.plural}/{{name}}"
        parameters = [
            {"name": name, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
            for name in _QUERY_PARAMS
        ]
        ref = {"$ref": f"#/components/schemas/{_schema_name(info)}"}
        paths[item_path] = {
            "get": {
                "operationId": f"read{info.kind}",
                "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"content": {"application/json": {"schema": ref}}}},
            },
            "patch": {
                "operationId": f"patch{info.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "parameters": parameters,
                "responses": {"200": {"content": {"application/json": {"schema": ref}}}},
            },
        }
        schema: JsonDict = copy.deepcopy(info.schema) if info.schema else {"type": "object"}
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[_schema_name(info)] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-hean-sandbox"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def root(registry: Registry) -> JsonDict:
    paths: JsonDict = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = group_version_doc(registry, group, version)
            digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
            gv = _gv_path(group, version)
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest.upper()}"}
    return {"paths": paths}
