"""HEAN's statistics against backtesting.py 0.6.6's own, on the same trades.

A slice of the shared BTC/USD file (the first 30,000 one-minute candles,
about three weeks) goes through `hean engine replay` and through
benchmarks/peer_backtesting_py.py's EmaCross in backtesting.py (which
reproduces HEAN's fills and final equity on this data). Where the two define a
figure the same way it must agree to 1e-9 relative (backtesting.py computes in
floats) or to HEAN's reported precision (10 decimal places); where the
definitions differ, the test recomputes backtesting.py's definition from
HEAN's exact inputs and checks that it gives backtesting.py's number, so the
difference is the definition and nothing else (docs/backtesting.md).
"""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import math
import warnings
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from engine_support import EXAMPLES_DIR, REPO_ROOT
from hean_engine.app.config import load_config
from hean_engine.app.replay import replay
from hean_engine.model.money import fmt
from hean_engine.report.build import BacktestReport

pd = pytest.importorskip("pandas")
pytest.importorskip("backtesting", minversion="0.6.6")

CANDLES = 30_000
REL = 1e-9
PLACES = 1e-10  # HEAN reports ratios rounded to 10 decimal places


def _peer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "peer_backtesting_py", REPO_ROOT / "benchmarks" / "peer_backtesting_py.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(btcusd_candles_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    data = tmp_path_factory.mktemp("slice") / "btcusd-slice.csv"
    with gzip.open(btcusd_candles_file, "rt") as src, data.open("w") as out:
        out.writelines(itertools.islice(src, CANDLES + 1))  # the header and the candles
    identity, spec = load_config(EXAMPLES_DIR / "replay-btcusd.yaml")
    result = replay(identity, spec, data, with_report=True)
    assert result.report is not None
    peer = _peer()
    bt = peer.FractionalBacktest(
        peer.load(data),
        peer.EmaCross,
        cash=peer.CASH,
        commission=peer.COMMISSION,
        fractional_unit=peer.UNIT,
        trade_on_close=False,
        exclusive_orders=False,
        finalize_trades=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some trades remain open")
        warnings.filterwarnings("ignore", message=".*dayofweek is deprecated")  # in its _stats
        theirs = bt.run()
    return result.summary, result.report, theirs


def _close(ours: Decimal | str | None, theirs: float) -> bool:
    assert ours is not None
    return math.isclose(float(Decimal(ours)), float(theirs), rel_tol=REL, abs_tol=PLACES)


def test_the_same_trades_and_equity(runs: tuple[Any, ...]) -> None:
    summary, report, theirs = runs
    stats = summary["stats"]
    assert theirs["# Trades"] == stats["trades"] > 100
    assert _close(stats["finalEquity"], theirs["Equity Final [$]"])
    assert _close(stats["fees"], theirs["Commissions [$]"])
    # The equity at every candle close, not only at the end.
    curve = theirs["_equity_curve"]["Equity"].to_numpy()
    assert len(curve) == report.path.marks == CANDLES
    worst = max(abs(a - b) / b for a, b in zip(report.path.equity, curve, strict=True))
    assert worst < 1e-12


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("totalReturnPct", "Return [%]"),
        ("annualReturnPct", "CAGR [%]"),
        ("exposurePct", "Exposure Time [%]"),
        ("winRatePct", "Win Rate [%]"),
        ("bestTradePct", "Best Trade [%]"),
        ("worstTradePct", "Worst Trade [%]"),
        ("avgTradeReturnPct", "Expectancy [%]"),
    ],
)
def test_figures_defined_alike_agree(runs: tuple[Any, ...], ours: str, theirs: str) -> None:
    summary, _, bt = runs
    assert _close(summary["stats"][ours], bt[theirs]), (summary["stats"][ours], bt[theirs])


def test_max_drawdown_and_its_duration_agree(runs: tuple[Any, ...]) -> None:
    summary, _, bt = runs
    stats = summary["stats"]
    assert _close(stats["maxDrawdownPct"], -bt["Max. Drawdown [%]"])
    # backtesting.py rounds durations up to the data's period (a minute).
    theirs = bt["Max. Drawdown Duration"].total_seconds()
    assert theirs - 60 < float(stats["maxDrawdownDurationSeconds"]) <= theirs
    average = bt["Avg. Trade Duration"].total_seconds()
    assert average - 60 < float(stats["avgTradeDurationSeconds"]) <= average


def _their_daily(report: BacktestReport) -> list[float]:
    """backtesting.py's day returns: day closes' pct_change, so without HEAN's first day."""
    return [float(r) for r in report.stats.daily_returns[1:]]


def test_daily_returns_are_backtesting_py_s_but_for_the_first_day(runs: tuple[Any, ...]) -> None:
    _, report, bt = runs
    equity = bt["_equity_curve"]["Equity"]
    theirs = equity.resample("D").last().dropna().pct_change().dropna().to_numpy()
    ours = _their_daily(report)
    assert len(ours) == len(theirs) > 10
    assert all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15) for a, b in zip(ours, theirs, strict=True)
    )


def test_sharpe_sortino_calmar_differ_by_definition_only(runs: tuple[Any, ...]) -> None:
    """backtesting.py annualises a geometric mean daily return and divides by a volatility
    that compounds the variance; its Sortino and Calmar take that annual return as the
    numerator. The same formulas on HEAN's daily returns give backtesting.py's numbers."""
    summary, report, bt = runs
    daily = _their_daily(report)
    n = len(daily)
    gmean = math.exp(sum(math.log1p(r) for r in daily) / n) - 1
    annual = (1 + gmean) ** 365 - 1
    mean = sum(daily) / n
    var = sum((r - mean) ** 2 for r in daily) / (n - 1)
    vol = math.sqrt((var + (1 + gmean) ** 2) ** 365 - (1 + gmean) ** (2 * 365))
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in daily) / n) * math.sqrt(365)
    max_dd = float(Decimal(summary["stats"]["maxDrawdownPct"])) / 100
    assert math.isclose(annual * 100, bt["Return (Ann.) [%]"], rel_tol=1e-6)
    assert math.isclose(annual / vol, bt["Sharpe Ratio"], rel_tol=1e-6)
    assert math.isclose(annual / downside, bt["Sortino Ratio"], rel_tol=1e-6)
    assert math.isclose(annual / max_dd, bt["Calmar Ratio"], rel_tol=1e-6)
    # And HEAN's own definitions are not backtesting.py's (else this test would prove nothing).
    stats = summary["stats"]
    assert not math.isclose(float(stats["sharpe"]), bt["Sharpe Ratio"], rel_tol=1e-3)


def test_profit_factor_differs_by_definition_only(runs: tuple[Any, ...]) -> None:
    """HEAN: gross profit / gross loss in money; backtesting.py: the same over trade returns."""
    summary, report, bt = runs
    returns = [t.return_pct for t in report.trips.closed]
    gains = sum(r for r in returns if r > 0)
    losses = -sum(r for r in returns if r < 0)
    assert math.isclose(float(gains / losses), bt["Profit Factor"], rel_tol=REL)
    pnl = [t.pnl for t in report.trips.closed]
    ours = sum(p for p in pnl if p > 0) / -sum(p for p in pnl if p < 0)
    assert summary["stats"]["profitFactor"] == fmt(ours.quantize(Decimal("1e-10")))
