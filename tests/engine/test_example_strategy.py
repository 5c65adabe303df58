"""The example strategy package (examples/strategies/hean-rsi) in a full replay.

The package is installed into a throwaway directory (strategy_support) that a
`hean engine replay` subprocess gets on its PYTHONPATH: the engine finds
`rsi_mean_reversion` only through the package's entry point. Every fill is
checked against RSI signals recomputed here from the file, independently of
the package's code, from the semantics its docstring documents.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine_support import (
    BTCUSD_CANDLES,
    EXAMPLES_DIR,
    head_lines,
    hean_executable,
    require_shared_file,
    write_lines,
)
from strategy_support import RSI_EXAMPLE, install_project

CANDLES = 5000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_project(RSI_EXAMPLE, tmp_path_factory.mktemp("site"))


def _env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    return env


def _config(tmp_path: Path, **params: Any) -> Path:
    manifest = yaml.safe_load((RSI_EXAMPLE / "replay-btcusd.yaml").read_text(encoding="utf-8"))
    manifest["spec"]["strategy"]["params"].update(params)
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    return path


def _replay(site: Path, config: Path, data: Path) -> subprocess.CompletedProcess[str]:
    command = [hean_executable(), "engine", "replay", "--json", "--config", str(config)]
    return subprocess.run(
        [*command, "--data", str(data)],
        capture_output=True,
        text=True,
        env=_env(site),
        timeout=300,
        check=False,
    )


def _expected_fills(data: Path, period: int, oversold: float, overbought: float) -> list[Any]:
    """(fill time, side) of every signal, from Wilder's RSI computed over the file here."""
    with data.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    closes = [float(row["close"]) for row in rows]
    changes = [b - a for a, b in itertools.pairwise(closes)]
    gains = [max(c, 0.0) for c in changes]
    losses = [max(-c, 0.0) for c in changes]
    fills: list[tuple[str, str]] = []
    holding = False
    avg_gain = avg_loss = 0.0
    for k in range(period - 1, len(changes)):  # change k ends at candle k + 1
        if k == period - 1:
            avg_gain = sum(gains[:period]) / period
            avg_loss = sum(losses[:period]) / period
        else:
            avg_gain = (avg_gain * (period - 1) + gains[k]) / period
            avg_loss = (avg_loss * (period - 1) + losses[k]) / period
        rsi = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
        signal = k + 1
        if signal + 1 >= len(rows):
            break  # a market order fills at the next candle's open: there is none
        side = "buy" if rsi < oversold and not holding else None
        side = "sell" if rsi > overbought and holding else side
        if side is not None:
            holding = side == "buy"
            fills.append((rows[signal + 1]["timestamp"], side))
    return fills


def test_the_example_replays_by_its_entry_point_name_with_exact_signals(
    tmp_path: Path, site: Path
) -> None:
    data = write_lines(
        tmp_path / "candles.csv", head_lines(require_shared_file(BTCUSD_CANDLES), CANDLES + 1)
    )
    result = _replay(site, _config(tmp_path), data)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["strategy"] == "rsi_mean_reversion"
    assert summary["events"] == CANDLES
    expected = _expected_fills(data, 14, 30, 70)
    assert len(expected) >= 20  # the window trades: the comparison means something
    got = [(trade["timestamp"], trade["side"]) for trade in summary["trades"]]
    assert got == expected
    assert {trade["quantity"] for trade in summary["trades"]} == {"0.01"}


def test_the_example_refuses_bad_params_naming_the_field(tmp_path: Path, site: Path) -> None:
    data = write_lines(tmp_path / "candles.csv", head_lines(BTCUSD_CANDLES, 3))
    result = _replay(site, _config(tmp_path, oversold=80), data)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: invalid configuration:",
        "  spec.strategy.params.oversold: must be less than overbought "
        "(oversold 80, overbought 70)",
    ]


def test_without_the_package_the_name_is_unknown(tmp_path: Path) -> None:
    data = write_lines(tmp_path / "candles.csv", head_lines(BTCUSD_CANDLES, 3))
    result = _replay(tmp_path / "empty-site", _config(tmp_path), data)
    assert result.returncode == 2
    assert "spec.strategy.name: unknown strategy 'rsi_mean_reversion'" in result.stderr


def test_the_example_package_declares_its_entry_point() -> None:
    text = (RSI_EXAMPLE / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.entry-points."hean.strategies"]' in text
    assert 'rsi_mean_reversion = "hean_rsi.strategy:RsiMeanReversion"' in text
    assert (EXAMPLES_DIR / "strategies" / "hean-rsi" / "replay-btcusd.yaml").is_file()
