"""`hean approval keygen|sign|verify`, offline, as an approver runs them."""

from __future__ import annotations

import stat
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from approval_support import UID, engine_manifest, live_spec_dict
from click.testing import CliRunner, Result

from hean_engine.cli import main


def hean(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    engine = tmp_path / "engine.yaml"
    engine.write_text(yaml.safe_dump(engine_manifest()))
    bare = tmp_path / "engine-no-uid.yaml"
    bare.write_text(yaml.safe_dump(engine_manifest(uid=False)))
    keys = tmp_path / "keys"
    trust = tmp_path / "trust"
    trust.mkdir()
    for key_id in ("alice", "bob"):
        result = hean("approval", "keygen", "--out", keys, "--key-id", key_id)
        assert result.exit_code == 0, result.output
        (trust / f"{key_id}.pub").write_text((keys / f"{key_id}.pub").read_text())
    return {"engine": engine, "bare": bare, "keys": keys, "trust": trust, "tmp": tmp_path}


def secrets_of(ws: dict[str, Path]) -> list[str]:
    texts = [(ws["keys"] / f"{k}.key").read_text() for k in ("alice", "bob")]
    # The PEM body lines too: a leak need not include the header.
    return texts + [line for text in texts for line in text.splitlines() if "-----" not in line]


def sign(ws: dict[str, Path], key: str, *extra: str | Path) -> Result:
    return hean("approval", "sign", "--key", ws["keys"] / f"{key}.key", *extra)


def verify(ws: dict[str, Path], approval: Path, *extra: str | Path) -> Result:
    return hean(
        "approval", "verify", approval, "--trusted-keys", ws["trust"],
        "--engine-file", ws["engine"], *extra,
    )  # fmt: skip


def test_keygen_writes_a_private_and_a_public_file_and_prints_neither(tmp_path: Path) -> None:
    result = hean("approval", "keygen", "--out", tmp_path / "k", "--key-id", "ops-2026")
    assert result.exit_code == 0
    private = tmp_path / "k" / "ops-2026.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (tmp_path / "k" / "ops-2026.pub").is_file()
    body = [line for line in private.read_text().splitlines() if "-----" not in line]
    public = (tmp_path / "k" / "ops-2026.pub").read_text().splitlines()
    assert not any(line in result.output for line in body + public[1:-1])
    assert "ops-2026.key" in result.output
    again = hean("approval", "keygen", "--out", tmp_path / "k", "--key-id", "ops-2026")
    assert again.exit_code == 2 and "exists already" in again.output
    bad = hean("approval", "keygen", "--out", tmp_path / "k", "--key-id", "../x")
    assert bad.exit_code == 2 and "--key-id" in bad.output


def test_keygen_default_key_id(tmp_path: Path) -> None:
    result = hean("approval", "keygen", "--out", tmp_path)
    assert result.exit_code == 0
    assert len(list(tmp_path.glob("key-*.key"))) == 1


def test_sign_offline_then_verify(workspace: dict[str, Path]) -> None:
    ws = workspace
    result = sign(ws, "alice", "--engine-file", ws["bare"], "--uid", UID, "--ttl", "8h")
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load(result.stdout)
    assert manifest["kind"] == "LiveApproval"
    assert manifest["metadata"]["namespace"] == "trading"
    assert manifest["spec"]["engineUid"] == UID
    assert [s["keyId"] for s in manifest["spec"]["signatures"]] == ["alice"]
    approval = ws["tmp"] / "approval.yaml"
    approval.write_text(result.stdout)
    checked = verify(ws, approval)
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("valid: ")
    assert "[keys: alice]" in checked.output
    for secret in secrets_of(ws):
        assert secret not in result.output + checked.output


def test_the_uid_comes_from_the_file_or_is_required(workspace: dict[str, Path]) -> None:
    ws = workspace
    assert sign(ws, "alice", "--engine-file", ws["engine"], "--ttl", "1h").exit_code == 0
    missing = sign(ws, "alice", "--engine-file", ws["bare"], "--ttl", "1h")
    assert missing.exit_code == 2 and "--uid: required" in missing.output
    conflict = sign(ws, "alice", "--engine-file", ws["engine"], "--uid", "other", "--ttl", "1h")
    assert conflict.exit_code == 2 and "--uid" in conflict.output


def _signed_file(ws: dict[str, Path], *extra: str) -> Path:
    result = sign(ws, "alice", "--engine-file", ws["engine"], "--ttl", "8h", *extra)
    assert result.exit_code == 0, result.output
    path = ws["tmp"] / "approval.yaml"
    path.write_text(result.stdout)
    return path


def test_a_tampered_approval_fails_with_the_reason(workspace: dict[str, Path]) -> None:
    ws = workspace
    path = _signed_file(ws)
    manifest = yaml.safe_load(path.read_text())
    manifest["spec"]["expiresAt"] = "2099-01-01T00:00:00Z"
    path.write_text(yaml.safe_dump(manifest))
    result = verify(ws, path)
    assert result.exit_code == 1
    assert result.output.startswith("bad_signature: ")


def test_a_changed_engine_spec_fails_verification(workspace: dict[str, Path]) -> None:
    ws = workspace
    path = _signed_file(ws)
    raised = engine_manifest(live_spec_dict(risk={"maxOrderNotional": "9999999"}))
    ws["engine"].write_text(yaml.safe_dump(raised))
    result = verify(ws, path)
    assert result.exit_code == 1 and result.output.startswith("spec_changed: ")


def test_a_second_signature_makes_two_of_two(workspace: dict[str, Path]) -> None:
    ws = workspace
    (ws["trust"] / "policy.yaml").write_text("required: 2\n")
    path = _signed_file(ws)
    first = verify(ws, path)
    assert first.exit_code == 1 and first.output.startswith("not_enough_signatures: ")
    second = sign(ws, "bob", "--engine-file", ws["engine"], "--approval", path)
    assert second.exit_code == 0, second.output
    before, after = yaml.safe_load(path.read_text()), yaml.safe_load(second.stdout)
    assert [s["keyId"] for s in after["spec"]["signatures"]] == ["alice", "bob"]
    assert {k: v for k, v in after["spec"].items() if k != "signatures"} == {
        k: v for k, v in before["spec"].items() if k != "signatures"
    }
    path.write_text(second.stdout)
    result = verify(ws, path)
    assert result.exit_code == 0 and "[keys: alice, bob]" in result.output
    # Signing again with the same key replaces, it does not add.
    again = sign(ws, "bob", "--engine-file", ws["engine"], "--approval", path)
    assert len(yaml.safe_load(again.stdout)["spec"]["signatures"]) == 2


def test_co_signing_refuses_an_approval_for_another_spec(workspace: dict[str, Path]) -> None:
    ws = workspace
    path = _signed_file(ws)
    changed = engine_manifest(live_spec_dict(risk={"maxOrderNotional": "9999999"}))
    ws["engine"].write_text(yaml.safe_dump(changed))
    result = sign(ws, "bob", "--engine-file", ws["engine"], "--approval", path)
    assert result.exit_code == 1 and "refusing to sign: the approval's specHash" in result.output
    ttl = sign(ws, "bob", "--engine-file", ws["engine"], "--approval", path, "--ttl", "1h")
    assert ttl.exit_code == 2 and "--ttl" in ttl.output


def test_verify_at_a_time_before_or_after_the_window(workspace: dict[str, Path]) -> None:
    ws = workspace
    path = _signed_file(ws, "--not-before", "2030-01-01T00:00:00+01:00")
    manifest = yaml.safe_load(path.read_text())
    assert manifest["spec"]["notBefore"] == "2029-12-31T23:00:00Z"
    assert manifest["spec"]["expiresAt"] == "2030-01-01T07:00:00Z"
    early = verify(ws, path, "--at", "2029-12-31T22:59:59Z")
    assert early.exit_code == 1 and early.output.startswith("not_yet_valid: ")
    inside = verify(ws, path, "--at", "2030-01-01T06:59:59Z")
    assert inside.exit_code == 0
    late = verify(ws, path, "--at", "2030-01-01T07:00:00Z")
    assert late.exit_code == 1 and late.output.startswith("expired: ")


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--ttl", "8 hours"], "--ttl"),
        (["--ttl", "0m"], "--ttl"),
        (["--ttl", "1h", "--not-before", "tomorrow"], "--not-before"),
        (["--ttl", "1h", "--not-before", "2030-01-01T00:00:00"], "--not-before"),
        ([], "--ttl: required"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(
    workspace: dict[str, Path], args: list[str], flag: str
) -> None:
    result = sign(workspace, "alice", "--engine-file", workspace["engine"], *args)
    assert result.exit_code == 2
    assert flag in result.output


def test_verify_bad_input(workspace: dict[str, Path]) -> None:
    ws = workspace
    path = _signed_file(ws)
    result = verify(ws, path, "--at", "noon")
    assert result.exit_code == 2 and "--at" in result.output
    (ws["trust"] / "policy.yaml").write_text("required: [2]\n")
    result = verify(ws, path)
    assert result.exit_code == 2 and "--trusted-keys: policy.yaml: required" in result.output
    garbage = ws["tmp"] / "garbage.yaml"
    garbage.write_text("spec: {}\n")
    result = verify(ws, garbage)
    assert result.exit_code == 2 and "metadata.name: required field missing" in result.output


def test_the_cluster_form_needs_the_operator_module(
    workspace: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace
    monkeypatch.setitem(sys.modules, "hean_operator.approval_cli", None)
    result = sign(ws, "alice", "--engine", "btc-live", "-n", "trading", "--ttl", "1h")
    assert result.exit_code == 1 and "needs the operator extra" in result.output


def test_the_cluster_form_signs_what_fetch_engine_returns(
    workspace: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = workspace
    calls: list[tuple[Any, ...]] = []

    def fetch_engine(name: str, namespace: str, kubeconfig: str | None) -> dict[str, Any]:
        calls.append((name, namespace, kubeconfig))
        return engine_manifest()

    module = types.ModuleType("hean_operator.approval_cli")
    module.fetch_engine = fetch_engine  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hean_operator.approval_cli", module)
    result = sign(ws, "alice", "--engine", "btc-live", "-n", "trading", "--ttl", "1h")
    assert result.exit_code == 0, result.output
    assert calls == [("btc-live", "trading", None)]
    path = ws["tmp"] / "approval.yaml"
    path.write_text(result.stdout)
    assert verify(ws, path).exit_code == 0
    both = sign(ws, "alice", "--engine", "x", "--engine-file", ws["engine"], "--ttl", "1h")
    assert both.exit_code == 2 and "exactly one" in both.output
