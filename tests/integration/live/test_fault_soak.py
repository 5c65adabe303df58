"""A live engine through a few thousand requests with a fifth of them failing.

Server errors, 429 bursts, connection resets, timeouts, and order requests
executed but answered with a dropped connection, seeded. The engine must stay
up, keep trading, never mistake a fault for drift, and end reconciled: its
books equal the simulator's, every order on the account is one of its intents,
and nothing is left in flight. Once per protocol (Binance's, OKX's), with the
same faults in each exchange's own error shapes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from live_support import API_KEY, LiveRun, Proto, live_spec, make_sim, run_live, until

from hean_engine.model.orders import RiskState
from hean_sim.exchange.faults import Fault, FaultPlan

SEED = 7
REQUESTS = 3000
# Per request, one draw: 5xx 7%, 429 3% (bursts of 2), reset 4%, timeout 3%,
# and on order requests "execute then drop" 5%.
FAULTS = "5xx=0.07,429=0.03:2,reset=0.04,timeout=0.03:20ms,drop=0.05"


async def test_a_fifth_of_requests_failing_loses_nothing(tmp_path: Path, proto: Proto) -> None:
    sim = await make_sim(tmp_path, protocol=proto.name, candles=20_000, **proto.unlimited())
    plan = FaultPlan.parse(FAULTS, seed=SEED)
    plan.retry_after = 0  # honoured like any other; a 1 s wait per 429 would only slow the test
    sim.faults = plan
    requests = Counter[str]()
    draw = plan.draw

    def counting_draw(method: str, path: str, mutates: bool) -> Fault | None:
        requests[path] += 1
        return draw(method, path, mutates)

    plan.draw = counting_draw  # type: ignore[method-assign]
    run = LiveRun(sim, live_spec(sim.url, proto.name), tmp_path / "journal")
    observed: dict[str, object] = {}

    async def during(run: LiveRun) -> None:
        assert run.runtime is not None
        runtime = run.runtime
        # Enough requests, and enough orders among them for the drops to count
        # (a loaded machine places fewer orders per request).
        await until(
            lambda: sum(requests.values()) >= REQUESTS and plan.injected[Fault.DROP] >= 5,
            f"{REQUESTS} requests and 5 dropped order responses",
            seconds=240,
        )
        observed["fills_under_faults"] = len(runtime.kernel.fills)
        observed["drift_under_faults"] = run.session.counters.drift
        sim.faults = FaultPlan()  # the storm ends
        runtime.kernel.pause()
        venue = run.session.venue
        await until(lambda: venue.idle.is_set() and not venue.in_flight, "the order path to drain")
        observed["result"] = await run.session.reconcile_once()

    try:
        runtime = await run_live(run, during, limit_seconds=300)
    finally:
        await sim.stop()
    total = sum(requests.values())
    injected = sum(plan.injected.values())
    assert total >= REQUESTS
    assert 0.15 <= injected / total <= 0.3, (injected, total, plan.injected)
    assert plan.injected[Fault.DROP] >= 5 and plan.injected[Fault.RESET] >= 20
    assert observed["result"] == "ok"
    assert observed["drift_under_faults"] == 0  # a fault is never mistaken for drift
    assert runtime.kernel.risk.state is RiskState.ACTIVE
    assert isinstance(observed["fills_under_faults"], int) and observed["fills_under_faults"] >= 10
    ledger = runtime.kernel.ledger
    totals = run.exchange_totals()
    assert (ledger.position, ledger.quote) == (totals["BTC"], totals["USDT"])
    orders = Counter(o.client_order_id for o in sim.orders(API_KEY))
    assert max(orders.values()) == 1
    ids = proto.client_ids("default", "live-test", "run00001aaaa")
    assert all(ids.is_ours(cid) for cid in orders)
    stats = run.session.venue.stats
    assert stats.unknown_outcomes > 0 and stats.lookups_found > 0
    assert len({f.trade_id for f in runtime.kernel.fills}) == len(sim.trades(API_KEY))
