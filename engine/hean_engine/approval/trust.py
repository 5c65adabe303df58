"""Which keys may approve live trading, how many must, and which are revoked.

A trust directory holds one `<keyId>.pub` per trusted key (an Ed25519 public
key in PEM) and an optional `policy.yaml`:

    required: 2                  # N of the M keys (default 1)
    namespaces:                  # a stricter (or looser) N for one namespace
      prod: {required: 3}
    revoked: [alice-2025]        # keys that no longer count (their .pub stays in place)
    keys:
      bob-2026: {notAfter: "2027-01-01T00:00:00Z"}   # a key's own end of life
    maxTtl: 30d                  # the longest window an approval may have (default 30d)

Anything unexpected is an error rather than ignored: a typo in `revoked` or
`keys` (an id with no `.pub`) or a `policy.yml` must not silently leave a key
trusted. A key is what counts, not its id: signatures are counted, revoked
and expired by the key's fingerprint (SHA-256 of its raw public bytes), and a
directory holding one key under two ids is refused, since the second id would
let one person's signature count twice and dodge a revocation of the first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from hean_engine.approval.payload import parse_time
from hean_engine.model.errors import ConfigError, UnreadableError
from hean_engine.model.yamltext import load_one, read_text

KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
POLICY_FILE = "policy.yaml"
PUBLIC_SUFFIX = ".pub"
# The longest window (expiresAt - notBefore) an approval may have unless the
# policy says otherwise: an approval is a decision about now, not a standing grant.
DEFAULT_MAX_TTL = timedelta(days=30)
# Durations beyond this are refused outright (the arithmetic on times must not overflow).
LONGEST_DURATION = timedelta(days=3650)

_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, flag: str, *, longest: timedelta = LONGEST_DURATION) -> timedelta:
    """`8h`, `30m`, `2d`, `90s` or a sum like `1h30m`; ConfigError naming `flag` otherwise."""
    value = text.strip()
    if not value or _DURATION_PART.sub("", value):
        raise ConfigError([f"{flag}: {text!r} is not a duration like 8h, 30m, 2d or 1h30m"])
    parts = _DURATION_PART.findall(value)
    if any(len(n) > 12 for n, _ in parts):
        raise ConfigError([f"{flag}: {text!r} is longer than the limit of {longest.days} days"])
    seconds = sum(int(n) * _UNITS[unit] for n, unit in parts)
    if seconds <= 0:
        raise ConfigError([f"{flag}: must be positive"])
    if seconds > longest.total_seconds():
        raise ConfigError([f"{flag}: {text!r} is longer than the limit of {longest.days} days"])
    return timedelta(seconds=seconds)


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """`sha256:<hex>` of the key's 32 raw bytes: what a key is, whatever its file is called."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    public_key: Ed25519PublicKey
    not_after: datetime | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)


@dataclass(frozen=True)
class TrustPolicy:
    keys: Mapping[str, TrustedKey]
    revoked: frozenset[str] = frozenset()
    required: int = 1
    required_by_namespace: Mapping[str, int] = field(default_factory=dict)
    max_ttl: timedelta = DEFAULT_MAX_TTL

    def required_for(self, namespace: str) -> int:
        return self.required_by_namespace.get(namespace, self.required)

    def revoked_fingerprints(self) -> frozenset[str]:
        """The revoked keys themselves: a revoked key is revoked under any id."""
        return frozenset(self.keys[k].fingerprint for k in self.revoked if k in self.keys)


def valid_key_id(key_id: str) -> bool:
    return KEY_ID.fullmatch(key_id) is not None


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError([f"{where}: expected an integer >= 1, got {value!r}"])
    return value


@dataclass(frozen=True)
class _Policy:
    required: int = 1
    by_namespace: Mapping[str, int] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()
    not_after: Mapping[str, datetime] = field(default_factory=dict)
    max_ttl: timedelta = DEFAULT_MAX_TTL


def _policy(text: str) -> _Policy:
    where = POLICY_FILE
    data = load_one(text, where, empty=None)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{where}: expected a mapping"])
    unknown = sorted(
        (str(k) for k in set(data) - {"required", "namespaces", "revoked", "keys", "maxTtl"}),
    )
    if unknown:
        raise ConfigError([f"{where}: {unknown[0]}: unknown field"])
    max_ttl = DEFAULT_MAX_TTL
    if "maxTtl" in data:
        if not isinstance(data["maxTtl"], str):
            raise ConfigError([f"{where}: maxTtl: expected a duration like 30d or 8h"])
        max_ttl = parse_duration(data["maxTtl"], f"{where}: maxTtl")
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
    return _Policy(required, by_namespace, frozenset(revoked), not_after, max_ttl)


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
    policy = _Policy()
    keys: dict[str, TrustedKey] = {}
    for name in sorted(files):
        text = files[name]
        if name == POLICY_FILE:
            policy = _policy(text)
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
    problems: list[str] = []
    by_fingerprint: dict[str, str] = {}
    for key_id, key in sorted(keys.items()):
        first = by_fingerprint.setdefault(key.fingerprint, key_id)
        if first != key_id:
            problems.append(
                f"{first}.pub and {key_id}.pub hold the same public key "
                f"({key.fingerprint[:23]}...): one key under two ids would count twice "
                "and dodge a revocation; remove one"
            )
    known = ", ".join(sorted(keys)) or "none"
    for key_id in sorted(policy.revoked):
        if key_id not in keys:
            problems.append(
                f"{POLICY_FILE}: revoked: {key_id!r} is not a key in the trust directory "
                f"(keys: {known}); a revoked key's .pub stays in place, listed here"
            )
    for key_id in sorted(policy.not_after):
        if key_id not in keys:
            problems.append(
                f"{POLICY_FILE}: keys.{key_id}: no such key in the trust directory (keys: {known})"
            )
    if problems:
        raise ConfigError(problems)
    return TrustPolicy(
        keys={
            key_id: TrustedKey(key_id, key.public_key, policy.not_after.get(key_id))
            for key_id, key in keys.items()
        },
        revoked=policy.revoked,
        required=policy.required,
        required_by_namespace=dict(policy.by_namespace),
        max_ttl=policy.max_ttl,
    )


def load_trust_dir(directory: Path) -> TrustPolicy:
    """`trust_from_files` over a directory's regular files.

    Names starting with a dot are skipped: a mounted ConfigMap keeps its
    versions in `..data` and `..<timestamp>` entries next to the files.
    """
    if not directory.is_dir():
        raise ConfigError([f"{directory}: no such trust directory"])
    files: dict[str, str] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise UnreadableError([f"{directory}: cannot list: {exc.strerror or exc}"]) from None
    for path in entries:
        if path.name.startswith(".") or not path.is_file():
            continue
        files[path.name] = read_text(path, str(path))
    return trust_from_files(files)
