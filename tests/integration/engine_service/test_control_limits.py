"""Issue 14, items 5 and 6: nobody on the network can take the control server down,
and a bad request is a 4xx with a JSON error, never a 500 or a traceback.

The server runs for real on a loopback port (raw sockets send what aiohttp's own
client would refuse to); limits are made small so that each test is quick, and
waits are on the server's own actions (a closed connection), not on sleeps.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine_support import FakeClock, build_scripted_engine
from hean_engine.control.runtime import Runtime
from hean_engine.control.server import ControlServer, ServerLimits
from hean_engine.data.exchange_feed import FeedHealth
from hean_engine.model.orders import RiskState
from hean_engine.telemetry.logs import REDACTOR, LogThrottle, StdlibBridge, configure_logging

TOKEN = "control-token-canary-9b1e22"


@dataclass
class Served:
    server: ControlServer
    runtime: Runtime
    logs: io.StringIO

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self.server.port is not None
        return await asyncio.open_connection("127.0.0.1", self.server.port)

    async def raw(self, request: bytes) -> tuple[int, dict[str, object], bytes]:
        """Send `request` on a new connection; (status, JSON body, raw response)."""
        reader, writer = await self.connect()
        writer.write(request)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, json.loads(body) if body else {}, response

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines()]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    logs = io.StringIO()
    configure_logging(stream=logs, engine="limits-test", run_id="run1")
    engine, _ = build_scripted_engine()
    runtime = Runtime(
        identity=engine.identity,
        spec=engine.spec,
        kernel=engine.kernel,
        mode="paper",
        run_id="run1",
        feed=FeedHealth(),
    )
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    limits = ServerLimits(
        max_connections=3, header_timeout=0.3, body_timeout=0.3, keepalive_timeout=0.5
    )
    server = ControlServer(runtime, "127.0.0.1", 0, token_file, limits)
    await server.start()
    try:
        yield Served(server, runtime, logs)
    finally:
        await server.stop()
        REDACTOR.clear()
        configure_logging()


async def _until(condition: Callable[[], bool]) -> None:
    """The server's side of a close is a callback away: wait for it (bounded)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def _post(body: bytes, *headers: bytes) -> bytes:
    lines = [
        b"POST /control HTTP/1.1",
        b"Host: engine",
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
        b"Connection: close",
        *headers,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- item 6: bad requests ------------------------------------------------------------------


async def test_item6_a_non_ascii_authorization_header_is_a_401_json_error(served: Served) -> None:
    status, body, _ = await served.raw(
        _post(b'{"command": "halt"}', "Authorization: Bearer tökén".encode())
    )
    assert status == 401
    assert body == {"error": "unauthorized: wrong bearer token"}
    assert served.runtime.kernel.risk.state is RiskState.ACTIVE
    assert "Traceback" not in served.logs.getvalue()


async def test_item6_a_deeply_nested_json_body_is_a_400_json_error(served: Served) -> None:
    deep = b"[" * 30_000 + b"]" * 30_000  # within the size limit; json.loads would recurse
    status, body, _ = await served.raw(_post(deep, f"Authorization: Bearer {TOKEN}".encode()))
    assert status == 400
    assert body == {"error": "body: nested deeper than 32 levels"}
    status, body, _ = await served.raw(
        _post(
            b'{"command": ' + b"[" * 20 + b"]" * 20 + b"}",
            f"Authorization: Bearer {TOKEN}".encode(),
        )
    )
    assert status == 400 and "command: must be one of" in str(body["error"])
    assert "Traceback" not in served.logs.getvalue()


async def test_item6_router_errors_are_json_too(served: Served) -> None:
    status, body, _ = await served.raw(
        b"DELETE /control HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n"
    )
    assert status == 405 and body == {"error": "Method Not Allowed"}
    big = b"{" + b" " * (70 * 1024) + b"}"
    status, body, _ = await served.raw(_post(big, f"Authorization: Bearer {TOKEN}".encode()))
    assert status == 400 and body == {"error": "body: larger than 65536 bytes"}


# -- item 5: connection limits, header and idle deadlines ----------------------------------------


async def test_item5_connections_beyond_the_limit_are_closed_at_once(served: Served) -> None:
    held = [await served.connect() for _ in range(3)]
    reader, writer = await served.connect()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
    writer.close()
    assert served.runtime.connections.refused == 1
    for _, w in held:
        w.close()
    await _until(lambda: served.runtime.connections.open == 0)
    # the held ones go (closed by us, or by the header deadline): the server answers again
    status, body, _ = await served.raw(
        b"GET /healthz HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n"
    )
    assert (status, body) == (200, {"status": "ok"})
    refusals = [line for line in served.log_lines() if "too many open" in str(line["event"])]
    assert len(refusals) == 1


async def test_item5_a_connection_without_complete_headers_is_closed(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: e\r\n")  # and never the blank line
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    assert served.runtime.connections.timed_out == 1
    assert served.runtime.connections.open == 0


async def test_item5_an_idle_kept_alive_connection_is_closed(served: Served) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: e\r\n\r\n")
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b'{"status": "ok"}'), 10)
    assert first.startswith(b"HTTP/1.1 200")
    assert await asyncio.wait_for(reader.read(), 10) == b""  # then idle: closed
    writer.close()
    assert served.runtime.connections.timed_out == 1


async def test_item5_refusals_are_logged_once_per_peer_and_reason(served: Served) -> None:
    for _ in range(20):
        status, _, _ = await served.raw(_post(b"{}", b"Authorization: Bearer wrong-one"))
        assert status == 401
    refused = [line for line in served.log_lines() if line["event"] == "control refused"]
    assert len(refused) == 1
    assert served.runtime.control_requests[("any", "unauthorized")] == 20


def test_item5_library_log_records_become_one_throttled_json_line() -> None:
    logs = io.StringIO()
    configure_logging(stream=logs, engine="bridge-test")
    try:
        clock = FakeClock(0.0)
        bridge = next(h for h in logging.getLogger().handlers if isinstance(h, StdlibBridge))
        bridge.throttle = LogThrottle(interval=10.0, clock=clock)
        noisy = logging.getLogger("asyncio")
        for _ in range(50):
            try:
                raise OSError(24, "Too many open files")
            except OSError:
                noisy.error("socket.accept() out of system resource", exc_info=True)
        clock.time = 11.0
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            noisy.error("socket.accept() out of system resource", exc_info=True)
        lines = [json.loads(line) for line in logs.getvalue().splitlines()]
        assert "Traceback" not in logs.getvalue()
        assert [line.get("suppressed") for line in lines] == [None, 49]
        assert lines[0]["error"] == "OSError: [Errno 24] Too many open files"
        assert lines[0]["logger_name"] == "asyncio" and lines[0]["engine"] == "bridge-test"
    finally:
        configure_logging()
