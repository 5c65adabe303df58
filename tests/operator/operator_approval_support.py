"""Keys, trust files, live specs and signed approvals for the operator's approval tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hean_contract.spec import TradingEngineSpec, parse_spec
from hean_engine.approval.manifest import approval_manifest
from hean_engine.approval.sign import add_signature, new_approval

LIVE_SPEC: dict[str, Any] = {
    "mode": "live",
    "exchange": {"id": "binance", "credentialsSecret": "binance-keys"},
    "market": {"symbol": "BTC/USDT"},
    "strategy": {"name": "ema_cross", "params": {"quantity": "0.01"}},
    "risk": {
        "maxOrderNotional": "1000",
        "maxPositionNotional": "5000",
        "maxDailyLoss": "500",
        "maxDrawdownPct": "20",
    },
}


def live_spec(**overrides: Any) -> TradingEngineSpec:
    return parse_spec({**LIVE_SPEC, **overrides})


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def trust_files(
    keys: dict[str, Ed25519PrivateKey], policy: dict[str, Any] | None = None
) -> dict[str, str]:
    files = {f"{key_id}.pub": public_pem(key) for key_id, key in keys.items()}
    if policy is not None:
        files["policy.yaml"] = yaml.safe_dump(policy)
    return files


def signed(
    keys: dict[str, Ed25519PrivateKey],
    *,
    now: datetime,
    namespace: str = "trading",
    engine: str = "btc",
    uid: str = "uid-1",
    spec: TradingEngineSpec | None = None,
    ttl: timedelta = timedelta(hours=1),
    not_before: datetime | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """A LiveApproval manifest signed by every key in `keys`."""
    approval = new_approval(
        namespace=namespace,
        engine=engine,
        engine_uid=uid,
        spec=spec or live_spec(),
        ttl=ttl,
        now=now,
        not_before=not_before,
        name=name,
    )
    for key_id, key in keys.items():
        approval = add_signature(approval, key_id, key)
    return approval_manifest(approval)
