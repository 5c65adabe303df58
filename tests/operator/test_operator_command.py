"""`hean operator run`: the process that runs `run_operator`, apart from it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

import hean_operator.main
from hean_engine.cli import main
from hean_operator.settings import OperatorSettings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's own objects go back to the collector


def test_the_start_up_heap_is_frozen_before_the_operator_runs(
    monkeypatch: pytest.MonkeyPatch, unfrozen: None
) -> None:
    seen: dict[str, Any] = {}

    async def fake_run_operator(settings: OperatorSettings, *_: Any) -> None:
        seen["frozen"] = gc.get_freeze_count()
        seen["settings"] = settings

    monkeypatch.setattr(hean_operator.main, "run_operator", fake_run_operator)
    assert gc.get_freeze_count() == 0
    result = CliRunner().invoke(
        main, ["operator", "run", "--namespace", "bench", "--poll-interval", "3"]
    )
    assert result.exit_code == 0, result.output
    # Everything loaded before the operator starts (the imports) is exempt from the
    # collector's scans; the operator itself ran with the options given.
    assert seen["frozen"] > 10_000
    assert seen["settings"].namespaces == ("bench",)
    assert seen["settings"].poll_interval == 3
