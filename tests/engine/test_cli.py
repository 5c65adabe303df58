"""The `hean` command line: help, exit statuses, the human summary, and the live gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from engine_support import CANDLE_HEADER, manifest_dict, run_hean, spec_dict, write_lines
from hean_engine import __version__
from hean_engine.cli import main


def _commands(help_text: str) -> list[str]:
    """The command names of a click help page's Commands section."""
    section = help_text.split("\nCommands:\n", 1)[1]
    return [line.split()[0] for line in section.splitlines() if line.startswith("  ")]


def test_hean_help_as_installed() -> None:
    done = run_hean("--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("Usage: hean [OPTIONS] COMMAND [ARGS]...")
    # the engine's own group, and the groups the operator registers by entry point
    assert {"engine", "crds", "operator"} <= set(_commands(done.stdout))


def test_engine_help_lists_its_commands() -> None:
    result = CliRunner().invoke(main, ["engine", "--help"])
    assert result.exit_code == 0
    assert "Run a trading engine: replay recorded data, paper trade, or trade live." in (
        result.stdout
    )
    assert _commands(result.stdout) == ["backtest", "replay", "run", "serve-reports"]


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("replay", ["--config", "--data", "--json"]),
        ("run", ["--config", "--host", "--port", "--control-token-file", "--credentials-dir"]),
    ],
)
def test_engine_command_help(command: str, options: list[str]) -> None:
    result = CliRunner().invoke(main, ["engine", command, "-h"])
    assert result.exit_code == 0
    for option in options:
        assert option in result.stdout


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"hean, version {__version__}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frobnicate"], "No such command 'frobnicate'"),
        (["engine", "replay", "--data", "x.csv"], "Missing option '--config'"),
        (["engine", "replay", "--config", "x.yaml"], "Missing option '--data'"),
        (["engine", "run"], "Missing option '--config'"),
        (
            ["engine", "run", "--config", "x.yaml", "--port", "http"],
            "'http' is not a valid integer",
        ),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    data = write_lines(tmp_path / "c.csv", [CANDLE_HEADER, "2017-01-01T00:00:00Z,1,1,1,1,1"])
    result = CliRunner().invoke(
        main, ["engine", "replay", "--config", str(tmp_path / "nope.yaml"), "--data", str(data)]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: invalid configuration:\n"
        f"  --config: cannot read {tmp_path / 'nope.yaml'}: No such file or directory\n"
    )


def _config(tmp_path: Path, **overrides: object) -> Path:
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(manifest_dict(spec_dict(**overrides), name="cli")))
    return path


def _candles(tmp_path: Path, closes: list[float]) -> Path:
    rows = [
        f"2017-01-01T00:{minute:02d}:00Z,{close},{close},{close},{close},1"
        for minute, close in enumerate(closes)
    ]
    return write_lines(tmp_path / "candles.csv", [CANDLE_HEADER, *rows])


def test_replay_prints_a_human_summary_without_json(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        strategy={"params": {"fast": 1, "slow": 3, "quantity": "2"}},
        paper={"feeRate": "0"},
    )
    data = _candles(tmp_path, [100, 100, 100, 104, 98, 97])
    result = CliRunner().invoke(
        main, ["engine", "replay", "--config", str(config), "--data", str(data)]
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "engine cli: ema_cross on BTC/USD"
    assert lines[1:8] == [
        "  events          6 (2017-01-01T00:00:00Z .. 2017-01-01T00:05:00Z)",
        "  orders / fills  2 / 2",
        "  rejections      none",
        "  fees            0",
        # bought 2 at 98 (the open after the golden cross), sold 2 at 97
        "  equity          10000 -> 9998 (pnl -2)",
        "  max drawdown    2 (0.02%)",
        "  risk state      ACTIVE (start)",
    ]
    assert lines[8].startswith("  wall time       ")
    assert len(lines) == 9


def test_replay_json_through_the_runner_is_one_object(tmp_path: Path) -> None:
    config = _config(tmp_path, strategy={"params": {"fast": 1, "slow": 3, "quantity": "2"}})
    data = _candles(tmp_path, [100, 100, 100, 104, 98, 97])
    result = CliRunner().invoke(
        main, ["engine", "replay", "--config", str(config), "--data", str(data), "--json"]
    )
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["fills"] == 2
    assert [(t["side"], t["price"], t["fee"]) for t in summary["trades"]] == [
        ("buy", "98", "0.196"),
        ("sell", "97", "0.194"),
    ]
    assert summary["fees"] == "0.39"
    assert summary["pnl"] == "-2.39"


def test_replay_of_a_file_without_rows_exits_2(tmp_path: Path) -> None:
    """A header and no rows is a truncated or wrong file, not a replay with no result."""
    data = write_lines(tmp_path / "header-only.csv", [CANDLE_HEADER])
    result = CliRunner().invoke(
        main,
        ["engine", "replay", "--config", str(_config(tmp_path)), "--data", str(data), "--json"],
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"{data}:1: no candles after the header" in result.stderr


def test_run_in_live_mode_is_refused_without_a_live_approval(tmp_path: Path) -> None:
    config = _config(tmp_path, mode="live", exchange={"credentialsSecret": "bitfinex-keys"})
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "apiKey").write_text("key")
    (credentials / "secret").write_text("secret")
    done = run_hean(
        "engine",
        "run",
        "--config",
        config,
        "--port",
        "0",
        "--credentials-dir",
        credentials,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert "no valid LiveApproval" in done.stderr
    assert done.stderr.startswith("error: live trading refused for default/cli: ")
