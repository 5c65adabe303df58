"""The bytes a LiveApproval's signatures cover, byte for byte.

Signatures are over a canonical encoding, never over a manifest as written:
YAML and JSON allow many spellings of the same data, and a signature must
mean exactly one thing. `docs/security.md` documents the encoding with a
worked example that a test recomputes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hean_contract.spec import TradingEngineSpec
from hean_engine.model.timefmt import ISO_SECONDS_FORMAT, datetime_to_iso

API_VERSION = "hean.io/v1alpha1"
KIND = "LiveApproval"
# Domain separation: these bytes can never be mistaken for a signature over
# anything else a key might sign (another format, another version).
DOMAIN = b"hean-live-approval-v1\n"
# What the spec hash covers: everything that decides what and how much is
# traded. `paused`, `halt` and `paper` are left out on purpose: pausing or
# halting an engine only makes it safer and must not invalidate its approval.
# `image`, when set, is covered too (`spec_document`).
TRADING_FIELDS = ("mode", "exchange", "market", "strategy", "risk", "live")

# RFC 3339 UTC with second precision: the one spelling a signed time may have.
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def _refuse_floats(value: Any, path: str) -> None:
    # A float has several decimal spellings and is rounded by some parsers:
    # two honest encoders could disagree, so signed data holds none (the
    # engine's spec writes decimals as strings).
    if isinstance(value, float):
        raise ValueError(f"{path or 'value'}: floats cannot be signed; write {value!r} as a string")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path or 'value'}: keys must be strings, got {key!r}")
            _refuse_floats(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_floats(item, f"{path}[{index}]")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not \\u escapes); floats refused (ValueError)."""
    _refuse_floats(value, "")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def spec_document(spec: TradingEngineSpec) -> dict[str, Any]:
    """The part of a spec that the hash covers, as the JSON the hash is taken over."""
    dumped = spec.model_dump(mode="json", by_alias=True)
    document = {key: dumped[key] for key in TRADING_FIELDS}
    # The image is the code that trades (a user's strategy lives in it), so an
    # approval covers it; absent, it is left out, so that the hash of a spec
    # without one is what it was before `image` existed.
    if spec.image is not None:
        document["image"] = spec.image
    return document


def spec_hash(spec: TradingEngineSpec) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of the spec's trading fields."""
    return hashlib.sha256(canonical_json(spec_document(spec))).hexdigest()


def format_time(moment: datetime) -> str:
    """`2026-11-25T23:00:00Z`: UTC, whole seconds (anything finer is dropped)."""
    if moment.tzinfo is None:
        raise ValueError("a signed time must carry a time zone")
    return datetime_to_iso(moment)


def parse_time(text: str) -> datetime:
    """The inverse of `format_time`; anything but that exact spelling is a ValueError."""
    if not _TIME.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 UTC time like 2026-01-31T12:00:00Z")
    return datetime.strptime(text, ISO_SECONDS_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class ApprovalPayload:
    """Everything a signature covers: which engine, which spec, when."""

    namespace: str
    engine: str
    engine_uid: str
    spec_hash: str
    not_before: str
    expires_at: str
    nonce: str

    def document(self) -> dict[str, str]:
        return {
            "apiVersion": API_VERSION,
            "namespace": self.namespace,
            "engine": self.engine,
            "engineUid": self.engine_uid,
            "specHash": self.spec_hash,
            "notBefore": self.not_before,
            "expiresAt": self.expires_at,
            "nonce": self.nonce,
        }

    def signed_bytes(self) -> bytes:
        return DOMAIN + canonical_json(self.document())
