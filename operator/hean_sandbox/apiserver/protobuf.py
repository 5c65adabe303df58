"""Decoding of the few protobuf request bodies kubectl sends.

kubectl's typed commands (`kubectl create namespace|configmap|secret|serviceaccount`)
send `application/vnd.kubernetes.protobuf`: a `k8s\\0` magic, then a
`runtime.Unknown` envelope around the object's own message. This module
decodes those kinds (field numbers from k8s.io/api core/v1 generated.proto);
other kinds are answered with 415, which is documented in docs/sandbox.md.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

from .errors import ApiError

MAGIC = b"k8s\x00"
JsonDict = dict[str, Any]
Field = tuple[int, int, Any]  # (number, wire type, value: int or bytes)


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def fields(data: bytes) -> Iterator[Field]:
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value = data[position : position + length]
            position += length
        elif wire == 1:
            value, position = data[position : position + 8], position + 8
        elif wire == 5:
            value, position = data[position : position + 4], position + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _text(value: Any) -> str:
    return bytes(value).decode()


def _map(value: bytes, binary: bool = False) -> tuple[str, str]:
    key, item = "", ""
    for number, _, raw in fields(value):
        if number == 1:
            key = _text(raw)
        elif number == 2:
            item = base64.b64encode(raw).decode() if binary else _text(raw)
    return key, item


def _owner_reference(data: bytes) -> JsonDict:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    ref: JsonDict = {}
    for number, _, value in fields(data):
        if number in names:
            ref[names[number]] = _text(value)
        elif number == 6:
            ref["controller"] = bool(value)
        elif number == 7:
            ref["blockOwnerDeletion"] = bool(value)
    return ref


def object_meta(data: bytes) -> JsonDict:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: JsonDict = {}
    for number, _, value in fields(data):
        if number in strings:
            if value:
                meta[strings[number]] = _text(value)
        elif number in (11, 12):
            key, item = _map(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item
        elif number == 13:
            meta.setdefault("ownerReferences", []).append(_owner_reference(value))
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _namespace(data: bytes) -> JsonDict:
    obj: JsonDict = {}
    for number, _, value in fields(data):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number == 2:
            finalizers = [_text(v) for n, _, v in fields(value) if n == 1]
            obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    return obj


def _configmap(data: bytes) -> JsonDict:
    obj: JsonDict = {}
    for number, _, value in fields(data):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number in (2, 3):
            key, item = _map(value, binary=number == 3)
            obj.setdefault("data" if number == 2 else "binaryData", {})[key] = item
        elif number == 4:
            obj["immutable"] = bool(value)
    return obj


def _secret(data: bytes) -> JsonDict:
    obj: JsonDict = {}
    for number, _, value in fields(data):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number in (2, 4):
            key, item = _map(value, binary=number == 2)
            obj.setdefault("data" if number == 2 else "stringData", {})[key] = item
        elif number == 3 and value:
            obj["type"] = _text(value)
        elif number == 5:
            obj["immutable"] = bool(value)
    return obj


def _service_account(data: bytes) -> JsonDict:
    obj: JsonDict = {}
    for number, _, value in fields(data):
        if number == 1:
            obj["metadata"] = object_meta(value)
        elif number == 3:
            name = next((_text(v) for n, _, v in fields(value) if n == 1), "")
            obj.setdefault("imagePullSecrets", []).append({"name": name})
        elif number == 4:
            obj["automountServiceAccountToken"] = bool(value)
    return obj


DECODERS: dict[tuple[str, str], Callable[[bytes], JsonDict]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
    ("v1", "ServiceAccount"): _service_account,
}


def decode(body: bytes) -> JsonDict:
    """The JSON form of a protobuf-encoded object of a supported kind."""
    if not body.startswith(MAGIC):
        raise ApiError(400, "protobuf body without the k8s magic prefix", reason="BadRequest")
    try:
        api_version = kind = ""
        raw = b""
        for number, _, value in fields(body[len(MAGIC) :]):
            if number == 1:
                for sub, _, item in fields(value):
                    if sub == 1:
                        api_version = _text(item)
                    elif sub == 2:
                        kind = _text(item)
            elif number == 2:
                raw = bytes(value)
        decoder = DECODERS.get((api_version, kind))
        if decoder is None:
            raise ApiError(
                415,
                f"the sandbox decodes protobuf bodies of Namespace, ConfigMap, Secret and "
                f"ServiceAccount only, not {kind or 'this kind'}; send "
                "application/json instead",
                reason="UnsupportedMediaType",
            )
        obj = decoder(raw)
    except ValueError as exc:
        raise ApiError(400, f"invalid protobuf body: {exc}", reason="BadRequest") from exc
    return {"apiVersion": api_version, "kind": kind, **obj}
