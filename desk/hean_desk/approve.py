"""`kubectl hean approve`: sign a LiveApproval with a local key, with the engine's own code.

The signing is `hean approval sign`'s (hean_engine.approval: the same payload,
spec hash and Ed25519 signature the operator and the engine verify); only
where the engine comes from differs (the DeskClient, with the user's RBAC).
The private key is read from its file and used in memory: its text never
reaches an output or an error message (load_private_key's errors name the
file, not its content).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hean_contract.errors import ConfigError
from hean_contract.spec import parse_manifest
from hean_desk.errors import EXIT_USAGE, DeskError
from hean_desk.views import EngineView
from hean_engine.approval.manifest import approval_manifest
from hean_engine.approval.sign import add_signature, load_private_key, new_approval
from hean_engine.approval.trust import parse_duration


def wait_seconds(text: str) -> float:
    """--wait as seconds: `0` (do not wait) or a duration such as 60s, 2m."""
    if text.strip() == "0":
        return 0.0
    try:
        return parse_duration(text, "--wait").total_seconds()
    except ConfigError as exc:
        raise DeskError("; ".join(exc.problems), EXIT_USAGE) from None


def signed_manifest(view: EngineView, key_path: Path, ttl: str) -> dict[str, Any]:
    """The LiveApproval manifest for `view`'s current spec, signed with the key at `key_path`."""
    try:
        window = parse_duration(ttl, "--ttl")
        key_id, key = load_private_key(key_path)
        _, spec = parse_manifest(
            {
                "apiVersion": view.raw.get("apiVersion"),
                "kind": view.raw.get("kind"),
                "metadata": view.raw.get("metadata") or {},
                "spec": view.spec,
            }
        )
        unsigned = new_approval(
            namespace=view.namespace,
            engine=view.name,
            engine_uid=view.uid,
            spec=spec,
            ttl=window,
            now=datetime.now(UTC),
        )
    except ConfigError as exc:
        raise DeskError("; ".join(exc.problems), EXIT_USAGE) from None
    return approval_manifest(add_signature(unsigned, key_id, key))
