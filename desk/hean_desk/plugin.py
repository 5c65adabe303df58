"""`kubectl hean`: the trading desk on the command line (a kubectl plugin, `kubectl-hean`).

kubectl runs `kubectl-hean` from PATH for `kubectl hean ...`; everything goes
through the API server with the user's kubeconfig (see hean_desk.client).

Exit status: 0 done; 1 the request failed (an engine that does not exist, a
refusal by RBAC or by the engine, an unreachable cluster: the input was
well-formed, as with kubectl's own NotFound); 2 bad input (an option or an
argument, named on stderr), a declined confirmation, a live engine given to
`test-order`, or a missing dependency. Never a traceback.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

import click

from hean_contract.report import EngineReport
from hean_desk import render
from hean_desk.errors import EXIT_USAGE, DeskError
from hean_desk.report_reader import IDLE_SECONDS, READY_SECONDS, ReportFile
from hean_desk.views import ApprovalView, BacktestView, EngineView, KubeEvent

LAST_FILLS = 5
LAST_FILLS_WINDOW = timedelta(days=1)


class Desk(Protocol):
    """What the commands use of DeskClient (the unit tests give a fake one)."""

    default_namespace: str

    def list_engines(self, namespace: str | None) -> list[EngineView]: ...
    def get_engine(self, namespace: str, name: str) -> EngineView: ...
    def engine_report(self, namespace: str, name: str) -> EngineReport: ...
    def engine_history(
        self,
        namespace: str,
        name: str,
        what: str,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...
    def patch_spec(self, namespace: str, name: str, patch: dict[str, Any]) -> EngineView: ...
    def events(self, namespace: str, name: str) -> list[KubeEvent]: ...
    def logs(self, namespace: str, name: str, tail: int | None) -> str: ...
    def list_approvals(self, namespace: str | None) -> list[ApprovalView]: ...
    def create_approval(self, manifest: dict[str, Any]) -> ApprovalView: ...
    def approval_verdict(
        self, namespace: str, name: str, timeout: float
    ) -> ApprovalView | None: ...
    def test_order(self, namespace: str, name: str, side: str, quantity: str) -> dict[str, Any]: ...
    def list_backtests(self, namespace: str | None) -> list[BacktestView]: ...
    def get_backtest(self, namespace: str, name: str) -> BacktestView: ...
    def backtest_report(
        self, namespace: str, name: str, run: int | None, timeout: float
    ) -> ReportFile: ...


def _default_factory(kubeconfig: str | None, context: str | None) -> Desk:
    try:
        module = importlib.import_module("hean_desk.client")
    except ImportError as exc:
        raise DeskError(
            f"kubectl hean needs the Kubernetes client ({exc.name} is missing): "
            "pip install 'hean[operator]'",
            EXIT_USAGE,
        ) from None
    desk: Desk = module.DeskClient(kubeconfig, context)
    return desk


# Replaced by tests with a function that returns a fake Desk.
DeskFactory = Callable[[str | None, str | None], Desk]
desk_factory: DeskFactory = _default_factory


@dataclass
class Settings:
    kubeconfig: str | None
    context: str | None
    namespace: str | None
    all_namespaces: bool
    output: str
    _desk: Desk | None = None

    @property
    def desk(self) -> Desk:
        if self._desk is None:
            self._desk = desk_factory(self.kubeconfig, self.context)
        return self._desk

    @property
    def ns(self) -> str:
        """The namespace: -n, else the kubeconfig context's, else default."""
        return self.namespace or self.desk.default_namespace


@contextmanager
def _user_errors() -> Iterator[None]:
    """DeskErrors as `error: ...` on stderr with their exit status."""
    try:
        yield
    except DeskError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)


def _common(function: Callable[..., Any]) -> Callable[..., Any]:
    """-n/-A/-o/--kubeconfig/--context on every subcommand, as kubectl takes them anywhere."""
    options = [
        click.option("-n", "--namespace", help="The engine's namespace (default: the context's)."),
        click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace you may list."),
        click.option(
            "-o",
            "--output",
            type=click.Choice(render.OUTPUTS),
            help="table (default), json or yaml.",
        ),
        click.option("--kubeconfig", help="The kubeconfig file (default: $KUBECONFIG, ~/.kube)."),
        click.option("--context", help="The kubeconfig context (default: the current one)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _settings(ctx: click.Context, /, **given: Any) -> Settings:
    parent: Settings = ctx.obj
    output = given.get("output") or parent.output
    return Settings(
        kubeconfig=given.get("kubeconfig") or parent.kubeconfig,
        context=given.get("context") or parent.context,
        namespace=given.get("namespace") or parent.namespace,
        all_namespaces=bool(given.get("all_namespaces")) or parent.all_namespaces,
        output=output,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_common
@click.pass_context
def cli(ctx: click.Context, /, **given: Any) -> None:
    """HEAN's trading desk: status, trades, PnL and actions on TradingEngines.

    Uses your kubeconfig (identity and RBAC): no new credentials. Engines are
    reached through the API server's pod proxy.
    """
    ctx.obj = Settings(
        kubeconfig=given.get("kubeconfig"),
        context=given.get("context"),
        namespace=given.get("namespace"),
        all_namespaces=bool(given.get("all_namespaces")),
        output=given.get("output") or "table",
    )


def _emit(settings: Settings, document: Any, text: Callable[[], str]) -> None:
    if settings.output == "table":
        click.echo(text(), nl=False)
    else:
        click.echo(render.dump(document, settings.output), nl=False)


# -- status --------------------------------------------------------------------------


@cli.command()
@click.argument("engine", required=False)
@_common
@click.pass_context
def status(ctx: click.Context, /, engine: str | None, **given: Any) -> None:
    """All engines at a glance, or one engine's full report (ENGINE)."""
    settings = _settings(ctx, **given)
    with _user_errors():
        if engine is None:
            _status_all(settings)
        else:
            _no_all_namespaces(settings, "status ENGINE")
            _status_one(settings, engine)


def _no_all_namespaces(settings: Settings, command: str) -> None:
    if settings.all_namespaces:
        raise DeskError(f"-A: not with `{command}` (name the namespace with -n)", EXIT_USAGE)


def _status_all(settings: Settings) -> None:
    desk = settings.desk
    namespace = None if settings.all_namespaces else settings.ns
    views = desk.list_engines(namespace)
    try:
        approvals = desk.list_approvals(namespace)
    except DeskError:
        approvals = []  # not allowed to list them: the column stays empty
    rows = [render.engine_row(v, approvals) for v in views]
    columns: tuple[tuple[str, str], ...] = render.ENGINE_COLUMNS
    if settings.all_namespaces:
        columns = (("namespace", "NAMESPACE"), *columns)

    def text() -> str:
        if not rows:
            where = "any namespace" if namespace is None else f"namespace {namespace}"
            return f"No TradingEngines found in {where}.\n"
        return render.table(rows, columns)

    _emit(settings, rows, text)


def _status_one(settings: Settings, engine: str) -> None:
    desk, ns = settings.desk, settings.ns
    view = desk.get_engine(ns, engine)
    report: EngineReport | None = None
    problems: dict[str, str] = {}
    fills: list[dict[str, Any]] = []
    try:
        report = desk.engine_report(ns, engine)
    except DeskError as exc:
        problems["report"] = exc.message
    if report is not None:
        # The history API pages oldest first: the last day's fills hold the latest ones.
        since = (datetime.now(UTC) - LAST_FILLS_WINDOW).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            fills = desk.engine_history(ns, engine, "fills", since=since)[-LAST_FILLS:]
        except DeskError as exc:
            problems["history"] = exc.message
    try:
        approvals = desk.list_approvals(ns)
    except DeskError:
        approvals = []
    document = render.status_document(
        view, report, fills, approvals, problems.get("report"), problems.get("history")
    )
    _emit(settings, document, lambda: render.status_text(document))


# -- history -------------------------------------------------------------------------


def _history_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--since", help="From this time on: RFC 3339 (2026-01-02T03:04:05Z) or a duration (1h)."
    )(function)
    function = click.option("--until", help="Before this time (RFC 3339).")(function)
    return click.option(
        "--limit", type=click.IntRange(min=1), help="At most this many rows (the oldest)."
    )(function)


def _since(value: str | None, now: datetime | None = None) -> str | None:
    """--since as the engine takes it: RFC 3339 kept, a duration (30m, 2h, 7d) made a time."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(value) > 1 and value[-1] in units and value[:-1].isdigit():
        moment = (now or datetime.now(UTC)) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return _rfc3339(value, "--since")


def _rfc3339(value: str, flag: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise DeskError(
            f"{flag}: {value!r} is not an RFC 3339 time with a zone (2026-01-02T03:04:05Z)"
            + (" or a duration (30m, 2h, 7d)" if flag == "--since" else ""),
            EXIT_USAGE,
        )
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _history(
    settings: Settings, engine: str, what: str, since: str | None, until: str | None, limit: Any
) -> list[dict[str, Any]]:
    _no_all_namespaces(settings, what)
    start = _since(since)
    end = _rfc3339(until, "--until") if until is not None else None
    desk, ns = settings.desk, settings.ns
    desk.get_engine(ns, engine)  # a clear "no such engine" before any proxy error
    return desk.engine_history(ns, engine, what, since=start, until=end, limit=limit)


@dataclass(frozen=True)
class HistoryView:
    """One history subcommand: the engine's route it reads and how its table looks.

    Every view takes the same arguments and options (ENGINE, --since, --until,
    --limit and the common ones) and prints the rows as read (-o json|yaml) or
    `text(rows)` (the table); `open_orders` adds `--open`, the orders working now
    from the engine's report instead of the history."""

    command: str
    route: str
    doc: str
    text: Callable[[list[dict[str, Any]]], str]
    open_orders: bool = False


def _positions_text(rows: list[dict[str, Any]]) -> str:
    """The latest snapshot's balances (the history is in -o json|yaml)."""
    if not rows:
        return "No position snapshots recorded yet.\n"
    latest = rows[-1]
    head = f"Position {latest.get('position')} at {latest.get('time')}\n"
    return head + render.table(
        render.positions_rows(latest), (("currency", "CURRENCY"), ("balance", "BALANCE"))
    )


HISTORY_VIEWS = (
    HistoryView(
        "trades",
        "fills",
        "The engine's fills, oldest first (exact prices, quantities and fees).",
        lambda rows: render.table(rows, render.FILL_COLUMNS),
    ),
    HistoryView(
        "orders",
        "orders",
        "The engine's orders with every state change, oldest first (--open: working now).",
        lambda rows: render.table(rows, render.ORDER_HISTORY_COLUMNS),
        open_orders=True,
    ),
    HistoryView(
        "positions",
        "positions",
        "The engine's balances now (the table) and their snapshots over time (-o json|yaml).",
        _positions_text,
    ),
    HistoryView("pnl", "equity", "The equity and PnL series, with a sparkline.", render.pnl_text),
)


def _open_option(view: HistoryView) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if not view.open_orders:
        return lambda function: function
    return click.option("--open", "only_open", is_flag=True, help="Only the orders working now.")


def _open_orders(settings: Settings, engine: str) -> None:
    """The orders working now, from the engine's report (`orders --open`)."""
    _no_all_namespaces(settings, "orders")
    report = settings.desk.engine_report(settings.ns, engine)
    working = [o.model_dump(by_alias=True) for o in report.open_orders]
    _emit(settings, working, lambda: render.table(working, render.ORDER_COLUMNS))


def _history_command(view: HistoryView) -> click.Command:
    @click.argument("engine")
    @_history_options
    @_open_option(view)
    @_common
    @click.pass_context
    def command(
        ctx: click.Context,
        /,
        engine: str,
        since: str | None,
        until: str | None,
        limit: Any,
        only_open: bool = False,
        **given: Any,
    ) -> None:
        settings = _settings(ctx, **given)
        with _user_errors():
            if only_open:
                _open_orders(settings, engine)
                return
            rows = _history(settings, engine, view.route, since, until, limit)
            _emit(settings, rows, lambda: view.text(rows))

    command.__doc__ = view.doc
    return click.command(name=view.command)(command)


for _view in HISTORY_VIEWS:
    cli.add_command(_history_command(_view))


# -- backtests -----------------------------------------------------------------------


@cli.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("words", nargs=-1, metavar="[NAME | report NAME]")
@click.option(
    "--run",
    type=click.IntRange(min=0),
    help="report: this run of a sweep (its index; default: the best run).",
)
@click.option(
    "--save",
    "save_path",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    help="report: write the HTML here (default: NAME.html, or NAME-run-N.html; '-': stdout).",
)
@click.option("--open", "open_browser", is_flag=True, help="report: then open it in your browser.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=READY_SECONDS,
    show_default=True,
    help="report: seconds to wait for the reader pod to be Ready.",
)
@_common
@click.pass_context
def backtest(
    ctx: click.Context,
    /,
    words: tuple[str, ...],
    run: int | None,
    save_path: Path | None,
    open_browser: bool,
    timeout: float,
    **given: Any,
) -> None:
    """The Backtests; NAME: one's summary, a sweep's ranking and where its report is;
    `report NAME`: fetch its HTML report (a short-lived reader pod serves it from the
    output volume, through the API server, with your RBAC; see docs/backtesting.md)."""
    settings = _settings(ctx, **given)
    with _user_errors():
        report_options = run is not None or save_path is not None or open_browser
        if len(words) == 2 and words[0] == "report":
            _backtest_report(settings, words[1], run, save_path, open_browser, timeout)
            return
        if len(words) > 1:
            raise DeskError(
                f"backtest: expected NAME or `report NAME`, got {' '.join(words)!r}", EXIT_USAGE
            )
        if report_options:
            raise DeskError(
                "--run, --save and --open go with `kubectl hean backtest report NAME`", EXIT_USAGE
            )
        if words:
            _backtest_one(settings, words[0])
        else:
            _backtest_list(settings)


def _backtest_one(settings: Settings, name: str) -> None:
    _no_all_namespaces(settings, "backtest NAME")
    _object_name(name, "NAME")
    document = render.backtest_document(settings.desk.get_backtest(settings.ns, name))
    _emit(settings, document, lambda: render.backtest_text(document))


def _backtest_list(settings: Settings) -> None:
    namespace = None if settings.all_namespaces else settings.ns
    rows = [render.backtest_row(v) for v in settings.desk.list_backtests(namespace)]
    columns: tuple[tuple[str, str], ...] = render.BACKTEST_COLUMNS
    if settings.all_namespaces:
        columns = (("namespace", "NAMESPACE"), *columns)

    def text() -> str:
        if not rows:
            where = "any namespace" if namespace is None else f"namespace {namespace}"
            return f"No Backtests found in {where}.\n"
        return render.table(rows, columns)

    _emit(settings, rows, text)


def _backtest_report(
    settings: Settings,
    name: str,
    run: int | None,
    save_path: Path | None,
    open_browser: bool,
    timeout: float,
) -> None:
    _no_all_namespaces(settings, "backtest report NAME")
    _object_name(name, "NAME")
    to_stdout = save_path is not None and str(save_path) == "-"
    if to_stdout and open_browser:
        raise DeskError("--open: not with --save - (there is no file to open)", EXIT_USAGE)
    ns = settings.ns
    found = settings.desk.backtest_report(ns, name, run, timeout)
    if found.cleanup is not None:
        click.echo(
            f"warning: the reader pod {ns}/{found.reader} is still there ({found.cleanup}); "
            f"it ends by itself within {IDLE_SECONDS // 60} minutes, or: kubectl delete pod "
            f"{found.reader} -n {ns}",
            err=True,
        )
    if to_stdout:
        sys.stdout.buffer.write(found.content)
        sys.stdout.buffer.flush()
        return
    path = save_path or Path(f"{name}.html" if run is None else f"{name}-run-{run}.html")
    try:
        path.write_bytes(found.content)
    except OSError as exc:
        raise DeskError(f"--save: cannot write {path}: {exc.strerror or exc}", EXIT_USAGE) from None
    stats = found.backtest.stats
    document = {
        "namespace": ns,
        "name": name,
        "run": run,
        "file": str(path),
        "bytes": len(found.content),
        "report": {"claimName": found.target.claim, "path": found.target.path},
        "stats": stats.model_dump(mode="json", by_alias=True, exclude_none=True) if stats else {},
    }
    which = f" (run {run})" if run is not None else ""
    _emit(
        settings,
        document,
        lambda: (
            f"report of backtest.hean.io/{name}{which} saved to {path} "
            f"({len(found.content):,} bytes, from {found.target.path} on claim "
            f"{found.target.claim})\n"
        ),
    )
    if open_browser:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            click.echo(f"warning: no browser to open; the report is {path}", err=True)


_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _object_name(text: str, what: str) -> None:
    """A Kubernetes object's name (RFC 1123 subdomain), or a usage error naming `what`."""
    if not _NAME.match(text):
        raise DeskError(
            f"{what}: {text!r} is not a Kubernetes object name (lower-case letters, digits, "
            "'-' and '.', at most 253, starting and ending alphanumeric)",
            EXIT_USAGE,
        )


# -- actions -------------------------------------------------------------------------

_ACTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "pause": ({"paused": True}, "stop sending new orders (open orders stay)"),
    "resume": ({"paused": False, "halt": False}, "trade again (lifts a pause and a halt)"),
    "halt": ({"halt": True}, "cancel its open orders and send no more"),
}


def _action(name: str) -> click.Command:
    patch, effect = _ACTIONS[name]

    @click.argument("engine")
    @click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
    @_common
    @click.pass_context
    def command(ctx: click.Context, /, engine: str, yes: bool, **given: Any) -> None:
        settings = _settings(ctx, **given)
        with _user_errors():
            _no_all_namespaces(settings, name)
            desk, ns = settings.desk, settings.ns
            view = desk.get_engine(ns, engine)
            question = (
                f"{name.capitalize()} {view.mode} engine {engine} in namespace {ns}: {effect}?"
            )
            if not yes and not _confirmed(question):
                raise DeskError(f"{name}: not confirmed; nothing changed", EXIT_USAGE)
            updated = desk.patch_spec(ns, engine, patch)
            document = {"name": engine, "namespace": ns, "spec": _spec_flags(updated)}
            _emit(
                settings,
                document,
                lambda: (
                    f"tradingengine.hean.io/{engine} patched ({name}); "
                    f"spec generation {updated.generation}\n"
                ),
            )

    command.__doc__ = f"{name.capitalize()} an engine: {effect} (a spec patch)."
    return click.command(name=name)(command)


def _confirmed(question: str) -> bool:
    """Asks on the terminal; without one (a script) the answer is no: use --yes."""
    if not sys.stdin.isatty():
        click.echo(f"{question} [y/N]: no terminal to ask on; use --yes", err=True)
        return False
    return bool(click.confirm(question, default=False, err=True))


def _spec_flags(view: EngineView) -> dict[str, bool]:
    return {key: bool(view.spec.get(key, False)) for key in ("paused", "halt")}


for _name in _ACTIONS:
    cli.add_command(_action(_name))


@cli.command(name="test-order")
@click.argument("engine")
@click.option("--side", type=click.Choice(["buy", "sell"]), default="buy", show_default=True)
@click.option("--quantity", default="0.001", show_default=True, help="Base currency amount.")
@_common
@click.pass_context
def test_order(ctx: click.Context, /, engine: str, side: str, quantity: str, **given: Any) -> None:
    """One small market order through a PAPER engine (a smoke test). Refused for live ones."""
    settings = _settings(ctx, **given)
    with _user_errors():
        _no_all_namespaces(settings, "test-order")
        _positive_decimal(quantity, "--quantity")
        desk, ns = settings.desk, settings.ns
        view = desk.get_engine(ns, engine)
        if view.is_live:
            raise DeskError(
                f"test-order: {ns}/{engine} is a live engine: a test order would be a real "
                "order with real money; refused (paper engines only)",
                EXIT_USAGE,
            )
        answer = desk.test_order(ns, engine, side, quantity)
        order = answer.get("order") or {}
        _emit(
            settings,
            answer,
            lambda: (
                f"test order {order.get('id')} submitted to {ns}/{engine}: "
                f"{order.get('side')} {order.get('quantity')} at market "
                f"(kubectl hean trades {engine} -n {ns} shows its fill)\n"
            ),
        )


def _positive_decimal(text: str, flag: str) -> None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal(0)
    if not value.is_finite() or value <= 0 or "e" in text.lower():
        raise DeskError(
            f"{flag}: expected a positive decimal such as 0.001, got {text!r}", EXIT_USAGE
        )


@cli.command()
@click.argument("engine")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your private key file (KEY_ID.key from `hean approval keygen`).",
)
@click.option("--ttl", default="8h", show_default=True, help="How long the approval is valid.")
@click.option(
    "--generation",
    type=click.IntRange(min=1),
    help="The spec generation you reviewed (`kubectl hean status` shows it): refused if the "
    "spec has changed since.",
)
@click.option(
    "--wait",
    "wait_for",
    default="60s",
    show_default=True,
    help="How long to wait for the operator's verdict (0: do not wait).",
)
@click.option("--dry-run", is_flag=True, help="Print the signed LiveApproval, do not apply it.")
@_common
@click.pass_context
def approve(
    ctx: click.Context,
    /,
    engine: str,
    key_path: Path,
    ttl: str,
    generation: int | None,
    wait_for: str,
    dry_run: bool,
    **given: Any,
) -> None:
    """Sign a LiveApproval for the engine's current spec with your key, apply it, and wait
    for the operator's verdict (refused: exit 2, with its reason)."""
    settings = _settings(ctx, **given)
    with _user_errors():
        _no_all_namespaces(settings, "approve")
        from hean_desk import approve as signing  # the engine's signing code, loaded when used

        timeout = signing.wait_seconds(wait_for)
        desk, ns = settings.desk, settings.ns
        view = desk.get_engine(ns, engine)
        if generation is not None and view.generation != generation:
            raise DeskError(
                f"approve: the spec of {ns}/{engine} is at generation {view.generation}, you "
                f"reviewed generation {generation}: it changed since; review it again "
                f"(kubectl hean status {engine} -n {ns}) and approve that generation",
                EXIT_USAGE,
            )
        manifest = signing.signed_manifest(view, key_path, ttl)
        if dry_run:
            click.echo(
                render.dump(manifest, "yaml" if settings.output == "table" else settings.output),
                nl=False,
            )
            return
        created = desk.create_approval(manifest)
        verdict = desk.approval_verdict(ns, created.name, timeout) if timeout else None
        if verdict is not None and verdict.valid is False:
            more = (
                "; the trust policy wants more signers: they co-sign this approval with "
                "`hean approval sign --approval` (docs/security.md)"
                if verdict.reason == "not_enough_signatures"
                else ""
            )
            raise DeskError(
                f"approve: the operator refused liveapproval {created.name} for {ns}/{engine}: "
                f"{verdict.reason}: {verdict.message}{more} (it stays, refused, for the "
                f"record: kubectl delete liveapproval {created.name} -n {ns})",
                EXIT_USAGE,
            )
        if timeout and verdict is None:
            raise DeskError(
                f"approve: liveapproval {created.name} was created for {ns}/{engine}, but the "
                f"operator gave no verdict within {wait_for} (is it running? kubectl get "
                f"liveapproval {created.name} -n {ns})"
            )
        shown = verdict or created
        outcome = "valid" if verdict is not None else "not waited for"
        document = dict(manifest)
        if verdict is not None:  # the manifest as applied, with the operator's verdict
            document["status"] = {
                "valid": verdict.valid,
                "reason": verdict.reason,
                "message": verdict.message,
            }
        _emit(
            settings,
            document,
            lambda: (
                f"liveapproval.hean.io/{shown.name} created for {ns}/{engine}, signed by "
                f"{', '.join(shown.signers)}, expires {shown.expires_at}; the operator's "
                f"verdict: {outcome}\n"
            ),
        )


@cli.command()
@click.argument("engine")
@click.option(
    "--tail",
    type=click.IntRange(min=-1),
    default=100,
    show_default=True,
    help="Lines from the end (-1: all).",
)
@_common
@click.pass_context
def logs(ctx: click.Context, /, engine: str, tail: int, **given: Any) -> None:
    """The engine pod's log (JSON lines: orders and fills among them)."""
    settings = _settings(ctx, **given)
    with _user_errors():
        _no_all_namespaces(settings, "logs")
        desk, ns = settings.desk, settings.ns
        desk.get_engine(ns, engine)
        click.echo(desk.logs(ns, engine, None if tail < 0 else tail), nl=False)


@cli.command()
@click.argument("engine")
@_common
@click.pass_context
def events(ctx: click.Context, /, engine: str, **given: Any) -> None:
    """The Kubernetes Events about the engine, oldest first."""
    settings = _settings(ctx, **given)
    with _user_errors():
        _no_all_namespaces(settings, "events")
        desk, ns = settings.desk, settings.ns
        desk.get_engine(ns, engine)
        rows = [vars(e) for e in desk.events(ns, engine)]
        columns = (
            ("time", "TIME"),
            ("type", "TYPE"),
            ("reason", "REASON"),
            ("count", "COUNT"),
            ("message", "MESSAGE"),
        )
        _emit(settings, rows, lambda: render.table(rows, columns))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def console(ctx: click.Context) -> None:
    """The web console on 127.0.0.1 (with your kubeconfig): see docs/desk.md."""
    with _user_errors():
        try:
            module = importlib.import_module("hean_desk.console")
        except ImportError:
            raise DeskError(
                "console: the web console (hean_desk.console) is not part of this installation yet",
                EXIT_USAGE,
            ) from None
        command: click.Command = module.console
        command.main(args=ctx.args, prog_name="kubectl hean console", obj=ctx.obj)


def main() -> None:
    """The `kubectl-hean` entry point."""
    try:
        importlib.import_module("kubernetes")
    except ImportError:
        click.echo(
            "error: kubectl hean needs the Kubernetes client: pip install 'hean[operator]'",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    cli.main(prog_name="kubectl hean")


if __name__ == "__main__":
    main()
