"""Report benchmark: what statistics and the HTML report add to a replay.

The whole shared BTC/USD candle file through ema_cross (examples/replay-btcusd.yaml),
alternately:
- plain: `run_replay` (no window, no statistics: the reader calls the kernel);
- report: `replay(..., with_report=True)` (the marks recorded during the replay,
  then the equity path, round trips and statistics) and `render_report`.
Prints CPU seconds (this process's, so another process sharing the CPU does
not count) and wall seconds for each phase, best and median of --repeat runs,
and the HTML's size. Pinned to one CPU, like engine_replay.py.

    .venv/bin/python benchmarks/replay_report.py [--repeat 3] [--data FILE]
"""

from __future__ import annotations

import argparse
import os
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


def _line(name: str, cpu: list[float], wall: list[float]) -> str:
    return (
        f"{name:<16}CPU best {min(cpu):.3f}  median {statistics.median(cpu):.3f}   "
        f"wall best {min(wall):.3f}  median {statistics.median(wall):.3f}"
    )


class _Phase:
    """CPU and wall seconds of consecutive phases of one run."""

    def __init__(self) -> None:
        self.cpu: dict[str, list[float]] = {}
        self.wall: dict[str, list[float]] = {}
        self._mark()

    def _mark(self) -> None:
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def done(self, name: str) -> None:
        self.cpu.setdefault(name, []).append(time.process_time() - self._cpu)
        self.wall.setdefault(name, []).append(time.perf_counter() - self._wall)
        self._mark()


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
    phases = _Phase()
    size = fills = 0
    for _ in range(args.repeat):
        phases._mark()
        run_replay(identity, spec, args.data)
        phases.done("plain replay")
        result = replay(identity, spec, args.data, with_report=True)
        phases.done("replay + stats")
        assert result.report is not None
        page = render_report(result.report)
        phases.done("HTML")
        size, fills = len(page.encode()), result.summary["fills"]
    print(f"data            {args.data.name}")
    print(f"python          {sys.version.split()[0]}")
    print(f"fills           {fills:,}")
    print(f"runs            {args.repeat}, {'not pinned' if args.no_pin else 'pinned to one CPU'}")
    for name in phases.cpu:
        print(_line(name, phases.cpu[name], phases.wall[name]))
    print(f"HTML size       {size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
