"""Issue 14, item 5: an approval that cannot be read (too many open files) is not "malformed".

The watch reports `could_not_check`, retries every second, keeps a valid
approval's verdict for at most UNCHECKED_GRACE_SECONDS after its last good
check, then fails closed. Time is a fake clock; the I/O error is injected
into the one `open` of the approval file.
"""

from __future__ import annotations

import errno
import io
import json
import pathlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from approval_support import IDENTITY, NOW, live_spec, make_key, signed, write_approval_dir

from engine_support import FakeClock, build_engine
from hean_engine.app.approval_gate import (
    UNCHECKED_GRACE_SECONDS,
    UNCHECKED_RETRY_SECONDS,
    ApprovalGate,
    ApprovalWatch,
)
from hean_engine.approval.verify import Reason
from hean_engine.control.runtime import Runtime
from hean_engine.model.orders import RiskState
from hean_engine.telemetry.logs import configure_logging

ALICE = make_key("alice")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream)
    yield stream
    configure_logging()


@pytest.fixture
def broken_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """`state["broken"]` makes opening approval.yaml fail with EMFILE."""
    state = {"broken": False}
    original = pathlib.Path.open

    def open_(self: Path, *args: Any, **kwargs: Any) -> Any:
        if state["broken"] and self.name == "approval.yaml":
            raise OSError(errno.EMFILE, "Too many open files")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", open_)
    return state


def _watch(tmp_path: Path, clock: FakeClock) -> tuple[ApprovalWatch, Runtime]:
    directory = write_approval_dir(tmp_path / "approval", signed(ALICE), ALICE)
    spec = live_spec()
    engine = build_engine(spec)
    runtime = Runtime(
        identity=IDENTITY, spec=spec, kernel=engine.kernel, mode="live", run_id="r", clock=clock
    )
    gate = ApprovalGate(directory, clock=clock)
    watch = ApprovalWatch(gate, IDENTITY, spec, engine.kernel, runtime, clock=clock)
    return watch, runtime


def test_item5_an_unreadable_approval_is_could_not_check_not_malformed(
    tmp_path: Path, broken_reads: dict[str, bool]
) -> None:
    directory = write_approval_dir(tmp_path / "approval", signed(ALICE), ALICE)
    broken_reads["broken"] = True
    gate = ApprovalGate(directory, clock=FakeClock((NOW + timedelta(hours=1)).timestamp()))
    verdict = gate.verdict(IDENTITY, live_spec())
    assert verdict.reason is Reason.UNCHECKED
    assert "Too many open files" in verdict.message


def test_item5_a_running_engine_rides_out_a_short_io_failure(
    tmp_path: Path, broken_reads: dict[str, bool], logs: io.StringIO
) -> None:
    clock = FakeClock((NOW + timedelta(hours=1)).timestamp())
    watch, runtime = _watch(tmp_path, clock)
    assert watch.check().valid
    broken_reads["broken"] = True
    for _ in range(10):  # 10 s of failing reads, one check a second
        clock.time += watch.delay()
        status = watch.check()
        assert status.valid and runtime.kernel.risk.state is RiskState.ACTIVE
        assert watch.delay() == UNCHECKED_RETRY_SECONDS
    broken_reads["broken"] = False
    clock.time += watch.delay()
    assert watch.check().valid
    assert watch.unchecked_since is None
    warnings = [json.loads(line) for line in logs.getvalue().splitlines()]
    unchecked = [w for w in warnings if "could not be checked" in str(w["event"])]
    assert len(unchecked) == 1  # ten failures, one line (the rest throttled)
    assert "Traceback" not in logs.getvalue()


def test_item5_then_fails_closed_after_the_grace(
    tmp_path: Path, broken_reads: dict[str, bool]
) -> None:
    clock = FakeClock((NOW + timedelta(hours=1)).timestamp())
    watch, runtime = _watch(tmp_path, clock)
    assert watch.check().valid
    last_good = clock.time
    broken_reads["broken"] = True
    while clock.time < last_good + UNCHECKED_GRACE_SECONDS - UNCHECKED_RETRY_SECONDS:
        clock.time += watch.delay()
        assert watch.check().valid
    clock.time = last_good + UNCHECKED_GRACE_SECONDS
    status = watch.check()
    assert not status.valid and status.reason == "could_not_check"
    assert runtime.kernel.risk.state is RiskState.HALTED
    assert runtime.kernel.risk.state_reason == "approval: could_not_check"


def test_item5_the_grace_never_outlasts_the_approval(
    tmp_path: Path, broken_reads: dict[str, bool]
) -> None:
    expires = (NOW + timedelta(hours=8)).timestamp()
    clock = FakeClock(expires - 5)
    watch, runtime = _watch(tmp_path, clock)
    assert watch.check().valid
    broken_reads["broken"] = True
    clock.time = expires
    assert not watch.check().valid
    assert runtime.kernel.risk.state is RiskState.HALTED


def test_item5_at_start_an_unreadable_approval_refuses(
    tmp_path: Path, broken_reads: dict[str, bool]
) -> None:
    clock = FakeClock((NOW + timedelta(hours=1)).timestamp())
    watch, runtime = _watch(tmp_path, clock)
    broken_reads["broken"] = True
    assert not watch.check().valid  # no earlier good check: no grace
    assert runtime.kernel.risk.state is RiskState.HALTED
