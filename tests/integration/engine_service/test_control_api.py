"""The engine's HTTP surface: health, readiness, status, metrics, and authenticated control."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from engine_support import FakeClock, build_scripted_engine, candle
from hean_contract.report import EngineReport, ReconcileReport
from hean_engine.app.assembly import Engine
from hean_engine.control.runtime import Runtime
from hean_engine.control.server import build_app
from hean_engine.data.exchange_feed import FeedHealth
from hean_engine.model.orders import OrderIntent, OrderType, RiskState, Side
from hean_engine.telemetry.logs import REDACTOR, configure_logging

TOKEN = "control-token-canary-7f3a9c"


@dataclass
class Harness:
    client: TestClient
    runtime: Runtime
    engine: Engine
    clock: FakeClock
    logs: io.StringIO


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    logs = io.StringIO()
    configure_logging(stream=logs, engine="test-engine", run_id="run1")
    engine, _ = build_scripted_engine()
    clock = FakeClock()
    runtime = Runtime(
        identity=engine.identity,
        spec=engine.spec,
        kernel=engine.kernel,
        mode="paper",
        run_id="run1",
        feed=FeedHealth(),
        clock=clock,
        stale_after=60.0,
    )
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    client = TestClient(TestServer(build_app(runtime, token_file)))
    await client.start_server()
    try:
        yield Harness(client, runtime, engine, clock, logs)
    finally:
        await client.close()
        REDACTOR.clear()
        configure_logging()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_healthz_is_always_ok(harness: Harness) -> None:
    response = await harness.client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_ready_only_once_market_data_flows_and_not_when_it_goes_stale(
    harness: Harness,
) -> None:
    response = await harness.client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["reason"] == "waiting for market data"

    harness.runtime.feed.last_ok = harness.clock.time  # type: ignore[union-attr]
    response = await harness.client.get("/readyz")
    assert response.status == 200

    harness.clock.time += 61
    response = await harness.client.get("/readyz")
    assert response.status == 503
    assert "market data stale" in (await response.json())["reason"]


async def test_live_engine_is_not_ready_before_a_clean_reconcile(harness: Harness) -> None:
    harness.runtime.feed.last_ok = harness.clock.time  # type: ignore[union-attr]
    harness.runtime.reconcile_required = True
    assert (await harness.client.get("/readyz")).status == 503
    harness.runtime.last_reconcile = ReconcileReport(time="2026-01-01T00:00:00Z", result="drift")
    assert (await harness.client.get("/readyz")).status == 503
    harness.runtime.last_reconcile = ReconcileReport(time="2026-01-01T00:00:00Z", result="ok")
    assert (await harness.client.get("/readyz")).status == 200


def _trade_a_little(engine: Engine) -> None:
    kernel = engine.kernel
    kernel.on_candle(candle(0, 100.0))
    kernel.submit(OrderIntent(Side.BUY, Decimal("2")))
    kernel.on_candle(candle(1, 101.0, close=103.0))  # fills at 101 (next open)
    kernel.submit(OrderIntent(Side.SELL, Decimal("1"), OrderType.LIMIT, Decimal("150")))
    kernel.submit(OrderIntent(Side.BUY, Decimal("1000")))  # refused: notional limits


async def test_status_reports_the_books_exactly(harness: Harness) -> None:
    _trade_a_little(harness.engine)
    harness.runtime.feed.last_event_ts = harness.engine.kernel.now  # type: ignore[union-attr]
    response = await harness.client.get("/status")
    assert response.status == 200
    status = await response.json()
    ledger = harness.engine.ledger
    assert status["mode"] == "paper"
    assert status["riskState"] == "ACTIVE"
    assert status["paused"] is False
    assert status["position"] == "2"
    assert status["equity"] == str(ledger.equity.normalize())
    assert Decimal(status["equity"]) == ledger.equity
    assert Decimal(status["pnl"]) == ledger.pnl
    assert Decimal(status["balances"]["USD"]) == ledger.quote
    assert status["fills"] == 1
    assert [o["side"] for o in status["openOrders"]] == ["sell"]
    assert status["openOrders"][0]["price"] == "150"
    assert sum(status["rejections"].values()) == 1
    assert status["lastDataTime"] == "2017-01-01T00:01:00Z"
    assert status["lastReconcile"] is None
    assert status["generation"] == 0
    # money is never a JSON number (binary float) in the document
    for key in ("position", "equity", "pnl", "maxDrawdown", "fees"):
        assert isinstance(status[key], str)
    # The contract's type, camelCase on the wire: every key is a field's alias.
    report = EngineReport.model_validate(status)
    assert report.model_dump(mode="json", by_alias=True) == status
    assert set(status) == {f.alias for f in EngineReport.model_fields.values()}


async def test_metrics_expose_the_engine_by_name(harness: Harness) -> None:
    _trade_a_little(harness.engine)
    response = await harness.client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    for name in (
        "hean_engine_events",
        "hean_engine_orders_submitted",
        "hean_engine_orders_closed",
        "hean_engine_fills",
        "hean_engine_rejections",
        "hean_engine_equity",
        "hean_engine_pnl",
        "hean_engine_position",
        "hean_engine_risk_state",
        "hean_engine_loop_lag_seconds",
        "hean_engine_last_data_age_seconds",
        "hean_engine_ready",
        "hean_engine_info",
    ):
        assert name in families, name

    def value(name: str, **labels: str) -> float:
        for sample in families[name].samples:
            if all(
                sample.labels.get(k) == v for k, v in labels.items()
            ) and not sample.name.endswith("_created"):
                return sample.value
        raise AssertionError(f"{name} {labels} missing")

    assert value("hean_engine_events", engine="test-engine") == 2
    assert value("hean_engine_fills") == 1
    assert value("hean_engine_position") == 2
    assert value("hean_engine_risk_state", state="ACTIVE") == 1
    assert value("hean_engine_risk_state", state="HALTED") == 0
    assert sum(s.value for s in families["hean_engine_rejections"].samples) == 1


async def test_control_needs_the_bearer_token(harness: Harness) -> None:
    client = harness.client
    missing = await client.post("/control", json={"command": "halt"})
    assert missing.status == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await client.post("/control", json={"command": "halt"}, headers=_bearer("nope-123456"))
    assert wrong.status == 401
    basic = await client.post(
        "/control", json={"command": "halt"}, headers={"Authorization": f"Basic {TOKEN}"}
    )
    assert basic.status == 401
    assert harness.engine.risk.state is RiskState.ACTIVE  # nothing changed
    lines = [json.loads(line) for line in harness.logs.getvalue().splitlines()]
    refused = [line for line in lines if line["event"] == "control refused"]
    # The third refusal repeats the first (same peer, same reason): throttled.
    assert [line["reason"] for line in refused] == [
        "missing bearer token",
        "wrong bearer token",
    ]
    assert all(line["engine"] == "test-engine" and line["request_id"] for line in refused)
    assert "nope-123456" not in harness.logs.getvalue()


async def test_control_commands_change_the_risk_state(harness: Harness) -> None:
    _trade_a_little(harness.engine)
    client = harness.client
    kernel = harness.engine.kernel

    async def send(command: str) -> dict[str, object]:
        response = await client.post("/control", json={"command": command}, headers=_bearer(TOKEN))
        assert response.status == 200, await response.text()
        return dict(await response.json())

    assert (await send("pause"))["paused"] is True
    assert kernel.risk.paused
    resumed = await send("resume")
    assert resumed["paused"] is False
    assert resumed["risk_state"] == "ACTIVE"
    assert (await send("reduce"))["risk_state"] == "REDUCING"
    halted = await send("halt")
    assert halted["risk_state"] == "HALTED"
    assert halted["open_orders"] == 0  # a halt cancels the working sell
    assert kernel.risk.state_reason == "control command: halt"
    assert (await send("resume"))["risk_state"] == "HALTED"  # resume only unpauses
    assert (await send("reset-halt"))["risk_state"] == "ACTIVE"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "body: expected a JSON object"),
        (
            b'{"command": "sell-everything"}',
            "command: must be one of pause, resume, reduce, halt, reset-halt",
        ),
        (b"[1, 2]", "command: must be one of"),
        (b"{}", "got null"),
        (b'{"command": "pause", "force": true}', '"force": not a field'),
    ],
)
async def test_bad_control_requests_name_the_problem(
    harness: Harness, body: bytes, problem: str
) -> None:
    response = await harness.client.post(
        "/control",
        data=body,
        headers={**_bearer(TOKEN), "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert problem in (await response.json())["error"]


async def test_control_without_a_token_file_is_disabled(tmp_path: Path) -> None:
    engine, _ = build_scripted_engine()
    runtime = Runtime(engine.identity, engine.spec, engine.kernel, "paper", "r")
    async with TestClient(TestServer(build_app(runtime, tmp_path / "absent"))) as client:
        response = await client.post("/control", json={"command": "halt"}, headers=_bearer("x"))
        assert response.status == 403
    assert engine.risk.state is RiskState.ACTIVE


async def test_request_id_is_echoed_and_logged(harness: Harness) -> None:
    response = await harness.client.get("/status", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    lines = [json.loads(line) for line in harness.logs.getvalue().splitlines()]
    assert any(line.get("request_id") == "abc-123" and line["path"] == "/status" for line in lines)
    generated = await harness.client.get("/status")
    assert len(generated.headers["X-Request-Id"]) == 16


async def test_the_token_never_leaks(harness: Harness) -> None:
    """A canary token: used successfully, it must not show in logs, status or metrics."""
    _trade_a_little(harness.engine)
    client = harness.client
    await client.post("/control", json={"command": "pause"}, headers=_bearer(TOKEN))
    await client.post("/control", json={"command": TOKEN}, headers=_bearer(TOKEN))
    await client.post("/control", json={"command": "x"}, headers=_bearer(TOKEN + "x"))
    status = await (await client.get("/status")).text()
    metrics = await (await client.get("/metrics")).text()
    # A bug that logs the token anyway is caught by the redactor: simulate one.
    from hean_engine.telemetry.logs import get_logger

    get_logger("test").error("oops", detail=f"header was Bearer {TOKEN}")
    logs = harness.logs.getvalue()
    for surface in (status, metrics, logs):
        assert TOKEN not in surface
    assert "[REDACTED]" in logs


async def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    from hean_engine.control.server import ControlServer
    from hean_engine.model.errors import HeanError

    engine, _ = build_scripted_engine()
    runtime = Runtime(engine.identity, engine.spec, engine.kernel, "paper", "r")
    first = ControlServer(runtime, "127.0.0.1", 0, None)
    await first.start()
    try:
        second = ControlServer(runtime, "127.0.0.1", first.port or 0, None)
        with pytest.raises(HeanError) as info:
            await second.start()
        assert str(info.value).startswith(
            f"cannot listen on 127.0.0.1:{first.port} (--host/--port)"
        )
    finally:
        await first.stop()
