"""One replay's report: its equity path, round trips and statistics, built after the replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from hean_engine.model.orders import Fill
from hean_engine.report.equity import EquityPath, equity_path
from hean_engine.report.stats import Stats, compute_stats
from hean_engine.report.trades import Books, Trips, round_trips


@dataclass(frozen=True, slots=True)
class Marks:
    """The prices a replay valued the books at, in time order (see equity.py)."""

    ts: Sequence[int] | npt.NDArray[np.int64]
    prices: Sequence[float] | npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BacktestReport:
    title: str  # e.g. "btcusd-ema: ema_cross on BTC/USD"
    quote_ccy: str
    path: EquityPath
    trips: Trips
    stats: Stats
    fills: Sequence[Fill]


def build_report(title: str, marks: Marks, fills: Sequence[Fill], books: Books) -> BacktestReport:
    """Equity path, round trips and statistics of one replay (ReportError without marks)."""
    path = equity_path(marks.ts, marks.prices, fills, books)
    opening = Decimal(repr(float(path.prices[0])))
    trips = round_trips(fills, books, opening_price=opening, opening_ts=path.first_ts)
    return BacktestReport(
        title=title,
        quote_ccy=books.quote_ccy,
        path=path,
        trips=trips,
        stats=compute_stats(path, trips, len(fills)),
        fills=fills,
    )
