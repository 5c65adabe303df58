"""The three patch formats: JSON merge patch, JSON patch, strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError, bad_request


class PatchError(ApiError):
    """A patch that could not be applied: 422, as the apiserver answers."""

    def __init__(self, message: str) -> None:
        super().__init__(422, message, reason="Invalid")


# -- RFC 7386 JSON merge patch -------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch; returns a new value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- RFC 6902 JSON patch -------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], part: str, *, for_add: bool) -> int:
    if part == "-" and for_add:
        return len(container)
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        raise PatchError(f"invalid array index: {part!r}")
    index = int(part)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise PatchError(f"array index out of bounds: {index}")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f"missing path: /{'/'.join(tokens)}")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, for_add=False)]
        else:
            raise PatchError(f"missing path: /{'/'.join(tokens)}")
    return current


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing path: /{'/'.join(tokens)}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False)]
    raise PatchError(f"missing path: /{'/'.join(tokens)}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, for_add=True), value)
    else:
        raise PatchError(f"cannot add at /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"missing path: /{'/'.join(tokens)}")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, for_add=False)]
    else:
        raise PatchError(f"missing path: /{'/'.join(tokens)}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a JSON array of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise bad_request(f"invalid json patch operation: {operation!r}")
        op = operation["op"]
        path = _pointer(str(operation.get("path", "")))
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc = _remove(doc, path)
        elif op == "replace":
            _get(doc, path)
            doc = _add(_remove(doc, path), path, copy.deepcopy(operation.get("value")))
        elif op in ("move", "copy"):
            source = _pointer(str(operation.get("from", "")))
            value = copy.deepcopy(_get(doc, source))
            if op == "move":
                doc = _remove(doc, source)
            doc = _add(doc, path, value)
        elif op == "test":
            if _get(doc, path) != operation.get("value"):
                raise PatchError(f"testing value /{'/'.join(path)} failed: test failed")
        else:
            raise bad_request(f"unknown json patch operation: {op!r}")
    return doc


# -- strategic merge patch (built-in kinds) ------------------------------------------

_CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}


def list_strategy(path: tuple[str, ...]) -> tuple[str, str | None]:
    """How a list at `path` (field names from the root) merges: its patch strategy and key.

    A subset of the `patchStrategy`/`patchMergeKey` tags of the built-in Go types.
    """
    last = path[-1] if path else ""
    parent = path[-2] if len(path) > 1 else ""
    if path == ("metadata", "finalizers"):
        return "merge-primitive", None
    if path == ("metadata", "ownerReferences"):
        return "merge", "uid"
    if last in _CONTAINER_LISTS:
        return "merge", "name"
    if parent in _CONTAINER_LISTS:
        keys = {
            "env": "name",
            "ports": "containerPort",
            "volumeMounts": "mountPath",
            "volumeDevices": "devicePath",
            "resizePolicy": "resourceName",
        }
        if last in keys:
            return "merge", keys[last]
    if path == ("spec", "ports"):
        return "merge", "port"
    if last in ("volumes", "imagePullSecrets", "resourceClaims") and parent == "spec":
        return "merge", "name"
    if last == "hostAliases":
        return "merge", "ip"
    if last in ("podIPs", "hostIPs"):
        return "merge", "ip"
    if last == "conditions" and parent == "status":
        return "merge", "type"
    return "replace", None


def strategic_merge_patch(target: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    """Apply a strategic merge patch with the directives kubectl sends.

    Supported: `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<list>`,
    `$deleteFromPrimitiveList/<list>`, and merging of keyed lists.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.pop("$retainKeys", None)
    orders: dict[str, list[Any]] = {}
    for key in list(patch):
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = patch.pop(key)
        elif key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            doomed = patch.pop(key) or []
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in doomed]
    if isinstance(retain, list):
        for key in list(result):
            if key not in retain and key not in patch:
                del result[key]
    for key, value in patch.items():
        sub = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, sub)
        else:
            result[key] = copy.deepcopy(value)
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _apply_order(result[key], order, list_strategy((*path, key))[1])
    return result


def _merge_list(target: Any, patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    strategy, key = list_strategy(path)
    current = copy.deepcopy(target) if isinstance(target, list) else []
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [
            copy.deepcopy(item)
            for item in patch
            if not (isinstance(item, dict) and item.get("$patch") == "replace")
        ]
    if strategy == "merge-primitive":
        for item in patch:
            if item not in current:
                current.append(copy.deepcopy(item))
        return current
    if strategy != "merge" or key is None:
        return [copy.deepcopy(item) for item in patch]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            current.append(copy.deepcopy(item))
            continue
        position = next(
            (
                i
                for i, old in enumerate(current)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del current[position]
            continue
        if position is None:
            merged = strategic_merge_patch({}, item, path)
            current.append(merged)
        else:
            current[position] = strategic_merge_patch(current[position], item, path)
    return current


def _apply_order(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    ranked = [item for w in wanted for item in items if ident(item) == w]
    rest = [item for item in items if ident(item) not in wanted]
    return ranked + rest
