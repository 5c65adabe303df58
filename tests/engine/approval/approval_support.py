"""Shared helpers of the approval tests: keys, an engine, approvals signed at a fixed time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from engine_support import manifest_dict, spec_dict
from hean_contract.spec import EngineIdentity, TradingEngineSpec, parse_spec
from hean_engine.approval.manifest import Approval, approval_manifest
from hean_engine.approval.sign import add_signature, new_approval
from hean_engine.approval.trust import TrustedKey, TrustPolicy

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
UID = "7c1d4a52-9f0e-4c3b-8a61-2b5e9d0f4e17"
IDENTITY = EngineIdentity(name="btc-live", namespace="trading", generation=3, uid=UID)


def live_spec_dict(**overrides: Any) -> dict[str, Any]:
    return spec_dict(
        mode="live", exchange={"id": "binance", "credentialsSecret": "keys"}, **overrides
    )


def live_spec(**overrides: Any) -> TradingEngineSpec:
    return parse_spec(live_spec_dict(**overrides))


def engine_manifest(
    spec: dict[str, Any] | None = None, identity: EngineIdentity = IDENTITY, *, uid: bool = True
) -> dict[str, Any]:
    manifest = manifest_dict(spec or live_spec_dict(), name=identity.name)
    manifest["metadata"]["namespace"] = identity.namespace
    if uid:
        manifest["metadata"]["uid"] = identity.uid
    return manifest


@dataclass(frozen=True)
class Key:
    key_id: str
    private: Ed25519PrivateKey

    def trusted(self, not_after: datetime | None = None) -> TrustedKey:
        return TrustedKey(self.key_id, self.private.public_key(), not_after)

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )


def make_key(key_id: str) -> Key:
    return Key(key_id, Ed25519PrivateKey.generate())


def policy(*keys: Key, required: int = 1, **extra: Any) -> TrustPolicy:
    return TrustPolicy(keys={k.key_id: k.trusted() for k in keys}, required=required, **extra)


def unsigned(
    spec: TradingEngineSpec | None = None,
    identity: EngineIdentity = IDENTITY,
    *,
    ttl: timedelta = timedelta(hours=8),
    now: datetime = NOW,
) -> Approval:
    return new_approval(
        namespace=identity.namespace,
        engine=identity.name,
        engine_uid=identity.uid,
        spec=spec or live_spec(),
        ttl=ttl,
        now=now,
    )


def signed(*keys: Key, approval: Approval | None = None, **kwargs: Any) -> Approval:
    result = approval or unsigned(**kwargs)
    for key in keys:
        result = add_signature(result, key.key_id, key.private)
    return result


def write_trust_dir(directory: Path, *keys: Key, policy_doc: dict[str, Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key in keys:
        (directory / f"{key.key_id}.pub").write_text(key.public_pem())
    if policy_doc is not None:
        (directory / "policy.yaml").write_text(yaml.safe_dump(policy_doc))
    return directory


def write_approval_dir(
    directory: Path, approval: Approval, *keys: Key, policy_doc: dict[str, Any] | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "approval.yaml").write_text(yaml.safe_dump(approval_manifest(approval)))
    write_trust_dir(directory / "trust", *keys, policy_doc=policy_doc)
    return directory
