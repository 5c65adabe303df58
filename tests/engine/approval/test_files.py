"""Manifests, trust directories, the canonical payload and keys on disk."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from approval_support import IDENTITY, NOW, live_spec, make_key, signed, write_trust_dir

from hean_engine.approval.manifest import approval_manifest, parse_approval
from hean_engine.approval.payload import (
    DOMAIN,
    canonical_json,
    format_time,
    parse_time,
    spec_hash,
)
from hean_engine.approval.sign import generate_key, load_private_key, new_approval
from hean_engine.approval.trust import load_trust_dir, trust_from_files
from hean_engine.approval.verify import verify
from hean_engine.model.errors import ConfigError

ALICE = make_key("alice")


def test_a_manifest_round_trips_through_yaml() -> None:
    approval = signed(ALICE)
    text = yaml.safe_dump(approval_manifest(approval))
    assert parse_approval(yaml.safe_load(text)) == approval


def test_unquoted_yaml_timestamps_are_read_as_the_same_instant() -> None:
    approval = signed(ALICE)
    manifest = approval_manifest(approval)
    text = yaml.safe_dump(manifest).replace("'2026-11-25T12:00:00Z'", "2026-11-25T12:00:00Z")
    assert "notBefore: 2026-11-25T12:00:00Z" in text
    assert parse_approval(yaml.safe_load(text)) == approval


def test_bad_manifests_name_every_bad_field() -> None:
    manifest = approval_manifest(signed(ALICE))
    del manifest["spec"]["engineUid"]
    manifest["spec"]["engineRef"] = {"name": 7}
    manifest["spec"]["signatures"] = [{"keyId": "alice"}, "x"]
    manifest["kind"] = "TradingEngine"
    with pytest.raises(ConfigError) as info:
        parse_approval(manifest)
    assert info.value.problems == [
        "kind: expected LiveApproval, got 'TradingEngine'",
        "spec.engineRef.name: expected a non-empty string, got int",
        "spec.engineUid: required field missing",
        "spec.signatures[0].signature: required field missing",
        "spec.signatures[1]: expected a mapping",
    ]


def test_canonical_json_sorts_compacts_and_refuses_floats() -> None:
    assert (
        canonical_json({"b": 1, "a": ["é", True, None]}) == '{"a":["é",true,null],"b":1}'.encode()
    )
    with pytest.raises(ValueError, match=r"x\.y: floats cannot be signed"):
        canonical_json({"x": {"y": 0.1}})


def test_spec_hash_ignores_paused_halt_and_paper_only() -> None:
    base = spec_hash(live_spec())
    assert spec_hash(live_spec(paused=True, halt=True)) == base
    assert spec_hash(live_spec(paper={"feeRate": "0.002"})) == base
    assert spec_hash(live_spec(strategy={"params": {"fast": 4}})) != base
    assert spec_hash(live_spec(market={"timeframe": "5m"})) != base


def test_an_unquoted_yaml_number_in_params_hashes_like_its_text() -> None:
    # YAML reads `quantity: 0.001` as a float; signed JSON holds none, so the
    # spec writes it as the decimal text it was (and 3.0 as 3).
    as_floats = live_spec(strategy={"params": {"quantity": 0.001, "fast": 3.0}})
    as_text = live_spec(strategy={"params": {"quantity": "0.001", "fast": 3}})
    assert spec_hash(as_floats) == spec_hash(as_text)
    assert spec_hash(live_spec(strategy={"params": {"quantity": 0.002}})) != spec_hash(as_text)
    approval = signed(ALICE, spec=as_text)
    verdict = verify(
        approval,
        trust_from_files({"alice.pub": ALICE.public_pem()}),
        namespace=IDENTITY.namespace,
        engine=IDENTITY.name,
        engine_uid=IDENTITY.uid,
        spec=as_floats,
        now=NOW,
    )
    assert verdict.valid


def test_times_have_one_spelling() -> None:
    moment = datetime(2026, 1, 31, 12, 0, 5, 999_000, tzinfo=UTC)
    assert format_time(moment) == "2026-01-31T12:00:05Z"
    assert parse_time("2026-01-31T12:00:05Z") == moment.replace(microsecond=0)
    for text in ("2026-01-31T12:00:05+00:00", "2026-01-31T12:00:05.000Z", "2026-01-31 12:00:05Z"):
        with pytest.raises(ValueError, match="not an RFC 3339 UTC time"):
            parse_time(text)


def test_signed_bytes_start_with_the_domain() -> None:
    payload = signed(ALICE).payload
    assert payload.signed_bytes().startswith(DOMAIN)
    assert payload.signed_bytes()[len(DOMAIN) :] == canonical_json(payload.document())


def test_trust_dir_with_policy(tmp_path: Path) -> None:
    bob = make_key("bob")
    directory = write_trust_dir(
        tmp_path / "trust",
        ALICE,
        bob,
        policy_doc={
            "required": 2,
            "namespaces": {"dev": {"required": 1}},
            "revoked": ["alice"],
            "keys": {"bob": {"notAfter": "2027-01-01T00:00:00Z"}},
        },
    )
    # A mounted ConfigMap's bookkeeping entries are skipped.
    (directory / "..data").mkdir()
    (directory / "..2026_11_25").write_text("ignored")
    trust = load_trust_dir(directory)
    assert sorted(trust.keys) == ["alice", "bob"]
    assert trust.revoked == frozenset({"alice"})
    assert trust.required_for("trading") == 2 and trust.required_for("dev") == 1
    assert trust.keys["bob"].not_after == datetime(2027, 1, 1, tzinfo=UTC)
    assert trust.keys["alice"].not_after is None


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({"policy.yml": ""}, "policy.yml: unexpected file"),
        ({"policy.yaml": "revoke: [a]"}, "policy.yaml: revoke: unknown field"),
        ({"policy.yaml": "required: 0"}, "required: expected an integer >= 1"),
        ({"policy.yaml": "required: true"}, "required: expected an integer >= 1"),
        ({"policy.yaml": "revoked: alice"}, "revoked: expected a list of key ids"),
        ({"policy.yaml": "keys: {a: {notAfter: soon}}"}, "keys.a.notAfter: 'soon' is not"),
        ({"bad id.pub": ""}, "is not a valid key id"),
        ({"alice.pub": "not a key"}, "alice.pub: not a PEM public key"),
    ],
)
def test_a_bad_trust_dir_is_an_error_not_ignored(files: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        trust_from_files(files)
    assert problem in str(info.value)


def test_a_private_key_is_not_a_trusted_key(tmp_path: Path) -> None:
    private_path, _ = generate_key(tmp_path, "alice")
    with pytest.raises(ConfigError, match=r"alice\.pub: not a PEM public key"):
        trust_from_files({"alice.pub": private_path.read_text()})


def test_generated_keys_are_private_and_never_overwritten(tmp_path: Path) -> None:
    private_path, public_path = generate_key(tmp_path / "keys", "alice")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert public_path.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    key_id, key = load_private_key(private_path)
    assert key_id == "alice"
    trust = trust_from_files({public_path.name: public_path.read_text()})
    assert key.public_key() == trust.keys["alice"].public_key
    with pytest.raises(ConfigError, match="exists already"):
        generate_key(tmp_path / "keys", "alice")
    # A private key copied into a trust directory by mistake is refused, unquoted.
    with pytest.raises(ConfigError) as info:
        load_trust_dir(tmp_path / "keys")
    assert "alice.key: a private key does not belong" in str(info.value)
    assert private_path.read_text() not in str(info.value)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    private_path, _ = generate_key(tmp_path, "alice")
    secret = private_path.read_text()
    os.chmod(private_path, 0o644)
    with pytest.raises(ConfigError) as info:
        load_private_key(private_path)
    assert "chmod 600" in str(info.value)
    os.chmod(private_path, 0o600)
    private_path.write_text(secret.replace("A", "B", 3))
    with pytest.raises(ConfigError) as info:
        load_private_key(private_path)
    assert secret not in str(info.value) and "-----" not in str(info.value)


def test_new_approval_window_and_name() -> None:
    approval = new_approval(
        namespace="trading",
        engine="btc-live",
        engine_uid="u-1",
        spec=live_spec(),
        ttl=timedelta(minutes=30),
        now=NOW + timedelta(microseconds=700),
        not_before=NOW + timedelta(hours=1),
    )
    assert approval.payload.not_before == "2026-11-25T13:00:00Z"
    assert approval.payload.expires_at == "2026-11-25T13:30:00Z"
    assert approval.name == f"btc-live-{approval.payload.nonce[:8]}"
    assert len(approval.payload.nonce) == 32
    assert approval.signatures == ()
    assert replace(approval, name="x").payload == approval.payload
