"""`verify`: every way an approval can be wrong is refused with its own reason."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from approval_support import (
    IDENTITY,
    NOW,
    UID,
    Key,
    live_spec,
    make_key,
    policy,
    signed,
    unsigned,
)

from hean_contract.spec import EngineIdentity, TradingEngineSpec
from hean_engine.approval.manifest import Approval, Signature
from hean_engine.approval.payload import DOMAIN, canonical_json
from hean_engine.approval.trust import TrustedKey, TrustPolicy
from hean_engine.approval.verify import Reason, Verdict, verify

ALICE = make_key("alice")
BOB = make_key("bob")
CAROL = make_key("carol")
LATER = NOW + timedelta(hours=1)


def check(
    approval: Approval,
    trust: TrustPolicy,
    *,
    identity: EngineIdentity = IDENTITY,
    spec: TradingEngineSpec | None = None,
    now: datetime = LATER,
) -> Verdict:
    return verify(
        approval,
        trust,
        namespace=identity.namespace,
        engine=identity.name,
        engine_uid=identity.uid,
        spec=spec or live_spec(),
        now=now,
    )


def test_a_signed_approval_for_this_engine_and_spec_is_valid() -> None:
    verdict = check(signed(ALICE), policy(ALICE))
    assert verdict.valid and verdict.reason is Reason.VALID
    assert verdict.key_ids == ("alice",)
    assert verdict.expires_at == NOW + timedelta(hours=8)
    assert verdict.next_change == verdict.expires_at


def _forged(approval: Approval) -> Approval:
    raw = bytearray(base64.b64decode(approval.signatures[0].signature))
    raw[10] ^= 0x01
    sig = Signature(approval.signatures[0].key_id, base64.b64encode(bytes(raw)).decode())
    return replace(approval, signatures=(sig,))


def _signed_over(key: Key, approval: Approval, message: bytes) -> Approval:
    sig = Signature(key.key_id, base64.b64encode(key.private.sign(message)).decode())
    return replace(approval, signatures=(sig,))


def _non_canonical(approval: Approval) -> bytes:
    return DOMAIN + json.dumps(approval.payload.document(), indent=2).encode()


def _without_domain(approval: Approval) -> bytes:
    return canonical_json(approval.payload.document())


def _as_alice(approval: Approval) -> Approval:
    return replace(approval, signatures=(Signature("alice", approval.signatures[0].signature),))


def _twice(approval: Approval) -> Approval:
    return replace(approval, signatures=approval.signatures * 2)


def _other(**changes: Any) -> EngineIdentity:
    return IDENTITY.model_copy(update=changes)


@pytest.mark.parametrize(
    ("approval", "trust", "kwargs", "reason"),
    [
        pytest.param(_forged(signed(ALICE)), policy(ALICE), {}, Reason.BAD_SIGNATURE, id="forged"),
        pytest.param(
            # Bob's real signature presented as Alice's.
            _as_alice(signed(BOB)),
            policy(ALICE, BOB),
            {},
            Reason.BAD_SIGNATURE,
            id="signature-under-another-key-id",
        ),
        pytest.param(signed(CAROL), policy(ALICE), {}, Reason.UNTRUSTED_KEY, id="untrusted-key"),
        pytest.param(
            signed(ALICE),
            policy(ALICE, revoked=frozenset({"alice"})),
            {},
            Reason.REVOKED_KEY,
            id="revoked-key",
        ),
        pytest.param(
            signed(ALICE),
            TrustPolicy(keys={"alice": ALICE.trusted(not_after=NOW + timedelta(minutes=30))}),
            {},
            Reason.KEY_EXPIRED,
            id="key-past-not-after",
        ),
        pytest.param(
            signed(ALICE),
            policy(ALICE),
            {"now": NOW + timedelta(hours=8)},
            Reason.EXPIRED,
            id="expired",
        ),
        pytest.param(
            signed(ALICE),
            policy(ALICE),
            {"now": NOW - timedelta(seconds=1)},
            Reason.NOT_YET_VALID,
            id="not-yet-valid",
        ),
        pytest.param(
            signed(ALICE),
            policy(ALICE),
            {"identity": _other(name="eth-live")},
            Reason.WRONG_ENGINE,
            id="another-engine",
        ),
        pytest.param(
            signed(ALICE),
            policy(ALICE),
            {"identity": _other(namespace="staging")},
            Reason.WRONG_NAMESPACE,
            id="another-namespace",
        ),
        pytest.param(
            # Deleted and re-created under the same name: a new uid.
            signed(ALICE),
            policy(ALICE),
            {"identity": _other(uid="0b7e7d55-0000-4000-8000-000000000000")},
            Reason.WRONG_UID,
            id="re-created-engine",
        ),
        pytest.param(
            signed(ALICE),
            policy(ALICE),
            {"identity": _other(uid="")},
            Reason.WRONG_UID,
            id="engine-without-uid",
        ),
        pytest.param(
            signed(ALICE),
            policy(ALICE),
            {"spec": live_spec(risk={"maxOrderNotional": "2000000"})},
            Reason.SPEC_CHANGED,
            id="max-order-notional-raised",
        ),
        pytest.param(
            signed(ALICE),
            policy(ALICE),
            {"spec": live_spec(live={"onApprovalLoss": "reduce"})},
            Reason.SPEC_CHANGED,
            id="live-section-changed",
        ),
        pytest.param(
            signed(ALICE, ALICE),
            policy(ALICE, BOB, required=2),
            {},
            Reason.NOT_ENOUGH_SIGNATURES,
            id="one-key-is-not-two",
        ),
        pytest.param(
            _twice(signed(ALICE)),
            policy(ALICE, BOB, required=2),
            {},
            Reason.NOT_ENOUGH_SIGNATURES,
            id="same-signature-twice",
        ),
        pytest.param(
            _signed_over(ALICE, unsigned(), b""),
            policy(ALICE),
            {},
            Reason.BAD_SIGNATURE,
            id="signed-other-bytes",
        ),
        pytest.param(unsigned(), policy(ALICE), {}, Reason.NO_SIGNATURES, id="no-signatures"),
        pytest.param(
            signed(ALICE),
            policy(ALICE, BOB, required=1, required_by_namespace={"trading": 2}),
            {},
            Reason.NOT_ENOUGH_SIGNATURES,
            id="namespace-needs-more",
        ),
    ],
)
def test_refused_with_its_own_reason(
    approval: Approval, trust: TrustPolicy, kwargs: dict[str, Any], reason: Reason
) -> None:
    verdict = check(approval, trust, **kwargs)
    assert not verdict.valid
    assert verdict.reason is reason, verdict.message
    assert verdict.key_ids == () or reason is Reason.NOT_ENOUGH_SIGNATURES


@pytest.mark.parametrize("encode", [_non_canonical, _without_domain], ids=["indented", "no-domain"])
def test_a_signature_over_another_encoding_of_the_same_payload_is_refused(encode: Any) -> None:
    approval = unsigned()
    verdict = check(_signed_over(ALICE, approval, encode(approval)), policy(ALICE))
    assert verdict.reason is Reason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "field",
    ["namespace", "engine", "engine_uid", "spec_hash", "not_before", "expires_at", "nonce"],
)
def test_altering_any_signed_field_breaks_the_signatures(field: str) -> None:
    original = signed(ALICE)
    value = getattr(original.payload, field)
    if field in ("not_before", "expires_at"):
        # Still a valid window around LATER, so only the signature can refuse it.
        value = "2026-11-25T11:00:00Z" if field == "not_before" else "2026-11-25T21:00:00Z"
    else:
        value = value + "x"
    payload = replace(original.payload, **{field: value})
    altered = replace(original, payload=payload)
    # Tell the verifier the engine is what the altered payload says, so the
    # binding passes: the signature is what must catch it.
    identity = IDENTITY.model_copy(
        update={"namespace": payload.namespace, "name": payload.engine, "uid": payload.engine_uid}
    )
    altered = replace(altered, namespace=payload.namespace)
    if field == "spec_hash":
        verdict = check(altered, policy(ALICE), identity=identity)
        assert verdict.reason is Reason.SPEC_CHANGED
        return
    verdict = check(altered, policy(ALICE), identity=identity)
    assert verdict.reason is Reason.BAD_SIGNATURE, verdict.message


def test_pausing_or_halting_does_not_invalidate_the_approval() -> None:
    approval = signed(ALICE)
    for spec in (
        live_spec(paused=True),
        live_spec(halt=True),
        live_spec(paper={"startingBalances": {"USD": "1"}}),
    ):
        assert check(approval, policy(ALICE), spec=spec).valid


def test_two_distinct_keys_satisfy_two_of_three() -> None:
    trust = policy(ALICE, BOB, CAROL, required=2)
    assert not check(signed(ALICE), trust).valid
    verdict = check(signed(ALICE, CAROL), trust)
    assert verdict.valid and verdict.key_ids == ("alice", "carol")


def test_a_bad_signature_is_the_reason_even_next_to_a_good_one() -> None:
    good = signed(ALICE)
    bad = _forged(signed(BOB))
    approval = replace(good, signatures=(*good.signatures, *bad.signatures))
    verdict = check(approval, policy(ALICE, BOB, required=2))
    assert verdict.reason is Reason.BAD_SIGNATURE
    assert verdict.key_ids == ("alice",)
    # One good key is enough under 1-of-N: the forged one is ignored.
    assert check(approval, policy(ALICE, BOB)).valid


def test_key_rotation_overlap_then_removal() -> None:
    old, new = make_key("ops-2025"), make_key("ops-2026")
    by_old, by_new = signed(old), signed(new)
    overlap = policy(old, new)
    assert check(by_old, overlap).valid and check(by_new, overlap).valid
    removed = policy(new)
    assert check(by_old, removed).reason is Reason.UNTRUSTED_KEY
    assert check(by_new, removed).valid
    revoked = policy(old, new, revoked=frozenset({"ops-2025"}))
    assert check(by_old, revoked).reason is Reason.REVOKED_KEY
    assert check(by_new, revoked).valid


def test_next_change_is_the_earliest_counted_key_end() -> None:
    ends = NOW + timedelta(hours=2)
    trust = TrustPolicy(keys={"alice": TrustedKey("alice", ALICE.private.public_key(), ends)})
    verdict = check(signed(ALICE), trust)
    assert verdict.valid and verdict.next_change == ends
    assert check(signed(ALICE), trust, now=ends).reason is Reason.KEY_EXPIRED
    waiting = check(signed(ALICE), trust, now=NOW - timedelta(minutes=5))
    assert waiting.next_change == NOW


def test_messages_carry_no_key_material() -> None:
    approval = _forged(signed(ALICE))
    verdict = check(approval, policy(ALICE))
    assert approval.signatures[0].signature not in verdict.message
    assert "alice" in verdict.message
    assert UID  # the uid is not secret; key bytes are
