"""Which keys may approve live trading, how many must, and which are revoked.

A trust directory holds one `<keyId>.pub` per trusted key (an Ed25519 public
key in PEM) and an optional `policy.yaml`:

    required: 2                  # N of the M keys (default 1)
    namespaces:                  # a stricter (or looser) N for one namespace
      prod: {required: 3}
    revoked: [alice-2025]        # keys that no longer count, even if still present
    keys:
      bob-2026: {notAfter: "2027-01-01T00:00:00Z"}   # a key's own end of life

Anything unexpected is an error rather than ignored: a typo in `revoked`
or a `policy.yml` must not silently leave a key trusted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from hean_engine.approval.payload import parse_time
from hean_engine.model.errors import ConfigError

KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
POLICY_FILE = "policy.yaml"
PUBLIC_SUFFIX = ".pub"


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: Ed25519PublicKey
    not_after: datetime | None = None


@dataclass(frozen=True)
class TrustPolicy:
    keys: Mapping[str, TrustedKey]
    revoked: frozenset[str] = frozenset()
    required: int = 1
    required_by_namespace: Mapping[str, int] = field(default_factory=dict)

    def required_for(self, namespace: str) -> int:
        return self.required_by_namespace.get(namespace, self.required)


def valid_key_id(key_id: str) -> bool:
    return KEY_ID.fullmatch(key_id) is not None


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError([f"{where}: expected an integer >= 1, got {value!r}"])
    return value


def _policy(text: str) -> tuple[int, dict[str, int], frozenset[str], dict[str, datetime]]:
    where = POLICY_FILE
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: not valid YAML: {exc}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{where}: expected a mapping"])
    unknown = sorted(set(data) - {"required", "namespaces", "revoked", "keys"})
    if unknown:
        raise ConfigError([f"{where}: {unknown[0]}: unknown field"])
    required = _count(data.get("required", 1), f"{where}: required")
    by_namespace: dict[str, int] = {}
    namespaces = data.get("namespaces") or {}
    if not isinstance(namespaces, dict):
        raise ConfigError([f"{where}: namespaces: expected a mapping"])
    for namespace, entry in namespaces.items():
        if not isinstance(entry, dict) or set(entry) != {"required"}:
            raise ConfigError([f"{where}: namespaces.{namespace}: expected {{required: N}}"])
        by_namespace[str(namespace)] = _count(
            entry["required"], f"{where}: namespaces.{namespace}.required"
        )
    revoked = data.get("revoked") or []
    if not isinstance(revoked, list) or not all(isinstance(k, str) for k in revoked):
        raise ConfigError([f"{where}: revoked: expected a list of key ids"])
    for key_id in revoked:
        if not valid_key_id(key_id):
            raise ConfigError([f"{where}: revoked: {key_id!r} is not a key id"])
    not_after: dict[str, datetime] = {}
    keys = data.get("keys") or {}
    if not isinstance(keys, dict):
        raise ConfigError([f"{where}: keys: expected a mapping"])
    for key_id, entry in keys.items():
        if not isinstance(entry, dict) or set(entry) - {"notAfter"}:
            raise ConfigError([f"{where}: keys.{key_id}: expected {{notAfter: TIME}}"])
        if "notAfter" in entry:
            value = entry["notAfter"]
            try:
                not_after[str(key_id)] = (
                    value if isinstance(value, datetime) else parse_time(str(value))
                )
            except ValueError as exc:
                raise ConfigError([f"{where}: keys.{key_id}.notAfter: {exc}"]) from None
            if not_after[str(key_id)].tzinfo is None:
                raise ConfigError([f"{where}: keys.{key_id}.notAfter: must be in UTC"])
    return required, by_namespace, frozenset(revoked), not_after


def _public_key(name: str, text: str) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(text.encode("utf-8"))
    except (ValueError, TypeError):
        raise ConfigError([f"{name}: not a PEM public key"]) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError([f"{name}: not an Ed25519 public key"])
    return key


def trust_from_files(files: Mapping[str, str]) -> TrustPolicy:
    """A trust policy from file name -> text (a ConfigMap's `data`, or a directory)."""
    required = 1
    by_namespace: dict[str, int] = {}
    revoked: frozenset[str] = frozenset()
    not_after: dict[str, datetime] = {}
    keys: dict[str, TrustedKey] = {}
    for name in sorted(files):
        text = files[name]
        if name == POLICY_FILE:
            required, by_namespace, revoked, not_after = _policy(text)
        elif name.endswith(PUBLIC_SUFFIX):
            key_id = name[: -len(PUBLIC_SUFFIX)]
            if not valid_key_id(key_id):
                raise ConfigError([f"{name}: {key_id!r} is not a valid key id"])
            keys[key_id] = TrustedKey(key_id, _public_key(name, text))
        elif name.endswith(".key"):
            # Never echo it: the error says what it looks like, not what it holds.
            raise ConfigError([f"{name}: a private key does not belong in a trust directory"])
        else:
            raise ConfigError(
                [f"{name}: unexpected file (a trust directory holds <keyId>.pub and policy.yaml)"]
            )
    keys = {
        key_id: TrustedKey(key_id, key.public_key, not_after.get(key_id))
        for key_id, key in keys.items()
    }
    return TrustPolicy(
        keys=keys, revoked=revoked, required=required, required_by_namespace=by_namespace
    )


def load_trust_dir(directory: Path) -> TrustPolicy:
    """`trust_from_files` over a directory's regular files.

    Names starting with a dot are skipped: a mounted ConfigMap keeps its
    versions in `..data` and `..<timestamp>` entries next to the files.
    """
    if not directory.is_dir():
        raise ConfigError([f"{directory}: no such trust directory"])
    files: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            files[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: cannot read: {type(exc).__name__}"]) from None
    return trust_from_files(files)
