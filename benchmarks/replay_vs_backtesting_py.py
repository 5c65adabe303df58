"""Side by side: `hean engine replay` and backtesting.py on the same job, as processes.

Runs, alternately and each as its own process pinned to the same CPU:
- HEAN: `hean engine replay --config examples/replay-btcusd.yaml --data FILE --json`
  (start-up, config, reading the gzipped CSV, the replay, the summary, its `stats`
  object and its JSON: since issue 16 `--json` always computes the statistics, as
  backtesting.py's `run()` computes its own, so the two do the same work);
- backtesting.py 0.6.6: `benchmarks/peer_backtesting_py.py --repeat 1` (start-up,
  imports, pandas.read_csv, the backtest and its statistics), in the interpreter
  given by --peer-python (default: this one; install the peer with
  `pip install backtesting==0.6.6`).

Both run as installed packages do: with their bytecode cached (the children's
environment has no PYTHONDONTWRITEBYTECODE, so an editable install's modules
are compiled once, not on every run), after one unmeasured warm-up run each
(which also puts the data file in the page cache).

Prints each run's wall seconds, CPU seconds and peak RSS (the child's ru_maxrss),
best and median per engine, the ratio of the medians (backtesting.py / HEAN), and
checks that HEAN made the expected fills and final equity (35,222 and
98250.4133075036839 USD for the shared file) and that backtesting.py agrees.

    .venv/bin/python benchmarks/replay_vs_backtesting_py.py [--rounds 3] [--cpu N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "btcusd_bitfinex_1m_2017-2018.csv.gz"
DEFAULT_CONFIG = ROOT / "examples" / "replay-btcusd.yaml"
PEER = ROOT / "benchmarks" / "peer_backtesting_py.py"
EXPECTED_FILLS = 35_222
EXPECTED_EQUITY = "98250.4133075036839"


def run(command: list[str], cpu: int | None) -> tuple[float, float, float, str]:
    """Wall s, CPU s (user + sys), peak RSS MiB and stdout of one process."""

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, preexec_fn=pin, cwd=ROOT, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def _row(index: int, name: str, wall: float, cpu: float, rss: float) -> None:
    print(f"round {index + 1} {name:15} wall {wall:6.3f} s  cpu {cpu:6.3f} s  {rss:6.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--peer-python", default=sys.executable)
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: lowest)")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args()
    cpu = (
        None
        if args.no_pin
        else (args.cpu if args.cpu is not None else min(os.sched_getaffinity(0)))
    )
    hean = str(Path(sys.executable).with_name("hean"))
    hean_cmd = [hean, "engine", "replay", "--config", str(args.config), "--data", str(args.data)]
    hean_cmd.append("--json")
    peer_cmd = [args.peer_python, str(PEER), "--repeat", "1", "--no-pin", "--data", str(args.data)]
    results: dict[str, list[tuple[float, float, float]]] = {"hean": [], "backtesting.py": []}
    summary: dict[str, object] = {}
    peer_out = ""
    print(f"data {args.data.name}, {'not pinned' if cpu is None else f'pinned to CPU {cpu}'}")
    run(hean_cmd, cpu)  # warm-up: bytecode caches, page cache
    run(peer_cmd, cpu)
    for index in range(args.rounds):
        wall, cpu_s, rss, out = run(hean_cmd, cpu)
        summary = json.loads(out)
        results["hean"].append((wall, cpu_s, rss))
        _row(index, "hean", wall, cpu_s, rss)
        wall, cpu_s, rss, peer_out = run(peer_cmd, cpu)
        results["backtesting.py"].append((wall, cpu_s, rss))
        _row(index, "backtesting.py", wall, cpu_s, rss)
    medians = {}
    for name, rows in results.items():
        walls, cpus, rsss = zip(*rows, strict=True)
        medians[name] = (statistics.median(walls), statistics.median(cpus))
        print(
            f"{name:15} wall best {min(walls):.3f} median {statistics.median(walls):.3f} s; "
            f"cpu best {min(cpus):.3f} median {statistics.median(cpus):.3f} s; "
            f"peak RSS max {max(rsss):.1f} MiB"
        )
    ratio_wall = medians["backtesting.py"][0] / medians["hean"][0]
    ratio_cpu = medians["backtesting.py"][1] / medians["hean"][1]
    print(f"ratio (backtesting.py / hean, medians): wall {ratio_wall:.2f}x, cpu {ratio_cpu:.2f}x")
    fills, equity = summary["fills"], summary["final_equity"]
    peer_fills = re.search(r"\(([\d,]+) fills\)", peer_out)
    peer_equity = re.search(r"final equity\s+([\d.]+)", peer_out)
    print(f"hean fills {fills:,}, final equity {equity}")
    if peer_fills and peer_equity:
        print(f"backtesting.py fills {peer_fills.group(1)}, final equity {peer_equity.group(1)}")
    ok = fills == EXPECTED_FILLS and equity == EXPECTED_EQUITY
    if args.data == DEFAULT_DATA and args.config == DEFAULT_CONFIG:
        print("fills and final equity as expected" if ok else "UNEXPECTED fills or final equity")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
