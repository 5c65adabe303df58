"""Is this approval valid for this engine, this spec, now? One function, used by both checkers.

The order of the checks is the order of the questions a reviewer would ask:
is it about this engine and this spec (binding), is it in force (time
window), and did enough trusted people sign it (signatures). The first
failing answer is the verdict; messages name the problem, never key bytes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hean_contract.spec import TradingEngineSpec
from hean_engine.approval.manifest import Approval
from hean_engine.approval.payload import parse_time, spec_hash
from hean_engine.approval.trust import TrustPolicy


class Reason(StrEnum):
    VALID = "valid"
    MALFORMED = "malformed"
    NO_SIGNATURES = "no_signatures"
    UNTRUSTED_KEY = "untrusted_key"
    REVOKED_KEY = "revoked_key"
    KEY_EXPIRED = "key_expired"
    BAD_SIGNATURE = "bad_signature"
    NOT_ENOUGH_SIGNATURES = "not_enough_signatures"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_ENGINE = "wrong_engine"
    WRONG_NAMESPACE = "wrong_namespace"
    WRONG_UID = "wrong_uid"
    SPEC_CHANGED = "spec_changed"
    TTL_TOO_LONG = "ttl_too_long"
    # The approval or the trust directory could not be read (an I/O error): not a
    # verdict on the approval. The engine's watch retries for a bounded grace.
    UNCHECKED = "could_not_check"


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: Reason
    message: str
    # Distinct trusted keys whose signatures verified (and counted).
    key_ids: tuple[str, ...] = ()
    expires_at: datetime | None = None
    # The next instant the verdict can change by time alone (notBefore,
    # expiresAt or a counted key's notAfter): when to look again.
    next_change: datetime | None = None


# When too few signatures count, the most specific problem seen is the reason:
# a forged signature says more than a missing one.
_SPECIFICITY = (
    Reason.BAD_SIGNATURE,
    Reason.REVOKED_KEY,
    Reason.KEY_EXPIRED,
    Reason.UNTRUSTED_KEY,
)


def _refuse(
    reason: Reason,
    message: str,
    *,
    key_ids: tuple[str, ...] = (),
    expires_at: datetime | None = None,
    next_change: datetime | None = None,
) -> Verdict:
    return Verdict(False, reason, message, key_ids, expires_at, next_change)


def verify(
    approval: Approval,
    policy: TrustPolicy,
    *,
    namespace: str,
    engine: str,
    engine_uid: str,
    spec: TradingEngineSpec,
    now: datetime,
) -> Verdict:
    payload = approval.payload
    try:
        not_before = parse_time(payload.not_before)
        expires_at = parse_time(payload.expires_at)
    except ValueError as exc:
        return _refuse(Reason.MALFORMED, f"bad time in the approval: {exc}")
    # -- binding: this engine, this spec -----------------------------------------
    if payload.namespace != namespace or approval.namespace != namespace:
        return _refuse(
            Reason.WRONG_NAMESPACE,
            f"the approval is for namespace {payload.namespace!r}, the engine is in {namespace!r}",
        )
    if payload.engine != engine:
        return _refuse(
            Reason.WRONG_ENGINE,
            f"the approval is for engine {payload.engine!r}, not {engine!r}",
        )
    if not engine_uid or payload.engine_uid != engine_uid:
        return _refuse(
            Reason.WRONG_UID,
            f"the approval is for uid {payload.engine_uid!r}, the engine's is {engine_uid!r} "
            "(was the engine deleted and re-created?)",
        )
    try:
        current = spec_hash(spec)
    except ValueError as exc:
        return _refuse(Reason.MALFORMED, f"the engine's spec cannot be hashed: {exc}")
    if payload.spec_hash != current:
        return _refuse(
            Reason.SPEC_CHANGED,
            f"the spec changed since it was approved (approved {payload.spec_hash[:12]}, "
            f"now {current[:12]})",
        )
    # -- time window ----------------------------------------------------------------
    if now < not_before:
        return _refuse(
            Reason.NOT_YET_VALID,
            f"the approval is valid from {payload.not_before}",
            expires_at=expires_at,
            next_change=not_before,
        )
    if now >= expires_at:
        return _refuse(
            Reason.EXPIRED, f"the approval expired at {payload.expires_at}", expires_at=expires_at
        )
    # -- signatures -------------------------------------------------------------------
    if not approval.signatures:
        return _refuse(
            Reason.NO_SIGNATURES, "the approval has no signatures", expires_at=expires_at
        )
    message = payload.signed_bytes()
    # Counted, revoked and expired by the key itself (its fingerprint), never by
    # the id a signature names: one key under two ids is one signer.
    revoked = policy.revoked_fingerprints()
    good: dict[str, tuple[str, datetime | None]] = {}  # fingerprint -> (key id, notAfter)
    seen: dict[Reason, list[str]] = {}
    for sig in approval.signatures:
        key = policy.keys.get(sig.key_id)
        problem: Reason | None = None
        if key is None:
            problem = Reason.UNTRUSTED_KEY
        elif sig.key_id in policy.revoked or key.fingerprint in revoked:
            problem = Reason.REVOKED_KEY
        elif key.not_after is not None and now >= key.not_after:
            problem = Reason.KEY_EXPIRED
        elif not _signature_ok(key.public_key, sig.signature, message):
            problem = Reason.BAD_SIGNATURE
        if problem is None:
            assert key is not None
            # a key counts once, however often and under whichever id it signs
            good.setdefault(key.fingerprint, (sig.key_id, key.not_after))
        else:
            seen.setdefault(problem, []).append(sig.key_id)
    counted = tuple(sorted(key_id for key_id, _ in good.values()))
    required = policy.required_for(namespace)
    if len(good) >= required and expires_at - not_before > policy.max_ttl:
        # Checked once the signatures are known good: a forged window is reported
        # as a bad signature, a signed one as what it is.
        return _refuse(
            Reason.TTL_TOO_LONG,
            f"the approval's window ({payload.not_before} to {payload.expires_at}) is longer "
            f"than the trust policy's maxTtl of {_duration(policy.max_ttl)}",
            key_ids=counted,
            expires_at=expires_at,
        )
    if len(good) >= required:
        ends = [moment for _, moment in good.values() if moment is not None and moment > now]
        return Verdict(
            True,
            Reason.VALID,
            f"{len(good)} trusted signature(s), {required} required",
            key_ids=counted,
            expires_at=expires_at,
            next_change=min([expires_at, *ends]),
        )
    notes = "; ".join(
        f"{reason.value}: {', '.join(ids)}" for reason in _SPECIFICITY if (ids := seen.get(reason))
    )
    reason = next((r for r in _SPECIFICITY if r in seen), Reason.NOT_ENOUGH_SIGNATURES)
    return _refuse(
        reason,
        f"{len(good)} of the {required} trusted signatures required"
        + (f" ({notes})" if notes else ""),
        key_ids=counted,
        expires_at=expires_at,
    )


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _signature_ok(public_key: Ed25519PublicKey, signature: str, message: bytes) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 64:
        return False
    try:
        public_key.verify(raw, message)
    except InvalidSignature:
        return False
    return True
