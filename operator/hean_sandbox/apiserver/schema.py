"""Structural schemas of custom resources: pruning, defaulting and validation.

The order is the apiserver's: unknown fields are pruned, defaults applied,
then the object is validated against the OpenAPI v3 value validations and the
CEL `x-kubernetes-validations` rules.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .cel import NO_OLD, CelError, CelUnsupported, compile_rule
from .errors import Cause

Schema = dict[str, Any]

# The ObjectMeta fields a custom resource's root `metadata` keeps.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def _render(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- pruning -------------------------------------------------------------------------


def prune(obj: Any, schema: Schema, *, root: bool = True, path: str = "") -> list[str]:
    """Drop fields the schema does not know (in place); returns the dropped paths."""
    dropped: list[str] = []
    if not isinstance(obj, dict):
        if isinstance(obj, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(obj):
                dropped += prune(item, schema["items"], root=False, path=f"{path}[{index}]")
        return dropped
    if root:
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            for key in list(meta):
                if key not in OBJECT_META_FIELDS:
                    dropped.append(_join("metadata", key))
                    del meta[key]
    properties: dict[str, Schema] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    for key in list(obj):
        if root and key in ("apiVersion", "kind", "metadata"):
            continue
        sub = _join(path, key)
        if key in properties:
            dropped += prune(obj[key], properties[key], root=False, path=sub)
        elif isinstance(additional, dict):
            dropped += prune(obj[key], additional, root=False, path=sub)
        elif additional is True or preserve:
            continue
        else:
            dropped.append(sub)
            del obj[key]
    return dropped


# -- defaulting ----------------------------------------------------------------------


def apply_defaults(obj: Any, schema: Schema) -> None:
    """Set `default`s of missing (or null, non-nullable) properties, top-down, in place."""
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])
        return
    if not isinstance(obj, dict):
        return
    properties: dict[str, Schema] = schema.get("properties") or {}
    for key, sub in properties.items():
        if key in obj and obj[key] is None and not sub.get("nullable"):
            del obj[key]
        if key not in obj and "default" in sub:
            obj[key] = copy.deepcopy(sub["default"])
        if key in obj:
            apply_defaults(obj[key], sub)
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        for key, value in obj.items():
            if key not in properties:
                apply_defaults(value, additional)


# -- validation ----------------------------------------------------------------------


@dataclass
class Validator:
    """Validates one object against one structural schema; collects `Cause`s."""

    causes: list[Cause] = field(default_factory=list)
    skipped_rules: set[str] = field(default_factory=set)

    def add(self, reason: str, message: str, path: str) -> None:
        self.causes.append(Cause(reason=reason, message=message, field=path))

    def validate(self, value: Any, schema: Schema, path: str, old: Any = NO_OLD) -> None:
        if value is None:
            if not schema.get("nullable") and schema.get("type"):
                self.add(
                    "FieldValueTypeInvalid",
                    f'Invalid value: "null": {path} in body must be of type '
                    f'{schema["type"]}: "null"',
                    path,
                )
            return
        if not self._type_ok(value, schema, path):
            return
        self._value_checks(value, schema, path)
        if isinstance(value, dict):
            self._object(value, schema, path, old)
        elif isinstance(value, list):
            self._array(value, schema, path, old)
        self._rules(value, schema, path, old)

    def _type_ok(self, value: Any, schema: Schema, path: str) -> bool:
        expected = schema.get("type")
        if schema.get("x-kubernetes-int-or-string"):
            if isinstance(value, int | str) and not isinstance(value, bool):
                return True
            expected = "integer or string"
        if not expected:
            return True
        actual = _type_of(value)
        if expected == actual or (expected == "number" and actual == "integer"):
            return True
        self.add(
            "FieldValueTypeInvalid",
            f'Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"',
            path,
        )
        return False

    def _value_checks(self, value: Any, schema: Schema, path: str) -> None:
        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(_render(v) for v in schema["enum"])
            self.add(
                "FieldValueNotSupported",
                f"Unsupported value: {_render(value)}: supported values: {supported}",
                path,
            )
        if isinstance(value, str):
            self._string(value, schema, path)
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._number(value, schema, path)

    def _string(self, value: str, schema: Schema, path: str) -> None:
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            self.add(
                "FieldValueTooLong",
                f"Too long: may not be more than {schema['maxLength']} bytes",
                path,
            )
        if "minLength" in schema and len(value) < schema["minLength"]:
            self.add(
                "FieldValueInvalid",
                f"Invalid value: {_render(value)}: {path} in body should be at least "
                f"{schema['minLength']} chars long",
                path,
            )
        pattern = schema.get("pattern")
        if pattern and re.search(pattern, value) is None:
            self.add(
                "FieldValueInvalid",
                f"Invalid value: {_render(value)}: {path} in body should match '{pattern}'",
                path,
            )
        if schema.get("format") == "date-time" and not _is_datetime(value):
            self.add(
                "FieldValueInvalid",
                f"Invalid value: {_render(value)}: {path} in body must be of type "
                f"date-time: {_render(value)}",
                path,
            )

    def _number(self, value: float, schema: Schema, path: str) -> None:
        if "minimum" in schema:
            low = schema["minimum"]
            if value < low or (schema.get("exclusiveMinimum") and value == low):
                word = (
                    "greater than"
                    if schema.get("exclusiveMinimum")
                    else ("greater than or equal to")
                )
                self.add(
                    "FieldValueInvalid",
                    f"Invalid value: {_render(value)}: {path} in body should be {word} {low}",
                    path,
                )
        if "maximum" in schema:
            high = schema["maximum"]
            if value > high or (schema.get("exclusiveMaximum") and value == high):
                word = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
                self.add(
                    "FieldValueInvalid",
                    f"Invalid value: {_render(value)}: {path} in body should be {word} {high}",
                    path,
                )
        if "multipleOf" in schema and value % schema["multipleOf"] != 0:
            self.add(
                "FieldValueInvalid",
                f"Invalid value: {_render(value)}: {path} in body should be a multiple of "
                f"{schema['multipleOf']}",
                path,
            )

    def _object(self, value: dict[str, Any], schema: Schema, path: str, old: Any) -> None:
        for key in schema.get("required", []):
            if key not in value:
                self.add("FieldValueRequired", "Required value", _join(path, key))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self.add(
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
                path,
            )
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self.add(
                "FieldValueInvalid",
                f"Invalid value: {len(value)}: {path} in body should have at least "
                f"{schema['minProperties']} properties",
                path,
            )
        properties: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, item in value.items():
            if not path and key in ("apiVersion", "kind", "metadata"):
                continue
            sub_schema = properties.get(key)
            if sub_schema is None and isinstance(additional, dict):
                sub_schema = additional
            if sub_schema is not None:
                self.validate(item, sub_schema, _join(path, key), old_map.get(key, NO_OLD))

    def _array(self, value: list[Any], schema: Schema, path: str, old: Any) -> None:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self.add(
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                path,
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            self.add(
                "FieldValueInvalid",
                f"Invalid value: {len(value)}: {path} in body should have at least "
                f"{schema['minItems']} items",
                path,
            )
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen: set[str] = set()
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    ident = _render({k: item.get(k) for k in keys})
                    if ident in seen:
                        self.add(
                            "FieldValueDuplicate",
                            f"Duplicate value: {ident}",
                            f"{path}[{index}]",
                        )
                    seen.add(ident)
        elif list_type == "set" or schema.get("uniqueItems"):
            rendered = [_render(item) for item in value]
            for index, item in enumerate(rendered):
                if item in rendered[:index]:
                    self.add("FieldValueDuplicate", f"Duplicate value: {item}", f"{path}[{index}]")
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                self.validate(item, items, f"{path}[{index}]")

    def _rules(self, value: Any, schema: Schema, path: str, old: Any) -> None:
        for rule in schema.get("x-kubernetes-validations") or []:
            source = str(rule.get("rule", ""))
            try:
                program = compile_rule(source)
            except CelUnsupported:
                self.skipped_rules.add(source)
                continue
            if program.uses_old_self and old is NO_OLD:
                continue  # a transition rule: only checked on update
            field_path = path + str(rule.get("fieldPath", "")) if rule.get("fieldPath") else path
            reason = str(rule.get("reason") or "FieldValueInvalid")
            try:
                result = program.evaluate(value, old)
            except CelError as exc:
                self.add(
                    "FieldValueInvalid",
                    f'Invalid value: "object": {source}: evaluation error: {exc}',
                    field_path,
                )
                continue
            if result is True:
                continue
            message = rule.get("message") or f"failed rule: {source}"
            if reason == "FieldValueRequired":
                self.add(reason, f"Required value: {message}", field_path)
            elif reason == "FieldValueForbidden":
                self.add(reason, f"Forbidden: {message}", field_path)
            elif reason == "FieldValueDuplicate":
                self.add(reason, f"Duplicate value: {message}", field_path)
            else:
                rendered = (
                    '"object"'
                    if isinstance(value, dict)
                    else ('"array"' if isinstance(value, list) else _render(value))
                )
                self.add(reason, f"Invalid value: {rendered}: {message}", field_path)


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def validate(obj: dict[str, Any], schema: Schema, old: Any = NO_OLD) -> Validator:
    """Validate a whole custom resource; metadata is checked elsewhere."""
    validator = Validator()
    validator.validate(obj, schema, "", old)
    return validator


def skipped_rules(schema: Any) -> list[str]:
    """The `x-kubernetes-validations` rules of a schema this evaluator cannot run."""
    found: list[str] = []
    if isinstance(schema, dict):
        for rule in schema.get("x-kubernetes-validations") or []:
            try:
                compile_rule(str(rule.get("rule", "")))
            except CelUnsupported:
                found.append(str(rule.get("rule", "")))
        for value in schema.values():
            found += skipped_rules(value)
    elif isinstance(schema, list):
        for value in schema:
            found += skipped_rules(value)
    return found
