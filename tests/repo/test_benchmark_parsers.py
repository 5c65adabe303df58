"""The parsers of `benchmarks/operator_convergence.py` that turn tools' text into figures.

The benchmark itself runs only by hand (it needs a quiet machine); what it reads
from `go tool pprof` is checked here, on text as pprof prints it, so that a
figure in docs/benchmarks.md is never a misread line.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def convergence() -> ModuleType:
    path = REPO_ROOT / "benchmarks" / "operator_convergence.py"
    spec = importlib.util.spec_from_file_location("operator_convergence", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


FOCUSED = """\
File: kube-apiserver
Build ID: 46b6d50fc432b15b8c6b992ccf3d4780c0ef4722
Type: cpu
Time: 2026-12-06 12:49:56 UTC
Duration: 14s, Total samples = 12.36s (88.28%)
Active filters:
   focus=customresource\\.\\(\\*StatusREST\\)\\.Update
Showing nodes accounting for 2.55s, 20.63% of 12.36s total
      flat  flat%   sum%        cum   cum%
     0.12s  0.97%  0.97%      0.12s  0.97%  runtime.memmove
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1.25s", 1.25), ("340ms", 0.34), ("2.10mins", 126.0), ("0", 0.0), ("15us", 15e-6)],
)
def test_durations_read_as_pprof_prints_them(
    convergence: ModuleType, text: str, seconds: float
) -> None:
    assert convergence._seconds(text) == pytest.approx(seconds)


def test_the_focused_samples_and_the_total_are_read(convergence: ModuleType) -> None:
    assert convergence.focused_seconds(FOCUSED) == pytest.approx((2.55, 12.36))


def test_a_focus_that_matched_nothing_is_zero(convergence: ModuleType) -> None:
    text = "Duration: 14s, Total samples = 12.36s (88.28%)\n"
    text += "Showing nodes accounting for 0, 0% of 12.36s total\n"
    assert convergence.focused_seconds(text) == (0.0, pytest.approx(12.36))


def test_output_without_the_line_is_refused_not_read_as_zero(convergence: ModuleType) -> None:
    with pytest.raises(ValueError, match="Showing nodes accounting for"):
        convergence.focused_seconds("failed to fetch any source profiles\n")
