"""A live engine's history equals the exchange's own trade list (simulator), on both backends."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from live_support import (
    API_KEY,
    SECRET,
    LiveRun,
    Proto,
    live_spec,
    make_sim,
    run_live,
    signed_client,
    until,
)

from hean_engine.history.store import Window, open_store
from history_support import PG_PASSWORD

TOKEN = "history-live-canary-2c5b81"


async def test_live_fills_and_orders_match_the_exchanges_trade_list(
    tmp_path: Path, history_target: str
) -> None:
    sim = await make_sim(tmp_path)
    run = LiveRun(sim, live_spec(sim.url), tmp_path / "journal")
    observed: dict[str, Any] = {}

    async def during(run: LiveRun) -> None:
        assert run.runtime is not None
        kernel = run.runtime.kernel
        await until(lambda: len(kernel.fills) >= 4, "four fills")
        kernel.pause()
        venue = run.session.venue
        await until(lambda: venue.idle.is_set() and not venue.in_flight, "the orders to settle")
        await venue.sync()
        # No token file in this run: the history is refused, like /control.
        url = f"http://127.0.0.1:{run.port}/fills"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            observed["status"] = response.status

    try:
        runtime = await run_live(run, during, history=history_target)
    finally:
        await sim.stop()
    assert observed["status"] == 403

    store = open_store(history_target, "default/live-test")
    try:
        fills = store.fills(Window(limit=1000)).items
        orders = store.orders(Window(limit=1000)).items
    finally:
        store.close()
    exchange = {str(t.id): t for t in sim.trades(API_KEY)}
    exchange_orders = {str(o.order_id): o for o in sim.orders(API_KEY)}
    # Every exchange trade is a fill, once, with the exchange's numbers exactly.
    assert [f.trade_id for f in fills] == sorted(exchange, key=int)
    assert len(fills) == len(runtime.kernel.fills) >= 4
    for f in fills:
        t = exchange[f.trade_id]
        assert (f.price, f.quantity, f.fee, f.fee_currency) == (
            t.price,
            t.qty,
            t.commission,
            t.commission_asset,
        )
        assert f.exchange_order_id == str(t.order_id)
        assert f.order_id == exchange_orders[f.exchange_order_id].client_order_id
        assert f.side == ("buy" if t.is_buyer else "sell")
    # Each order: submitted, acknowledged with the exchange's id, then filled.
    changes: dict[str, list[str]] = {}
    for o in orders:
        changes.setdefault(o.order_id, []).append(o.change)
    for f in fills:
        assert changes[f.order_id][:2] == ["submitted", "acknowledged"]
        assert changes[f.order_id][-1] == "filled"
    acked = {o.order_id: o.exchange_order_id for o in orders if o.change == "acknowledged"}
    assert all(exchange_orders[oid].client_order_id == cid for cid, oid in acked.items())
    lines = [json.loads(x) for x in run.logs.getvalue().splitlines() if x]
    assert sorted(x["trade_id"] for x in lines if x["event"] == "fill") == sorted(exchange)
    text = run.logs.getvalue()
    for secret in (API_KEY, SECRET, PG_PASSWORD, TOKEN):
        assert secret not in text
    assert Decimal(0) not in {f.quantity for f in fills}


async def test_fills_while_no_engine_ran_are_recorded_at_the_next_start(
    tmp_path: Path, proto: Proto
) -> None:
    """A pod killed with its order in flight: the order fills on the exchange while no
    engine runs (or the run dies before its batch is committed). The next start-up
    records that fill in the history (not in the books: they are the exchange's
    balances), so the history is the exchange's trade list again; a trade of someone
    trading by hand on the account is not the engine's and stays out."""
    sim = await make_sim(tmp_path, protocol=proto.name)
    target = str(tmp_path / "history.sqlite3")
    spec = live_spec(sim.url, proto.name)
    hand_id = proto.hand_id("by-hand-1")
    journal = tmp_path / "journal"

    async def two_fills(run: LiveRun) -> None:
        assert run.runtime is not None
        kernel = run.runtime.kernel
        await until(lambda: len(kernel.fills) >= 2, "two fills")
        kernel.pause()
        venue = run.session.venue
        await until(lambda: venue.idle.is_set() and not venue.in_flight, "the orders to settle")
        await venue.sync()

    async def started(run: LiveRun) -> None:
        await until(lambda: run.session.started.is_set(), "the start-up reconcile")

    try:
        await run_live(LiveRun(sim, spec, journal), two_fills, history=target)
        # while no engine runs: an order of the engine's (sent by the killed run) fills,
        # and someone trades by hand
        missed = proto.client_ids("default", "live-test", "killed123456").next()
        hand = signed_client(sim)
        try:
            await hand.load_markets()
            for cid in (missed, hand_id):
                await hand.create_order(
                    "BTC/USDT", "market", "buy", "0.01", None, {proto.cid_param: cid}
                )
        finally:
            await hand.close()
        second = LiveRun(sim, spec, journal)
        await run_live(second, started, run_id="run00002bbbb", history=target)
    finally:
        await sim.stop()
    by_cid = {o.client_order_id: str(o.order_id) for o in sim.orders(API_KEY)}
    ours = [t for t in sim.trades(API_KEY) if str(t.order_id) != by_cid[hand_id]]
    store = open_store(target, "default/live-test")
    try:
        fills = store.fills(Window(limit=1000)).items
        orders = store.orders(Window(limit=1000)).items
        events = store.events(Window(limit=1000)).items
    finally:
        store.close()
    assert [f.trade_id for f in fills] == [str(t.id) for t in ours]
    (late,) = [f for f in fills if f.order_id == missed]
    trade = next(t for t in ours if str(t.order_id) == by_cid[missed])
    assert (late.exchange_order_id, late.price, late.quantity, late.fee, late.run_id) == (
        by_cid[missed],
        trade.price,
        trade.qty,
        trade.commission,
        "run00002bbbb",
    )
    assert [(o.change, o.status) for o in orders if o.order_id == missed] == [("filled", "filled")]
    assert [e.kind for e in events].count("missed_fill") == 1
    assert [x["event"] for x in second.log_lines() if x["event"] == "missed fill recorded"] == [
        "missed fill recorded"
    ]
    # the books were the exchange's: the missed fill was not booked a second time
    assert second.runtime is not None and not second.runtime.kernel.fills
