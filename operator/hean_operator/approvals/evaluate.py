"""Which LiveApproval of an engine counts, and what the engine's `LiveApproved` says: pure.

Every function here takes the approvals, the trust policy, the engine and the time
as arguments and returns values: no cluster, no clock. The verification itself is
`hean_engine.approval.verify` (the engine runs the same check again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hean_contract.spec import TradingEngineSpec
from hean_contract.status import ConditionStatus
from hean_engine.approval.manifest import approval_manifest, parse_approval
from hean_engine.approval.trust import TrustPolicy
from hean_engine.approval.verify import Reason, Verdict, verify
from hean_engine.model.errors import ConfigError
from hean_engine.model.timefmt import datetime_to_iso
from hean_operator.api import reasons
from hean_operator.api.messages import truncate_message

# Reasons of the operator's own, beyond the verifier's `Reason` values: they are
# about the approval's surroundings, not about the approval.
NO_APPROVAL = "no_approval"  # the live engine has no LiveApproval at all
NO_TRUST_POLICY = "no_trust_policy"  # the operator has no trust ConfigMap (or it is broken)
# The trust ConfigMap is refused as a whole (one key under two ids, a policy naming
# a key id that has no .pub): the engine's condition and Event say so.
TRUST_POLICY_INVALID = "trust_policy_invalid"
ENGINE_NOT_FOUND = "engine_not_found"  # the approval names an engine that does not exist
APPROVED = reasons.APPROVED  # the condition's reason when an approval is valid
NOT_REQUIRED = reasons.NOT_REQUIRED  # paper engines

# How informative an invalid approval's reason is, best first: an approval that
# failed late in the verifier's order (binding, then time window, then signatures)
# is closer to being valid, so its reason tells the user more about what to fix.
_RANK: dict[str, int] = {
    Reason.VALID.value: 0,
    Reason.NOT_ENOUGH_SIGNATURES.value: 1,
    Reason.BAD_SIGNATURE.value: 2,
    Reason.REVOKED_KEY.value: 2,
    Reason.KEY_EXPIRED.value: 2,
    Reason.UNTRUSTED_KEY.value: 2,
    Reason.NO_SIGNATURES.value: 3,
    Reason.NOT_YET_VALID.value: 4,
    Reason.TTL_TOO_LONG.value: 4,
    Reason.EXPIRED.value: 5,
    Reason.SPEC_CHANGED.value: 6,
    Reason.WRONG_UID.value: 7,
    Reason.WRONG_ENGINE.value: 8,
    Reason.WRONG_NAMESPACE.value: 8,
    Reason.MALFORMED.value: 9,
    Reason.UNCHECKED.value: 9,
}


@dataclass(frozen=True)
class Evaluated:
    """One LiveApproval and the verifier's verdict on it."""

    name: str
    manifest: Mapping[str, Any]
    verdict: Verdict
    reason: str  # the verdict's reason, or one of the operator's own (NO_TRUST_POLICY)


@dataclass(frozen=True)
class ApprovalDecision:
    """The outcome for one engine: the approval that counts (if any) and why."""

    namespace: str
    engine: str
    chosen: Evaluated | None
    evaluated: tuple[Evaluated, ...]
    reason: str
    message: str

    @property
    def valid(self) -> bool:
        return self.chosen is not None and self.chosen.verdict.valid

    @property
    def key_ids(self) -> tuple[str, ...]:
        return self.chosen.verdict.key_ids if self.chosen is not None else ()

    @property
    def next_change(self) -> datetime | None:
        """The next instant any of the engine's approvals can change verdict by time alone."""
        times = [e.verdict.next_change for e in self.evaluated if e.verdict.next_change]
        return min(times) if times else None


def _name(manifest: Mapping[str, Any]) -> str:
    return str((manifest.get("metadata") or {}).get("name") or "")


def evaluate_one(
    manifest: Mapping[str, Any],
    policy: TrustPolicy | None,
    *,
    namespace: str,
    engine: str,
    engine_uid: str,
    spec: TradingEngineSpec,
    now: datetime,
) -> Evaluated:
    name = _name(manifest)
    try:
        approval = parse_approval(dict(manifest))
    except ConfigError as exc:
        message = truncate_message("; ".join(exc.problems))
        verdict = Verdict(False, Reason.MALFORMED, message, (), None, None)
        return Evaluated(name, manifest, verdict, Reason.MALFORMED.value)
    if policy is None:
        verdict = Verdict(
            False,
            Reason.UNTRUSTED_KEY,
            "the operator has no trust policy (hean operator run --trust-configmap)",
            (),
            None,
            None,
        )
        return Evaluated(name, manifest, verdict, NO_TRUST_POLICY)
    verdict = verify(
        approval,
        policy,
        namespace=namespace,
        engine=engine,
        engine_uid=engine_uid,
        spec=spec,
        now=now,
    )
    return Evaluated(name, manifest, verdict, verdict.reason.value)


def _valid_key(item: Evaluated) -> tuple[float, str]:
    """Among valid approvals the one that lasts longest counts (then by name, stable)."""
    expires = item.verdict.expires_at
    return (-(expires.timestamp() if expires else 0.0), item.name)


def _invalid_key(item: Evaluated) -> tuple[int, float, str]:
    expires = item.verdict.expires_at
    return (_RANK.get(item.reason, 10), -(expires.timestamp() if expires else 0.0), item.name)


def choose(evaluated: Iterable[Evaluated]) -> Evaluated | None:
    """The valid approval if any (the longest-lasting), else the most informative invalid one."""
    items = list(evaluated)
    valid = sorted((e for e in items if e.verdict.valid), key=_valid_key)
    if valid:
        return valid[0]
    invalid = sorted(items, key=_invalid_key)
    return invalid[0] if invalid else None


def decide(
    approvals: Iterable[Mapping[str, Any]],
    policy: TrustPolicy | None,
    *,
    namespace: str,
    engine: str,
    engine_uid: str,
    spec: TradingEngineSpec,
    now: datetime,
) -> ApprovalDecision:
    evaluated = tuple(
        evaluate_one(
            manifest,
            policy,
            namespace=namespace,
            engine=engine,
            engine_uid=engine_uid,
            spec=spec,
            now=now,
        )
        for manifest in sorted(approvals, key=_name)
    )
    chosen = choose(evaluated)
    if chosen is None:
        return ApprovalDecision(
            namespace,
            engine,
            None,
            evaluated,
            NO_APPROVAL,
            f"no LiveApproval names this engine (spec.engineRef.name: {engine})",
        )
    if chosen.verdict.valid:
        keys = ", ".join(chosen.verdict.key_ids)
        until = _rfc3339(chosen.verdict.expires_at)
        message = f"LiveApproval {chosen.name} signed by {keys}, valid until {until}"
        return ApprovalDecision(namespace, engine, chosen, evaluated, APPROVED, message)
    message = f"LiveApproval {chosen.name}: {chosen.verdict.message}"
    if len(evaluated) > 1:
        message += f" ({len(evaluated)} approvals, none valid)"
    return ApprovalDecision(namespace, engine, chosen, evaluated, chosen.reason, message)


def _rfc3339(when: datetime | None) -> str:
    return datetime_to_iso(when) if when is not None else "unknown"


def condition_fields(decision: ApprovalDecision) -> tuple[ConditionStatus, str, str]:
    """(status, reason, message) of a live engine's `LiveApproved` condition."""
    if decision.valid:
        return ConditionStatus.TRUE, APPROVED, decision.message
    return ConditionStatus.FALSE, decision.reason, decision.message


def approval_status(item: Evaluated, now: datetime) -> dict[str, Any]:
    """A LiveApproval's `status`, as the operator writes it."""
    return {
        "valid": item.verdict.valid,
        "reason": item.reason,
        "message": truncate_message(item.verdict.message),
        "keyIds": list(item.verdict.key_ids),
        "lastEvaluated": _rfc3339(now),
    }


def orphan_status(engine: str, now: datetime) -> dict[str, Any]:
    """The status of an approval whose engine does not exist (or is gone)."""
    return {
        "valid": False,
        "reason": ENGINE_NOT_FOUND,
        "message": f"no TradingEngine {engine} in this namespace",
        "keyIds": [],
        "lastEvaluated": _rfc3339(now),
    }


def status_changed(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether a status write is needed (lastEvaluated alone is not worth a write)."""
    current = current or {}
    return any(current.get(k) != v for k, v in desired.items() if k != "lastEvaluated")


def mounted_manifest(item: Evaluated) -> dict[str, Any]:
    """The chosen approval as the engine reads it: only what was signed, no status."""
    try:
        manifest = approval_manifest(parse_approval(dict(item.manifest)))
    except ConfigError:
        meta = item.manifest.get("metadata") or {}
        manifest = {
            "apiVersion": item.manifest.get("apiVersion"),
            "kind": item.manifest.get("kind"),
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "spec": dict(item.manifest.get("spec") or {}),
        }
    return manifest
