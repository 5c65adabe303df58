"""Raw protocol helpers for the apiserver emulator's tests: a JSON client and a watch reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class Http:
    """A thin JSON client for raw protocol checks."""

    session: aiohttp.ClientSession
    base: str

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        data = None
        all_headers = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            all_headers["Content-Type"] = content_type
        async with self.session.request(
            method, self.base + path, data=data, params=params, headers=all_headers
        ) as response:
            text = await response.text()
            payload = json.loads(text) if text and text[0] in "{[" else text
            return response.status, payload, dict(response.headers)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return await self.request("PUT", path, body, **kw)

    async def patch(
        self, path: str, body: Any, kind: str = "merge", **kw: Any
    ) -> tuple[int, Any, dict[str, str]]:
        content_type = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "apply": "application/apply-patch+yaml",
        }[kind]
        return await self.request("PATCH", path, body, content_type=content_type, **kw)

    async def delete(
        self, path: str, body: Any = None, **kw: Any
    ) -> tuple[int, Any, dict[str, str]]:
        return await self.request("DELETE", path, body, **kw)

    async def watch(
        self, path: str, params: dict[str, str], headers: dict[str, str] | None = None
    ) -> Watch:
        response = await self.session.get(
            self.base + path, params={"watch": "true", **params}, headers=headers
        )
        assert response.status == 200, await response.text()
        return Watch(response)


class Watch:
    """Reads one watch stream event by event, never waiting longer than a timeout."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, within: float = 5.0) -> dict[str, Any] | None:
        line = await asyncio.wait_for(self.response.content.readline(), within)
        if not line:
            return None
        event: dict[str, Any] = json.loads(line)
        return event

    async def until(
        self, predicate: Callable[[dict[str, Any]], bool], within: float = 5.0
    ) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            while True:
                event = await self.next(within)
                assert event is not None, "the watch stream ended"
                if predicate(event):
                    return event

        return await asyncio.wait_for(scan(), within)

    def close(self) -> None:
        self.response.close()
