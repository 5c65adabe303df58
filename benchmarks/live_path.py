"""Live order path benchmark: intents through risk -> journal -> execution -> acknowledgement.

The engine's live venue (journal on disk, fsync'ed before every send) talks to
the exchange simulator on loopback through ccxt's real binance client
(request signing, response parsing). Three phases, each `--orders` market
buys submitted at once and sent one after another by the sender, as the
engine does:

1. journal with fsync (production): intents per second, the journal write's
   latency per order (p50/p99), and intent-to-acknowledgement latency;
2. journal without fsync: the same, to show what durability costs;
3. every order's response dropped by the simulator after execution: each
   order needs a lookup by client order id; the lookup's latency (p50/p99).

ccxt's own rate limiter is off (it spaces binance requests 50 ms apart, which
would measure the limiter), the simulator's weight limit is raised and its
order-count limit is off: Binance allows 100 orders per 10 s per account, so
at the exchange the order path is capped at 10 orders/s whatever the engine
does; this measures the engine.

    .venv/bin/python benchmarks/live_path.py [--orders 1000] [--data FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hean_contract.spec import EngineIdentity, parse_spec
from hean_engine.app.assembly import build_live_engine
from hean_engine.execution.client_ids import ClientOrderIds
from hean_engine.execution.journal import Journal
from hean_engine.execution.live_venue import LiveVenue
from hean_engine.model.clock import SYSTEM_CLOCK
from hean_engine.model.orders import OrderIntent, Side
from hean_engine.net.exchange import create_client
from hean_engine.net.retry import RetryPolicy
from hean_engine.telemetry.logs import configure_logging
from hean_sim.exchange import SimConfig, SimExchange
from hean_sim.exchange.config import ApiKey

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "btcusd_bitfinex_1m_2017-2018.csv.gz"
KEY = ApiKey("bench-api-key-000000000001", "bench-secret-0000000000000001")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _spec(endpoint: str) -> Any:
    return parse_spec(
        {
            "mode": "live",
            "exchange": {"id": "binance", "endpoint": endpoint, "credentialsSecret": "keys"},
            "market": {"symbol": "BTC/USDT"},
            "strategy": {"name": "ema_cross", "params": {"quantity": "0.01"}},
            "risk": {
                "maxOrderNotional": "1000000",
                "maxPositionNotional": "1000000000",
                "maxOpenOrders": 1000,
                "maxDailyLoss": "1000000",
                "maxDrawdownPct": "99",
                "maxOrdersPerMinute": 100000,
            },
        }
    )


async def _phase(
    sim: SimExchange, orders: int, journal_dir: Path, *, fsync: bool, drop: bool
) -> dict[str, float]:
    spec = _spec(sim.url)
    client = create_client(spec.exchange, credentials={"apiKey": KEY.api_key, "secret": KEY.secret})
    client.enableRateLimit = False
    await client.load_markets()
    journal = Journal(journal_dir, SYSTEM_CLOCK, fsync=fsync)
    journal.open("bench")
    ids = ClientOrderIds("bench", "live-path", f"{int(time.time() * 1000):x}")
    venue = LiveVenue(
        client,
        "BTC/USDT",
        journal,
        ids,
        recv_window_ms=spec.live.recv_window_ms,
        policy=RetryPolicy(base_delay=0.0, max_delay=0.0, max_attempts=None),
    )
    venue.configure_market()
    engine = build_live_engine(EngineIdentity(name="bench"), spec, venue)
    engine.ledger.set_balances(await venue.balances())
    engine.ledger.mark_price = float((await client.fetch_ticker("BTC/USDT"))["last"])
    if drop:
        sim.faults.force("drop", orders, method="POST", path="/api/v3/order")
    sender = asyncio.create_task(venue.run_sender())
    intent = OrderIntent(Side.BUY, Decimal("0.01"))
    started = time.perf_counter()
    for _ in range(orders):
        if engine.kernel.submit(intent) is None:
            raise SystemExit(f"risk refused an intent: {dict(engine.risk.rejections)}")
    await venue.idle.wait()  # set once the sender has emptied its queue
    if venue.stats.acks != orders:
        raise SystemExit(f"{venue.stats.acks} of {orders} orders acknowledged")
    elapsed = time.perf_counter() - started
    sender.cancel()
    journal.close()
    await client.close()
    stats = venue.stats
    result = {
        "intents_per_second": orders / elapsed,
        "journal_p50_ms": _pct(list(stats.journal_seconds), 0.5),
        "journal_p99_ms": _pct(list(stats.journal_seconds), 0.99),
        "ack_p50_ms": _pct(list(stats.ack_seconds), 0.5),
        "ack_p99_ms": _pct(list(stats.ack_seconds), 0.99),
    }
    if drop:
        result["lookup_p50_ms"] = _pct(list(stats.lookup_seconds), 0.5)
        result["lookup_p99_ms"] = _pct(list(stats.lookup_seconds), 0.99)
        result["lookups_found"] = stats.lookups_found
        placed = [o.client_order_id for o in sim.orders(KEY.api_key)]
        result["orders_at_exchange"] = len(placed)
        result["duplicates"] = len(placed) - len(set(placed))
    return result


def _slice(source: Path, target: Path, rows: int) -> Path:
    with gzip.open(source, "rt") as stream, target.open("w") as out:
        for i, line in enumerate(stream):
            out.write(line)
            if i == rows:
                break
    return target


async def main_async(args: argparse.Namespace) -> None:
    configure_logging(level="error")  # the dropped responses would log a warning each
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = _slice(args.data, tmp_path / "candles.csv", 2000)
        print(f"python              {sys.version.split()[0]}")
        print(f"orders per phase    {args.orders:,} market buys of 0.01 BTC")
        for name, fsync, drop in (
            ("journal fsync", True, False),
            ("journal no fsync", False, False),
            ("every response dropped", True, True),
        ):
            first_ts = datetime.fromisoformat(data.read_text().splitlines()[1].split(",")[0])
            sim = SimExchange(
                SimConfig(
                    data=data,
                    symbol="BTC/USDT",
                    speed=None,
                    start=first_ts.astimezone(UTC),
                    keys=[KEY],
                    balances={"USDT": Decimal(100_000_000), "BTC": Decimal(0)},
                    weight_limit=100_000_000,
                )
            )
            sim.private.order_limits.admit = lambda api_key: {}  # type: ignore[method-assign]
            await sim.start()
            try:
                result = await _phase(
                    sim, args.orders, tmp_path / name.replace(" ", "-"), fsync=fsync, drop=drop
                )
            finally:
                await sim.stop()
            print(f"\n[{name}]")
            print(f"intents per second  {result['intents_per_second']:,.0f}")
            print(
                f"journal write       p50 {result['journal_p50_ms']:.3f} ms"
                f"  p99 {result['journal_p99_ms']:.3f} ms"
            )
            print(
                f"intent -> ack       p50 {result['ack_p50_ms']:.1f} ms"
                f"  p99 {result['ack_p99_ms']:.1f} ms  (queued behind earlier intents)"
            )
            if drop:
                print(
                    f"lookup by client id p50 {result['lookup_p50_ms']:.2f} ms"
                    f"  p99 {result['lookup_p99_ms']:.2f} ms"
                    f"  ({result['lookups_found']:,.0f} found)"
                )
                print(
                    f"orders at exchange  {result['orders_at_exchange']:,.0f}"
                    f" for {args.orders:,} intents ({result['duplicates']:,.0f} duplicates)"
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
