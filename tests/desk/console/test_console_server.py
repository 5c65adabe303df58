"""The console's server against a fake client: pages, live updates, actions and guards."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from console_fake import (
    CONTROL_TOKEN,
    SECRET_DATA,
    FakeClient,
    demo_client,
    engine_object,
    fill,
)

from hean_desk.console import console as console_command
from hean_desk.console import make_app
from hean_desk.console.server import CONSOLE, CSRF_HEADER

Console = tuple[FakeClient, TestClient[Any, Any]]


@pytest.fixture
async def console() -> AsyncIterator[Console]:
    fake = demo_client()
    async with TestClient(TestServer(make_app(fake, report_interval=0.2))) as client:
        yield fake, client
    fake.close()


def origin(client: TestClient[Any, Any]) -> str:
    return f"http://127.0.0.1:{client.port}"


async def csrf_token(client: TestClient[Any, Any]) -> str:
    page = await (await client.get("/")).text()
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match
    return match.group(1)


async def next_event(
    response: ClientResponse, wanted: Callable[[str, Any], bool], seconds: float = 10
) -> tuple[str, Any]:
    """The first Server-Sent Event (name, parsed data) that `wanted` accepts."""

    async def read() -> tuple[str, Any]:
        name = ""
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if wanted(name, data):
                    return name, data

    return await asyncio.wait_for(read(), seconds)


async def test_overview_lists_every_engine_with_exact_figures(console: Console) -> None:
    _, client = console
    response = await client.get("/")
    assert response.status == 200
    page = await response.text()
    for key in ("desk/btc", "desk/eth-live", "research/sol"):
        assert f'data-key="{key}"' in page
    assert "100,012.5" in page and "+12.5" in page  # the reported strings, grouped
    assert "-19.25" in page  # a loss, exactly
    assert "drift" in page and "USDT differs by 3.5" in page
    assert "not needed (paper)" in page
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_overview_shows_an_rbac_refusal_to_list(console: Console) -> None:
    fake, client = console
    fake.forbid_list = True
    response = await client.get("/")
    assert response.status == 403
    assert "Refused by Kubernetes RBAC" in await response.text()


async def test_engine_page_renders_every_panel(console: Console) -> None:
    _, client = console
    response = await client.get("/engines/desk/btc")
    assert response.status == 200
    page = await response.text()
    for panel in (
        "summary",
        "chart",
        "positions",
        "orders",
        "fills",
        "risk",
        "reconcile",
        "approval",
        "events",
        "logs",
        "actions",
    ):
        assert f'id="panel-{panel}"' in page
    assert 'data-trade-id="t-1"' in page and 'data-trade-id="t-3"' in page
    assert "29,950.12" in page and "0.0123456789" in page
    assert 'data-order-id="o-7"' in page and "30,100.5" in page
    assert "85,000.12345678" in page
    assert "<polyline" in page  # the equity chart
    # how close each limit is: 0.5 BTC x 30000 of 20000, 1 of 4 open orders
    assert re.search(r'data-limit="maxPositionNotional">.*?75\.0%', page)
    assert re.search(r'data-limit="maxOpenOrders">.*?25\.0%', page)
    assert "engine pod running" in page


async def test_a_live_engines_reconcile_shows_each_currency_and_foreign_orders(
    console: Console,
) -> None:
    _, client = console
    page = await (await client.get("/engines/desk/eth-live")).text()
    panel = page[page.index('id="panel-reconcile"') :]
    assert "USDT differs by 3.5; 1 foreign open order(s)" in panel
    assert "5,234.25" in panel and "5,230.75" in panel and "-3.5" in panel
    assert re.search(r"<dt>Foreign orders</dt><dd>1</dd>", panel)


async def test_fill_filter_by_side(console: Console) -> None:
    _, client = console
    page = await (await client.get("/engines/desk/btc?side=sell")).text()
    assert 'data-trade-id="t-3"' in page and 'data-trade-id="t-1"' not in page
    page = await (await client.get("/engines/desk/btc?since=2026-01-02T03:02:00Z")).text()
    assert 'data-trade-id="t-2"' in page and 'data-trade-id="t-1"' not in page


async def test_an_unreadable_report_is_a_note_not_a_failed_page(console: Console) -> None:
    _, client = console
    response = await client.get("/engines/research/sol")
    assert response.status == 200
    assert "could not be read: " in await response.text()


async def test_unknown_engine_is_404(console: Console) -> None:
    _, client = console
    assert (await client.get("/engines/desk/nope")).status == 404


async def test_approvals_page_names_signers_expiry_and_verdict(console: Console) -> None:
    _, client = console
    page = await (await client.get("/approvals")).text()
    assert 'data-approval="desk/eth-live-approval"' in page
    assert "alice, bob" in page and "2099-01-01 00:00:00Z" in page and "valid" in page


async def test_sse_sends_an_overview_row_when_the_watch_yields_a_change(console: Console) -> None:
    fake, client = console
    async with client.get("/events") as stream:
        await next_event(stream, lambda name, _: name == "hello")
        fake.push("MODIFIED", engine_object("desk", "btc", equity="100500.75", pnl="500.75"))
        _, rows = await next_event(
            stream,
            lambda name, d: name == "rows" and "100,500.75" in d["upsert"].get("desk/btc", ""),
        )
        assert "+500.75" in rows["upsert"]["desk/btc"]
        fake.push("ADDED", engine_object("new", "ada"))
        await next_event(stream, lambda name, d: name == "rows" and "new/ada" in d["upsert"])
        fake.push("DELETED", engine_object("new", "ada"))
        await next_event(stream, lambda name, d: name == "rows" and "new/ada" in d["remove"])


async def test_sse_engine_stream_sends_new_fills(console: Console) -> None:
    fake, client = console
    async with client.get("/events", params={"engine": "desk/btc"}) as stream:
        _, panels = await next_event(stream, lambda name, _: name == "panels")
        assert "t-3" in panels["fills"]
        reads = fake.report_reads
        with fake.lock:
            fake.history[("desk/btc", "fills")].append(
                {**fake.history[("desk/btc", "fills")][-1], "tradeId": "t-4", "price": "30020.5"}
            )
        _, panels = await next_event(stream, lambda name, d: name == "panels" and "fills" in d)
        assert 'data-trade-id="t-4"' in panels["fills"] and "30,020.5" in panels["fills"]
        assert "summary" not in panels  # unchanged panels are not sent again
        assert fake.report_reads > reads  # the report is read again for the open page


async def test_an_open_page_reads_only_newer_fills_and_recent_equity(console: Console) -> None:
    fake, client = console
    async with client.get("/events", params={"engine": "desk/btc"}) as stream:
        await next_event(stream, lambda name, d: name == "panels" and "fills" in d)
        # equity: 500 one-minute candles before the last market data (its day starts later)
        assert ("equity", "2026-01-01T18:45:00Z") in fake.history_reads
        assert ("fills", None) in fake.history_reads
        with fake.lock:
            fake.history_reads.clear()
            fake.history[("desk/btc", "fills")] += [
                fill("t-5", "buy", "30001", "0.1", "2026-01-02T03:05:00Z"),
                # recorded later, with an earlier exchange time: still shown
                fill("t-4", "sell", "30000.5", "0.1", "2026-01-02T03:02:30Z"),
            ]
        _, panels = await next_event(
            stream, lambda name, d: name == "panels" and "t-4" in d.get("fills", "")
        )
        assert 'data-trade-id="t-5"' in panels["fills"]
        assert panels["fills"].count('data-trade-id="t-3"') == 1  # read again, shown once
        # from five minutes before the newest fill seen (03:03)
        assert ("fills", "2026-01-02T02:58:00Z") in fake.history_reads


async def test_actions_patch_the_spec_with_the_token_and_origin(console: Console) -> None:
    fake, client = console
    token = await csrf_token(client)
    for action, patch in (
        ("pause", {"paused": True}),
        ("resume", {"paused": False}),
        ("halt", {"halt": True}),
    ):
        response = await client.post(
            f"/api/engines/desk/btc/{action}",
            headers={CSRF_HEADER: token, "Origin": origin(client)},
        )
        assert response.status == 200, await response.text()
        assert (await response.json())["ok"] is True
        assert fake.patches[-1] == ("desk", "btc", patch)


async def test_actions_without_token_or_from_another_origin_are_refused(console: Console) -> None:
    fake, client = console
    token = await csrf_token(client)
    for headers in (
        {"Origin": origin(client)},  # no token
        {CSRF_HEADER: "guess", "Origin": origin(client)},
        {CSRF_HEADER: token, "Origin": "http://evil.example"},
        {CSRF_HEADER: token},  # no Origin
    ):
        response = await client.post("/api/engines/desk/btc/halt", headers=headers)
        assert response.status == 403
        assert (await response.json())["message"].startswith("Refused")
    assert fake.patches == []


async def test_a_403_from_the_api_server_is_a_clear_refusal(console: Console) -> None:
    fake, client = console
    fake.forbid_patch = True
    token = await csrf_token(client)
    response = await client.post(
        "/api/engines/desk/btc/halt", headers={CSRF_HEADER: token, "Origin": origin(client)}
    )
    assert response.status == 403
    body = await response.json()
    assert body["ok"] is False
    assert "Refused by Kubernetes RBAC" in body["message"] and "cannot patch" in body["message"]


async def test_a_foreign_host_header_is_refused(console: Console) -> None:
    _, client = console
    response = await client.get("/", headers={"Host": f"rebound.example:{client.port}"})
    assert response.status == 421


async def test_no_secret_in_any_response(console: Console) -> None:
    _, client = console
    bodies = []
    for path in (
        "/",
        "/engines/desk/btc",
        "/engines/desk/eth-live",
        "/approvals",
        "/static/console.js",
    ):
        bodies.append(await (await client.get(path)).text())
    async with client.get("/events", params={"engine": "desk/btc"}) as stream:
        _, panels = await next_event(stream, lambda name, _: name == "panels")
        bodies.append(json.dumps(panels))
    assert "Bearer ***" in bodies[1]  # the log line is there, its token is not
    for body in bodies:
        assert CONTROL_TOKEN not in body
        assert SECRET_DATA not in body
        assert "last-applied-configuration" not in body
        assert "binance-keys" not in body  # not even a Secret's name


async def test_the_watch_is_started_again_when_the_api_server_ends_it() -> None:
    fake = demo_client()
    app = make_app(fake, report_interval=0.2)
    app[CONSOLE].hub.restart_pause = 0.05
    async with TestClient(TestServer(app)) as client, client.get("/events") as stream:
        await next_event(stream, lambda name, _: name == "hello")
        fake.listed.clear()
        fake.close()  # the API server ends the watch (as it does every few minutes)
        assert await asyncio.to_thread(fake.listed.wait, 10)  # listed again, then watched
        fake.push("MODIFIED", engine_object("desk", "btc", equity="123.45", pnl="1"))
        await next_event(
            stream, lambda name, d: name == "rows" and "123.45" in d["upsert"].get("desk/btc", "")
        )
    fake.close()


def test_the_command_refuses_an_address_other_than_loopback() -> None:
    result = CliRunner().invoke(console_command, ["--address", "0.0.0.0", "--no-browser"])
    assert result.exit_code == 2
    assert "loopback address only" in result.output


def test_the_command_documents_the_contracts_options() -> None:
    result = CliRunner().invoke(console_command, ["--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--no-browser" in result.output


async def test_backtests_page_lists_them_with_the_crds_columns_and_exact_stats(
    console: Console,
) -> None:
    _, client = console
    response = await client.get("/backtests")
    assert response.status == 200
    page = await response.text()
    header = re.search(r'<table class="grid" id="backtests"><thead><tr>(.*?)</tr>', page)
    assert header and re.findall(r"<th>(.*?)</th>", header.group(1)) == [
        "Namespace", "Name", "Strategy", "Market", "From", "To", "Phase", "Return", "MaxDD",
        "Sharpe", "Trades", "Age",
    ]  # fmt: skip
    keys = re.findall(r'data-backtest="([^"]+)"', page)
    assert keys == ["desk/ema-jan", "desk/queued", "research/ema-sweep"]
    row = page.split('data-backtest="desk/ema-jan"')[1].split("</tr>")[0]
    assert '<a href="/backtests/desk/ema-jan">ema-jan</a>' in row
    assert '<td class=num data-field="totalReturnPct">12.3456789</td>' in row  # not rounded
    assert '<td class=num data-field="maxDrawdownPct">4.10</td>' in row  # trailing zero kept
    assert '<td class=num data-field="trades">57</td>' in row
    queued = page.split('data-backtest="desk/queued"')[1].split("</tr>")[0]
    assert "Pending" in queued and '<td class=num data-field="sharpe">—</td>' in queued
    assert '<a href="/backtests" aria-current=page>Backtests</a>' in page


async def test_backtest_page_shows_the_summary_ranking_and_report(console: Console) -> None:
    _, client = console
    response = await client.get("/backtests/research/ema-sweep")
    assert response.status == 200
    page = await response.text()
    assert '<span id="backtest-name">ema-sweep</span>' in page
    assert '<span data-stat="fees">123.45678901</span>' in page
    assert "statFromTheFuture" not in page
    assert "<dd>fast=10, slow=50</dd>" in page
    assert "4 runs: 3 succeeded, 0 failed, 1 skipped; ranked by <strong>sharpe</strong>" in page
    runs = re.findall(r'<tr data-run="(\d+)"><td class=num>(\d+)</td>', page)
    assert runs == [("3", "1"), ("0", "2")]  # best first
    assert '<td class=num data-field="value">-0.50</td>' in page
    assert "reports/research/ema-sweep/u-2/3.html on PersistentVolumeClaim backtest-results" in page
    assert "last-applied-configuration" not in page and CONTROL_TOKEN not in page
    single = await (await client.get("/backtests/desk/queued")).text()
    assert "No statistics yet." in single and "has no <code>spec.output</code>" in single
    assert 'id="panel-ranking"' not in single


async def test_a_backtests_page_opens_its_report_and_each_runs(console: Console) -> None:
    _, client = console
    page = await (await client.get("/backtests/research/ema-sweep")).text()
    assert '<a id="open-report" href="/backtests/research/ema-sweep/report">' in page
    links = re.findall(r'<a class="run-report" href="([^"]+)">report</a>', page)
    assert links == [
        "/backtests/research/ema-sweep/report?run=3",
        "/backtests/research/ema-sweep/report?run=0",
    ]
    queued = await (await client.get("/backtests/desk/queued")).text()
    assert 'id="open-report"' not in queued


async def test_the_report_is_served_sandboxed_as_its_own_page(console: Console) -> None:
    fake, client = console
    response = await client.get("/backtests/research/ema-sweep/report")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "script-src" not in policy and "default-src 'none'" in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    page = await response.text()
    assert "<h1>reports/research/ema-sweep/u-2/3.html</h1>" in page
    assert 'name="csrf-token"' not in page  # none of the console's page, its token included
    run = await client.get("/backtests/research/ema-sweep/report?run=0")
    assert "<h1>reports/research/ema-sweep/u-2/0.html</h1>" in await run.text()
    assert fake.report_files == [("research/ema-sweep", None), ("research/ema-sweep", 0)]


async def test_a_report_that_cannot_be_read_is_said_on_a_console_page(console: Console) -> None:
    fake, client = console
    queued = await client.get("/backtests/desk/queued/report")
    assert queued.status == 409
    assert "has no spec.output claim" in await queued.text()
    fake.backtests["desk/queued"]["spec"]["output"] = {"claimName": "results"}
    pending = await client.get("/backtests/desk/queued/report")
    assert pending.status == 409
    assert "is Pending: its report is written when it has Succeeded" in await pending.text()
    bad = await client.get("/backtests/research/ema-sweep/report?run=x")
    assert bad.status == 400 and "is not a run index" in await bad.text()
    beyond = await client.get("/backtests/research/ema-sweep/report?run=4")
    assert beyond.status == 409 and "--run: 4 is not a run" in await beyond.text()
    assert (await client.get("/backtests/desk/nope/report")).status == 404
    assert fake.report_files == []


async def test_backtests_refusals_and_unknown_names(console: Console) -> None:
    fake, client = console
    assert (await client.get("/backtests/desk/nope")).status == 404
    fake.forbid_backtests = True
    response = await client.get("/backtests")
    assert response.status == 403
    assert "Refused by Kubernetes RBAC" in await response.text()
