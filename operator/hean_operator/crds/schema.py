"""pydantic JSON Schema -> Kubernetes structural OpenAPI v3 schema.

A CRD's schema must be *structural*: every node has a `type`, there are no
`$ref`s, and `anyOf`/`oneOf` may not introduce types. pydantic emits `$defs`
with `$ref`s and `anyOf: [X, {type: null}]` for optional fields, so this
module inlines references, turns optional unions into their one real type
(the field is simply not `required`), drops `title`s, and keeps what
`kubectl explain` and the apiserver use: descriptions, defaults, enums,
bounds, patterns, `x-kubernetes-*` extensions.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "items",
    "additionalProperties",
    "nullable",
}


class SchemaError(ValueError):
    """The model uses a construct a structural schema cannot express."""


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, path=model.__name__)


def status_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A status's schema whose `conditions` are a list map keyed by `type`, so that
    server-side apply and strategic merges treat each condition as one entry (the
    `meta.SetStatusCondition` shape)."""
    schema = structural_schema(model)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def _resolve(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """Inline a `$ref`, keeping the referring node's own keys (description, default)."""
    if "$ref" not in node:
        return node
    name = node["$ref"].rsplit("/", 1)[-1]
    if name not in defs:
        raise SchemaError(f"{path}: unresolved reference {node['$ref']}")
    merged = dict(defs[name])
    merged.update({k: v for k, v in node.items() if k != "$ref"})
    return merged


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs, path)
    for union in ("anyOf", "oneOf"):
        if union in node:
            options = [_resolve(o, defs, path) for o in node[union]]
            real = [o for o in options if o.get("type") != "null"]
            if len(real) != 1:
                raise SchemaError(f"{path}: a union of several types is not structural")
            rest = {k: v for k, v in node.items() if k != union}
            if rest.get("default", "") is None:
                del rest["default"]  # `None` defaults mean "absent"
            node = {**real[0], **rest}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            out[key] = value
        elif key == "properties":
            out[key] = {
                name: _convert(child, defs, f"{path}.{name}") for name, child in value.items()
            }
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if value is False:
                continue  # the apiserver prunes unknown fields; `false` is not allowed
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out[key] = _convert(value, defs, f"{path}{{}}")
        elif key in _KEEP:
            out[key] = value
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"{path}: no type (structural schemas need one on every node)")
    if out.get("type") == "object" and "properties" in out and "additionalProperties" in out:
        raise SchemaError(f"{path}: properties and additionalProperties together")
    if "properties" in out and out.get("required") == []:
        del out["required"]
    return {key: out[key] for key in sorted(out, key=_key_order)}


# type and description first, nested structure last: how people read a schema.
_ORDER = ["type", "description", "default", "enum", "format", "pattern"]


def _key_order(key: str) -> tuple[int, str]:
    if key in _ORDER:
        return (_ORDER.index(key), key)
    if key in ("required", "properties", "items", "additionalProperties"):
        return (len(_ORDER) + 2, key)
    return (len(_ORDER) + 1, key)


def namespaced_crd(
    *,
    group: str,
    version: str,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    categories: list[str],
    printer_columns: list[dict[str, Any]],
    description: str,
    spec_schema: dict[str, Any],
    status_schema: dict[str, Any],
) -> dict[str, Any]:
    """A namespaced CRD with one served and stored version and a status subresource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": categories,
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
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
