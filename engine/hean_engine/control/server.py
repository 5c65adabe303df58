"""The engine's HTTP server (aiohttp): /healthz, /readyz, /metrics, /status, /control.

Only POST /control (and POST /test-order, paper engines only) changes anything,
and only with the bearer token from the token file (mounted from a Secret by
the operator). The token is sent as `Authorization: Bearer TOKEN`, or as
`X-Hean-Token: TOKEN` by clients that reach the engine through the Kubernetes
API server's pod or service proxy (`kubectl hean`): the API server removes the
Authorization header of every request it authenticated, whatever the
credential (client certificate or token), so that header never arrives there.
The token is read from the file on each request, so a rotated Secret takes
effect without a restart, and compared in constant time. A refused attempt is
logged with its reason and the peer, never with what was sent (and at most
once per peer and reason every `THROTTLE_SECONDS`: a flood of refusals is one
line and a count).

Nobody on the network can take the engine down through this server
(`ServerLimits`): at most `max_connections` connections are open at once (the
next is closed at once, so file descriptors are never exhausted), a new
connection that has not sent complete request headers within `header_timeout`
seconds is closed, and so is a kept-alive one that sends no complete next
request within `keepalive_timeout` (longer than clients' own idle timeout,
aiohttp's 15 s, so that a client never reuses a connection the engine is
closing); a body is read within `body_timeout` and is at most `max_body`
bytes. Every bad request is a 4xx with a JSON error (`{"error": ...}`), never
a 500 or a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import ValidationError

from hean_contract.commands import COMMANDS, ControlRequest
from hean_engine.control.metrics import build_registry
from hean_engine.control.runtime import ConnectionStats, Runtime, apply_command
from hean_engine.control.smoke_order import test_order_handler
from hean_engine.control.status import status_document
from hean_engine.model.errors import HeanError
from hean_engine.telemetry.logs import REDACTOR, get_logger

log = get_logger("hean.control")


@dataclass(frozen=True)
class ServerLimits:
    """What one peer (or many) may hold of the control server; see the module docstring."""

    max_connections: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keepalive_timeout: float = 30.0
    max_body: int = 64 * 1024
    max_header_size: int = 8190
    max_headers: int = 64


RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)


@dataclass(frozen=True)
class ControlAuth:
    token_file: Path | None


AUTH = web.AppKey("auth", ControlAuth)
REGISTRY = web.AppKey("registry", CollectorRegistry)
LIMITS = web.AppKey("limits", ServerLimits)
STATS = web.AppKey("stats", ConnectionStats)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(payload, sort_keys=True), status=status, content_type="application/json"
    )


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps({"error": message}),
        status=status,
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id per request (the caller's X-Request-Id if sane), in every log line.

    Also where no request ends in a traceback: an HTTP error of the router (404,
    405, 413) becomes a JSON error, anything unexpected a logged 500 with the
    exception's type only.
    """
    protocol = request.protocol
    if isinstance(protocol, _GuardedHandler):
        protocol.request_started()
    given = request.headers.get("X-Request-Id", "")
    request_id = given if given.isascii() and 0 < len(given) <= 64 and given.isprintable() else ""
    request_id = request_id or uuid.uuid4().hex[:16]
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = _error(exc.reason, exc.status)
        except Exception as exc:
            log.error("request failed", path=request.path, error=type(exc).__name__)
            response = _error("internal error", 500)
        finally:
            if isinstance(protocol, _GuardedHandler):
                protocol.request_finished()
        response.headers["X-Request-Id"] = request_id
        if request.path not in ("/healthz", "/readyz", "/metrics"):
            log.info(
                "http request", method=request.method, path=request.path, status=response.status
            )
        return response


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready, reason = request.app[RUNTIME].readiness()
    return _json({"ready": ready, "reason": reason}, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    body = generate_latest(registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


async def status(request: web.Request) -> web.Response:
    return _json(status_document(request.app[RUNTIME]))


def _read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not token:
        return None
    REDACTOR.register(token)
    return token


# The header that carries the control token through the API server's proxy (see
# the module docstring); it takes precedence over Authorization when both are sent.
TOKEN_HEADER = "X-Hean-Token"  # noqa: S105 - a header name, not a secret


def _presented_token(request: web.Request) -> str | None:
    """The token sent (X-Hean-Token, else a bearer token), "" when malformed, None if none."""
    custom = request.headers.get(TOKEN_HEADER)
    if custom is not None and custom.strip():
        value = custom.strip()
        return value if value.isascii() and value.isprintable() else ""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    # A token is printable ASCII; anything else (a non-ASCII header) is a wrong token.
    value = value.strip()
    return value if value.isascii() and value.isprintable() else ""


def _refused(request: web.Request, reason: str) -> None:
    """A refusal's log line, at most once per peer and reason every THROTTLE_SECONDS."""
    peer = request.remote or "unknown"
    stats = request.app[STATS]
    suppressed = stats.throttle.allow(("control refused", peer, reason))
    if suppressed is not None:
        log.warning("control refused", reason=reason, peer=peer, suppressed=suppressed)


# Deeper JSON than a command ever needs is refused before it is parsed (the
# parser recurses, and a deep enough body would exhaust the stack).
MAX_JSON_DEPTH = 32


def _too_deep(text: bytes) -> bool:
    depth = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


_BODY_HINT = 'body: expected a JSON object such as {"command": "pause"}'


async def _command_body(request: web.Request, limits: ServerLimits) -> tuple[Any, str | None]:
    """(the parsed body, None) or (None, why it is refused)."""
    try:
        async with asyncio.timeout(limits.body_timeout):
            raw = await request.read()
    except TimeoutError:
        return None, "body: not received in time"
    except web.HTTPRequestEntityTooLarge:
        return None, f"body: larger than {limits.max_body} bytes"
    if _too_deep(raw):
        return None, f"body: nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        return json.loads(raw.decode("utf-8")), None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, _BODY_HINT


def _control_request(body: Any) -> tuple[ControlRequest | None, str | None]:
    """(the request, None) or (None, why it is refused, naming the field)."""
    try:
        return ControlRequest.model_validate(body), None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        if first["type"] == "extra_forbidden" and loc:
            # The field's name as sent, cut: it is the caller's text.
            return None, f"{json.dumps(str(loc[0]))[:40]}: not a field (a request has only command)"
    command = body.get("command") if isinstance(body, dict) else None
    shown = json.dumps(command)[:40]
    return None, f"command: must be one of {', '.join(COMMANDS)}, got {shown}"


def _authorize(request: web.Request, command: str) -> web.Response | None:
    """None when the request carries the control token; else the 403/401 to send.

    `command` labels the refusal in the control request counter ("any" for
    /control, whose command is not read before the caller is authorized).
    """
    runtime = request.app[RUNTIME]
    token = _read_token(request.app[AUTH].token_file)
    if token is None:
        runtime.count_control(command, "disabled")
        _refused(request, "control disabled: no token file")
        return _json({"error": "control is disabled: the engine has no control token"}, 403)
    presented = _presented_token(request)
    if presented is None or not hmac.compare_digest(
        presented.encode("ascii"), token.encode("utf-8")
    ):
        reason = "missing bearer token" if presented is None else "wrong bearer token"
        runtime.count_control(command, "unauthorized")
        _refused(request, reason)
        challenge = {"WWW-Authenticate": 'Bearer realm="hean-engine"'}
        return _error(f"unauthorized: {reason}", 401, headers=challenge)
    return None


async def control(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    peer = request.remote or "unknown"
    refused = _authorize(request, "any")
    if refused is not None:
        return refused
    body, problem = await _command_body(request, request.app[LIMITS])
    if problem is not None:
        runtime.count_control("any", "invalid")
        return _json({"error": problem}, 400)
    parsed, problem = _control_request(body)
    if parsed is None:
        runtime.count_control("any", "invalid")
        return _json({"error": problem}, 400)
    command = parsed.command
    apply_command(runtime.kernel, command)
    runtime.count_control(command, "ok")
    risk = runtime.kernel.risk
    log.info("control command", command=command, peer=peer, risk_state=risk.state.value)
    return _json(
        {
            "command": command,
            "risk_state": risk.state.value,
            "risk_state_reason": risk.state_reason,
            "paused": risk.paused,
            "open_orders": len(runtime.kernel.open),
        }
    )


def build_app(
    runtime: Runtime, token_file: Path | None, limits: ServerLimits | None = None
) -> web.Application:
    limits = limits or ServerLimits()
    app = web.Application(middlewares=[request_context], client_max_size=limits.max_body)
    app[RUNTIME] = runtime
    app[AUTH] = ControlAuth(token_file)
    app[LIMITS] = limits
    app[STATS] = runtime.connections
    app[REGISTRY] = build_registry(runtime)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    app.router.add_post("/control", control)
    app.router.add_post(
        "/test-order",
        test_order_handler(
            _authorize, lambda r: _command_body(r, r.app[LIMITS]), lambda r: r.app[RUNTIME]
        ),
    )
    return app


class _GuardedHandler(RequestHandler):
    """aiohttp's connection handler, with the connection limit and the header deadline."""

    def __init__(
        self, manager: web.Server, *, stats: ConnectionStats, limits: ServerLimits, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._stats = stats
        self._limits = limits
        self._deadline: asyncio.TimerHandle | None = None
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        stats = self._stats
        if stats.open >= self._limits.max_connections:
            stats.refused += 1
            if stats.throttle.allow("connection limit") is not None:
                log.warning(
                    "connection refused: too many open connections",
                    limit=self._limits.max_connections,
                    refused_total=stats.refused,
                )
            transport.close()
            return
        stats.open += 1
        self._counted = True
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._counted:
            self._stats.open -= 1
            self._counted = False
        super().connection_lost(exc)

    def request_started(self) -> None:
        self._disarm()

    def request_finished(self) -> None:
        self._arm(self._limits.keepalive_timeout)  # the next request on a kept-alive one

    def _arm(self, seconds: float | None = None) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        delay = self._limits.header_timeout if seconds is None else seconds
        self._deadline = loop.call_later(delay, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        self._stats.timed_out += 1
        if self._stats.throttle.allow("header timeout") is not None:
            log.info(
                "connection closed: no complete request in time",
                timed_out_total=self._stats.timed_out,
            )
        if self.transport is not None:
            self.transport.close()


class ControlServer:
    """Runs the app on host:port inside the current event loop."""

    def __init__(
        self,
        runtime: Runtime,
        host: str,
        port: int,
        token_file: Path | None,
        limits: ServerLimits | None = None,
    ) -> None:
        self.limits = limits or ServerLimits()
        self._app = build_app(runtime, token_file, self.limits)
        self._stats = runtime.connections
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    @property
    def app(self) -> web.Application:
        """The aiohttp app, for routes added before `start` (the history read API)."""
        return self._app

    async def start(self) -> None:
        limits = self.limits
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        await self._runner.setup()
        manager = self._runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()

        def protocol() -> _GuardedHandler:
            return _GuardedHandler(
                manager,
                stats=self._stats,
                limits=limits,
                loop=loop,
                access_log=None,
                keepalive_timeout=limits.keepalive_timeout,
                max_line_size=limits.max_header_size,
                max_field_size=limits.max_header_size,
                max_headers=limits.max_headers,
            )

        try:
            self._server = await loop.create_server(
                protocol, self._host, self._port, reuse_address=True
            )
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise HeanError(
                f"cannot listen on {self._host}:{self._port} (--host/--port): {exc.strerror or exc}"
            ) from None
        sockets = list(self._server.sockets or ())
        self.port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
