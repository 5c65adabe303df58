"""The engine's own check: `ApprovalGate` at start, `ApprovalWatch` while it runs (fake clock)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from approval_support import (
    IDENTITY,
    NOW,
    engine_manifest,
    live_spec,
    make_key,
    signed,
    write_approval_dir,
)
from click.testing import CliRunner
from prometheus_client import generate_latest

from engine_support import FakeClock, build_engine
from hean_contract.spec import TradingEngineSpec
from hean_engine.app.approval_gate import ApprovalGate, ApprovalWatch
from hean_engine.app.run import RunOptions, run_engine
from hean_engine.approval.sign import generate_key
from hean_engine.cli import main
from hean_engine.control.metrics import build_registry
from hean_engine.control.runtime import Runtime, apply_command
from hean_engine.control.status import status_document
from hean_engine.model.errors import LiveTradingRefused
from hean_engine.model.orders import RiskState
from hean_engine.telemetry.logs import configure_logging

ALICE = make_key("alice")
BOB = make_key("bob")
EXPIRES = (NOW + timedelta(hours=8)).timestamp()


@pytest.fixture(autouse=True)
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream)
    yield stream
    configure_logging()


class FakeTime(FakeClock):
    """A clock that only the watch's own sleeps move.

    The loop ends (CancelledError, as when the engine stops) at the first
    sleep after `stop()` holds, or after `limit` sleeps.
    """

    def __init__(self, start: float, limit: int = 50) -> None:
        super().__init__(start)
        self.limit = limit
        self.stop: Callable[[], bool] = lambda: False

    async def sleep(self, seconds: float) -> None:
        if self.stop() or len(self.sleeps) >= self.limit:
            raise asyncio.CancelledError
        self.sleeps.append(seconds)
        self.time += seconds


def approval_dir(
    tmp_path: Path, *keys: object, policy_doc: dict[str, object] | None = None
) -> Path:
    return write_approval_dir(
        tmp_path / "approval", signed(ALICE), ALICE, BOB, policy_doc=policy_doc
    )


def watch_for(
    directory: Path, time: FakeTime, spec: TradingEngineSpec | None = None
) -> tuple[ApprovalWatch, Runtime]:
    spec = spec or live_spec()
    engine = build_engine(spec)
    runtime = Runtime(
        identity=IDENTITY, spec=spec, kernel=engine.kernel, mode="live", run_id="r1",
        clock=time,
    )  # fmt: skip
    gate = ApprovalGate(directory, clock=time)
    watch = ApprovalWatch(gate, IDENTITY, spec, engine.kernel, runtime, clock=time)
    return watch, runtime


async def run_until(watch: ApprovalWatch, time: FakeTime, stop: Callable[[], bool]) -> None:
    """Run the re-check loop until `stop()` holds after a check."""
    time.stop = stop
    with pytest.raises(asyncio.CancelledError):
        await watch.run()


def test_the_gate_refuses_without_files(tmp_path: Path) -> None:
    decision = ApprovalGate(tmp_path).evaluate(IDENTITY, live_spec())
    assert not decision.allowed
    assert decision.reason == f"malformed: no LiveApproval at {tmp_path / 'approval.yaml'}"
    (tmp_path / "approval.yaml").write_text(yaml.safe_dump({"kind": "LiveApproval"}))
    decision = ApprovalGate(tmp_path).evaluate(IDENTITY, live_spec())
    assert decision.reason.startswith("malformed: metadata: expected a mapping")


def test_the_gate_allows_a_valid_approval_and_nothing_else(tmp_path: Path) -> None:
    directory = approval_dir(tmp_path)
    at = (NOW + timedelta(hours=1)).timestamp()
    gate = ApprovalGate(directory, clock=FakeClock(at))
    assert gate.evaluate(IDENTITY, live_spec()).allowed
    other = IDENTITY.model_copy(update={"uid": "another"})
    assert gate.evaluate(other, live_spec()).reason.startswith("wrong_uid: ")
    late = ApprovalGate(directory, clock=FakeClock(EXPIRES))
    assert late.evaluate(IDENTITY, live_spec()).reason.startswith("expired: ")


def test_a_live_start_without_a_valid_approval_never_reads_the_keys(tmp_path: Path) -> None:
    directory = approval_dir(tmp_path)
    options = RunOptions(
        gate=ApprovalGate(directory),  # the real clock: the approval signed for NOW is over
        credentials_dir=tmp_path / "absent",
        configure_logs=False,
    )
    with pytest.raises(LiveTradingRefused) as info:
        run_engine(IDENTITY, live_spec(), options)
    assert str(info.value).startswith(
        "live trading refused for trading/btc-live: expired: the approval expired at"
    )


def test_hean_engine_run_with_an_approval_dir_exits_1_with_the_reason(tmp_path: Path) -> None:
    directory = approval_dir(tmp_path)
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(engine_manifest()))
    args = ["engine", "run", "--config", str(config), "--credentials-dir", str(tmp_path / "x")]
    result = CliRunner().invoke(main, [*args, "--approval-dir", str(directory)])
    assert result.exit_code == 1
    assert "live trading refused for trading/btc-live: expired:" in result.output
    # Without the flag there is no way to live trading at all.
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "no valid LiveApproval" in result.output


async def test_expiry_halts_at_the_expiry_instant_not_the_next_poll(tmp_path: Path) -> None:
    time = FakeTime(EXPIRES - 12.5)
    watch, runtime = watch_for(approval_dir(tmp_path), time)
    assert watch.check().valid
    kernel = runtime.kernel
    await run_until(watch, time, lambda: kernel.risk.state is RiskState.HALTED)
    assert time.sleeps == [5.0, 5.0, 2.5]
    assert time.time == EXPIRES
    assert kernel.risk.state_reason == "approval: expired"
    kinds = [(e.kind, e.detail) for e in kernel.recent_events]
    assert any(k == "approval" and d.startswith("LiveApproval lost: expired") for k, d in kinds)
    status = status_document(runtime)["approval"]
    assert status["valid"] is False and status["reason"] == "expired"
    assert status["expiresAt"] == "2026-11-25T20:00:00Z"


async def test_a_key_reaching_its_not_after_is_a_timer_too(tmp_path: Path) -> None:
    ends = NOW + timedelta(hours=1, seconds=3)
    directory = approval_dir(tmp_path, policy_doc={"keys": {"alice": {"notAfter": ends}}})
    time = FakeTime((NOW + timedelta(hours=1)).timestamp())
    watch, runtime = watch_for(directory, time)
    assert watch.check().valid
    await run_until(watch, time, lambda: runtime.kernel.risk.state is RiskState.HALTED)
    assert time.sleeps == [3.0]
    assert runtime.kernel.risk.state_reason == "approval: key_expired"


async def test_revocation_halts_at_the_next_recheck(tmp_path: Path) -> None:
    directory = approval_dir(tmp_path)
    time = FakeTime((NOW + timedelta(hours=1)).timestamp())
    watch, runtime = watch_for(directory, time)
    assert watch.check().valid
    # The mounted ConfigMap changes in place: the next check reads it.
    (directory / "trust" / "policy.yaml").write_text("revoked: [alice]\n")
    await run_until(watch, time, lambda: runtime.kernel.risk.state is RiskState.HALTED)
    assert time.sleeps == [5.0]
    assert runtime.kernel.risk.state_reason == "approval: revoked_key"


async def test_on_approval_loss_reduce_gives_reducing(tmp_path: Path) -> None:
    directory = approval_dir(tmp_path)
    spec = live_spec(live={"onApprovalLoss": "reduce"})
    (directory / "approval.yaml").write_text(
        (directory / "approval.yaml").read_text().replace(signed(ALICE).payload.spec_hash, "0" * 64)
    )
    write_approval_dir(directory, signed(ALICE, spec=spec), ALICE)
    time = FakeTime((NOW + timedelta(hours=1)).timestamp())
    watch, runtime = watch_for(directory, time, spec)
    assert watch.check().valid
    (directory / "trust" / "alice.pub").unlink()
    (directory / "trust" / "bob.pub").unlink()
    (directory / "trust" / "carol.pub").write_text(BOB.public_pem())
    status = watch.check()
    assert status.reason == "untrusted_key"
    assert runtime.kernel.risk.state is RiskState.REDUCING
    assert runtime.kernel.risk.state_reason == "approval: untrusted_key"


def test_resume_never_lifts_an_approval_loss_halt_only_reset_halt(tmp_path: Path) -> None:
    directory = approval_dir(tmp_path)
    time = FakeTime(EXPIRES)
    watch, runtime = watch_for(directory, time)
    assert not watch.check().valid
    kernel = runtime.kernel
    assert kernel.risk.state is RiskState.HALTED
    apply_command(kernel, "resume")
    assert kernel.risk.state is RiskState.HALTED
    assert kernel.risk.state_reason == "approval: expired"
    apply_command(kernel, "reset-halt")  # nor the reset, while the approval is invalid
    assert kernel.risk.state is RiskState.HALTED
    assert kernel.risk.state_reason == "approval: expired"
    # A new, valid approval: the halt stays until the explicit reset lifts it.
    fresh = signed(ALICE, now=NOW + timedelta(hours=7, minutes=59))
    write_approval_dir(directory, fresh, ALICE)
    assert watch.check().valid
    assert kernel.risk.state is RiskState.HALTED
    apply_command(kernel, "pause")
    apply_command(kernel, "resume")  # issue 14 item 3: a pause toggle lifts nothing
    assert kernel.risk.state is RiskState.HALTED
    apply_command(kernel, "reset-halt")
    assert kernel.risk.state is RiskState.ACTIVE


def test_status_and_metrics_report_the_approval(tmp_path: Path) -> None:
    time = FakeTime((NOW + timedelta(hours=1)).timestamp())
    watch, runtime = watch_for(approval_dir(tmp_path), time)
    watch.check()
    status = status_document(runtime)["approval"]
    assert status == {
        "valid": True,
        "reason": "valid",
        "message": "1 trusted signature(s), 1 required",
        "keyIds": ["alice"],
        "expiresAt": "2026-11-25T20:00:00Z",
        "checkedAt": "2026-11-25T13:00:00Z",
    }
    metrics = generate_latest(build_registry(runtime)).decode()
    labels = '{engine="btc-live",engine_namespace="trading"}'
    assert f"hean_engine_approval_valid{labels} 1.0" in metrics
    assert f"hean_engine_approval_expiry_timestamp_seconds{labels} 1.7956368e+09" in metrics
    assert EXPIRES == 1.7956368e09


def test_no_private_key_text_reaches_status_metrics_or_logs(
    tmp_path: Path, logs: io.StringIO
) -> None:
    directory = approval_dir(tmp_path)
    private, _ = generate_key(tmp_path / "keys", "mallory")
    secret = private.read_text()
    # Someone copies a private key into the trust directory by mistake.
    (directory / "trust" / "mallory.key").write_text(secret)
    time = FakeTime((NOW + timedelta(hours=1)).timestamp())
    watch, runtime = watch_for(directory, time)
    status = watch.check()
    assert not status.valid and "a private key does not belong" in status.message
    text = (
        str(status_document(runtime))
        + generate_latest(build_registry(runtime)).decode()
        + logs.getvalue()
    )
    body = [line for line in secret.splitlines() if "-----" not in line]
    assert body and not any(line in text for line in body)


async def test_a_gate_that_fails_is_a_gate_that_refuses(tmp_path: Path) -> None:
    time = FakeTime((NOW + timedelta(hours=1)).timestamp())
    watch, runtime = watch_for(approval_dir(tmp_path), time)
    assert watch.check().valid

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("disk on fire")

    watch.gate.verdict = broken  # type: ignore[attr-defined, method-assign]
    await run_until(watch, time, lambda: runtime.kernel.risk.state is RiskState.HALTED)
    assert runtime.kernel.risk.state_reason == "approval: malformed"
    assert runtime.approval is not None
    assert runtime.approval.message == "the approval check failed: RuntimeError"


def test_hean_engine_run_passes_the_gate_with_a_valid_approval(tmp_path: Path) -> None:
    # Signed for the wall clock: the command uses the real one.
    fresh = signed(ALICE, now=datetime.now(UTC) - timedelta(minutes=1))
    directory = write_approval_dir(tmp_path / "approval", fresh, ALICE)
    config = tmp_path / "engine.yaml"
    config.write_text(yaml.safe_dump(engine_manifest()))
    args = ["engine", "run", "--config", str(config), "--credentials-dir", str(tmp_path / "x")]
    # HEAN_APPROVAL_DIR is how the pod passes it too; the next step (the
    # exchange keys) is what fails now: the gate allowed.
    result = CliRunner().invoke(main, args, env={"HEAN_APPROVAL_DIR": str(directory)})
    assert result.exit_code == 2, result.output
    assert "--credentials-dir: cannot read" in result.output
    assert "live trading refused" not in result.output
