"""The engine's HTTP server (aiohttp): /healthz, /readyz, /metrics, /status, /control.

Only POST /control changes anything, and only with the bearer token from the
token file (mounted from a Secret by the operator). The token is read from the
file on each request, so a rotated Secret takes effect without a restart, and
compared in constant time. A refused attempt is logged with its reason and the
peer, never with what was sent.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from hean_engine.control.metrics import build_registry
from hean_engine.control.runtime import COMMANDS, Runtime, apply_command
from hean_engine.control.status import build_status
from hean_engine.model.errors import HeanError
from hean_engine.telemetry.logs import REDACTOR, get_logger

log = get_logger("hean.control")

RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)


@dataclass(frozen=True)
class ControlAuth:
    token_file: Path | None


AUTH = web.AppKey("auth", ControlAuth)
REGISTRY = web.AppKey("registry", CollectorRegistry)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(payload, sort_keys=True), status=status, content_type="application/json"
    )


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request id per request (the caller's X-Request-Id if sane), in every log line."""
    given = request.headers.get("X-Request-Id", "")
    request_id = given if given.isascii() and 0 < len(given) <= 64 and given.isprintable() else ""
    request_id = request_id or uuid.uuid4().hex[:16]
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        response = await handler(request)
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
    return _json(build_status(request.app[RUNTIME]))


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


def _presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def control(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    peer = request.remote or "unknown"
    token = _read_token(request.app[AUTH].token_file)
    if token is None:
        runtime.count_control("any", "disabled")
        log.warning("control refused", reason="control disabled: no token file", peer=peer)
        return _json({"error": "control is disabled: the engine has no control token"}, 403)
    presented = _presented_token(request)
    if presented is None or not hmac.compare_digest(
        presented.encode("utf-8"), token.encode("utf-8")
    ):
        reason = "missing bearer token" if presented is None else "wrong bearer token"
        runtime.count_control("any", "unauthorized")
        log.warning("control refused", reason=reason, peer=peer)
        return web.Response(
            text=json.dumps({"error": f"unauthorized: {reason}"}),
            status=401,
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="hean-engine"'},
        )
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        runtime.count_control("any", "invalid")
        return _json({"error": 'body: expected a JSON object such as {"command": "pause"}'}, 400)
    command = body.get("command") if isinstance(body, dict) else None
    if command not in COMMANDS:
        runtime.count_control("any", "invalid")
        shown = json.dumps(command)[:40]
        return _json({"error": f"command: must be one of {', '.join(COMMANDS)}, got {shown}"}, 400)
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


def build_app(runtime: Runtime, token_file: Path | None) -> web.Application:
    app = web.Application(middlewares=[request_context])
    app[RUNTIME] = runtime
    app[AUTH] = ControlAuth(token_file)
    app[REGISTRY] = build_registry(runtime)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", status)
    app.router.add_post("/control", control)
    return app


class ControlServer:
    """Runs the app on host:port inside the current event loop."""

    def __init__(self, runtime: Runtime, host: str, port: int, token_file: Path | None) -> None:
        self._app = build_app(runtime, token_file)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise HeanError(
                f"cannot listen on {self._host}:{self._port} (--host/--port): {exc.strerror or exc}"
            ) from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
