"""The operator's client for an engine's HTTP API: GET /status and POST /control.

Errors come back as `EngineUnreachable` with a message fit for a condition:
never the token, never a traceback.
"""

from __future__ import annotations

from typing import Any, Literal

import aiohttp
from pydantic import ValidationError

from hean_contract.report import EngineReport

# `reset-halt` lifts a HALTED/REDUCING risk state; it is sent only when a user sets
# spec.halt from true to false (handlers.engines.halt_changed), never by a poll.
Command = Literal["pause", "resume", "reduce", "halt", "reset-halt"]


class EngineUnreachable(Exception):
    """The engine did not answer as expected; the message says how."""


class Unauthorized(EngineUnreachable):
    """The engine refused the control token (401): it was rotated, or is wrong."""


class CommandRefused(EngineUnreachable):
    """The engine answered 400: it does not take this request (an older engine image)."""


class EngineClient:
    def __init__(self, session: aiohttp.ClientSession, timeout: float = 5.0) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def status(self, base_url: str) -> dict[str, Any]:
        """The engine's report, keyed by `EngineReport`'s field names (snake_case).

        The engine writes camelCase (engine images before it wrote these field
        names; both validate). The handlers still read the report as a dict by
        field name until they take the typed `EngineReport`; a document that is
        not a whole report (a stand-in engine) is passed on as it came.
        """
        payload = await self._request("GET", f"{base_url}/status", token=None, body=None)
        try:
            return EngineReport.model_validate(payload).model_dump(mode="json")
        except ValidationError:
            return payload

    async def control(self, base_url: str, token: str, command: Command) -> dict[str, Any]:
        return await self._request(
            "POST", f"{base_url}/control", token=token, body={"command": command}
        )

    async def _request(
        self, method: str, url: str, token: str | None, body: dict[str, Any] | None
    ) -> dict[str, Any]:
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
            raise EngineUnreachable(f"{method} {url} did not return a JSON object")
        return payload
