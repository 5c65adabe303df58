"""Label selectors and field selectors, parsed as the apiserver parses them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import bad_request
from .resources import ResourceInfo

_KEY = r"[A-Za-z0-9_./-]+"
_VALUE = r"[A-Za-z0-9_.-]*"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_OP_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=|>|<)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present:
            return False
        try:
            number, bound = int(str(value)), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.op == ">" else number < bound


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text:
            return cls()
        requirements = []
        for part in _split_top_level(text):
            if match := _SET_RE.match(part):
                values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
                requirements.append(Requirement(match.group(1), match.group(2), values))
            elif match := _OP_RE.match(part):
                op = "=" if match.group(2) == "==" else match.group(2)
                requirements.append(Requirement(match.group(1), op, (match.group(3),)))
            elif match := _EXISTS_RE.match(part):
                op = "!" if match.group(1) else "exists"
                requirements.append(Requirement(match.group(2), op))
            else:
                raise bad_request(f"unable to parse requirement: {part.strip()!r}")
        return cls(tuple(requirements))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(req.matches(labels) for req in self.requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string a field selector compares against ("" when the field is missing)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


@dataclass(frozen=True)
class FieldSelector:
    # (stored field path, operator "=" or "!=", value)
    terms: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None, info: ResourceInfo) -> FieldSelector:
        if not text:
            return cls()
        allowed = {"metadata.name", "metadata.namespace", *info.selectable_fields}
        terms = []
        for part in _split_top_level(text):
            match = re.match(r"^\s*([^=!\s]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
            if not match:
                raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            key, op, value = match.groups()
            stored = info.field_aliases.get(key, key)
            if stored not in allowed:
                raise bad_request(f"field label not supported: {key}")
            terms.append((stored, "!=" if op == "!=" else "=", value))
        return cls(tuple(terms))

    def matches(self, stored_obj: Mapping[str, Any]) -> bool:
        for path, op, value in self.terms:
            actual = field_value(stored_obj, path)
            if (actual == value) != (op == "="):
                return False
        return True

    def name(self) -> str | None:
        """The single name this selector pins (`metadata.name=x`), if any."""
        for path, op, value in self.terms:
            if path == "metadata.name" and op == "=":
                return value
        return None
