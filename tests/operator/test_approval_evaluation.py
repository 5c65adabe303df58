"""The operator's approval verdict: evaluation, choice, condition and status, on fixed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from operator_approval_support import live_spec, signed, trust_files

from hean_contract.status import ConditionStatus, ConditionType, Phase
from hean_engine.approval.trust import TrustPolicy, trust_from_files
from hean_operator.approvals.evaluate import (
    NO_APPROVAL,
    NO_TRUST_POLICY,
    approval_status,
    condition_fields,
    decide,
    mounted_manifest,
    status_changed,
)
from hean_operator.engines.pods import PodView
from hean_operator.status.derive import (
    Observation,
    derive_conditions,
    derive_phase,
)
from hean_operator.status.writer import condition_status

NOW = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
ALICE = Ed25519PrivateKey.generate()
BOB = Ed25519PrivateKey.generate()
MALLORY = Ed25519PrivateKey.generate()


def _policy(**policy: Any) -> TrustPolicy:
    return trust_from_files(trust_files({"alice": ALICE, "bob": BOB}, policy or None))


def _decide(approvals: list[dict[str, Any]], policy: TrustPolicy | None, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "namespace": "trading",
        "engine": "btc",
        "engine_uid": "uid-1",
        "spec": live_spec(),
        "now": NOW,
    }
    args.update(kw)
    return decide(approvals, policy, **args)


def test_no_approval_is_not_approved() -> None:
    decision = _decide([], _policy())
    assert not decision.valid
    assert decision.reason == NO_APPROVAL
    assert decision.next_change is None
    status, reason, message = condition_fields(decision)
    assert (status, reason) == (ConditionStatus.FALSE, NO_APPROVAL)
    assert "btc" in message


def test_a_valid_approval_approves_with_its_keys_and_expiry() -> None:
    approval = signed({"alice": ALICE}, now=NOW, name="btc-ok")
    decision = _decide([approval], _policy())
    assert decision.valid and decision.key_ids == ("alice",)
    status, reason, message = condition_fields(decision)
    assert (status, reason) == (ConditionStatus.TRUE, "Approved")
    assert message == "LiveApproval btc-ok signed by alice, valid until 2026-01-05T13:00:00Z"
    assert decision.next_change == NOW + timedelta(hours=1)


def test_the_longest_lasting_valid_approval_is_chosen() -> None:
    short = signed({"alice": ALICE}, now=NOW, ttl=timedelta(minutes=5), name="a-short")
    long = signed({"alice": ALICE}, now=NOW, ttl=timedelta(hours=8), name="b-long")
    expired = signed({"alice": ALICE}, now=NOW - timedelta(days=1), name="c-old")
    decision = _decide([short, long, expired], _policy())
    assert decision.chosen is not None and decision.chosen.name == "b-long"
    # the verdict can change when the short one expires: the timer is set for then
    assert decision.next_change == NOW + timedelta(minutes=5)


def test_the_most_informative_invalid_approval_is_chosen() -> None:
    expired = signed({"alice": ALICE}, now=NOW - timedelta(days=1), name="a-expired")
    forged = signed({"alice": MALLORY}, now=NOW, name="b-forged")
    other_uid = signed({"alice": ALICE}, now=NOW, uid="uid-0", name="c-uid")
    decision = _decide([expired, forged, other_uid], _policy())
    assert not decision.valid
    assert decision.reason == "bad_signature"
    assert decision.chosen is not None and decision.chosen.name == "b-forged"
    assert "3 approvals, none valid" in decision.message
    reasons = {e.name: e.reason for e in decision.evaluated}
    assert reasons == {"a-expired": "expired", "b-forged": "bad_signature", "c-uid": "wrong_uid"}


def test_revoked_key_and_n_of_m() -> None:
    approval = signed({"alice": ALICE}, now=NOW)
    assert _decide([approval], _policy(revoked=["alice"])).reason == "revoked_key"
    assert _decide([approval], _policy(required=2)).reason == "not_enough_signatures"
    both = signed({"alice": ALICE, "bob": BOB}, now=NOW)
    decision = _decide([both], _policy(required=2))
    assert decision.valid and set(decision.key_ids) == {"alice", "bob"}
    # per-namespace requirements
    strict = _policy(namespaces={"trading": {"required": 2}})
    assert _decide([approval], strict).reason == "not_enough_signatures"


def test_spec_change_and_not_yet_valid() -> None:
    approval = signed({"alice": ALICE}, now=NOW)
    changed = live_spec(risk={**live_spec().risk.model_dump(by_alias=True), "maxDailyLoss": "600"})
    assert _decide([approval], _policy(), spec=changed).reason == "spec_changed"
    later = signed({"alice": ALICE}, now=NOW, not_before=NOW + timedelta(minutes=10))
    decision = _decide([later], _policy())
    assert decision.reason == "not_yet_valid"
    assert decision.next_change == NOW + timedelta(minutes=10)
    assert _decide([later], _policy(), now=NOW + timedelta(minutes=10)).valid


def test_without_a_trust_policy_nothing_is_valid() -> None:
    approval = signed({"alice": ALICE}, now=NOW)
    decision = _decide([approval], None)
    assert not decision.valid and decision.reason == NO_TRUST_POLICY


def test_a_malformed_approval_is_reported_as_such() -> None:
    approval = signed({"alice": ALICE}, now=NOW, name="broken")
    del approval["spec"]["nonce"]
    decision = _decide([approval], _policy())
    assert decision.reason == "malformed"
    assert "nonce" in decision.message
    assert mounted_manifest(decision.evaluated[0])["metadata"]["name"] == "broken"


def test_approval_status_and_when_it_is_worth_a_write() -> None:
    approval = signed({"alice": ALICE}, now=NOW, name="ok")
    (item,) = _decide([approval], _policy()).evaluated
    status = approval_status(item, NOW)
    assert status == {
        "valid": True,
        "reason": "valid",
        "message": item.verdict.message,
        "keyIds": ["alice"],
        "lastEvaluated": "2026-01-05T12:00:00Z",
    }
    later = approval_status(item, NOW + timedelta(seconds=30))
    assert not status_changed(status, later)  # only lastEvaluated moved
    assert status_changed(None, status)
    assert status_changed({**status, "valid": False}, status)


@pytest.mark.parametrize("extra", [{}, {"status": {"valid": True}}])
def test_the_mounted_approval_is_what_was_signed(extra: dict[str, Any]) -> None:
    approval = {**signed({"alice": ALICE}, now=NOW, name="ok"), **extra}
    (item,) = _decide([approval], _policy()).evaluated
    mounted = mounted_manifest(item)
    assert "status" not in mounted
    assert mounted["spec"] == approval["spec"]


def test_live_status_carries_the_approval_condition_and_why_there_is_no_pod() -> None:
    decision = _decide([], _policy())
    blocked = f"waiting for a valid LiveApproval: {decision.message}"
    obs = Observation(
        generation=2,
        pod=PodView(exists=False),
        mode="live",
        approval=condition_fields(decision),
        blocked=blocked,
    )
    assert derive_phase(obs) == (Phase.PENDING, blocked)
    conditions = {c.type: c for c in derive_conditions(obs, "2026-01-05T12:00:00Z")}
    live = conditions[ConditionType.LIVE_APPROVED]
    assert (live.status, live.reason) == (ConditionStatus.FALSE, NO_APPROVAL)
    # paper engines keep NotRequired whatever is passed
    paper = Observation(generation=1, pod=PodView(exists=False), mode="paper")
    (approved,) = [
        c for c in derive_conditions(paper, "t") if c.type is ConditionType.LIVE_APPROVED
    ]
    assert (approved.status, approved.reason) == (ConditionStatus.TRUE, "NotRequired")


def test_a_condition_is_set_by_type_and_keeps_its_transition_time() -> None:
    stored = [
        {"type": "Ready", "status": "False", "reason": "PodMissing", "lastTransitionTime": "t0"},
        {
            "type": "LiveApproved",
            "status": "False",
            "reason": "expired",
            "lastTransitionTime": "t0",
        },
    ]

    def with_condition(
        conditions: list[dict[str, Any]],
        kind: ConditionType,
        fields: tuple[ConditionStatus, str, str],
        generation: int,
        now: str,
    ) -> list[dict[str, Any]]:
        return list(
            condition_status(kind, fields, generation, {"conditions": conditions}, now)[
                "conditions"
            ]
        )

    same_status = with_condition(
        stored, ConditionType.LIVE_APPROVED, (ConditionStatus.FALSE, "revoked_key", "m"), 3, "t1"
    )
    assert [c["type"] for c in same_status] == ["Ready", "LiveApproved"]
    assert same_status[1]["reason"] == "revoked_key"
    assert same_status[1]["lastTransitionTime"] == "t0"  # still False: no transition
    flipped = with_condition(
        stored, ConditionType.LIVE_APPROVED, (ConditionStatus.TRUE, "Approved", "m"), 3, "t1"
    )
    assert flipped[1]["lastTransitionTime"] == "t1"
    assert flipped[1]["observedGeneration"] == 3
    added = with_condition(
        stored[:1], ConditionType.LIVE_APPROVED, (ConditionStatus.TRUE, "Approved", "m"), 3, "t1"
    )
    assert [c["type"] for c in added] == ["Ready", "LiveApproved"]
