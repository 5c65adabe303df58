"""Peer benchmark: backtesting.py on the same job as engine_replay.py.

The whole shared BTC/USD candle file through a long-only EMA cross in
backtesting.py (PyPI `backtesting`), end to end: from pandas.read_csv of the
gzipped CSV until Backtest.run() returns (its statistics included). Prints
candles per second (1,025,708 candles / wall seconds), wall and CPU seconds,
peak RSS, trade and fill counts and the interpreter version; best and median
of --repeat runs. The process pins itself to one CPU, as engine_replay.py does
(CPU seconds well below wall seconds means another process shared that CPU).

It needs its own venv, not the project's:

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install backtesting
    /tmp/peers/bin/python benchmarks/peer_backtesting_py.py [--repeat 3] [--data FILE]

Strategy, as hean's ema_cross (docs/strategies.md, examples/replay-btcusd.yaml):
- fast=12 and slow=26 EMAs of the close, alpha = 2/(n+1), seeded with the first
  close: pandas ewm(span=n, adjust=False), NOT the default adjust=True;
- no signal before the slow-th candle; fast going from <= slow to > slow while
  flat buys 0.01 BTC, fast going from >= slow to < slow while long closes the
  position; market orders fill at the next candle's open;
- commission 0.001 of notional per fill, cash 100,000 USD, no slippage.

Quantity: backtesting.py trades whole units (a size below 1 means a fraction of
equity), so 0.01 BTC is not expressible directly. The script uses the library's
own FractionalBacktest(fractional_unit=0.01), which multiplies OHLC by 0.01 and
divides volume by 0.01: one unit is then 0.01 BTC and `self.buy(size=1)` buys
exactly our quantity; cash, commission and P&L stay in USD. The EMAs are
computed on an extra, unscaled `CloseUSD` column so that the crossings are the
same floats as hean's (scaled closes could break exact ties differently).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting import __version__ as backtesting_version
from backtesting.lib import FractionalBacktest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "btcusd_bitfinex_1m_2017-2018.csv.gz"

FAST = 12
SLOW = 26
UNIT = 0.01  # BTC per backtesting.py unit; size=1 is hean's quantity "0.01"
CASH = 100_000
COMMISSION = 0.001


def ema(values: Any, length: int) -> np.ndarray:
    """alpha = 2/(length+1), seeded with the first value (adjust=False)."""
    return pd.Series(values).ewm(span=length, adjust=False).mean().to_numpy()


class EmaCross(Strategy):
    fast_n = FAST
    slow_n = SLOW

    def init(self) -> None:
        close = self.data.CloseUSD
        self.fast = self.I(ema, close, self.fast_n, name=f"EMA{self.fast_n}")
        self.slow = self.I(ema, close, self.slow_n, name=f"EMA{self.slow_n}")

    def next(self) -> None:
        if len(self.data) < self.slow_n:
            return
        fast, slow = self.fast, self.slow
        f1, s1 = fast[-1], slow[-1]
        f0, s0 = fast[-2], slow[-2]
        if f1 > s1:
            if f0 <= s0 and not self.position:
                self.buy(size=1)
        elif f1 < s1 and f0 >= s0 and self.position.is_long:
            self.position.close()


def load(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path)
    # format="ISO8601" takes the fast ISO path (an explicit strftime format with a
    # literal Z, or read_csv(parse_dates=...), is over ten times slower here).
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), format="ISO8601"))
    df.columns = ["Open", "High", "Low", "Close", "Volume"]
    df["CloseUSD"] = df["Close"]  # unscaled copy for the EMAs
    return df


def run_once(path: Path) -> tuple[float, float, int, pd.Series]:
    """Wall seconds, CPU seconds, candles and Backtest.run()'s statistics."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    df = load(path)
    bt = FractionalBacktest(
        df,
        EmaCross,
        cash=CASH,
        commission=COMMISSION,
        fractional_unit=UNIT,
        trade_on_close=False,
        exclusive_orders=False,
        finalize_trades=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some trades remain open")
        stats = bt.run()
    wall = time.perf_counter() - started
    return wall, time.process_time() - cpu_started, len(df), stats


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = parser.parse_args()
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    walls: list[float] = []
    cpus: list[float] = []
    candles = 0
    stats: pd.Series | None = None
    for _ in range(args.repeat):
        wall, cpu, candles, stats = run_once(args.data)
        walls.append(wall)
        cpus.append(cpu)
    assert stats is not None
    rates = [candles / w for w in walls]
    closed = int(stats["# Trades"])
    still_open = len(stats["_strategy"].trades)
    fills = 2 * closed + still_open
    trades = stats["_trades"]
    fees = float(trades["Commission"].sum()) if closed else 0.0
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"data                {args.data.name}")
    print(f"python              {sys.version.split()[0]} ({sys.executable})")
    versions = f"{backtesting_version}, pandas {pd.__version__}, numpy {np.__version__}"
    print(f"backtesting.py      {versions}")
    print(f"candles             {candles:,}")
    print(f"trades              {closed:,} closed, {still_open} open ({fills:,} fills)")
    print(f"final equity        {stats['Equity Final [$]']:.4f} USD (closed-trade fees {fees:.4f})")
    print(
        f"runs                {args.repeat}, {'not pinned' if args.no_pin else 'pinned to one CPU'}"
    )
    print(f"wall seconds        best {min(walls):.3f}  median {statistics.median(walls):.3f}")
    # CPU seconds well below wall seconds means another process shared the CPU.
    print(f"CPU seconds         best {min(cpus):.3f}  median {statistics.median(cpus):.3f}")
    print(f"candles per second  best {max(rates):,.0f}  median {statistics.median(rates):,.0f}")
    print(f"peak RSS            {peak_rss_mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
