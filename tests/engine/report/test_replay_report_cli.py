"""`hean engine replay --json/--from/--to/--report`: the Contract's stats keys, the
time window, the HTML report (parsed), the progress bar, and bad input (exit 2)."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from engine_support import (
    CANDLE_HEADER,
    DAY,
    EXAMPLES_DIR,
    MINUTE,
    T0,
    head_lines,
    manifest_dict,
    spec_dict,
    write_lines,
)
from hean_engine.app.progress import ProgressBar, file_fraction, render, time_fraction
from hean_engine.app.recording import parse_rfc3339
from hean_engine.cli import main
from hean_engine.model.timefmt import ms_to_iso

# The Contract (issue 16): `--json` carries at least these.
CONTRACT_KEYS = {
    "totalReturnPct",
    "sharpe",
    "sortino",
    "maxDrawdownPct",
    "winRatePct",
    "profitFactor",
    "trades",
}
DAYS = 3


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "engine.yaml"
    spec = spec_dict(strategy={"params": {"fast": 3, "slow": 8, "quantity": "1"}})
    path.write_text(yaml.safe_dump(manifest_dict(spec, name="cli")))
    return path


@pytest.fixture
def candles(tmp_path: Path) -> Path:
    """Three days of one-minute candles on two overlaid waves: the EMA cross trades often."""
    rows = []
    for minute in range(DAYS * 1440):
        close = 100 + 5 * math.sin(minute / 40) + 2 * math.sin(minute / 7)
        text = f"{close:.2f}"
        rows.append(f"{ms_to_iso(T0 + minute * MINUTE)},{text},{text},{text},{text},1")
    return write_lines(tmp_path / "candles.csv", [CANDLE_HEADER, *rows])


def _replay(config: Path, data: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["engine", "replay", "--config", str(config), "--data", str(data), *args]
    )


def test_json_stats_carry_the_contract_keys(config: Path, candles: Path) -> None:
    result = _replay(config, candles, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress bar
    summary = json.loads(result.stdout)
    stats = summary["stats"]
    assert set(stats) >= CONTRACT_KEYS
    for key in CONTRACT_KEYS:
        value = stats[key]
        assert isinstance(value, str | int), (key, value)
        Decimal(str(value))  # a decimal string or a number
    # Undefined figures are "0" and named (three days: no losing day, say, for Sortino).
    for key in stats["undefined"]:
        assert stats[key] == "0", key
    assert stats["trades"] > 10
    assert stats["fills"] == summary["fills"]
    assert stats["finalEquity"] == summary["final_equity"]
    assert stats["fees"] == summary["fees"]
    # The ledger also values at fill prices, the report at closes only: never deeper.
    assert Decimal(stats["maxDrawdownPct"]) <= Decimal(summary["max_drawdown_pct"]) + Decimal(
        "0.000001"
    )
    assert len(stats["monthlyReturns"]) == 1


def test_json_writes_the_summary_as_json_dumps_would(config: Path, candles: Path) -> None:
    """`--json` writes the trades straight from the fills (`summary_json`): the same
    text as `json.dumps` of the full summary, order ids with any characters included."""
    from hean_engine.app.config import load_config
    from hean_engine.app.recording import ReplayWindow
    from hean_engine.app.replay import replay, summary_json

    identity, spec = load_config(config)
    full = replay(identity, spec, candles, window=ReplayWindow(), with_report=True)
    lean = replay(identity, spec, candles, window=ReplayWindow(), with_report=True, trades=False)
    assert full.summary["trades"] and "trades" not in lean.summary
    volatile = ("wall_seconds", "events_per_second")
    for key in volatile:
        lean.summary[key] = full.summary[key]
    expected = json.dumps(full.summary, separators=(",", ":"))
    assert summary_json(lean.summary, lean.fills) == expected
    assert summary_json(full.summary, full.fills) == expected
    # Without statistics, and with ids JSON must escape.
    odd = [dataclasses.replace(f, order_id=f'o"{i}\\é\n') for i, f in enumerate(lean.fills)]
    del lean.summary["stats"], full.summary["stats"]
    full.summary["trades"] = [
        {**trade, "order_id": f.order_id}
        for trade, f in zip(full.summary["trades"], odd, strict=True)
    ]
    assert summary_json(lean.summary, odd) == json.dumps(full.summary, separators=(",", ":"))
    stdout = _replay(config, candles, "--json").stdout
    assert stdout.count("\n") == 1 and json.loads(stdout).keys() == json.loads(expected).keys()


def test_without_json_or_report_no_statistics_are_computed(config: Path, candles: Path) -> None:
    result = _replay(config, candles)
    assert result.exit_code == 0
    assert "sharpe" not in result.stdout


def test_from_and_to_select_a_half_open_range(config: Path, candles: Path) -> None:
    result = _replay(
        config,
        candles,
        "--json",
        "--from",
        "2017-01-02T00:00:00Z",
        "--to",
        "2017-01-03T02:00:00+02:00",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["events"] == 1440  # [Jan 2 00:00, Jan 3 00:00 UTC)
    assert summary["first_event_time"] == "2017-01-02T00:00:00Z"
    assert summary["last_event_time"] == "2017-01-02T23:59:00Z"
    assert summary["stats"]["start"] == "2017-01-02T00:00:00Z"
    only_from = json.loads(_replay(config, candles, "--json", "--from", "2017-01-03").stdout)
    assert only_from["events"] == 1440
    only_to = json.loads(_replay(config, candles, "--json", "--to", "2017-01-01T00:10:00Z").stdout)
    assert only_to["events"] == 10


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--from", "yesterday"], "'--from'"),
        (["--from", "2017-01-02T00:00:00"], "'--from'"),  # no offset: not RFC 3339
        (["--to", "2017-13-01T00:00:00Z"], "'--to'"),
        (["--from", "2017-01-02T00:00:00Z", "--to", "2017-01-02T00:00:00Z"], "'--to'"),
        (["--report", "/nonexistent-dir/r.html"], "'--report'"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    config: Path, candles: Path, args: list[str], named: str
) -> None:
    result = _replay(config, candles, *args)
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "held"),
    [
        (
            ["--from", "2018-01-01T00:00:00Z"],
            "events from 2017-01-01T00:00:00Z to 2017-01-03T23:59:00Z",
        ),
        (
            ["--to", "2016-01-01T00:00:00Z"],
            "nothing before its first event at 2017-01-01T00:00:00Z",
        ),
    ],
)
def test_an_empty_range_is_a_clear_error(
    config: Path, candles: Path, args: list[str], held: str
) -> None:
    result = _replay(config, candles, "--json", *args)
    assert result.exit_code == 2
    assert "--from/--to: no events of" in result.stderr
    assert held in result.stderr
    assert result.stdout == ""


def test_an_empty_range_inside_a_gap(config: Path, tmp_path: Path) -> None:
    rows = [f"{ms_to_iso(T0 + m * MINUTE)},1,1,1,1,1" for m in (0, 1, 2, 100, 101)]
    data = write_lines(tmp_path / "gap.csv", [CANDLE_HEADER, *rows])
    result = _replay(config, data, "--from", "2017-01-01T00:10:00Z", "--to", "2017-01-01T00:20:00Z")
    assert result.exit_code == 2
    assert "a gap there" in result.stderr


class _Page(HTMLParser):
    """What a reader of the report sees: charts, table cells with exact values, resources."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[str] = []
        self.values: dict[str, str] = {}
        self.shapes: dict[str, int] = {}
        self.external: list[str] = []
        self.tables: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg":
            self.svgs.append(a.get("id") or "")
        if tag == "table":
            self.tables.append(a.get("id") or "")
        if tag == "td" and a.get("data-key"):
            self.values[a["data-key"] or ""] = a.get("data-value") or ""
        if tag in ("polyline", "polygon"):
            kind = a.get("class") or ""
            self.shapes[kind] = self.shapes.get(kind, 0) + 1
        if tag in ("script", "link", "img", "iframe") or "src" in a or "href" in a:
            self.external.append(tag)


def test_the_html_report_has_the_charts_and_the_statistics(
    config: Path, candles: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    result = _replay(config, candles, "--json", "--report", str(report))
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)["stats"]
    page = _Page()
    page.feed(report.read_text(encoding="utf-8"))
    assert page.svgs == ["price-chart", "equity-chart", "drawdown-chart"]
    assert page.tables == ["stats", "monthly", "trades"]
    assert page.external == []  # self-contained: nothing loaded from anywhere
    # Every statistic in the table carries the JSON's exact value.
    for key in ("totalReturnPct", "sharpe", "sortino", "maxDrawdownPct", "winRatePct", "fees"):
        expected = "" if key in stats["undefined"] else stats[key]
        assert page.values[key] == expected, key
    assert page.values["trades"] == str(stats["trades"])
    assert page.values["2017-01"] == stats["monthlyReturns"]["2017-01"]
    # Trades on the price chart: fewer fills than MAX_MARKERS, one marker each.
    assert page.shapes["buy"] + page.shapes["sell"] == stats["fills"]
    assert page.shapes["series"] == 2 and page.shapes["series dd"] == 1


def test_report_without_json_prints_the_figures(
    config: Path, candles: Path, tmp_path: Path
) -> None:
    report = tmp_path / "r.html"
    result = _replay(config, candles, "--report", str(report))
    assert result.exit_code == 0, result.stderr
    assert report.stat().st_size > 10_000
    assert "sharpe/sortino" in result.stdout


def test_a_trades_replay_reports_too(tmp_path: Path, bnteth_trades_file: Path) -> None:
    """The market maker on the first 5,000 shared BNT/ETH trades: one mark per trade."""
    data = write_lines(tmp_path / "trades.csv", head_lines(bnteth_trades_file, 5001))
    result = _replay(EXAMPLES_DIR / "replay-bnteth-mm.yaml", data, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    stats = summary["stats"]
    assert summary["events"] == 5000
    assert stats["fills"] == summary["fills"] > 100
    assert stats["finalEquity"] == summary["final_equity"]
    assert stats["fees"] == summary["fees"]
    assert stats["start"] == summary["first_event_time"]


# -- parsing times, and the progress bar -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2017-01-01T00:00:00Z", T0),
        ("2017-01-01t00:00:00z", T0),
        ("2017-01-01T02:00:00+02:00", T0),
        ("2017-01-01T00:00:00.5Z", T0 + 500),
        ("2017-01-01T00:00:00.123456789Z", T0 + 123),
        ("2017-01-02", T0 + DAY),
    ],
)
def test_rfc3339(text: str, ms: int) -> None:
    assert parse_rfc3339(text) == ms


@pytest.mark.parametrize(
    "text", ["2017-01-01 00:00:00Z", "2017-01-01T00:00Z", "2017-02-30T00:00:00Z", "2017", ""]
)
def test_not_rfc3339(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339|not a valid date-time"):
        parse_rfc3339(text)


def test_progress_line() -> None:
    assert render(1000, 2.0, None) == "1,000 events  500/s "
    line = render(500_000, 10.0, 0.5)
    assert line.startswith("[" + "#" * 15 + "-" * 15 + "]  50%  500,000 events  50,000/s")
    assert line.endswith("ETA 0:10 ")
    now = [0]
    fraction = time_fraction(lambda: now[0], None, T0 + 100)
    assert fraction() is None  # no event yet
    now[0] = T0
    assert fraction() == 0.0
    now[0] = T0 + 25
    assert fraction() == 0.25


def test_progress_bar_draws_on_its_stream_and_ends_the_line() -> None:
    stream = io.StringIO()
    bar = ProgressBar(lambda: 10, lambda: 0.5, stream)
    bar._draw()  # what its thread does every quarter second
    bar.stop()
    text = stream.getvalue()
    assert text.startswith("\r[") and " 50%" in text and text.endswith("\n")


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="Linux /proc only")
def test_file_fraction_follows_the_readers_offset(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 1000)
    fraction = file_fraction(data)
    assert fraction() is None  # not open yet
    with data.open("rb", buffering=0) as stream:
        stream.read(250)
        assert fraction() == 0.25
        stream.read(250)
        assert fraction() == 0.5
    assert fraction() == 1.0  # read and closed: done
