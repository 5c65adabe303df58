"""The operator's client for a running engine's HTTP API: `GET /status`, `POST /control`.

The engine's report is parsed here, once, into the contract's `EngineReport`
(and a control answer into `ControlReply`): the rest of the operator reads
typed fields, never keys. A document that does not fit the contract is an
`EngineUnreachable` like a refused connection, with a message fit for a
condition: never the token, never a traceback.

The control token is read from the engine's own Secret (one the engine owns,
never a Secret that merely has its name) and cached per engine; a token the
engine refuses is read again once, since a new Secret (a new pod) rotates it.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from hean_contract.commands import Command, ControlReply, ControlRequest
from hean_contract.report import EngineReport
from hean_operator.builders.common import CONTROL_TOKEN_KEY, EngineRef, owned_by
from hean_operator.kube.cluster import Cluster
from hean_operator.metrics import OperatorMetrics

T = TypeVar("T", bound=BaseModel)


class EngineUnreachable(Exception):
    """The engine did not answer as expected; the message says how."""


class Unauthorized(EngineUnreachable):
    """The engine refused the control token (401): it was rotated, or is wrong."""


class CommandRefused(EngineUnreachable):
    """The engine answered 400: it does not take this request (an older engine image)."""


class InvalidReport(EngineUnreachable):
    """The engine answered with a document that does not fit the contract."""


def _problems(exc: ValidationError, limit: int = 3) -> str:
    """The first fields at fault, `field: message`, without the values (no payload echoed)."""
    lines = [
        f"{'.'.join(str(p) for p in error['loc']) or '(document)'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)[:limit]
    ]
    more = exc.error_count() - limit
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "")


def with_reply(report: EngineReport, reply: ControlReply) -> EngineReport:
    """The report as it stands once the engine has applied a command (its answer's fields)."""
    return report.model_copy(
        update={
            "risk_state": reply.risk_state,
            "risk_state_reason": reply.risk_state_reason,
            "paused": reply.paused,
        }
    )


class EngineApi:
    """HTTP to engines, with their tokens; one per operator (its session is opened at start-up)."""

    def __init__(
        self,
        cluster: Cluster,
        metrics: OperatorMetrics,
        port: int,
        timeout: float = 5.0,
    ) -> None:
        self._cluster = cluster
        self._metrics = metrics
        self.port = port
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._tokens: dict[str, str] = {}  # engine uid -> control token

    # -- lifecycle -------------------------------------------------------------------
    async def open(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def closed(self) -> bool:
        """No session (not started yet) or a closed one (the operator is stopping)."""
        return self._session is None or self._session.closed

    def forget(self, engine: EngineRef) -> None:
        """Drop the engine's cached token (it was deleted)."""
        self._tokens.pop(engine.uid, None)

    def url(self, ip: str) -> str:
        return f"http://{ip}:{self.port}"

    # -- the engine's API ------------------------------------------------------------
    async def report(self, ip: str) -> EngineReport:
        """`GET /status`, parsed into the contract's report."""
        return await self._typed("GET", f"{self.url(ip)}/status", None, None, EngineReport)

    async def observe(self, ip: str) -> tuple[EngineReport | None, str | None]:
        """`report`, timed into the poll metrics: (report, None) or (None, why not)."""
        started = time.perf_counter()
        try:
            return await self.report(ip), None
        except EngineUnreachable as exc:
            self._metrics.poll_failures.inc()
            return None, str(exc)
        finally:
            self._metrics.poll_seconds.observe(time.perf_counter() - started)

    async def send(self, engine: EngineRef, ip: str, command: Command) -> ControlReply:
        """`POST /control` with the engine's token; a refused token is read again once."""
        url = f"{self.url(ip)}/control"
        body = ControlRequest(command=command).model_dump(mode="json")
        try:
            return await self._typed("POST", url, await self._token(engine), body, ControlReply)
        except Unauthorized:
            self._tokens.pop(engine.uid, None)
            return await self._typed("POST", url, await self._token(engine), body, ControlReply)

    # -- internals -------------------------------------------------------------------
    async def _token(self, engine: EngineRef) -> str:
        token = self._tokens.get(engine.uid)
        if token is None:
            secret = await asyncio.to_thread(
                self._cluster.get, "secrets", engine.namespace, engine.secret_name
            )
            if secret is None or not owned_by(secret, engine):
                raise EngineUnreachable("the engine's control Secret does not exist yet")
            token = base64.b64decode(secret["data"][CONTROL_TOKEN_KEY]).decode()
            self._tokens[engine.uid] = token
        return token

    async def _typed(
        self,
        method: str,
        url: str,
        token: str | None,
        body: dict[str, Any] | None,
        model: type[T],
    ) -> T:
        payload = await self._request(method, url, token, body)
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise InvalidReport(
                f"{method} {url} answered a document that is not an engine's "
                f"{model.__name__}: {_problems(exc)}"
            ) from None

    async def _request(
        self, method: str, url: str, token: str | None, body: dict[str, Any] | None
    ) -> dict[str, Any]:
        if self._session is None:
            raise EngineUnreachable("the operator has not started its HTTP session")
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        try:
            async with self._session.request(
                method, url, json=body, headers=headers, timeout=self._timeout
            ) as response:
                if response.status == 401:
                    raise Unauthorized(
                        f"{method} {url} answered 401: the control token was refused"
                    )
                if response.status == 400:
                    text = (await response.text())[:200]
                    raise CommandRefused(f"{method} {url} answered 400: {text}")
                if response.status != 200:
                    text = (await response.text())[:200]
                    raise EngineUnreachable(f"{method} {url} answered {response.status}: {text}")
                payload = await response.json()
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise EngineUnreachable(f"{method} {url} failed: {type(exc).__name__}") from None
        if not isinstance(payload, dict):
            raise InvalidReport(f"{method} {url} did not return a JSON object")
        return payload
