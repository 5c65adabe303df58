"""The JSONPath subset `additionalPrinterColumns` use: `.a.b`, `[0]`, `[*]`, `[?(@.k=="v")]`."""

from __future__ import annotations

import re
from typing import Any

_FILTER_RE = re.compile(
    r"""^\?\(@\.([A-Za-z0-9_.]+)\s*(==|!=)\s*(?:"([^"]*)"|'([^']*)'|(\S+))\)$"""
)


def _segments(path: str) -> list[str]:
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    segments: list[str] = []
    position = 0
    while position < len(path):
        char = path[position]
        if char == ".":
            position += 1
            continue
        if char == "[":
            depth, end = 0, position
            for end in range(position, len(path)):
                if path[end] == "[":
                    depth += 1
                elif path[end] == "]":
                    depth -= 1
                    if depth == 0:
                        break
            segments.append(path[position : end + 1])
            position = end + 1
            continue
        match = re.match(r"[^.\[]+", path[position:])
        assert match is not None
        segments.append(match.group())
        position += match.end()
    return segments


def _lookup(value: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def find(obj: Any, path: str) -> list[Any]:
    """Every value `path` selects in `obj` (empty when nothing matches)."""
    current = [obj]
    for segment in _segments(path):
        found: list[Any] = []
        if segment.startswith("["):
            inner = segment[1:-1].strip()
            for value in current:
                if not isinstance(value, list | dict):
                    continue
                if inner == "*":
                    found.extend(value if isinstance(value, list) else value.values())
                elif inner.startswith("?"):
                    match = _FILTER_RE.match(inner)
                    if not match or not isinstance(value, list):
                        continue
                    key, op = match.group(1), match.group(2)
                    literal = next(g for g in match.groups()[2:] if g is not None)
                    for item in value:
                        actual = _lookup(item, key)
                        equal = actual is not None and str(actual) == literal
                        if equal == (op == "=="):
                            found.append(item)
                elif inner.lstrip("-").isdigit() and isinstance(value, list):
                    index = int(inner)
                    if -len(value) <= index < len(value):
                        found.append(value[index])
                elif isinstance(value, dict):
                    key = inner.strip("'\"")
                    if key in value:
                        found.append(value[key])
        else:
            for value in current:
                if isinstance(value, dict) and segment in value:
                    found.append(value[segment])
        current = found
    return current
