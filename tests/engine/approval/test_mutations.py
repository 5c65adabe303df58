"""Property: no mutation of a signed approval's signed fields or signature bytes verifies."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import timedelta

from approval_support import IDENTITY, NOW, live_spec, make_key, policy, signed
from hypothesis import given, settings
from hypothesis import strategies as st

from hean_engine.approval.manifest import Approval, Signature
from hean_engine.approval.verify import verify

ALICE = make_key("alice")
BOB = make_key("bob")
TRUST = policy(ALICE, BOB)
SPEC = live_spec()
APPROVAL = signed(ALICE)
LATER = NOW + timedelta(hours=1)
FIELDS = ("namespace", "engine", "engine_uid", "spec_hash", "not_before", "expires_at", "nonce")


def _valid_for_its_own_binding(approval: Approval) -> bool:
    # The verifier is told the engine is whatever the payload names, so only
    # the signature (or the spec hash) stands between a mutation and "valid".
    payload = approval.payload
    return verify(
        approval,
        TRUST,
        namespace=payload.namespace,
        engine=payload.engine,
        engine_uid=payload.engine_uid,
        spec=SPEC,
        now=LATER,
    ).valid


def test_the_unmutated_approval_is_valid() -> None:
    assert _valid_for_its_own_binding(APPROVAL)
    assert IDENTITY.namespace == APPROVAL.payload.namespace


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), value=st.text(min_size=1, max_size=80))
def test_a_changed_signed_field_never_verifies(field: str, value: str) -> None:
    if getattr(APPROVAL.payload, field) == value:
        return
    payload = replace(APPROVAL.payload, **{field: value})
    mutated = replace(APPROVAL, namespace=payload.namespace, payload=payload)
    assert not _valid_for_its_own_binding(mutated)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_changed_signature_bytes_never_verify(data: st.DataObject) -> None:
    raw = bytearray(base64.b64decode(APPROVAL.signatures[0].signature))
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "replace"]))
    if kind == "flip":
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "extend":
        raw += data.draw(st.binary(min_size=1, max_size=8))
    else:
        replacement = data.draw(st.binary(min_size=64, max_size=64))
        if replacement == bytes(raw):
            return
        raw = bytearray(replacement)
    key_id = data.draw(st.sampled_from(["alice", "bob", "mallory"]))
    encoded = base64.b64encode(bytes(raw)).decode()
    mutated = replace(APPROVAL, signatures=(Signature(key_id, encoded),))
    assert not _valid_for_its_own_binding(mutated)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=100))
def test_garbage_signature_text_never_verifies(text: str) -> None:
    mutated = replace(APPROVAL, signatures=(Signature("alice", text),))
    assert not _valid_for_its_own_binding(mutated)
