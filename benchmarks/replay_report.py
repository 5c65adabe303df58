"""Report benchmark: what statistics and the HTML report add to a replay.

The whole shared BTC/USD candle file through ema_cross (examples/replay-btcusd.yaml),
alternately:
- plain: `run_replay` (no window, no statistics: the reader calls the kernel);
- report: `replay(..., with_report=True)` (the marks recorded during the replay,
  then the equity path, round trips and statistics) and `render_report`.
Prints wall seconds for each phase, best and median of --repeat runs, the
HTML's size and peak RSS. Pinned to one CPU, like engine_replay.py.

    .venv/bin/python benchmarks/replay_report.py [--repeat 3] [--data FILE]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from hean_engine.app.config import load_config
from hean_engine.app.replay import replay, run_replay
from hean_engine.report.html import render_report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "btcusd_bitfinex_1m_2017-2018.csv.gz"
DEFAULT_CONFIG = ROOT / "examples" / "replay-btcusd.yaml"


def _line(name: str, values: list[float]) -> str:
    return f"{name:<26}best {min(values):.3f}  median {statistics.median(values):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = parser.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    identity, spec = load_config(args.config)
    plain: list[float] = []
    recorded: list[float] = []
    stats: list[float] = []
    html: list[float] = []
    size = fills = 0
    for _ in range(args.repeat):
        started = time.perf_counter()
        run_replay(identity, spec, args.data)
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = replay(identity, spec, args.data, with_report=True)
        total = time.perf_counter() - started
        recorded.append(result.summary["wall_seconds"])
        stats.append(total - result.summary["wall_seconds"])
        assert result.report is not None
        started = time.perf_counter()
        page = render_report(result.report)
        html.append(time.perf_counter() - started)
        size, fills = len(page.encode()), result.summary["fills"]
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"data                      {args.data.name}")
    print(f"python                    {sys.version.split()[0]}")
    print(f"fills                     {fills:,}")
    print(f"runs                      {args.repeat}")
    print(_line("plain replay s", plain))
    print(_line("replay recording marks s", recorded))
    print(_line("statistics s", stats))
    print(_line("HTML s", html))
    print(f"HTML size                 {size:,} bytes")
    print(f"peak RSS                  {peak_rss_mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
