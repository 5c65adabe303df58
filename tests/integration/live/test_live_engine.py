"""A live engine against the exchange simulator: books, idempotence, drift, fail-closed start."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from live_support import (
    API_KEY,
    FAST_RETRY,
    PASSPHRASE,
    SECRET,
    AllowGate,
    LiveRun,
    Proto,
    live_spec,
    make_sim,
    run_live,
    signed_client,
    until,
)

from hean_contract.spec import EngineIdentity
from hean_engine.app.run import RunOptions, serve
from hean_engine.execution.live_venue import CLOCK_SKEW_MS
from hean_engine.model.errors import HeanError
from hean_engine.model.orders import RiskState
from hean_engine.net.exchange import create_client
from hean_engine.telemetry.logs import REDACTOR, configure_logging
from hean_sim.exchange.config import ApiKey

BALANCE_PATHS = {"binance": "/api/v3/account", "okx": "/api/v5/account/balance"}


async def _settle(run: LiveRun) -> str:
    """Stop trading, let the order in flight finish, reconcile once; the result."""
    assert run.runtime is not None
    run.runtime.kernel.pause()
    venue = run.session.venue
    await until(lambda: venue.idle.is_set() and not venue.in_flight, "the order path to drain")
    return await run.session.reconcile_once()


def _assert_books_equal_exchange(run: LiveRun) -> None:
    assert run.runtime is not None
    ledger = run.runtime.kernel.ledger
    totals = run.exchange_totals()
    assert ledger.position == totals["BTC"]
    assert ledger.quote == totals["USDT"]


def _assert_one_order_per_intent(run: LiveRun) -> None:
    orders = run.sim.orders(API_KEY)
    counts = Counter(o.client_order_id for o in orders)
    assert counts and max(counts.values()) == 1, counts.most_common(3)


async def test_a_live_engine_trades_and_its_books_equal_the_exchange(
    tmp_path: Path, proto: Proto
) -> None:
    sim = await make_sim(tmp_path, protocol=proto.name)
    run = LiveRun(sim, live_spec(sim.url, proto.name), tmp_path / "journal")
    observed: dict[str, object] = {}

    async def during(run: LiveRun) -> None:
        assert run.runtime is not None
        kernel = run.runtime.kernel
        await until(lambda: len(kernel.fills) >= 6, "six fills")
        observed["result"] = await _settle(run)
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{run.port}"
            async with http.get(f"{base}/status") as response:
                observed["status"] = await response.json()
            async with http.get(f"{base}/readyz") as response:
                observed["ready"] = response.status
            async with http.get(f"{base}/metrics") as response:
                observed["metrics"] = await response.text()

    try:
        runtime = await run_live(run, during)
    finally:
        await sim.stop()
    assert observed["result"] == "ok"
    _assert_books_equal_exchange(run)
    _assert_one_order_per_intent(run)
    # Every order the simulator holds is this engine's, fills are booked once each.
    ids = proto.client_ids("default", "live-test", "run00001aaaa")
    assert all(ids.is_ours(o.client_order_id) for o in sim.orders(API_KEY))
    fills = runtime.kernel.fills
    assert len({f.trade_id for f in fills}) == len(fills) == len(sim.trades(API_KEY))
    # Both charge the asset received: buys pay their fee in BTC.
    assert {f.fee_asset for f in fills if f.side.value == "buy"} == {"BTC"}
    status = observed["status"]
    assert isinstance(status, dict)
    assert status["mode"] == "live"
    assert status["lastReconcile"]["result"] == "ok"
    assert status["live"]["orders"]["unknownOutcomes"] == 0
    assert status["balances"]["BTC"] == format(run.exchange_totals()["BTC"].normalize(), "f")
    assert observed["ready"] == 200
    metrics = observed["metrics"]
    assert isinstance(metrics, str)
    assert (
        'hean_engine_reconciles_total{engine="live-test",engine_namespace="default",result="ok"}'
        in metrics
    )
    assert "hean_engine_exchange_drift{" in metrics
    text = run.logs.getvalue() + json.dumps(status) + metrics
    assert API_KEY not in text and SECRET not in text and PASSPHRASE not in text


async def _trade_through(
    tmp_path: Path,
    proto: Proto,
    fault: str,
    times: int,
    fills: int,
    sends: list[tuple[str, float]],
) -> LiveRun:
    """Trade until `fills` fills with the next `times` order requests failing as `fault`,
    then settle; the run, for its counters. `sends` gets (client id, monotonic time)
    of every order request the engine makes."""
    sim = await make_sim(tmp_path, protocol=proto.name)
    sim.faults.force(fault, times, method="POST", path=proto.order_path)
    run = LiveRun(sim, live_spec(sim.url, proto.name), tmp_path / "journal")

    async def during(run: LiveRun) -> None:
        assert run.runtime is not None
        # Before the first order: the sender only starts after the start-up reconcile.
        client = run.session.venue.client
        create = client.create_order

        async def recording(*args: Any, **kwargs: Any) -> Any:
            sends.append((args[5][proto.cid_param], time.monotonic()))
            return await create(*args, **kwargs)

        client.create_order = recording
        kernel = run.runtime.kernel
        await until(lambda: len(kernel.fills) >= fills, f"{fills} fills")
        assert await _settle(run) == "ok"

    try:
        await run_live(run, during)
    finally:
        await sim.stop()
    assert sim.faults.pending == 0
    _assert_one_order_per_intent(run)
    _assert_books_equal_exchange(run)
    return run


async def test_a_response_dropped_after_execution_never_becomes_a_second_order(
    tmp_path: Path, proto: Proto
) -> None:
    sends: list[tuple[str, float]] = []
    run = await _trade_through(tmp_path, proto, "drop", 3, 4, sends)
    stats = run.session.venue.stats
    assert len({cid for cid, _ in sends}) == len(sends)  # no intent was sent twice
    assert stats.unknown_outcomes >= 3
    assert stats.lookups_found >= 3
    assert stats.resends == 0  # each dropped order was found, none sent twice


async def test_a_request_that_never_arrived_is_sent_again_only_after_the_recv_window(
    tmp_path: Path, proto: Proto
) -> None:
    sends: list[tuple[str, float]] = []
    run = await _trade_through(tmp_path, proto, "reset", 2, 2, sends)
    stats = run.session.venue.stats
    assert stats.resends >= 2 and stats.lookups_absent >= 2
    # Each resend reuses the client id and waits out recvWindow (200 ms) + 1 s of skew
    # after the attempt whose outcome was unknown.
    first: dict[str, float] = {}
    gaps = []
    for cid, at in sends:
        if cid in first:
            gaps.append(at - first[cid])
        first[cid] = at
    assert len(gaps) >= 2
    assert min(gaps) >= (200 + CLOCK_SKEW_MS) / 1000


@pytest.mark.parametrize(
    ("policy", "state"), [("halt", RiskState.HALTED), ("reduce", RiskState.REDUCING)]
)
async def test_a_foreign_order_is_drift_and_moves_the_risk_state(
    tmp_path: Path, proto: Proto, policy: str, state: RiskState
) -> None:
    sim = await make_sim(tmp_path, protocol=proto.name)
    # Placed by hand on the same account before the engine starts.
    hand = signed_client(sim)
    try:
        await hand.load_markets()
        price = Decimal(str((await hand.fetch_ticker("BTC/USDT"))["last"]))
        await hand.create_order(
            "BTC/USDT",
            "limit",
            "buy",
            "0.1",
            str((price / 2).quantize(Decimal("0.01"))),
            {proto.cid_param: proto.hand_id("by-hand-1")},
        )
    finally:
        await hand.close()
    run = LiveRun(
        sim, live_spec(sim.url, proto.name, live={"onDrift": policy}), tmp_path / "journal"
    )

    readiness: list[tuple[bool, str]] = []

    async def during(run: LiveRun) -> None:
        assert run.runtime is not None
        runtime = run.runtime
        await until(lambda: run.session.started.is_set(), "the start-up reconcile")
        await until(lambda: runtime.kernel.events > 0, "market data")
        readiness.append(runtime.readiness())

    try:
        runtime = await run_live(run, during)
    finally:
        await sim.stop()
    report = runtime.last_reconcile
    assert report is not None and report.result == "drift"
    assert [o.client_order_id for o in report.foreign_orders or []] == [proto.hand_id("by-hand-1")]
    assert runtime.kernel.risk.state is state
    assert "foreign open order" in runtime.kernel.risk.state_reason
    assert not runtime.kernel.open  # the foreign order was reported, not adopted
    assert readiness == [(False, "waiting for a clean reconcile with the exchange")]


async def test_a_balance_changed_behind_the_engines_back_halts_it(
    tmp_path: Path, proto: Proto
) -> None:
    sim = await make_sim(tmp_path, protocol=proto.name)
    run = LiveRun(sim, live_spec(sim.url, proto.name), tmp_path / "journal")
    observed: dict[str, object] = {}

    async def during(run: LiveRun) -> None:
        assert run.runtime is not None
        await until(lambda: run.session.started.is_set(), "the start-up reconcile")
        assert await run.session.reconcile_once() == "ok"
        sim.adjust_balance(API_KEY, "USDT", "-250.5")
        observed["result"] = await run.session.reconcile_once()

    try:
        runtime = await run_live(run, during)
    finally:
        await sim.stop()
    assert observed["result"] == "drift"
    report = runtime.last_reconcile
    assert report is not None
    assert report.balances is not None
    usdt = report.balances["USDT"]
    assert Decimal(usdt.exchange) - Decimal(usdt.engine) == Decimal("-250.5")
    assert report.difference_value == "250.5"
    assert report.drift_since is not None
    assert runtime.kernel.risk.state is RiskState.HALTED


async def test_the_engine_stays_not_ready_and_sends_nothing_until_the_exchange_answers(
    tmp_path: Path, proto: Proto
) -> None:
    sim = await make_sim(tmp_path, protocol=proto.name)
    sim.faults.force("503", 6, method="GET", path=BALANCE_PATHS[proto.name])
    run = LiveRun(sim, live_spec(sim.url, proto.name), tmp_path / "journal")
    seen: list[tuple[bool, str]] = []

    async def during(run: LiveRun) -> None:
        assert run.runtime is not None
        runtime = run.runtime
        await until(
            lambda: (
                runtime.last_reconcile is not None and runtime.last_reconcile.result == "failed"
            ),
            "a failed start",
        )
        seen.append(runtime.readiness())
        assert not sim.orders(API_KEY)
        await until(lambda: run.session.started.is_set(), "the start-up reconcile")

    try:
        runtime = await run_live(run, during)
    finally:
        await sim.stop()
    assert seen[0][0] is False
    assert run.session.counters.failed >= 1
    assert runtime.last_reconcile is not None
    assert runtime.last_reconcile.result in ("ok", "inconclusive")


async def test_a_restart_resolves_the_journal_by_client_order_id(
    tmp_path: Path, proto: Proto
) -> None:
    sim = await make_sim(tmp_path, protocol=proto.name)
    journal_dir = tmp_path / "journal"
    ids = proto.client_ids("default", "live-test", "previous1234")
    executed, never_sent = ids.next(), ids.next()
    hand = signed_client(sim)
    try:
        await hand.load_markets()
        await hand.create_order(
            "BTC/USDT", "market", "buy", "0.01", None, {proto.cid_param: executed}
        )
    finally:
        await hand.close()
    # What a killed predecessor left: two intents, no outcomes.
    journal_dir.mkdir()
    now_ms = int(time.time() * 1000)
    lines = [
        {"t": "run", "run": "previous1234", "ts": now_ms},
        {
            "t": "intent",
            "cid": executed,
            "side": "buy",
            "type": "market",
            "qty": "0.01",
            "price": None,
            "tag": "",
            "ts": now_ms,
        },
        {
            "t": "intent",
            "cid": never_sent,
            "side": "buy",
            "type": "market",
            "qty": "0.01",
            "price": None,
            "tag": "",
            "ts": now_ms,
        },
    ]
    (journal_dir / "journal.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    run = LiveRun(sim, live_spec(sim.url, proto.name), journal_dir)
    started_at = time.monotonic()

    async def during(run: LiveRun) -> None:
        await until(lambda: run.session.started.is_set(), "the start-up reconcile")

    try:
        runtime = await run_live(run, during)
    finally:
        await sim.stop()
    assert run.session.journal_recovery == {"found": 1, "absent": 1}
    # "absent" only after the recvWindow (200 ms) plus 1 s of skew had passed
    assert run.session.venue.stats.lookups_absent == 1
    assert time.monotonic() - started_at >= 1.2
    assert runtime.kernel.ledger.position == run.exchange_totals()["BTC"] > 0
    assert [o.client_order_id for o in sim.orders(API_KEY)] == [executed]
    # Both are resolved: a new start has nothing left to resolve.
    text = (journal_dir / "journal.jsonl").read_text()
    assert '"status":"absent"' in text.replace(" ", "")


async def test_a_wrong_secret_is_a_clear_start_failure_that_never_shows_the_keys(
    tmp_path: Path, proto: Proto
) -> None:
    # The account exists with another secret: every signed request is refused
    # (Binance -1022, OKX 50113).
    sim = await make_sim(
        tmp_path,
        protocol=proto.name,
        keys=[ApiKey(API_KEY, "a-different-secret-0000", PASSPHRASE)],
    )
    logs = io.StringIO()
    configure_logging(stream=logs)
    REDACTOR.register(API_KEY)
    REDACTOR.register(SECRET)
    REDACTOR.register(PASSPHRASE)
    client = create_client(live_spec(sim.url, proto.name).exchange, credentials=proto.credentials())
    options = RunOptions(
        host="127.0.0.1", port=0, gate=AllowGate(), journal_dir=tmp_path / "j", retry=FAST_RETRY
    )
    try:
        with pytest.raises(HeanError) as info:
            await serve(
                EngineIdentity(name="e"), live_spec(sim.url, proto.name), options, client=client
            )
    finally:
        await sim.stop()
        configure_logging()
    message = str(info.value)
    assert "AuthenticationError" in message and proto.bad_signature_code in message
    assert not sim.orders(API_KEY)
    everything = message + logs.getvalue()
    assert SECRET not in everything and API_KEY not in everything
    assert PASSPHRASE not in everything


async def test_ccxt_errors_quoting_signed_urls_reach_the_logs_without_signature_or_keys(
    tmp_path: Path, proto: Proto
) -> None:
    sim = await make_sim(tmp_path, protocol=proto.name)
    # A 502 makes ccxt quote the whole signed request URL in its exception.
    sim.faults.force("502", 3, method="GET", path=proto.trades_path)
    run = LiveRun(sim, live_spec(sim.url, proto.name), tmp_path / "journal")

    async def during(run: LiveRun) -> None:
        await until(lambda: sim.faults.pending == 0, "the 502s")
        await until(lambda: run.session.started.is_set(), "the start-up reconcile")

    try:
        await run_live(run, during)
    finally:
        await sim.stop()
    text = run.logs.getvalue()
    quoted = [line for line in text.splitlines() if proto.trades_path in line]
    assert quoted, "ccxt's error text (with the URL) was logged"
    if proto.name == "binance":
        # Binance signs in the query string, so the quoted URL carries the signature.
        assert any("signature=[REDACTED]" in line for line in quoted)
        assert all("signature=[REDACTED]" in line for line in quoted if "signature=" in line)
    assert API_KEY not in text and SECRET not in text and PASSPHRASE not in text
