"""Issue 14, items 1, 2, 13 (approval inputs) and 15: the trust directory and the verifier.

A key is what counts, never its file name; a policy that names a key id with no
.pub is an error; an approval's window is bounded by the policy's maxTtl.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from approval_support import (
    IDENTITY,
    NOW,
    Key,
    engine_manifest,
    live_spec,
    make_key,
    policy,
    signed,
    write_approval_dir,
    write_trust_dir,
)
from click.testing import CliRunner, Result

from engine_support import FakeClock
from hean_engine.app.approval_gate import ApprovalGate
from hean_engine.approval.manifest import Approval, Signature, approval_manifest
from hean_engine.approval.trust import (
    DEFAULT_MAX_TTL,
    TrustPolicy,
    load_trust_dir,
    trust_from_files,
)
from hean_engine.approval.verify import Reason, Verdict, verify
from hean_engine.cli import main
from hean_engine.model.errors import ConfigError

ALICE = make_key("alice")
BOB = make_key("bob")


def hean(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _verify(
    approval: Approval, trust: TrustPolicy, *, at: timedelta = timedelta(hours=1)
) -> Verdict:
    return verify(
        approval,
        trust,
        namespace=IDENTITY.namespace,
        engine=IDENTITY.name,
        engine_uid=IDENTITY.uid,
        spec=live_spec(),
        now=NOW + timedelta(hours=1),
    )


# -- item 1: one key, however many names -------------------------------------------------


def _copied_alice(tmp_path: Path, policy_doc: dict[str, object] | None = None) -> Path:
    """The issue's reproduction: alice.pub copied to alice-2027.pub, 2 signatures required."""
    trust = write_trust_dir(tmp_path / "trust", ALICE, BOB, policy_doc=policy_doc)
    shutil.copy(trust / "alice.pub", trust / "alice-2027.pub")
    return trust


def test_item1_a_trust_directory_holding_one_key_twice_is_refused(tmp_path: Path) -> None:
    trust = _copied_alice(tmp_path, {"required": 2})
    with pytest.raises(ConfigError) as info:
        load_trust_dir(trust)
    (problem,) = info.value.problems
    assert problem.startswith("alice.pub and alice-2027.pub hold the same public key (sha256:")
    assert "count twice" in problem and "remove one" in problem


def test_item1_one_key_signing_twice_under_two_ids_counts_once(tmp_path: Path) -> None:
    # The docs' promise, tested as the issue describes: alice's one signature added
    # again under keyId alice-2027. Even a policy built without the directory's
    # check (the verifier alone) counts the key once.
    alice_2027 = Key("alice-2027", ALICE.private)
    trust = TrustPolicy(keys={k.key_id: k.trusted() for k in (ALICE, alice_2027, BOB)}, required=2)
    approval = signed(ALICE)
    twice = replace(
        approval,
        signatures=(
            *approval.signatures,
            Signature("alice-2027", approval.signatures[0].signature),
        ),
    )
    verdict = _verify(twice, trust)
    assert not verdict.valid
    assert verdict.reason is Reason.NOT_ENOUGH_SIGNATURES
    assert verdict.message.startswith("1 of the 2 trusted signatures")
    # with bob it is two people: valid
    both = replace(
        twice, signatures=(*twice.signatures, *signed(BOB, approval=approval).signatures)
    )
    assert _verify(both, trust).valid


def test_item1_revoking_a_key_revokes_it_under_every_id() -> None:
    alice_2027 = Key("alice-2027", ALICE.private)
    trust = TrustPolicy(
        keys={k.key_id: k.trusted() for k in (ALICE, alice_2027)},
        revoked=frozenset({"alice"}),
    )
    verdict = _verify(signed(alice_2027), trust)
    assert verdict.reason is Reason.REVOKED_KEY


def test_item1_the_cli_refuses_the_copied_key_with_the_reason(tmp_path: Path) -> None:
    trust = _copied_alice(tmp_path, {"required": 2})
    approval = tmp_path / "approval.yaml"
    approval.write_text(yaml.safe_dump(approval_manifest(signed(ALICE, BOB))))
    engine = tmp_path / "engine.yaml"
    engine.write_text(yaml.safe_dump(engine_manifest()))
    result = hean("approval", "verify", approval, "--trusted-keys", trust, "--engine-file", engine)
    assert result.exit_code == 2
    assert "hold the same public key" in result.output
    assert "Traceback" not in result.output


def test_item1_the_engine_gate_refuses_a_directory_with_a_copied_key(tmp_path: Path) -> None:
    directory = write_approval_dir(tmp_path / "approval", signed(ALICE, BOB), ALICE, BOB)
    shutil.copy(directory / "trust" / "alice.pub", directory / "trust" / "alice-2027.pub")
    gate = ApprovalGate(directory, clock=FakeClock((NOW + timedelta(hours=1)).timestamp()))
    verdict = gate.verdict(IDENTITY, live_spec())
    assert verdict.reason is Reason.MALFORMED
    assert "hold the same public key" in verdict.message


# -- item 2: a typo in the policy is an error -----------------------------------------------


@pytest.mark.parametrize(
    ("policy_doc", "expected"),
    [
        ({"revoked": ["alcie"]}, "policy.yaml: revoked: 'alcie' is not a key in the trust"),
        (
            {"keys": {"bobb": {"notAfter": "2027-01-01T00:00:00Z"}}},
            "policy.yaml: keys.bobb: no such key in the trust directory (keys: alice, bob)",
        ),
    ],
)
def test_item2_unknown_key_ids_in_the_policy_are_errors(
    tmp_path: Path, policy_doc: dict[str, object], expected: str
) -> None:
    trust = write_trust_dir(tmp_path / "trust", ALICE, BOB, policy_doc=policy_doc)
    with pytest.raises(ConfigError) as info:
        load_trust_dir(trust)
    assert info.value.problems[0].startswith(expected)


def test_item2_hean_approval_verify_prints_the_unknown_id(tmp_path: Path) -> None:
    trust = write_trust_dir(tmp_path / "trust", ALICE, policy_doc={"revoked": ["alcie"]})
    approval = tmp_path / "approval.yaml"
    approval.write_text(yaml.safe_dump(approval_manifest(signed(ALICE))))
    engine = tmp_path / "engine.yaml"
    engine.write_text(yaml.safe_dump(engine_manifest()))
    result = hean("approval", "verify", approval, "--trusted-keys", trust, "--engine-file", engine)
    assert result.exit_code == 2
    assert "--trusted-keys: policy.yaml: revoked: 'alcie' is not a key" in result.output


def test_item2_a_revoked_key_must_stay_listed_with_its_pub() -> None:
    files = {"alice.pub": ALICE.public_pem(), "policy.yaml": "revoked: [alice]\n"}
    assert trust_from_files(files).revoked == frozenset({"alice"})


# -- item 15: maxTtl ------------------------------------------------------------------------------


def test_item15_a_hundred_year_approval_is_refused_by_default() -> None:
    trust = policy(ALICE)
    assert trust.max_ttl == DEFAULT_MAX_TTL == timedelta(days=30)
    verdict = _verify(signed(ALICE, ttl=timedelta(days=36500)), trust)
    assert verdict.reason is Reason.TTL_TOO_LONG
    assert "longer than the trust policy's maxTtl of 30d" in verdict.message
    assert _verify(signed(ALICE, ttl=timedelta(days=30)), trust).valid


def test_item15_the_policy_sets_max_ttl(tmp_path: Path) -> None:
    trust = write_trust_dir(tmp_path / "t", ALICE, policy_doc={"maxTtl": "8h"})
    loaded = load_trust_dir(trust)
    assert loaded.max_ttl == timedelta(hours=8)
    assert _verify(signed(ALICE, ttl=timedelta(hours=9)), loaded).reason is Reason.TTL_TOO_LONG
    assert _verify(signed(ALICE, ttl=timedelta(hours=8)), loaded).valid
    bad = write_trust_dir(tmp_path / "u", ALICE, policy_doc={"maxTtl": "forever"})
    with pytest.raises(ConfigError, match="maxTtl: 'forever' is not a duration"):
        load_trust_dir(bad)


def test_item15_a_forged_window_is_a_bad_signature_not_a_long_ttl() -> None:
    approval = signed(ALICE)
    forged = replace(approval, payload=replace(approval.payload, expires_at="2099-01-01T00:00:00Z"))
    assert _verify(forged, policy(ALICE)).reason is Reason.BAD_SIGNATURE


# -- item 13: approval inputs are clear errors ----------------------------------------------------


@pytest.fixture
def signer(tmp_path: Path) -> dict[str, Path]:
    keys = tmp_path / "keys"
    assert hean("approval", "keygen", "--out", keys, "--key-id", "alice").exit_code == 0
    engine = tmp_path / "engine.yaml"
    engine.write_text(yaml.safe_dump(engine_manifest()))
    return {"key": keys / "alice.key", "engine": engine, "tmp": tmp_path}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--ttl", "9999999999999d"), "--ttl: '9999999999999d' is longer than the limit"),
        (("--ttl", "99999d"), "--ttl: '99999d' is longer than the limit of 3650 days"),
        (
            ("--ttl", "8h", "--not-before", "9999-12-31T23:00:00Z"),
            "--not-before: more than 3650 days ahead",
        ),
        (
            ("--ttl", "8h", "--not-before", "9999-12-31T23:00:00-01:00"),
            "--not-before: '9999-12-31T23:00:00-01:00' is not an RFC 3339 time",
        ),
    ],
)
def test_item13_sign_with_absurd_times_is_a_clear_error(
    signer: dict[str, Path], args: tuple[str, ...], expected: str
) -> None:
    result = hean(
        "approval", "sign", "--key", signer["key"], "--engine-file", signer["engine"], *args
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(
        result.exception, SystemExit
    )


def test_item13_sign_warns_beyond_the_default_max_ttl(signer: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        main,
        ["approval", "sign", "--key", str(signer["key"]), "--engine-file", str(signer["engine"]),
         "--ttl", "40d"],
    )  # fmt: skip
    assert result.exit_code == 0
    assert "warning: --ttl 40d is longer than the default maxTtl of 30d" in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"spec:\n" + b"  " + b"[" * 1000 + b"]" * 1000 + b"\n", "nested deeper than 64 levels"),
        (b"\xff\xfeapiVersion: x\n", "the file is UTF-16; save it as UTF-8"),
        (b"apiVersion: \xc3\x28\n", "not UTF-8 text (invalid byte at offset 12)"),
        (b"spec: {a: 1}\nspec: {a: 2}\n", "duplicate key 'spec'"),
    ],
)
def test_item13_a_bad_approval_file_is_a_clear_error(
    signer: dict[str, Path], content: bytes, expected: str
) -> None:
    path = signer["tmp"] / "approval.yaml"
    path.write_bytes(content)
    trust = write_trust_dir(signer["tmp"] / "trust", ALICE)
    result = hean(
        "approval", "verify", path, "--trusted-keys", trust, "--engine-file", signer["engine"]
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert isinstance(result.exception, SystemExit)


def test_item13_the_engine_gate_reads_a_bad_approval_as_malformed(tmp_path: Path) -> None:
    directory = write_approval_dir(tmp_path / "a", signed(ALICE), ALICE)
    (directory / "approval.yaml").write_bytes(b"[" * 5000)
    verdict = ApprovalGate(directory).verdict(IDENTITY, live_spec())
    assert verdict.reason is Reason.MALFORMED
    assert "nested deeper than 64 levels" in verdict.message
