"""Fixtures for the sandbox apiserver emulator: a running server, an HTTP client, kubectl."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hean_sandbox.apiserver import ApiServer

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "tradingengines.hean.io.yaml"


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


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    api = ApiServer(host="127.0.0.1", port=0, bookmark_interval=0.2)
    await api.start()
    api.load_crds([CRD_FILE])
    yield api
    await api.stop()


@pytest.fixture
async def http(server: ApiServer) -> AsyncIterator[Http]:
    async with aiohttp.ClientSession() as session:
        yield Http(session, server.url)


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


Kubectl = Callable[..., Awaitable[Completed]]


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    server.write_kubeconfig(path)
    return path


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """Run the real kubectl against the server (asynchronously, so the server keeps serving)."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.fail("kubectl is not installed", pytrace=False)

    async def run(
        *args: str, stdin: str | None = None, check: bool = True, within: float = 30.0
    ) -> Completed:
        process = await asyncio.create_subprocess_exec(
            binary,
            "--kubeconfig",
            str(kubeconfig),
            "--cache-dir",
            str(tmp_path / "cache"),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), within
        )
        result = Completed(process.returncode or 0, out.decode(), err.decode())
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    return run


@pytest.fixture
async def http_no_keepalive(server: ApiServer) -> AsyncIterator[Http]:
    """Like `http`, closing each connection after its request (no idle server tasks left)."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Http(session, server.url)
