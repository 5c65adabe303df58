"""Tick path benchmark: the shared BNT/ETH trades through `market_maker`, and where time goes.

Replays bnteth_binance_trades_2017-2018.csv.gz (438,212 trades) with
examples/replay-bnteth-mm.yaml in this process, pinned to one CPU, and prints
trade events per second end to end, the orders, cancels and fills it made,
then where the CPU time goes:

- reading: the replay's reading alone (`feed_trades` into a consumer that does
  nothing: gunzip, parse, checks, Trade objects);
- dispatch: the kernel with a strategy that does nothing (the market data path
  without orders, fed in the replay's blocks), less the reading;
- the rest (strategy, risk, orders, fills, ledger): the full replay minus both;
- a profile of one full replay, its self time summed per engine package (the
  profiler inflates call-heavy code, so read it as shares, not seconds).

    .venv/bin/python benchmarks/tick_path.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from hean_engine.app.assembly import build_simulated_engine
from hean_engine.app.config import load_config
from hean_engine.app.replay import run_replay
from hean_engine.data.files import feed_trades
from hean_engine.model.market import Trade

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "bnteth_binance_trades_2017-2018.csv.gz"
CONFIG = ROOT / "examples" / "replay-bnteth-mm.yaml"


def cpu_seconds(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def component(filename: str) -> str:
    """The engine package a profiled function belongs to, or what else it is."""
    marker = "hean_engine" + os.sep
    if marker in filename:
        return filename.split(marker, 1)[1].split(os.sep, 1)[0].removesuffix(".py")
    if filename == "~":
        return "builtins (Decimal, list, dict ... called from the above)"
    return "other Python (stdlib, dataclass __init__)"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    identity, spec = load_config(CONFIG)

    walls, cpus = [], []
    summary: dict[str, object] = {}
    for _ in range(args.repeat):
        started = time.process_time()
        summary = run_replay(identity, spec, args.data)
        cpus.append(time.process_time() - started)
        walls.append(float(summary["wall_seconds"]))  # type: ignore[arg-type]
    events = int(summary["events"])  # type: ignore[call-overload]

    reading = min(cpu_seconds(lambda: feed_trades(args.data, len, len)) for _ in range(2))

    def dispatch_only() -> None:
        engine = build_simulated_engine(identity, spec)

        def nothing(trade: Trade) -> None:
            pass

        engine.strategy.on_trade = nothing  # type: ignore[method-assign]
        kernel = engine.kernel
        feed_trades(args.data, kernel.on_trade, kernel.on_trades)  # as the replay does

    dispatch = min(cpu_seconds(dispatch_only) for _ in range(2)) - reading
    full = min(cpus)

    profile = cProfile.Profile()
    profile.enable()
    run_replay(identity, spec, args.data)
    profile.disable()
    shares: Counter[str] = Counter()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, tottime, _, _) in stats.items():
        shares[component(filename)] += tottime
    total = sum(shares.values())

    print(f"data                {args.data.name}")
    print(f"python              {sys.version.split()[0]}")
    print(f"events              {events:,} trades")
    orders = summary["orders"]
    print(f"orders              {orders:,} submitted, by status {summary['orders_by_status']}")
    print(f"rejections          {summary['rejections']}")
    print(f"fills               {summary['fills']:,}; final equity {summary['final_equity']}")
    print(f"wall seconds        best {min(walls):.3f}  median {statistics.median(walls):.3f}")
    print(
        f"events per second   best {events / min(walls):,.0f} (replay wall); "
        f"{events / full:,.0f} (CPU, summary included)"
    )
    print(
        f"peak RSS            {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    print("CPU seconds, best of runs:")
    print(f"  full replay       {full:.3f} s  ({full / events * 1e6:.2f} us per trade)")
    print(f"  reading           {reading:.3f} s  ({reading / events * 1e6:.2f} us per trade)")
    print(f"  dispatch          {dispatch:.3f} s  ({dispatch / events * 1e6:.2f} us per trade)")
    rest = full - reading - dispatch
    print(
        f"  the rest          {rest:.3f} s  ({rest / events * 1e6:.2f} us per trade; "
        f"{rest / max(int(orders), 1) * 1e6:.1f} us per order)"
    )  # type: ignore[call-overload]
    print("profile, self time by package (shares):")
    for name, seconds in shares.most_common():
        print(f"  {name:45} {seconds / total:6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
