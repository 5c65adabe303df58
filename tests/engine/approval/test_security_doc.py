"""docs/security.md's approval section is true: its worked example and its CLI walkthrough."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import yaml

from engine_support import REPO_ROOT
from hean_contract.spec import parse_manifest
from hean_engine.approval.payload import ApprovalPayload, canonical_json, spec_document, spec_hash

DOC = REPO_ROOT / "docs" / "security.md"
TEXT = DOC.read_text()
SECTION = TEXT[TEXT.index("## Live approvals") : TEXT.index("## Exchange keys")]


def marked(name: str) -> str:
    """The fenced block or the inline code right after `<!-- approval-example:NAME -->`."""
    after = TEXT[TEXT.index(f"<!-- approval-example:{name} -->") :]
    block = re.search(r"```\w*\n(.*?)\n```|`([^`\n]+)`", after, re.DOTALL)
    assert block is not None
    return block.group(1) if block.group(1) is not None else block.group(2)


def test_the_worked_example_matches_the_code() -> None:
    identity, spec = parse_manifest(yaml.safe_load(marked("engine")))
    assert canonical_json(spec_document(spec)).decode() == marked("spec-json")
    assert spec_hash(spec) == marked("spec-hash")
    payload = ApprovalPayload(
        namespace=identity.namespace,
        engine=identity.name,
        engine_uid=identity.uid,
        spec_hash=spec_hash(spec),
        not_before="2026-11-25T09:00:00Z",
        expires_at="2026-11-25T17:00:00Z",
        nonce="5f0c9a7e3b2d41c8a6e19f4d7b03c2e1",
    )
    signed = payload.signed_bytes()
    assert signed == marked("signed-bytes").encode()
    assert len(signed) == 339 and "(339 bytes" in TEXT
    assert hashlib.sha256(signed).hexdigest() == marked("signed-sha256")


def walkthrough() -> list[str]:
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", SECTION, re.DOTALL):
        commands.extend(line for line in block.splitlines() if line.strip())
    return commands


def test_the_cli_walkthrough_runs_as_written(tmp_path: Path) -> None:
    (tmp_path / "engine.yaml").write_text(marked("engine"))
    env = {**os.environ, "PATH": f"{REPO_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    outputs: list[str] = []
    commands = walkthrough()
    assert len(commands) >= 10
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs.append(done.stdout + done.stderr)
    verifies = [out for cmd, out in zip(commands, outputs, strict=True) if " verify " in cmd]
    assert verifies and all(out.startswith("valid: ") for out in verifies)
    # After the last step (bob revoked) the rotated approval is no longer enough.
    final = subprocess.run(
        ["hean", "approval", "verify", "approval-3.yaml", "--trusted-keys", "trust",
         "--engine-file", "engine.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert final.returncode == 1 and final.stdout.startswith("revoked_key: "), final.stdout
    # Private keys were never printed by any step.
    for key in (tmp_path / "keys").glob("*.key"):
        body = [line for line in key.read_text().splitlines() if "-----" not in line]
        assert not any(line in out for line in body for out in outputs)
