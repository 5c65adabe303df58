"""Scale benchmark: fixed cost vs per-candle cost of `hean engine replay`, at 10M candles.

Generates, in a temporary directory, the shared BTC/USD file replayed N times
(default 10: 10,257,080 candles): copy k has every year moved by 2k (2017 ->
2017 + 2k, 2018 -> 2018 + 2k; the two years hold no 29 February, so every
shifted minute exists), so time keeps increasing. Then runs, each as its own
process pinned to one CPU, `hean engine replay` of the 1x and the Nx file with
examples/replay-btcusd.yaml, and measures CPU seconds (user + sys) and wall:

- per-candle cost = (Nx - 1x) / (extra candles); fixed cost = 1x - candles x that;
- the strategy's own work per candle: `EmaCross.on_candle` alone over the 1x
  file's candles (in memory, a context that refuses every order);
- reading per candle: `read_candles` alone over the 1x file (gunzip, parse,
  checks, Candle objects);
- framework overhead per candle = per-candle cost - strategy work, split into
  reading and the rest (dispatch, valuation, risk, orders, ledger).

The replays run with their bytecode cached (no PYTHONDONTWRITEBYTECODE), as
an installed package does; the best of --repeat runs is kept.

    .venv/bin/python benchmarks/replay_scale.py [--copies 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from hean_contract.strategies import EmaCrossParams
from hean_engine.data.files import read_candles
from hean_engine.model.market import Candle
from hean_engine.model.orders import Order, OrderIntent
from hean_engine.strategy.ema_cross import EmaCross

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "btcusd_bitfinex_1m_2017-2018.csv.gz"
CONFIG = ROOT / "examples" / "replay-btcusd.yaml"


def generate(source: Path, copies: int, out: Path) -> None:
    """The source file `copies` times, each copy's years moved on by 2 per copy."""
    from isal import igzip

    with igzip.open(source, "rb") as stream:
        text = stream.read()
    header, _, body = text.partition(b"\n")
    body = b"\n" + body.rstrip(b"\n")  # every row starts after a newline
    with igzip.open(out, "wb", compresslevel=1) as sink:
        sink.write(header)
        for k in range(copies):
            shifted = body.replace(b"\n2018-", b"\n%d-" % (2018 + 2 * k))
            sink.write(shifted.replace(b"\n2017-", b"\n%d-" % (2017 + 2 * k)))
        sink.write(b"\n")


def replay(data: Path, cpu: int) -> dict[str, Any]:
    def pin() -> None:
        os.sched_setaffinity(0, {cpu})

    hean = str(Path(sys.executable).with_name("hean"))
    command = [hean, "engine", "replay", "--config", str(CONFIG), "--data", str(data), "--json"]
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, preexec_fn=pin, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"hean engine replay {data} failed")
    summary = json.loads(out)
    return {
        "wall": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024,
        "events": summary["events"],
        "fills": summary["fills"],
        "final_equity": summary["final_equity"],
    }


class _RefuseAll:
    """A strategy context that holds nothing and refuses every order."""

    position = Decimal(0)
    dust = Decimal(0)
    open_orders: list[Order] = []  # noqa: RUF012
    now = 0

    def submit(self, intent: OrderIntent) -> Order | None:
        return None

    def cancel(self, order_id: str) -> None:
        pass


def strategy_seconds(candles: list[Candle]) -> float:
    strategy = EmaCross(_RefuseAll(), EmaCrossParams(fast=12, slow=26, quantity=Decimal("0.01")))
    on_candle = strategy.on_candle
    started = time.process_time()
    for candle in candles:
        on_candle(candle)
    return time.process_time() - started


def reading_seconds(data: Path) -> tuple[float, int]:
    started = time.process_time()
    count = sum(1 for _ in read_candles(data))
    return time.process_time() - started, count


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each replay (best kept)")
    parser.add_argument("--keep", type=Path, help="write the generated file here and keep it")
    args = parser.parse_args()
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    with tempfile.TemporaryDirectory(prefix="hean-scale-") as tmp:
        big = args.keep or Path(tmp) / f"btcusd_x{args.copies}.csv.gz"
        started = time.perf_counter()
        generate(args.data, args.copies, big)
        print(
            f"generated           {big.name}: {big.stat().st_size / 1e6:.0f} MB gzipped, "
            f"{time.perf_counter() - started:.1f} s"
        )
        small = [replay(args.data, cpu) for _ in range(args.repeat)]
        large = [replay(big, cpu) for _ in range(args.repeat)]
    one = min(small, key=lambda r: r["cpu"])
    many = min(large, key=lambda r: r["cpu"])
    extra = many["events"] - one["events"]
    per_candle = (many["cpu"] - one["cpu"]) / extra
    per_candle_wall = (many["wall"] - one["wall"]) / extra
    fixed = one["cpu"] - one["events"] * per_candle
    candles = list(read_candles(args.data))
    strategy = min(strategy_seconds(candles) for _ in range(args.repeat)) / len(candles)
    del candles
    reading = min(reading_seconds(args.data)[0] for _ in range(args.repeat)) / one["events"]
    us = 1e6
    print(f"python              {sys.version.split()[0]}, pinned to CPU {cpu}")
    for name, run in (("1x", one), (f"{args.copies}x", many)):
        print(
            f"replay {name:4}         {run['events']:,} candles, {run['fills']:,} fills: "
            f"cpu {run['cpu']:.2f} s, wall {run['wall']:.2f} s, {run['rss']:.0f} MiB, "
            f"{run['events'] / run['wall']:,.0f} candles/s"
        )
    print(f"fixed cost          {fixed:.3f} s (start-up, config, summary at 1x)")
    print(f"per candle          {per_candle * us:.3f} us CPU ({per_candle_wall * us:.3f} us wall)")
    print(f"  strategy's own    {strategy * us:.3f} us (EmaCross.on_candle alone)")
    print(f"  framework         {(per_candle - strategy) * us:.3f} us, of which")
    print(f"    reading         {reading * us:.3f} us (gunzip, parse, checks, Candle objects)")
    print(
        f"    the rest        {(per_candle - strategy - reading) * us:.3f} us "
        "(dispatch, valuation, risk, orders, ledger)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
