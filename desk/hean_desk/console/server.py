"""The console's HTTP server: pages, live updates and the three actions.

Runs on loopback only, as the kubeconfig's user: it has no login of its own
(like Headlamp's desktop app or k9s), so what it must prevent is another
origin using the user's identity through it:
- every request's Host must be this loopback address and port (a DNS
  rebinding page cannot read the console under its own name);
- a state-changing request must carry this process's random token (it is in
  the pages, which no other origin can read) and an Origin of this console.
Responses forbid framing and cross-origin scripts (Content-Security-Policy).

Read-only (`--read-only`, and always in the chart's in-cluster console, which
acts as its own ServiceAccount rather than as a person): the pages have no
action buttons and the action endpoint refuses every request with a 403 that
says why, before anything reaches the API server; nor does it open a Backtest's
report (that starts a reader pod), and says how to with the user's own
credentials. Behind `kubectl
port-forward` the browser's port is the user's local one, not the server's, so
such a console accepts a loopback Host on any port (a DNS-rebinding page still
cannot use its own name). `GET /healthz` answers whatever the Host (the
kubelet's probes name the pod's IP) and says nothing but "ok".
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from aiohttp import web

from hean_contract.report import EngineReport
from hean_desk.console import views
from hean_desk.console.display import candles_before, last_data_time, parse_time, rfc3339
from hean_desk.console.live import EngineHub
from hean_desk.console.source import ConsoleClient, Refusal, refusal_of

LOG = logging.getLogger("hean_desk.console")
CSRF_HEADER = "X-Hean-Csrf"
FILLS_SHOWN = 200
CHART_POINTS = 500  # candles of equity on an engine's page
FILL_OVERLAP = timedelta(minutes=5)
KEEPALIVE_SECONDS = 15.0
MIN_REFRESH = 0.5  # seconds between two reads of an open engine page's data
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# A Backtest's report is its own page: inline styles and SVG, no script. It is data a
# strategy's code helped write, so it is sandboxed (an origin of its own, no scripts,
# no forms): it can read nothing of the console's, its token included.
REPORT_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
    ),
}


@dataclass
class Console:
    """One console process's state."""

    client: ConsoleClient
    hub: EngineHub
    report_interval: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    approvals_ttl: float = 10.0
    read_only: bool = False
    any_port: bool = False  # behind kubectl port-forward: a loopback Host on any port
    _approvals: tuple[float, list[dict[str, Any]]] | None = None

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A client method in a worker thread (the Kubernetes client blocks)."""
        return await asyncio.to_thread(method, *args, **kwargs)

    async def approvals(self) -> list[dict[str, Any]]:
        """LiveApprovals, read at most every `approvals_ttl` seconds ([] when refused)."""
        now = time.monotonic()
        if self._approvals is None or now - self._approvals[0] > self.approvals_ttl:
            try:
                items = await self.call(self.client.list_approvals)
            except Exception as exc:
                LOG.info("LiveApprovals not readable: %s", exc)
                items = []
            self._approvals = (now, list(items))
        return self._approvals[1]


CONSOLE = web.AppKey("console", Console)


# -- guards ------------------------------------------------------------------------------


def _allowed_hosts(request: web.Request) -> set[str]:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    port = sockname[1] if sockname else None
    return {f"{name}:{port}" for name in LOOPBACK_NAMES}


def _loopback_host(request: web.Request) -> bool:
    """The Host names this console's loopback address (any port when `any_port`)."""
    if request.host in _allowed_hosts(request):
        return True
    if not request.app[CONSOLE].any_port:
        return False
    name, colon, port = request.host.rpartition(":")
    if not colon or "]" in port:  # no port given (or the colon of an IPv6 address)
        name = request.host
    elif not port.isdigit():
        return False
    return name in LOOPBACK_NAMES


@web.middleware
async def host_guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path == "/healthz" and request.method in ("GET", "HEAD"):
        return await handler(request)
    if not _loopback_host(request):
        return web.Response(status=421, text="This console answers on its loopback address only.")
    return await handler(request)


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def _csrf_refusal(request: web.Request, console: Console) -> str | None:
    """Why a state-changing request is refused, or None when it is this console's page."""
    origin = request.headers.get("Origin", "")
    if origin not in {f"http://{host}" for host in _allowed_hosts(request)}:
        return "Refused: the request did not come from this console's page (Origin)."
    token = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(token.encode(), console.csrf.encode()):
        return "Refused: missing or wrong console token (reload the page)."
    return None


async def _security_headers(_: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


# -- pages -------------------------------------------------------------------------------


async def overview_page(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    try:
        engines = await console.call(console.client.list_engines)
    except Exception as exc:
        refusal = refusal_of(exc)
        return _html(
            views.refusal_page("Engines", refusal.message, csrf=console.csrf, kind="overview"),
            refusal.status,
        )
    console.hub.replace_all(engines)
    approvals = views.latest_approvals(await console.approvals())
    now = datetime.now(UTC)
    ordered = sorted(engines, key=views.key_of)
    rows = [overview_row(console, engine, approvals, now) for engine in ordered]
    for engine in ordered:  # sparklines fill in over the live stream
        _background(console.hub.seed_equity(views.key_of(engine)))
    body = views.overview(rows, len(rows))
    return _html(views.page("Engines", body, csrf=console.csrf, kind="overview"))


def overview_row(
    console: Console,
    engine: Mapping[str, Any],
    approvals: Mapping[str, views.ApprovalSummary],
    now: datetime,
) -> str:
    key = views.key_of(engine)
    series = list(console.hub.equity.get(key, ()))
    return views.overview_row(engine, series, approvals.get(key), now)


_TASKS: set[asyncio.Task[Any]] = set()


def _background(coroutine: Awaitable[Any]) -> None:
    async def run() -> None:
        await coroutine

    task = asyncio.ensure_future(run())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def _filters(request: web.Request) -> views.FillFilter:
    side = request.query.get("side", "")
    return views.FillFilter(
        side=side if side in ("buy", "sell") else "",
        since=request.query.get("since", "").strip(),
        until=request.query.get("until", "").strip(),
    )


async def engine_page(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        panels = await engine_panels(console, namespace, name, _filters(request))
    except Exception as exc:
        refusal = refusal_of(exc)
        return _html(
            views.refusal_page(name, refusal.message, csrf=console.csrf, kind="engine"),
            refusal.status,
        )
    body = views.engine_page(namespace, name, panels, _filters(request))
    return _html(
        views.page(name, body, csrf=console.csrf, kind="engine", engine=f"{namespace}/{name}")
    )


async def approvals_page(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    try:
        approvals = await console.call(console.client.list_approvals)
    except Exception as exc:
        refusal = refusal_of(exc)
        return _html(
            views.refusal_page(
                "LiveApprovals", refusal.message, csrf=console.csrf, kind="approvals"
            ),
            refusal.status,
        )
    body = views.approvals_page(approvals, datetime.now(UTC))
    return _html(views.page("LiveApprovals", body, csrf=console.csrf, kind="approvals"))


async def backtests_page(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    try:
        backtests = await console.call(console.client.list_backtests)
    except Exception as exc:
        refusal = refusal_of(exc)
        return _html(
            views.refusal_page("Backtests", refusal.message, csrf=console.csrf, kind="backtests"),
            refusal.status,
        )
    body = views.backtests_page(backtests, datetime.now(UTC))
    return _html(views.page("Backtests", body, csrf=console.csrf, kind="backtests"))


async def backtest_page(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        backtest = await console.call(console.client.get_backtest, namespace, name)
    except Exception as exc:
        refusal = refusal_of(exc)
        return _html(
            views.refusal_page(name, refusal.message, csrf=console.csrf, kind="backtest"),
            refusal.status,
        )
    body = views.backtest_page(backtest, read_only=console.read_only)
    return _html(views.page(name, body, csrf=console.csrf, kind="backtest"))


async def backtest_report_page(request: web.Request) -> web.Response:
    """The Backtest's HTML report (`?run=N`: a sweep's run N), read through a reader pod."""
    console = request.app[CONSOLE]
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if console.read_only:
        message = views.read_only_report_note(namespace, name)
        return _html(views.refusal_page(name, message, csrf=console.csrf, kind="backtest"), 403)
    text = request.query.get("run", "")
    if text and not text.isdigit():
        message = f"run: {text!r} is not a run index (0, 1, ...)"
        return _html(views.refusal_page(name, message, csrf=console.csrf, kind="backtest"), 400)
    run = int(text) if text else None
    try:
        content = await console.call(console.client.backtest_report, namespace, name, run)
    except Exception as exc:
        refusal = refusal_of(exc)
        if getattr(exc, "exit_code", None) == 2:  # no report (yet): say so, as the plugin does
            refusal = Refusal(409, str(exc))
        LOG.info("report of %s/%s not read: %s", namespace, name, refusal.message)
        return _html(
            views.refusal_page(name, refusal.message, csrf=console.csrf, kind="backtest"),
            refusal.status,
        )
    return web.Response(
        body=content, content_type="text/html", charset="utf-8", headers=REPORT_HEADERS
    )


async def _attempt(console: Console, method: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """The call's result, or the Refusal it ended in (one panel's failure is that panel's)."""
    try:
        return await console.call(method, *args, **kw)
    except Exception as exc:
        return refusal_of(exc)


@dataclass
class FillBook:
    """The fills an open engine page has read: a refresh asks only for the newer ones.

    They are asked from a little before the newest one seen (a fill recorded late with
    an earlier exchange time is still found) and told apart by their trade id."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)

    def since(self, filters: views.FillFilter) -> str | None:
        if not self.rows or filters.until:
            return filters.since or None
        newest = parse_time(str(self.rows[-1].get("time") or ""))
        if newest is None:
            return filters.since or None
        return rfc3339(newest - FILL_OVERLAP)

    def merge(self, fresh: list[dict[str, Any]], filters: views.FillFilter) -> list[dict[str, Any]]:
        if filters.until:  # a closed window: read whole each time
            return fresh
        for row in fresh:
            trade = str(row.get("tradeId"))
            if trade not in self.ids:
                self.ids.add(trade)
                self.rows.append(row)
        return self.rows


async def _fills(
    console: Console, namespace: str, name: str, filters: views.FillFilter, book: FillBook
) -> list[dict[str, Any]] | Refusal:
    fresh = await _attempt(
        console,
        console.client.engine_history,
        namespace,
        name,
        "fills",
        since=book.since(filters),
        until=filters.until or None,
    )
    return fresh if isinstance(fresh, Refusal) else book.merge(list(fresh), filters)


async def engine_panels(
    console: Console,
    namespace: str,
    name: str,
    filters: views.FillFilter,
    book: FillBook | None = None,
) -> dict[str, str]:
    """Every panel of the engine page. Raises when the engine itself cannot be read.

    `book`: the fills read before for this page (a live stream keeps one)."""
    client = console.client
    engine = await console.call(client.get_engine, namespace, name)
    # the chart's points, and the whole market day for the daily loss
    equity_since = candles_before(engine, CHART_POINTS, from_day_start=True)
    report, fills, equity, events, logs = await asyncio.gather(
        _attempt(console, client.engine_report, namespace, name),
        _fills(console, namespace, name, filters, book or FillBook()),
        _attempt(console, client.engine_history, namespace, name, "equity", since=equity_since),
        _attempt(console, client.events, namespace, name),
        _attempt(console, client.logs, namespace, name),
    )
    approvals = [
        a
        for a in await console.approvals()
        if (a.get("metadata") or {}).get("namespace") == namespace
        and ((a.get("spec") or {}).get("engineRef") or {}).get("name") == name
    ]
    the_report = report if isinstance(report, EngineReport) else None
    points = equity if isinstance(equity, list) else []
    spec = engine.get("spec") or {}
    mode = str((engine.get("status") or {}).get("mode") or spec.get("mode") or "")
    now = datetime.now(UTC)
    # the engine's day is its market's (a replayed market's clock is not this machine's)
    today = (last_data_time(engine) or now).strftime("%Y-%m-%dT00:00:00")
    risk = spec.get("risk") or {}

    def or_refusal(value: Any, render: Callable[[Any], str]) -> str:
        return views.error_note(value.message) if isinstance(value, Refusal) else render(value)

    report_note = (
        views.error_note(f"The engine's report could not be read: {report.message}")
        if isinstance(report, Refusal)
        else ""
    )
    return {
        "summary": report_note + views.summary_panel(engine, the_report),
        "actions": (
            views.read_only_panel(namespace, name)
            if console.read_only
            else views.actions_panel(namespace, name)
        ),
        "chart": or_refusal(equity, views.chart_panel),
        "positions": views.positions_panel(the_report, None),
        "orders": views.orders_panel(the_report),
        "fills": or_refusal(fills, lambda f: views.fills_panel(f, filters, FILLS_SHOWN)),
        "risk": views.risk_panel(risk, views.risk_usages(risk, the_report, points, today)),
        "reconcile": views.reconcile_panel(engine, the_report),
        "approval": views.approval_panel(mode, the_report, approvals, now),
        "events": or_refusal(events, views.events_panel),
        "logs": or_refusal(logs, views.logs_panel),
    }


# -- live updates ------------------------------------------------------------------------


async def _send(response: web.StreamResponse, event: str, data: Any) -> None:
    await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())


async def events_stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: overview rows as the watch changes engines; for an engine
    page, its panels on each change of the engine and every `report_interval`."""
    console = request.app[CONSOLE]
    engine = request.query.get("engine", "")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    queue = console.hub.subscribe()
    try:
        await response.write(b"retry: 2000\n\n")
        await _send(response, "hello", {"engine": engine})
        if engine and "/" in engine:
            namespace, name = engine.split("/", 1)
            await _engine_stream(response, console, queue, namespace, name, _filters(request))
        else:
            await _overview_stream(response, console, queue)
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the tab closed, or the server is stopping
    finally:
        console.hub.unsubscribe(queue)
    return response


async def _next_key(queue: asyncio.Queue[str | None], seconds: float) -> str | bool | None:
    """The next changed engine key, None to stop, or False when `seconds` passed first."""
    try:
        return await asyncio.wait_for(queue.get(), seconds)
    except TimeoutError:
        return False


async def _overview_stream(
    response: web.StreamResponse, console: Console, queue: asyncio.Queue[str | None]
) -> None:
    while True:
        key = await _next_key(queue, KEEPALIVE_SECONDS)
        if key is None:
            return
        if key is False:
            await response.write(b": keepalive\n\n")
            continue
        changed = {str(key)}
        while not queue.empty():  # a burst of events: one message
            more = queue.get_nowait()
            if more is None:
                return
            changed.add(more)
        approvals = views.latest_approvals(await console.approvals())
        now = datetime.now(UTC)
        upsert = {
            k: overview_row(console, console.hub.engines[k], approvals, now)
            for k in sorted(changed)
            if k in console.hub.engines
        }
        remove = sorted(k for k in changed if k not in console.hub.engines)
        await _send(response, "rows", {"upsert": upsert, "remove": remove})


async def _engine_stream(
    response: web.StreamResponse,
    console: Console,
    queue: asyncio.Queue[str | None],
    namespace: str,
    name: str,
    filters: views.FillFilter,
) -> None:
    key = f"{namespace}/{name}"
    sent: dict[str, str] = {}
    book = FillBook()
    loop = asyncio.get_running_loop()
    due = last = loop.time()
    while True:
        wait = due - loop.time()
        if wait > 0:
            got = await _next_key(queue, wait)
            if got is None:
                return
            if got == key:
                # the engine changed: refresh soon, but at most every MIN_REFRESH seconds
                # (the operator writes its status about once a second)
                due = max(loop.time(), last + MIN_REFRESH)
            continue
        last = loop.time()
        try:
            panels = await engine_panels(console, namespace, name, filters, book)
        except Exception as exc:
            await _send(response, "refused", {"message": refusal_of(exc).message})
            panels = {}
        changed = {k: v for k, v in panels.items() if sent.get(k) != v}
        if changed:
            await _send(response, "panels", changed)
            sent.update(changed)
        else:
            await response.write(b": unchanged\n\n")
        due = loop.time() + console.report_interval


# -- actions -----------------------------------------------------------------------------


READ_ONLY_REFUSAL = (
    "Refused: this console is read-only (it acts as its own ServiceAccount, which may not "
    "change TradingEngines). Pause, resume or halt with your own credentials: kubectl hean "
    "pause|resume|halt ENGINE -n NAMESPACE."
)


async def action(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    if console.read_only:
        return web.json_response({"ok": False, "message": READ_ONLY_REFUSAL}, status=403)
    reason = _csrf_refusal(request, console)
    if reason is not None:
        return web.json_response({"ok": False, "message": reason}, status=403)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    verb = request.match_info["action"]
    if verb not in views.ACTIONS:
        return web.json_response({"ok": False, "message": f"unknown action {verb}"}, status=404)
    patch, _ = views.ACTIONS[verb]
    try:
        await console.call(console.client.patch_spec, namespace, name, dict(patch))
    except Exception as exc:
        refusal = refusal_of(exc)
        LOG.info("%s of %s/%s refused: %s", verb, namespace, name, refusal.message)
        return web.json_response({"ok": False, "message": refusal.message}, status=refusal.status)
    LOG.info("%s of %s/%s: spec patched %s", verb, namespace, name, patch)
    return web.json_response(
        {"ok": True, "message": f"{verb}: {namespace}/{name} spec patched ({json.dumps(patch)})."}
    )


# -- the application ---------------------------------------------------------------------


def make_app(
    client: ConsoleClient,
    *,
    report_interval: float = 2.0,
    read_only: bool = False,
    any_port: bool = False,
) -> web.Application:
    """The console as an aiohttp application (the watch starts with it).

    `read_only`: no actions (see the module docstring); `any_port`: reached through
    kubectl port-forward, so a loopback Host on any port is this console."""
    console = Console(
        client=client,
        hub=EngineHub(client),
        report_interval=report_interval,
        read_only=read_only,
        any_port=any_port,
    )
    app = web.Application(middlewares=[host_guard])
    app[CONSOLE] = console
    static = resources.files("hean_desk.console") / "static"
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", overview_page)
    app.router.add_get("/engines/{namespace}/{name}", engine_page)
    app.router.add_get("/approvals", approvals_page)
    app.router.add_get("/backtests", backtests_page)
    app.router.add_get("/backtests/{namespace}/{name}", backtest_page)
    app.router.add_get("/backtests/{namespace}/{name}/report", backtest_report_page)
    app.router.add_get("/events", events_stream)
    app.router.add_post("/api/engines/{namespace}/{name}/{action}", action)
    app.router.add_static("/static", str(static), show_index=False, follow_symlinks=False)
    app.on_response_prepare.append(_security_headers)

    async def start(_: web.Application) -> None:
        console.hub.start(asyncio.get_running_loop())

    async def shutdown(_: web.Application) -> None:
        console.hub.close_streams()
        console.hub.stop()
        await console.call(console.client.close_report_readers)

    app.on_startup.append(start)
    app.on_shutdown.append(shutdown)
    return app


async def run(
    client: ConsoleClient,
    *,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    stop: asyncio.Event | None = None,
    report_interval: float = 2.0,
    read_only: bool = False,
    any_port: bool = False,
) -> None:
    """Serve until `stop` is set (or the task is cancelled)."""
    app = make_app(client, report_interval=report_interval, read_only=read_only, any_port=any_port)
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        on_ready(f"http://{host}:{bound}/")
        with contextlib.suppress(asyncio.CancelledError):
            await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
