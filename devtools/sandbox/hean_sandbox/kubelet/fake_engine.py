"""Fake engines for fake pods: a stand-in HTTP API so that scale tests can reach Ready.

NOT AN ENGINE. With `PodRunner(fake=True)` (`hean sandbox up --fake-pods`) no
process runs, so nothing would answer the operator's `GET /status` and no
TradingEngine could ever become Ready. For every fake pod that declares a
container port named `http`, the pod runner therefore starts one `FakeEngine`:
a few aiohttp routes bound to the pod's own loopback IP (127.x.y.z) and that
port, so the operator's polls and control calls work as against a real pod.
It exists for scale tests of the operator (hundreds or thousands of engines on
one machine, see `benchmarks/operator_convergence.py`) and for nothing else:
it trades nothing, reads no market data and keeps no books.

What it answers:

- `GET /healthz` `{"status": "ok"}`; `GET /readyz` `{"ready": true, ...}`
  (always ready: the fake pod is reported Ready at once anyway).
- `GET /status`: the real engine's report type (`hean_contract.report.EngineReport`,
  camelCase on the wire) for an idle paper engine that has not traded: no
  position, no orders, no fills; `balances` are the spec's
  `paper.startingBalances` and `equity` the quote currency's starting
  balance ("0" when there is none); `mode`, `exchange`, `symbol`, `strategy`
  and `generation` come from the engine config in the pod's ConfigMap (read
  once, on the first request, so starting a fake pod costs no API call);
  defaults when there is no such ConfigMap. `lastDataTime` is the time the
  fake engine started and never moves, so an idle engine's status is stable.
  `spec.paused` and `spec.halt` of that config are honoured at start, as a
  real engine reads them from its config.
- `POST /control` with a `hean_contract.commands.ControlRequest`
  (`{"command": "pause" | "resume" | "reduce" | "halt" | "reset-halt" |
  "reset-paper-account"}`): changes `paused` / `riskState` / `riskStateReason`
  as the real kernel does (`resume` only unpauses; `reset-halt` alone returns
  to ACTIVE; `reset-paper-account` changes nothing here: a fake account never
  moves from its starting balances) and
  answers as the real engine does. Unlike the real engine it
  does NOT check the bearer token: any caller may steer a fake engine (the
  sandbox binds only to loopback).
  `commands` keeps what it was told, for tests.

An address already taken on this machine (for example by another sandbox's
pod on the same loopback IP) makes `start()` raise `OSError`;
`start_fake_engine` then tries the runner's next IP.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from pydantic import ValidationError

from hean_contract.commands import COMMANDS, ControlRequest
from hean_contract.report import EngineReport
from hean_engine.model.timefmt import now_iso
from hean_sandbox.kubelet.api import ApiError, KubeApi

log = logging.getLogger("hean.sandbox.kubelet.fake_engine")

HTTP_PORT_NAME = "http"
BIND_ATTEMPTS = 20

ConfigLoader = Callable[[], Awaitable[dict[str, Any] | None]]


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(payload, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


def idle_report(
    manifest: dict[str, Any] | None,
    *,
    name: str,
    namespace: str,
    run_id: str,
    risk_state: str,
    risk_state_reason: str,
    paused: bool,
    last_data_time: str,
) -> EngineReport:
    """The report of an idle engine that has not traded (the real engine's type)."""
    meta = (manifest or {}).get("metadata") or {}
    spec = (manifest or {}).get("spec") or {}
    symbol = str((spec.get("market") or {}).get("symbol") or "BTC/USDT")
    mode = str(spec.get("mode") or "paper")
    balances: dict[str, str] = {}
    if mode != "live":
        starting = (spec.get("paper") or {}).get("startingBalances") or {}
        balances = {str(ccy): str(amount) for ccy, amount in sorted(starting.items())}
    quote = symbol.split("/")[-1]
    return EngineReport(
        name=str(meta.get("name") or name),
        namespace=str(meta.get("namespace") or namespace),
        generation=int(meta.get("generation") or 1),
        run_id=run_id,
        mode=mode,
        exchange=str((spec.get("exchange") or {}).get("id") or ""),
        symbol=symbol,
        strategy=str((spec.get("strategy") or {}).get("name") or ""),
        ready=True,
        ready_reason="fake engine (sandbox stand-in for scale tests)",
        risk_state=risk_state,
        risk_state_reason=risk_state_reason,
        paused=paused,
        position="0",
        balances=balances,
        equity=balances.get(quote, "0"),
        pnl="0",
        max_drawdown="0",
        fees="0",
        open_orders=[],
        orders_submitted=0,
        orders_closed={},
        fills=0,
        rejections={},
        events=0,
        last_data_time=last_data_time,
        # The real engine's reconcile and LiveApproval check: a fake checks nothing.
        last_reconcile=None,
        live=None,
        approval=None,
        recent_events=[],
    )


class FakeEngine:
    """One fake engine's HTTP API on host:port, in the running event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        name: str,
        namespace: str,
        config: ConfigLoader | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.namespace = namespace
        self.commands: list[str] = []
        self.paused = False
        self.risk_state = "ACTIVE"
        self.risk_state_reason = "start"
        self._config = config
        self._manifest: dict[str, Any] | None = None
        self._loaded = config is None
        self._run_id = f"fake-{uuid.uuid4().hex[:12]}"
        self._started_at = now_iso()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Bind and serve; raises OSError when the address is taken."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/status", self._status)
        app.router.add_post("/control", self._control)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- the config, read once ---------------------------------------------------
    async def _manifest_once(self) -> dict[str, Any] | None:
        if not self._loaded and self._config is not None:
            try:
                manifest = await self._config()
            except (ApiError, aiohttp.ClientError, TimeoutError, yaml.YAMLError) as exc:
                log.warning("fake engine %s: config not read: %s", self.name, exc)
                return None  # defaults this time; read again on the next request
            self._loaded = True
            self._manifest = manifest
            spec = (manifest or {}).get("spec") or {}
            if spec.get("paused"):
                self.paused = True
            if spec.get("halt"):
                self.risk_state, self.risk_state_reason = "HALTED", "spec.halt at start"
        return self._manifest

    # -- routes --------------------------------------------------------------------
    async def _healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        return _json({"ready": True, "reason": "fake engine"})

    async def _status(self, request: web.Request) -> web.Response:
        manifest = await self._manifest_once()
        report = idle_report(
            manifest,
            name=self.name,
            namespace=self.namespace,
            run_id=self._run_id,
            risk_state=self.risk_state,
            risk_state_reason=self.risk_state_reason,
            paused=self.paused,
            last_data_time=self._started_at,
        )
        return _json(report.model_dump(mode="json", by_alias=True))

    async def _control(self, request: web.Request) -> web.Response:
        await self._manifest_once()  # the config's paused/halt apply before any command
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _json(
                {"error": 'body: expected a JSON object such as {"command": "pause"}'}, 400
            )
        try:
            command = ControlRequest.model_validate(body).command
        except ValidationError:
            sent = body.get("command") if isinstance(body, dict) else None
            shown = json.dumps(sent)[:40]
            return _json(
                {"error": f"command: must be one of {', '.join(COMMANDS)}, got {shown}"}, 400
            )
        self.commands.append(command)
        if command == "pause":
            self.paused = True
        elif command == "resume":
            self.paused = False  # as the kernel: resume never lifts a halt
        elif command == "reset-halt":
            self.risk_state, self.risk_state_reason = "ACTIVE", "reset-halt command"
        elif command == "reduce":
            self.risk_state, self.risk_state_reason = "REDUCING", "control command: reduce"
        elif command == "reset-paper-account":
            pass  # the fake account is always at its starting balances
        else:
            self.risk_state, self.risk_state_reason = "HALTED", "control command: halt"
        return _json(
            {
                "command": command,
                "risk_state": self.risk_state,
                "risk_state_reason": self.risk_state_reason,
                "paused": self.paused,
                "open_orders": 0,
            }
        )


def http_port(pod: dict[str, Any]) -> int | None:
    """The first container's port named `http`, if any."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for item in containers[0].get("ports") or []:
        if item.get("name") == HTTP_PORT_NAME and item.get("containerPort"):
            return int(item["containerPort"])
    return None


def config_loader(api: KubeApi, pod: dict[str, Any]) -> ConfigLoader:
    """Reads the TradingEngine manifest from the pod's first ConfigMap volume, when asked."""
    namespace = pod["metadata"]["namespace"]
    names = [
        volume["configMap"]["name"]
        for volume in (pod.get("spec") or {}).get("volumes") or []
        if "configMap" in volume and volume["configMap"].get("name")
    ]

    async def load() -> dict[str, Any] | None:
        if not names:
            return None
        found = await api.get(f"/api/v1/namespaces/{namespace}/configmaps/{names[0]}")
        for text in ((found or {}).get("data") or {}).values():
            document = yaml.safe_load(text)
            if isinstance(document, dict) and isinstance(document.get("spec"), dict):
                return document
        return None

    return load


async def start_fake_engine(
    api: KubeApi, pod: dict[str, Any], ip: str, next_ip: Callable[[], str]
) -> tuple[FakeEngine | None, str]:
    """Start a pod's fake engine at `ip` (or, if taken, the next free IP); returns it and the IP.

    Pods without a container port named `http` get none: (None, ip).
    """
    port = http_port(pod)
    if port is None:
        return None, ip
    meta = pod["metadata"]
    loader = config_loader(api, pod)
    first = ip
    for _ in range(BIND_ATTEMPTS):
        engine = FakeEngine(ip, port, name=meta["name"], namespace=meta["namespace"], config=loader)
        with contextlib.suppress(OSError):
            await engine.start()
            return engine, ip
        ip = next_ip()
    log.warning("fake engine for %s: no free address after %s; none started", meta["name"], first)
    return None, first
