"""POST /test-order (paper engines only) and the X-Hean-Token header of proxied clients."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine_support import build_scripted_engine, candle
from hean_engine.app.assembly import Engine
from hean_engine.control.runtime import Runtime
from hean_engine.control.server import build_app
from hean_engine.data.exchange_feed import FeedHealth
from hean_engine.telemetry.logs import REDACTOR, configure_logging

TOKEN = "control-token-canary-51c0de"
HEADER = {"X-Hean-Token": TOKEN}


@dataclass
class Served:
    client: TestClient
    runtime: Runtime
    engine: Engine
    logs: io.StringIO


async def _serve(tmp_path: Path, mode: str) -> Served:
    logs = io.StringIO()
    configure_logging(stream=logs, engine="test-engine", run_id="run1")
    engine, _ = build_scripted_engine()
    runtime = Runtime(
        identity=engine.identity,
        spec=engine.spec,
        kernel=engine.kernel,
        mode=mode,  # type: ignore[arg-type]
        run_id="run1",
        feed=FeedHealth(),
    )
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    client = TestClient(TestServer(build_app(runtime, token_file)))
    await client.start_server()
    return Served(client, runtime, engine, logs)


@pytest.fixture
async def paper(tmp_path: Path) -> AsyncIterator[Served]:
    served = await _serve(tmp_path, "paper")
    try:
        yield served
    finally:
        await served.client.close()
        REDACTOR.clear()
        configure_logging()


async def test_a_paper_engine_takes_one_market_order_that_fills(paper: Served) -> None:
    kernel = paper.engine.kernel
    kernel.on_candle(candle(0, 100.0))
    response = await paper.client.post(
        "/test-order", json={"side": "buy", "quantity": "0.25"}, headers=HEADER
    )
    assert response.status == 202, await response.text()
    order = (await response.json())["order"]
    assert order["side"] == "buy" and order["quantity"] == "0.25" and order["type"] == "market"
    assert order["tag"] == "test-order" and order["status"] == "open"
    assert list(kernel.open) == [order["id"]]
    kernel.on_candle(candle(1, 101.0))  # the simulated venue fills at the next open
    assert kernel.open == {}
    (fill,) = kernel.fills
    assert (fill.order_id, str(fill.quantity), fill.price) == (order["id"], "0.25", 101.0)
    assert paper.runtime.control_requests[("test-order", "ok")] == 1


async def test_an_empty_body_is_the_default_small_buy(paper: Served) -> None:
    paper.engine.kernel.on_candle(candle(0, 100.0))
    response = await paper.client.post("/test-order", headers=HEADER)
    assert response.status == 202
    assert (await response.json())["order"]["quantity"] == "0.001"


async def test_a_live_engine_refuses_test_orders(tmp_path: Path) -> None:
    served = await _serve(tmp_path, "live")
    try:
        served.engine.kernel.on_candle(candle(0, 100.0))
        response = await served.client.post("/test-order", json={}, headers=HEADER)
        assert response.status == 403
        assert "paper engines only" in (await response.json())["error"]
        assert served.engine.kernel.orders_submitted == 0
    finally:
        await served.client.close()
        REDACTOR.clear()
        configure_logging()


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"side": "short"}, "side: must be buy or sell"),
        ({"quantity": 1}, "quantity: expected a decimal string"),
        ({"quantity": "-1"}, "quantity: must be a positive"),
        ({"quantity": "1e3"}, "quantity: must be a positive plain decimal"),
        ({"quantity": "abc"}, "quantity: not a decimal"),
        ({"price": "1"}, '"price": unknown field'),
        ([1], "body: expected a JSON object"),
    ],
)
async def test_bad_bodies_name_the_field(paper: Served, body: object, named: str) -> None:
    paper.engine.kernel.on_candle(candle(0, 100.0))
    response = await paper.client.post("/test-order", json=body, headers=HEADER)
    assert response.status == 400
    assert named in (await response.json())["error"]
    assert paper.engine.kernel.orders_submitted == 0


async def test_the_risk_engine_still_decides(paper: Served) -> None:
    kernel = paper.engine.kernel
    kernel.on_candle(candle(0, 100.0))
    kernel.pause()
    response = await paper.client.post("/test-order", headers=HEADER)
    assert response.status == 409
    assert (await response.json())["error"] == "the risk engine refused the order: paused"


async def test_test_orders_need_the_token(paper: Served) -> None:
    paper.engine.kernel.on_candle(candle(0, 100.0))
    for headers in ({}, {"X-Hean-Token": "wrong"}, {"Authorization": "Bearer wrong"}):
        response = await paper.client.post("/test-order", headers=headers)
        assert response.status == 401, headers
    assert paper.engine.kernel.orders_submitted == 0


async def test_x_hean_token_authorizes_control_as_the_bearer_does(paper: Served) -> None:
    """Through the API server's proxy only X-Hean-Token arrives (Authorization is removed)."""
    ok = await paper.client.post("/control", json={"command": "pause"}, headers=HEADER)
    assert ok.status == 200
    # X-Hean-Token wins over Authorization: a wrong one is refused whatever else is sent
    both = {"X-Hean-Token": "wrong", "Authorization": f"Bearer {TOKEN}"}
    refused = await paper.client.post("/control", json={"command": "resume"}, headers=both)
    assert refused.status == 401
    assert TOKEN not in paper.logs.getvalue()
