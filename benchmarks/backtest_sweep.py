"""Sweep benchmark: 100 (fast, slow) pairs of ema_cross over the whole shared BTC/USD file.

Two ways, each end to end:

- HEAN: what a Backtest's Indexed Job runs, as local processes: one
  `hean engine backtest --runs runs.json --index I` per pair (each a fresh
  interpreter that reads the file, replays it and computes the statistics),
  at most --parallelism of them at once. Run once per parallelism limit given.
- vectorbt 1.2.0, in one process: import, read the CSV with pandas, the EMAs of
  every window (the engine's exact recursion, alpha = 2/(n+1) seeded with the
  first close, in numba), crossings acted on at the next candle's open, and one
  `Portfolio.from_signals` over all 100 columns, then each column's total
  return, Sharpe, max drawdown and trade count. The simulation is timed twice
  (the first call includes numba's compilation).

Prints one JSON object: the wall seconds of each, and both results of the first
pair (fills, final equity) so that the two can be seen to compute the same thing.

    .venv/bin/python benchmarks/backtest_sweep.py [--parallelism 1 2] [--pairs 100]
        [--skip-hean] [--skip-vectorbt] [--data FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "btcusd_bitfinex_1m_2017-2018.csv.gz"
CONFIG = ROOT / "examples" / "replay-btcusd.yaml"
START, END = "2017-01-01T00:00:00Z", "2019-01-01T00:00:00Z"  # the whole file
FASTS = (2, 4, 6, 8, 10, 12, 14, 16, 18, 20)
SLOWS = (26, 30, 40, 50, 60, 80, 100, 120, 160, 200)


def grid(pairs: int) -> list[dict[str, int]]:
    return [{"fast": f, "slow": s} for f in FASTS for s in SLOWS][:pairs]


def _config() -> dict[str, Any]:
    return dict(yaml.safe_load(CONFIG.read_text()))


# -- HEAN --------------------------------------------------------------------------


async def _one(command: list[str], slots: asyncio.Semaphore) -> dict[str, Any]:
    async with slots:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {err.decode()[-500:]}")
    result: dict[str, Any] = json.loads(out)
    return result


async def hean_sweep(data: Path, runs: list[dict[str, int]], parallelism: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hean-sweep-") as scratch:
        config = Path(scratch) / "engine.yaml"
        config.write_text(yaml.safe_dump(_config()))
        listed = Path(scratch) / "runs.json"
        listed.write_text(json.dumps(runs))
        base = [sys.executable, "-m", "hean_engine.cli", "engine", "backtest"]
        base += ["--config", str(config), "--runs", str(listed), "--data", str(data)]
        base += ["--from", START, "--to", END]
        slots = asyncio.Semaphore(parallelism)
        started = time.perf_counter()
        results = await asyncio.gather(
            *(_one([*base, "--index", str(i)], slots) for i in range(len(runs)))
        )
        wall = time.perf_counter() - started
    best = max(results, key=lambda r: Decimal(r["stats"]["sharpe"]))
    first = results[0]["stats"]
    return {
        "parallelism": parallelism,
        "runs": len(runs),
        "wall_seconds": round(wall, 2),
        "seconds_per_run": round(wall / len(runs), 3),
        "best_by_sharpe": {**runs[best["index"]], "sharpe": best["stats"]["sharpe"]},
        "first_pair": {"fills": first["fills"], "final_equity": first["finalEquity"]},
    }


# -- vectorbt -------------------------------------------------------------------------


def vectorbt_sweep(data: Path, runs: list[dict[str, int]]) -> dict[str, Any]:
    phases: dict[str, float] = {}
    mark = time.perf_counter()
    started = mark

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = round(now - mark, 3)
        mark = now

    import numba
    import numpy as np
    import pandas as pd
    import vectorbt as vbt

    lap("import")
    frame = pd.read_csv(data, usecols=["timestamp", "open", "close"])
    frame.index = pd.to_datetime(frame.pop("timestamp"), utc=True)
    lap("read_csv")
    spec = _config()["spec"]
    quantity = float(spec["strategy"]["params"]["quantity"])
    fee = float(spec["paper"]["feeRate"])
    cash = float(spec["paper"]["startingBalances"]["USD"])

    @numba.njit(cache=False)  # type: ignore[misc]
    def crossings(close: Any, fasts: Any, slows: Any) -> Any:
        """+1 golden, -1 death, 0 nothing; the engine's EMA recursion and warm-up."""
        rows, cols = close.shape[0], fasts.shape[0]
        out = np.zeros((rows, cols), dtype=np.int8)
        for c in range(cols):
            fa = 2.0 / (fasts[c] + 1)
            fk = 1.0 - fa
            sa = 2.0 / (slows[c] + 1)
            sk = 1.0 - sa
            fast = slow = close[0]
            relation = 0
            for i in range(rows):
                x = close[i]
                if i > 0:
                    fast = fa * x + fk * fast
                    slow = sa * x + sk * slow
                now = 1 if fast > slow else (-1 if fast < slow else 0)
                if now != relation and i + 1 >= slows[c]:
                    out[i, c] = now
                relation = now
        return out

    fasts = np.array([r["fast"] for r in runs], dtype=np.int64)
    slows = np.array([r["slow"] for r in runs], dtype=np.int64)
    signal = crossings(frame["close"].to_numpy(), fasts, slows)
    # acted on at the next candle's open (a market order fills there)
    acted = np.zeros_like(signal)
    acted[1:] = signal[:-1]
    columns = pd.MultiIndex.from_arrays([fasts, slows], names=["fast", "slow"])
    entries = pd.DataFrame(acted == 1, index=frame.index, columns=columns)
    exits = pd.DataFrame(acted == -1, index=frame.index, columns=columns)
    opens = frame["open"]
    lap("signals")

    def simulate() -> Any:
        return vbt.Portfolio.from_signals(
            frame["close"],
            entries,
            exits,
            price=opens,
            size=quantity,
            size_type="amount",
            fees=fee,
            init_cash=cash,
            direction="longonly",
            freq="1min",
        )

    portfolio = simulate()
    lap("from_signals_first")
    portfolio = simulate()
    lap("from_signals_again")
    total_return = portfolio.total_return()
    sharpe = portfolio.sharpe_ratio()
    drawdown = portfolio.max_drawdown()
    trades = portfolio.trades.count()
    lap("stats")
    wall = time.perf_counter() - started
    fills = int(portfolio.orders.count().iloc[0])
    best = sharpe.idxmax()
    return {
        "runs": len(runs),
        "wall_seconds": round(wall, 2),
        "phases": phases,
        "best_by_sharpe": {
            "fast": int(best[0]),
            "slow": int(best[1]),
            "sharpe": float(sharpe.max()),
        },
        "first_pair": {
            "fills": fills,
            "final_equity": float(portfolio.final_value().iloc[0]),
            "total_return_pct": float(total_return.iloc[0] * 100),
            "max_drawdown_pct": float(-drawdown.iloc[0] * 100),
            "trades": int(trades.iloc[0]),
        },
        "versions": {"vectorbt": vbt.__version__, "numba": numba.__version__},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-hean", action="store_true")
    parser.add_argument("--skip-vectorbt", action="store_true")
    args = parser.parse_args()
    runs = grid(args.pairs)
    out: dict[str, Any] = {"pairs": len(runs), "cpus": os.cpu_count(), "data": str(args.data)}
    if not args.skip_vectorbt:
        out["vectorbt"] = vectorbt_sweep(args.data, runs)
        print(json.dumps(out["vectorbt"]), file=sys.stderr, flush=True)
    if not args.skip_hean:
        out["hean"] = []
        for parallelism in args.parallelism:
            result = asyncio.run(hean_sweep(args.data, runs, parallelism))
            print(json.dumps(result), file=sys.stderr, flush=True)
            out["hean"].append(result)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
