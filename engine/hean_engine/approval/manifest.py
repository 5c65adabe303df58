"""LiveApproval manifests (the Kubernetes resource, or a file) to `Approval` and back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hean_engine.approval.payload import API_VERSION, KIND, ApprovalPayload, format_time
from hean_engine.model.errors import ConfigError


@dataclass(frozen=True)
class Signature:
    key_id: str
    signature: str  # base64 (standard alphabet) of the 64-byte Ed25519 signature


@dataclass(frozen=True)
class Approval:
    name: str  # metadata.name: not signed (it only names the resource)
    namespace: str
    payload: ApprovalPayload
    signatures: tuple[Signature, ...]


def _text(value: Any, field: str, problems: list[str]) -> str:
    if isinstance(value, str) and value:
        return value
    if value is None:
        problems.append(f"{field}: required field missing")
    else:
        problems.append(f"{field}: expected a non-empty string, got {type(value).__name__}")
    return ""


def _time(value: Any, field: str, problems: list[str]) -> str:
    # YAML turns an unquoted timestamp into a datetime; it still means one
    # instant, so it is accepted and spelled the one signed way.
    if isinstance(value, datetime):
        if value.tzinfo is None:
            problems.append(f"{field}: the time must be in UTC (a trailing Z)")
            return ""
        return format_time(value)
    return _text(value, field, problems)


def _mapping(value: Any, field: str, problems: list[str]) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    problems.append(f"{field}: expected a mapping")
    return {}


def parse_approval(manifest: dict[str, Any]) -> Approval:
    """A LiveApproval manifest; ConfigError naming every bad field.

    Only the shape is checked here: whether the times, the hash and the
    signatures mean anything is `verify`'s job, so that a bad approval is
    reported with its reason rather than as unreadable.
    """
    problems: list[str] = []
    if not isinstance(manifest, dict):
        raise ConfigError([f"approval: expected a mapping, got {type(manifest).__name__}"])
    if manifest.get("apiVersion", API_VERSION) != API_VERSION:
        problems.append(f"apiVersion: expected {API_VERSION}, got {manifest.get('apiVersion')!r}")
    if manifest.get("kind", KIND) != KIND:
        problems.append(f"kind: expected {KIND}, got {manifest.get('kind')!r}")
    meta = _mapping(manifest.get("metadata"), "metadata", problems)
    spec = _mapping(manifest.get("spec"), "spec", problems)
    ref = _mapping(spec.get("engineRef"), "spec.engineRef", problems) if spec else {}
    name = _text(meta.get("name"), "metadata.name", problems)
    namespace = _text(meta.get("namespace"), "metadata.namespace", problems)
    payload = ApprovalPayload(
        namespace=namespace,
        engine=_text(ref.get("name"), "spec.engineRef.name", problems),
        engine_uid=_text(spec.get("engineUid"), "spec.engineUid", problems),
        spec_hash=_text(spec.get("specHash"), "spec.specHash", problems),
        not_before=_time(spec.get("notBefore"), "spec.notBefore", problems),
        expires_at=_time(spec.get("expiresAt"), "spec.expiresAt", problems),
        nonce=_text(spec.get("nonce"), "spec.nonce", problems),
    )
    raw_signatures = spec.get("signatures", [])
    signatures: list[Signature] = []
    if raw_signatures is None:
        raw_signatures = []
    if not isinstance(raw_signatures, list):
        problems.append("spec.signatures: expected a list")
        raw_signatures = []
    for index, item in enumerate(raw_signatures):
        where = f"spec.signatures[{index}]"
        entry = _mapping(item, where, problems)
        if not entry:
            continue
        unknown = sorted(set(entry) - {"keyId", "signature"})
        if unknown:
            problems.append(f"{where}.{unknown[0]}: unknown field")
        signatures.append(
            Signature(
                key_id=_text(entry.get("keyId"), f"{where}.keyId", problems),
                signature=_text(entry.get("signature"), f"{where}.signature", problems),
            )
        )
    if problems:
        raise ConfigError(problems)
    return Approval(name=name, namespace=namespace, payload=payload, signatures=tuple(signatures))


def approval_manifest(approval: Approval) -> dict[str, Any]:
    """The LiveApproval manifest of `approval` (what `hean approval sign` prints)."""
    payload = approval.payload
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": approval.name, "namespace": approval.namespace},
        "spec": {
            "engineRef": {"name": payload.engine},
            "engineUid": payload.engine_uid,
            "specHash": payload.spec_hash,
            "notBefore": payload.not_before,
            "expiresAt": payload.expires_at,
            "nonce": payload.nonce,
            "signatures": [
                {"keyId": sig.key_id, "signature": sig.signature} for sig in approval.signatures
            ],
        },
    }
