"""Replay benchmark: the whole shared BTC/USD candle file through ema_cross.

Prints candle events per second end to end (reading and parsing the gzipped
CSV included, config validation excluded), wall time and peak RSS. The
process pins itself to one CPU so that the figure is a one-core figure.

    .venv/bin/python benchmarks/engine_replay.py [--repeat 3] [--data FILE]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
from pathlib import Path

from hean_engine.app.config import load_config
from hean_engine.app.replay import run_replay

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "btcusd_bitfinex_1m_2017-2018.csv.gz"
DEFAULT_CONFIG = ROOT / "examples" / "replay-btcusd.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = parser.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    identity, spec = load_config(args.config)
    rates: list[float] = []
    walls: list[float] = []
    events = fills = 0
    for _ in range(args.repeat):
        summary = run_replay(identity, spec, args.data)
        events, fills = summary["events"], summary["fills"]
        walls.append(summary["wall_seconds"])
        rates.append(summary["events_per_second"])
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"data                {args.data.name}")
    print(f"python              {sys.version.split()[0]}")
    print(f"events              {events:,} candles, {fills:,} fills")
    print(f"runs                {args.repeat}")
    print(f"wall seconds        best {min(walls):.3f}  median {statistics.median(walls):.3f}")
    print(f"events per second   best {max(rates):,.0f}  median {statistics.median(rates):,.0f}")
    print(f"peak RSS            {peak_rss_mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
