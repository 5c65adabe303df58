"""Keys and signatures: what a person approving live trading runs (through `hean approval`).

A private key is only ever read from its file and used in memory: it is
never printed, logged or put into an error message (a message names the
file, not its content).
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from hean_contract.spec import TradingEngineSpec
from hean_engine.approval.manifest import Approval, Signature
from hean_engine.approval.payload import ApprovalPayload, format_time, spec_hash
from hean_engine.approval.trust import LONGEST_DURATION, valid_key_id
from hean_engine.model.errors import ConfigError

PRIVATE_SUFFIX = ".key"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never overwrite a key (losing one is bad, replacing a trusted
    # one silently is worse); the mode is set at creation, so the private key
    # is never readable by others, not even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def generate_key(out_dir: Path, key_id: str) -> tuple[Path, Path]:
    """A new Ed25519 key pair: `<id>.key` (PKCS8 PEM, 0600) and `<id>.pub` (PEM)."""
    if not valid_key_id(key_id):
        raise ConfigError([f"--key-id: {key_id!r} must match [A-Za-z0-9][A-Za-z0-9._-]{{0,62}}"])
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path = out_dir / f"{key_id}{PRIVATE_SUFFIX}"
    public_path = out_dir / f"{key_id}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError([f"--out: {path} exists already (keys are never overwritten)"])
    key = Ed25519PrivateKey.generate()
    _write_new(
        private_path,
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
        0o600,
    )
    _write_new(
        public_path,
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
        0o644,
    )
    return private_path, public_path


def load_private_key(path: Path) -> tuple[str, Ed25519PrivateKey]:
    """(key id = the file's stem, key); refuses a key file others can read."""
    key_id = path.stem
    if not valid_key_id(key_id):
        raise ConfigError([f"--key: the file name {path.name!r} does not start with a key id"])
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [f"--key: cannot read {path}: {exc.strerror or type(exc).__name__}"]
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            [f"--key: {path} is accessible by others (mode {stat.S_IMODE(mode):o}); chmod 600 it"]
        )
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The library's message is not passed on: it could quote the file.
        raise ConfigError([f"--key: {path} is not an unencrypted PKCS8 PEM private key"]) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError([f"--key: {path} is not an Ed25519 private key"])
    return key_id, key


def new_approval(
    *,
    namespace: str,
    engine: str,
    engine_uid: str,
    spec: TradingEngineSpec,
    ttl: timedelta,
    now: datetime,
    not_before: datetime | None = None,
    name: str | None = None,
) -> Approval:
    """An unsigned approval for this engine and spec, valid from `not_before` (now) for `ttl`."""
    if ttl <= timedelta(0):
        raise ConfigError(["--ttl: must be positive"])
    if not engine_uid:
        raise ConfigError(["--uid: the engine's metadata.uid is required"])
    try:
        digest = spec_hash(spec)
    except ValueError as exc:
        raise ConfigError([f"spec: {exc}"]) from None
    start = not_before or now
    if start - now > LONGEST_DURATION:
        raise ConfigError(
            [f"--not-before: more than {LONGEST_DURATION.days} days ahead: not an approval for now"]
        )
    try:
        start_text = format_time(start)
        # Whole seconds, as signed: the window starts at the second written.
        expires_text = format_time(start.replace(microsecond=0) + ttl)
    except (OverflowError, ValueError):
        raise ConfigError(["--ttl/--not-before: the window ends beyond the year 9999"]) from None
    nonce = secrets.token_hex(16)
    payload = ApprovalPayload(
        namespace=namespace,
        engine=engine,
        engine_uid=engine_uid,
        spec_hash=digest,
        not_before=start_text,
        expires_at=expires_text,
        nonce=nonce,
    )
    return Approval(
        name=name or f"{engine}-{nonce[:8]}", namespace=namespace, payload=payload, signatures=()
    )


def sign_payload(payload: ApprovalPayload, key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.sign(payload.signed_bytes())).decode("ascii")


def add_signature(approval: Approval, key_id: str, key: Ed25519PrivateKey) -> Approval:
    """`approval` with `key_id`'s signature (replacing an earlier one by the same key)."""
    signature = Signature(key_id, sign_payload(approval.payload, key))
    others = tuple(sig for sig in approval.signatures if sig.key_id != key_id)
    return replace(approval, signatures=(*others, signature))
