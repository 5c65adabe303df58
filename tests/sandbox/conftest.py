"""Fixtures for the sandbox apiserver emulator: a running server, an HTTP client, kubectl."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from apiserver_support import Http

from hean_sandbox.apiserver import ApiServer

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = REPO_ROOT / "crds" / "tradingengines.hean.io.yaml"


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
