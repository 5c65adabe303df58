"""The `hean` command line.

`hean engine ...` lives here. Other packages (the operator) add command groups
through the `hean.commands` entry point group, so the engine never imports
them and an engine-only install simply has fewer commands.

Exit status: 0 success, 1 runtime failure, 2 bad configuration or data
(with the field path or file line named on stderr).
"""

from __future__ import annotations

import gc
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hean_engine import __version__
from hean_engine.app.exits import EXIT_INVALID, EXIT_RUNTIME, fail, user_errors
from hean_engine.model.errors import DataError

# hean_contract.backtest.MAX_WARMUP (not imported: the CLI imports what a command
# needs only when it runs; tests/engine/test_warmup.py holds the two equal).
MAX_WARMUP = 10_000


class _PluginGroup(click.Group):
    """A click group that also lists the command groups other packages register.

    They, and the engine's own `approval` group, are imported only when asked
    for, and only the one asked for: `hean operator run` must not import the
    simulator's and the sandbox's command groups (with ccxt, about 45 MiB of
    an idle operator's memory), nor `hean engine replay` the operator's.
    """

    def _load(self, name: str) -> click.Command | None:
        from importlib.metadata import entry_points

        if name == "approval":
            from hean_engine.app.approval_cli import approval

            return approval
        for ep in entry_points(group="hean.commands", name=name):
            try:
                command = ep.load()
            except ImportError as exc:  # an extra that is not installed
                return _unavailable(ep.name, exc)
            if isinstance(command, click.Command):
                return command
        return None

    def list_commands(self, ctx: click.Context) -> list[str]:
        from importlib.metadata import entry_points

        plugins = {ep.name for ep in entry_points(group="hean.commands")} | {"approval"}
        return sorted(set(super().list_commands(ctx)) | plugins)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or self._load(cmd_name)


def _unavailable(name: str, exc: ImportError) -> click.Command:
    @click.command(name=name, help=f"(unavailable: {exc.name} is not installed)")
    def _missing() -> None:
        fail(f"`hean {name}` needs an extra that is not installed ({exc})", EXIT_RUNTIME)

    return _missing


@click.group(cls=_PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hean")
def main() -> None:
    """HEAN: crypto trading engines run as Kubernetes custom resources."""


# Set by the `hean` executable (not by in-process callers such as tests): a
# finished `engine replay` may then end the process at once.
_exit_when_done = False


def console_main() -> None:
    """The `hean` executable: `main`, then an exit that skips the last garbage collections.

    When the command is done the process ends; gc.freeze() moves every object
    out of the collector's sight, so that interpreter shutdown does not walk
    them all again. `engine replay` goes further and ends the process as soon
    as its summary is written (together about 0.05 s after a million candles).
    """
    global _exit_when_done
    _exit_when_done = True
    try:
        main()
    finally:
        gc.freeze()


@main.group()
def engine() -> None:
    """Run a trading engine: replay recorded data, paper trade, or trade live."""


_config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A TradingEngine manifest, or its spec alone (YAML or JSON).",
)


if TYPE_CHECKING:  # click >= 8.2 types ParamType by its value; older clicks do not
    _IntParam = click.ParamType[int, str]
else:
    _IntParam = click.ParamType


class _Rfc3339(_IntParam):
    """An RFC 3339 date-time (`2017-01-01T00:00:00Z`, any UTC offset) or full-date, as epoch ms."""

    name = "RFC3339"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from hean_engine.app.recording import parse_rfc3339

        try:
            return parse_rfc3339(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@engine.command()
@_config_option
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Candles or trades CSV (optionally .gz).",
)
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")
@click.option(
    "--from",
    "start_ms",
    type=_Rfc3339(),
    help="Replay only events at or after this time (RFC 3339, e.g. 2018-01-01T00:00:00Z).",
)
@click.option(
    "--to",
    "end_ms",
    type=_Rfc3339(),
    help="Replay only events before this time (RFC 3339; the range is [--from, --to)).",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0, max=MAX_WARMUP),
    default=0,
    show_default=True,
    help="With --from: the strategy first sees this many events (candles or trades) from "
    "before --from, and nothing trades on them, as a running engine warms up on 200.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the HTML report (equity, drawdown, trades, statistics) to this file.",
)
def replay(
    config_path: Path,
    data_path: Path,
    as_json: bool,
    start_ms: int | None,
    end_ms: int | None,
    warmup: int,
    report_path: Path | None,
) -> None:
    """Replay recorded market data through the engine as fast as possible.

    With --json the summary carries a `stats` object, and with --report an
    HTML report is written (docs/backtesting.md defines the statistics).
    """
    if _exit_when_done:
        # The `hean` executable: what start-up makes (modules, classes, the
        # spec's validators) lives until the process ends. No collections while
        # it is made, and then out of the collector's sight (gc.freeze below).
        gc.disable()
    from hean_engine.app.config import load_config
    from hean_engine.app.recording import ReplayWindow
    from hean_engine.app.replay import replay as run
    from hean_engine.app.replay import summary_json

    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise click.BadParameter("must be later than --from", param_hint="'--to'")
    if warmup and start_ms is None:
        raise click.BadParameter(
            "only with --from (the events before it are the warm-up)", param_hint="'--warmup'"
        )
    if report_path is not None and not report_path.parent.is_dir():
        raise click.BadParameter(
            f"directory {report_path.parent} does not exist", param_hint="'--report'"
        )
    with user_errors():
        identity, spec = load_config(config_path)
        if not data_path.is_file():
            raise DataError(str(data_path), 0, "no such file")
        hook = None
        if sys.stderr.isatty():
            from hean_engine.app.progress import ProgressHook

            hook = ProgressHook(data_path, start_ms, end_ms)
        if _exit_when_done:
            gc.freeze()
            gc.enable()
        try:
            result = run(
                identity,
                spec,
                data_path,
                on_start=hook,
                window=ReplayWindow(start_ms, end_ms),
                with_report=as_json or report_path is not None,
                warmup=warmup,
                trades=False,  # summary_json writes them from the fills
            )
            if _exit_when_done:  # the result lives until the process ends (see above)
                gc.freeze()
        finally:
            if hook is not None:
                hook.stop()
    summary = result.summary
    if report_path is not None and result.report is not None:
        _write_report(report_path, result.report)
    if as_json:
        click.echo(summary_json(summary, result.fills))
    else:
        click.echo(_human_summary(summary))
    if _exit_when_done:
        # The `hean` executable: the replay is over and its output written; the
        # interpreter's shutdown (freeing every module and object) is skipped.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@engine.command()
@_config_option
@click.option(
    "--from", "start_ms", required=True, type=_Rfc3339(), help="First instant replayed (RFC 3339)."
)
@click.option(
    "--to", "end_ms", required=True, type=_Rfc3339(), help="End of the range (RFC 3339, exclusive)."
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Candles or trades CSV (optionally .gz).",
)
@click.option(
    "--fetch",
    is_flag=True,
    help="Instead of --data: candles of [--from, --to) through ccxt's fetch_ohlcv from the "
    "config's exchange.",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="With --fetch: where fetched candles are kept and looked for.",
)
@click.option(
    "--runs",
    "runs_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A JSON list of strategy parameter overrides, one per run (a sweep).",
)
@click.option(
    "--index",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    envvar="JOB_COMPLETION_INDEX",
    help="Which run of --runs (an Indexed Job's completion index).",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0, max=MAX_WARMUP),
    default=0,
    show_default=True,
    help="The strategy first sees this many events (candles or trades) from before --from "
    "(fetched with the range), and nothing trades on them, as a running engine warms up on 200.",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write INDEX.html (the report) and INDEX.json (the full summary) here.",
)
def backtest(
    config_path: Path,
    start_ms: int,
    end_ms: int,
    data_path: Path | None,
    fetch: bool,
    cache_dir: Path | None,
    runs_path: Path | None,
    index: int,
    warmup: int,
    output_dir: Path | None,
) -> None:
    """One run of a Backtest: replay [--from, --to) and print its statistics as one JSON line.

    The same line is the container's termination message (at most 4 KiB), where
    the operator reads it; docs/backtests.md describes the Backtest resource.
    """
    import tempfile

    from hean_engine.app.backtest import RunOptions, run_backtest
    from hean_engine.app.exits import write_termination_message

    if end_ms <= start_ms:
        raise click.BadParameter("must be later than --from", param_hint="'--to'")
    if (data_path is None) == (not fetch):
        raise click.UsageError("give exactly one of --data and --fetch")
    if cache_dir is not None and not fetch:
        raise click.BadParameter("only with --fetch", param_hint="'--cache-dir'")
    options = RunOptions(
        config=config_path,
        start_ms=start_ms,
        end_ms=end_ms,
        data=data_path,
        runs=runs_path,
        index=index,
        cache_dir=cache_dir,
        output_dir=output_dir,
        warmup=warmup,
    )
    with user_errors(), tempfile.TemporaryDirectory(prefix="hean-backtest-") as scratch:
        summary = run_backtest(options, Path(scratch))
    line = json.dumps(summary, separators=(",", ":"))
    write_termination_message(line)
    click.echo(line)
    if _exit_when_done:  # as `replay`: the run is over, its output written
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@engine.command(name="serve-reports")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The report directory to serve (read only; nothing outside it is served).",
)
@click.option(
    "--host",
    default="0.0.0.0",  # noqa: S104 - the API server's pod proxy must reach it
    show_default=True,
    envvar="HEAN_HOST",
    help="Listen address.",
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--idle-exit",
    type=click.FloatRange(min=1),
    default=900,
    show_default=True,
    help="End after this many seconds without a request.",
)
def serve_reports(directory: Path, host: str, port: int, idle_exit: float) -> None:
    """Serve a Backtest's report directory over HTTP, read-only (a reader pod's command).

    `kubectl hean backtest report` and the console start it in a short-lived pod
    with the output claim mounted read-only, and read the report through the API
    server's pod proxy; docs/backtesting.md says how.
    """
    from hean_engine.app.report_server import serve

    try:
        serve(directory, host, port, idle_exit)
    except OSError as exc:
        fail(f"--port: cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_RUNTIME)


def _write_report(path: Path, report: Any) -> None:
    from hean_engine.report.html import render_report

    try:
        path.write_text(render_report(report), encoding="utf-8")
    except OSError as exc:
        fail(f"--report: cannot write {path}: {exc.strerror or exc}", EXIT_INVALID)


@engine.command()
@_config_option
@click.option(
    "--host",
    default="0.0.0.0",  # noqa: S104 - a pod's server must be reachable from the operator
    show_default=True,
    envvar="HEAN_HOST",
    help="Control/metrics address.",
)
@click.option("--port", default=8080, show_default=True, type=int, help="Control/metrics port.")
@click.option(
    "--control-token-file",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="HEAN_CONTROL_TOKEN_FILE",
    help="File holding the bearer token for POST /control (without it, control is refused).",
)
@click.option(
    "--credentials-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="HEAN_CREDENTIALS_DIR",
    help="Live mode: directory with the files apiKey and secret (a mounted Secret).",
)
@click.option(
    "--approval-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="HEAN_APPROVAL_DIR",
    help="Live mode: directory with approval.yaml and trust/ (a mounted ConfigMap); without "
    "it live trading is refused.",
)
@click.option(
    "--journal-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="HEAN_JOURNAL_DIR",
    help="Live mode: directory for the order intent journal (a volume that survives restarts).",
)
@click.option(
    "--history",
    envvar="HEAN_HISTORY",
    help="Keep orders, fills, positions, equity and events, and serve them (GET /fills, ...): "
    "a directory or SQLite file on the engine's volume, or a postgresql:// URL (give a URL "
    "with a password through HEAN_HISTORY from a Secret, not on the command line).",
)
@click.option(
    "--history-series-days",
    type=click.IntRange(min=1),
    default=90,
    show_default=True,
    envvar="HEAN_HISTORY_SERIES_DAYS",
    help="Days the history keeps equity points, events and position snapshots.",
)
@click.option(
    "--history-books-days",
    type=click.IntRange(min=1),
    envvar="HEAN_HISTORY_BOOKS_DAYS",
    help="Days the history keeps orders and fills (default: for ever).",
)
def run(
    config_path: Path,
    host: str,
    port: int,
    control_token_file: Path | None,
    credentials_dir: Path | None,
    approval_dir: Path | None,
    journal_dir: Path | None,
    history: str | None,
    history_series_days: int,
    history_books_days: int | None,
) -> None:
    """Run the engine (paper, or live through the LiveGate) until SIGTERM."""
    from hean_engine.app.approval_gate import ApprovalGate
    from hean_engine.app.config import load_config
    from hean_engine.app.nodes import RunOptions
    from hean_engine.app.run import run_engine
    from hean_engine.execution.live import DenyAllGate, LiveGate
    from hean_engine.history.store import Retention

    with user_errors():
        identity, spec = load_config(config_path)
        # The only gate the command line can choose: a signed approval, or none.
        gate: LiveGate = ApprovalGate(approval_dir) if approval_dir is not None else DenyAllGate()
        options = RunOptions(
            gate=gate,
            host=host,
            port=port,
            control_token_file=control_token_file,
            credentials_dir=credentials_dir,
            journal_dir=journal_dir,
            history=history or None,
            history_retention=Retention(
                equity_days=history_series_days,
                events_days=history_series_days,
                positions_days=history_series_days,
                orders_days=history_books_days,
                fills_days=history_books_days,
            ),
        )
        run_engine(identity, spec, options)


def _human_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"engine {summary['engine']}: {summary['strategy']} on {summary['symbol']}",
        f"  events          {summary['events']:,} "
        f"({summary['first_event_time']} .. {summary['last_event_time']})",
        f"  orders / fills  {summary['orders']:,} / {summary['fills']:,}",
        f"  rejections      {summary['rejections'] or 'none'}",
        f"  fees            {summary['fees']}",
        f"  equity          {summary['starting_equity']} -> {summary['final_equity']}"
        f" (pnl {summary['pnl']})",
        f"  max drawdown    {summary['max_drawdown']} ({summary['max_drawdown_pct']}%)",
        f"  risk state      {summary['risk_state']} ({summary['risk_state_reason']})",
        f"  wall time       {summary['wall_seconds']:.3f} s "
        f"({summary['events_per_second']:,.0f} events/s)",
    ]
    stats = summary.get("stats")
    if stats is not None:  # rounded for reading; --json and the report have them exact

        def num(key: str, places: int) -> str:
            return "n/a" if key in stats["undefined"] else f"{Decimal(stats[key]):.{places}f}"

        lines += [
            f"  return          {num('totalReturnPct', 2)}% "
            f"(annualised {num('annualReturnPct', 2)}%)",
            f"  sharpe/sortino  {num('sharpe', 3)} / {num('sortino', 3)}",
            f"  trades          {stats['trades']:,} (win rate {num('winRatePct', 2)}%, "
            f"profit factor {num('profitFactor', 3)})",
        ]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    console_main()
