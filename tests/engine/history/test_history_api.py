"""The read API: GET /orders, /fills, /positions, /equity, /events over both backends."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine_support import MINUTE, build_scripted_engine, spec_dict
from hean_contract.spec import EngineIdentity, parse_spec
from hean_engine.control.history_api import register_history_routes
from hean_engine.control.runtime import Runtime
from hean_engine.control.server import build_app
from hean_engine.history.recorder import HistoryRecorder, open_history
from hean_engine.history.store import EquityPoint, EventRecord, FillRecord, OrderChange
from hean_engine.kernel.engine import KernelEvent
from hean_engine.telemetry.logs import REDACTOR, configure_logging
from history_support import PG_PASSWORD

TOKEN = "history-api-canary-3f9d0a"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROUTES = ("/orders", "/fills", "/positions", "/equity", "/events")


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(stream=stream, engine="api-test", run_id="r")
    yield stream
    configure_logging()
    REDACTOR.clear()


@pytest.fixture
def recorder(history_target: str) -> Iterator[HistoryRecorder]:
    engine, _ = build_scripted_engine(spec_dict())
    rec = open_history(
        history_target,
        engine.kernel,
        namespace="default",
        name="api",
        run_id="r1",
        paper=True,
        timeframe_ms=MINUTE,
    )
    yield rec
    rec.close()


async def make_client(recorder: HistoryRecorder, token_file: Path | None) -> TestClient[Any, Any]:
    spec = parse_spec(spec_dict())
    runtime = Runtime(
        identity=EngineIdentity(name="api", namespace="default"),
        spec=spec,
        kernel=recorder.kernel,
        mode="paper",
        run_id="r1",
    )
    app = build_app(runtime, token_file)
    register_history_routes(app, recorder)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(recorder: HistoryRecorder, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    c = await make_client(recorder, token)
    yield c
    await c.close()


def seed_fills(recorder: HistoryRecorder, count: int) -> None:
    recorder.store.write(
        [
            FillRecord(
                seq,
                T0 + seq * 1000,
                f"{1000 + seq}",
                f"hean-abc-{seq}",
                f"{5000 + seq}",
                "buy",
                Decimal("43210.10"),
                Decimal("0.00100000"),
                Decimal("0.0432101"),
                "BNB",
                "maker",
                "r1",
            )
            for seq in range(1, count + 1)
        ]
    )


async def get(client: TestClient[Any, Any], path: str, **params: str) -> tuple[int, Any]:
    async with client.get(path, params=params, headers=AUTH) as response:
        return response.status, await response.json()


async def test_fills_page_oldest_first_with_exact_strings(
    client: TestClient[Any, Any], recorder: HistoryRecorder
) -> None:
    seed_fills(recorder, 250)
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
        status, body = await get(client, "/fills", **params)
        assert status == 200
        items += body["items"]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert len(items) == 250
    assert items[0] == {
        "tradeId": "1001",
        "orderId": "5001",
        "clientOrderId": "hean-abc-1",
        "side": "buy",
        "price": "43210.1",
        "quantity": "0.001",
        "fee": "0.0432101",
        "feeCurrency": "BNB",
        "liquidity": "maker",
        "time": "2026-01-01T00:00:01Z",
        "runId": "r1",
    }
    assert [i["tradeId"] for i in items] == [str(1000 + n) for n in range(1, 251)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"from": str(T0 + 3000), "to": str(T0 + 6000)}, ["1003", "1004", "1005"]),
        ({"from": "2026-01-01T00:00:08Z"}, ["1008", "1009", "1010"]),
        ({"to": "2026-01-01T01:00:02+01:00"}, ["1001"]),  # an offset is a time zone too
        ({"from": "2026-01-01T00:00:05.000Z", "to": "2026-01-01T00:00:05.001Z"}, ["1005"]),
    ],
)
async def test_time_ranges(
    client: TestClient[Any, Any],
    recorder: HistoryRecorder,
    params: dict[str, str],
    expected: list[str],
) -> None:
    seed_fills(recorder, 10)
    status, body = await get(client, "/fills", **params)
    assert status == 200, body
    assert [i["tradeId"] for i in body["items"]] == expected


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/fills", {"limit": "0"}, "limit: must be between 1 and 1000"),
        ("/fills", {"limit": "1001"}, "limit: must be between 1 and 1000"),
        ("/fills", {"limit": "ten"}, "limit: expected a whole number"),
        ("/fills", {"cursor": "-1"}, "cursor: expected a whole number"),
        ("/fills", {"from": "yesterday"}, "from: expected epoch milliseconds or an RFC 3339"),
        ("/fills", {"to": "2026-01-01T00:00:00"}, 'to: "2026-01-01T00:00:00" has no time zone'),
        ("/fills", {"from": str(T0 + 1), "to": str(T0)}, "from: is after to"),
        ("/fills", {"sort": "desc"}, '"sort": unknown query parameter'),
        ("/orders", {"latest": "maybe"}, "latest: expected true or false"),
        ("/equity", {"latest": "true"}, '"latest": unknown query parameter'),
    ],
)
async def test_bad_parameters_are_a_400_naming_them(
    client: TestClient[Any, Any], path: str, params: dict[str, str], named: str
) -> None:
    status, body = await get(client, path, **params)
    assert status == 400
    assert named in body["error"]


async def test_a_repeated_parameter_is_refused(client: TestClient[Any, Any]) -> None:
    async with client.get("/fills?limit=1&limit=2", headers=AUTH) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "limit: given more than once"


async def test_orders_equity_events_and_positions(
    client: TestClient[Any, Any], recorder: HistoryRecorder
) -> None:
    recorder.store.write(
        [
            OrderChange(
                100, T0, "o1", "", "submitted", "open", "buy", "limit", Decimal("1.50"),
                Decimal("99.5"), Decimal(0), "", "entry", "r1",
            ),
            OrderChange(
                101, T0 + 5, "o1", "", "canceled", "canceled", "buy", "limit", Decimal("1.50"),
                Decimal("99.5"), Decimal(0), "exchange: canceled", "entry", "r1",
            ),
            EquityPoint(T0 + MINUTE, Decimal("10001.50"), Decimal("1.5"), Decimal(10000),
                        Decimal("0.5"), Decimal("20003")),
            EventRecord(100, T0 + 7, "risk_state", "HALTED: control command: halt", "r1"),
        ]
    )  # fmt: skip
    assert recorder.flush()
    status, orders = await get(client, "/orders")
    assert status == 200
    assert [(o["clientOrderId"], o["change"]) for o in orders["items"]][-2:] == [
        ("o1", "submitted"),
        ("o1", "canceled"),
    ]
    _, latest = await get(client, "/orders", latest="true")
    assert [(o["clientOrderId"], o["status"], o["quantity"]) for o in latest["items"]] == [
        ("o1", "canceled", "1.5")
    ]
    _, equity = await get(client, "/equity")
    assert equity["items"] == [
        {
            "time": "2026-01-01T00:01:00Z",
            "equity": "10001.5",
            "pnl": "1.5",
            "baseline": "10000",
            "position": "0.5",
            "price": "20003",
        }
    ]
    _, events = await get(client, "/events")
    assert events["items"][-1]["detail"] == "HALTED: control command: halt"
    _, positions = await get(client, "/positions", latest="true")
    assert positions["items"][0]["balances"] == {"BTC": "0", "USD": "10000"}
    assert positions["items"][0]["reason"] == "start"


@pytest.mark.parametrize("route", ROUTES)
async def test_a_missing_or_wrong_token_is_a_401_and_no_secret_leaks(
    client: TestClient[Any, Any],
    recorder: HistoryRecorder,
    logs: io.StringIO,
    history_target: str,
    route: str,
) -> None:
    seed_fills(recorder, 1)
    for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": "Basic x"}):
        async with client.get(route, headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            body = await response.text()
            assert TOKEN not in body and "not-the-token" not in body
    async with client.get(route, headers=AUTH) as response:
        assert response.status == 200
        body = await response.text()
    async with client.get("/metrics") as response:
        metrics = await response.text()
    assert "hean_engine_history_bytes{" in metrics
    for text in (body, metrics, logs.getvalue()):
        assert TOKEN not in text
        assert PG_PASSWORD not in text
        assert history_target not in text or "postgresql" not in history_target


async def test_without_a_token_file_the_history_is_refused(recorder: HistoryRecorder) -> None:
    client = await make_client(recorder, None)
    try:
        async with client.get("/fills", headers=AUTH) as response:
            assert response.status == 403
            assert "no control token" in (await response.json())["error"]
    finally:
        await client.close()


async def test_the_store_size_is_a_metric(
    client: TestClient[Any, Any], recorder: HistoryRecorder
) -> None:
    seed_fills(recorder, 10)
    recorder.on_event(KernelEvent(T0, "paused", "trading paused"))
    assert recorder.flush()
    async with client.get("/metrics") as response:
        text = await response.text()
    line = next(x for x in text.splitlines() if x.startswith("hean_engine_history_bytes{"))
    assert float(line.rsplit(" ", 1)[1]) == recorder.store_bytes > 0
    assert recorder.pending == 0


async def test_a_store_that_fails_to_answer_is_a_503(
    client: TestClient[Any, Any], recorder: HistoryRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("server closed the connection")

    monkeypatch.setattr(recorder.store, "fills", down)
    status, body = await get(client, "/fills")
    assert status == 503
    assert body == {"error": "history store unavailable: ConnectionError"}


async def test_the_token_header_of_the_pod_proxy_is_accepted(
    client: TestClient[Any, Any], recorder: HistoryRecorder
) -> None:
    """kubectl hean reaches the engine through the API server, which strips Authorization."""
    seed_fills(recorder, 3)
    async with client.get("/fills", headers={"X-Hean-Token": TOKEN}) as response:
        assert response.status == 200
        assert len((await response.json())["items"]) == 3
    async with client.get("/fills", headers={"X-Hean-Token": "nope-nope"}) as response:
        assert response.status == 401
