"""The statistics of a replay, exact: Decimal arithmetic throughout, no floats.

Money (equity, profit, fees) is exact. A figure that needs a division, a
square root or a fractional power (returns, ratios) is computed with 34
significant digits (`RATIO_DIGITS`) and reported rounded half-even to 10
decimal places (`PLACES`): far below any difference that matters, and
deterministic. A figure that is undefined for the data (a Sharpe ratio without
two daily returns, a profit factor without a losing trade) is None here; in
the JSON it is "0", so that every figure is a number, and its key is listed
in `undefined`.

The definitions (docs/backtesting.md says the same, with the differences from
backtesting.py's figures):
- daily returns: the equity at the last mark of each UTC day that has marks,
  relative to the previous such day (the first day to the starting equity);
- Sharpe = mean(daily) / stdev(daily, n - 1) x sqrt(365), risk-free rate 0;
- Sortino = mean(daily) / sqrt(mean(min(daily, 0)^2)) x sqrt(365), target 0;
- annual return = CAGR over the replay's span, a year being 365.25 days;
- Calmar = annual return % / max drawdown %;
- trades are round trips (trades.py); win rate, profit factor (gross profit /
  gross loss), expectancy (mean profit per trade) are over the closed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from hean_engine.model.money import HUNDRED, ZERO, fmt
from hean_engine.model.timefmt import DAY_MS, ms_to_iso
from hean_engine.report.equity import RATIO_DIGITS, EquityPath
from hean_engine.report.trades import RoundTrip, Trips

PLACES = Decimal("1e-10")
TRADING_DAYS = 365  # crypto markets trade every day: the Sharpe/Sortino annualisation
YEAR_MS = 36_525 * DAY_MS // 100  # 365.25 days: the CAGR's year (backtesting.py's)
ONE = Decimal(1)


def _ratio_context() -> Context:
    return Context(prec=RATIO_DIGITS, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Stats:
    first_ts: int
    last_ts: int
    starting_equity: Decimal
    final_equity: Decimal
    peak_equity: Decimal
    total_return_pct: Decimal
    annual_return_pct: Decimal | None
    volatility_ann_pct: Decimal | None
    sharpe: Decimal | None
    sortino: Decimal | None
    calmar: Decimal | None
    max_drawdown_pct: Decimal
    max_drawdown_peak_ts: int | None
    max_drawdown_trough_ts: int | None
    max_drawdown_duration_ms: int
    exposure_pct: Decimal
    trades: int
    open_trade: bool
    win_rate_pct: Decimal | None
    profit_factor: Decimal | None
    expectancy: Decimal | None
    avg_trade_return_pct: Decimal | None
    best_trade_pct: Decimal | None
    worst_trade_pct: Decimal | None
    avg_trade_duration_ms: Decimal | None
    gross_profit: Decimal
    gross_loss: Decimal
    fees: Decimal
    fills: int
    daily_returns: list[Decimal]  # unrounded, for tests and charts
    monthly_returns: list[tuple[str, Decimal]]  # ("YYYY-MM", percent)

    def to_json(self) -> dict[str, Any]:
        """The `stats` object of `hean engine replay --json` (camelCase, decimal strings).

        An undefined figure is "0" and its key is listed in `undefined`.
        """
        figures: dict[str, Decimal | None] = {
            "totalReturnPct": self.total_return_pct,
            "annualReturnPct": self.annual_return_pct,
            "volatilityAnnPct": self.volatility_ann_pct,
            "sharpe": self.sharpe,
            "sortino": self.sortino,
            "calmar": self.calmar,
            "maxDrawdownPct": self.max_drawdown_pct,
            "exposurePct": self.exposure_pct,
            "winRatePct": self.win_rate_pct,
            "profitFactor": self.profit_factor,
            "expectancy": self.expectancy,
            "avgTradeReturnPct": self.avg_trade_return_pct,
            "bestTradePct": self.best_trade_pct,
            "worstTradePct": self.worst_trade_pct,
            "avgTradeDurationSeconds": (
                None if self.avg_trade_duration_ms is None else self.avg_trade_duration_ms / 1000
            ),
        }
        out: dict[str, Any] = {
            "start": ms_to_iso(self.first_ts),
            "end": ms_to_iso(self.last_ts),
            "durationSeconds": _seconds(self.last_ts - self.first_ts),
            "startingEquity": fmt(self.starting_equity),
            "finalEquity": fmt(self.final_equity),
            "peakEquity": fmt(self.peak_equity),
            "pnl": fmt(self.final_equity - self.starting_equity),
        }
        out.update({key: _out(value) for key, value in figures.items()})
        out.update(
            {
                "maxDrawdownPeak": _iso(self.max_drawdown_peak_ts),
                "maxDrawdownTrough": _iso(self.max_drawdown_trough_ts),
                "maxDrawdownDurationSeconds": _seconds(self.max_drawdown_duration_ms),
                "trades": self.trades,
                "openTrade": self.open_trade,
                "grossProfit": fmt(self.gross_profit),
                "grossLoss": fmt(self.gross_loss),
                "fees": fmt(self.fees),
                "fills": self.fills,
                "tradingDays": len(self.daily_returns),
                "monthlyReturns": {month: _out(pct) for month, pct in self.monthly_returns},
                "undefined": sorted(key for key, value in figures.items() if value is None),
            }
        )
        return out


def compute_stats(path: EquityPath, trips: Trips, fills: int) -> Stats:
    """Every statistic of the module docstring from an equity path and its round trips."""
    with localcontext(_ratio_context()):
        start, final = path.starting_equity, path.final_equity
        daily = daily_returns(path)
        annual = cagr_pct(start, final, path.last_ts - path.first_ts)
        max_dd = path.drawdown.max_pct
        closed = trips.closed
        trade = _trade_stats(closed)
        return Stats(
            first_ts=path.first_ts,
            last_ts=path.last_ts,
            starting_equity=start,
            final_equity=final,
            peak_equity=path.peak_equity,
            total_return_pct=(final - start) * HUNDRED / start if start else ZERO,
            annual_return_pct=annual,
            volatility_ann_pct=_volatility_pct(daily),
            sharpe=sharpe(daily),
            sortino=sortino(daily),
            calmar=annual / max_dd if annual is not None and max_dd else None,
            max_drawdown_pct=max_dd,
            max_drawdown_peak_ts=path.drawdown.peak_ts,
            max_drawdown_trough_ts=path.drawdown.trough_ts,
            max_drawdown_duration_ms=path.drawdown.longest_ms,
            exposure_pct=Decimal(path.exposed_marks) * HUNDRED / path.marks,
            trades=len(closed),
            open_trade=trips.open_trip is not None,
            win_rate_pct=trade["win_rate_pct"],
            profit_factor=trade["profit_factor"],
            expectancy=trade["expectancy"],
            avg_trade_return_pct=trade["avg_return_pct"],
            best_trade_pct=trade["best_pct"],
            worst_trade_pct=trade["worst_pct"],
            avg_trade_duration_ms=trade["avg_duration_ms"],
            gross_profit=sum((t.pnl for t in closed if t.pnl > 0), ZERO),
            gross_loss=-sum((t.pnl for t in closed if t.pnl < 0), ZERO),
            fees=trips.fees,
            fills=fills,
            daily_returns=daily,
            monthly_returns=monthly_returns(path),
        )


def daily_returns(path: EquityPath) -> list[Decimal]:
    """Each UTC day's return: its last equity over the previous day's (the first: the start's)."""
    with localcontext(_ratio_context()):
        out: list[Decimal] = []
        previous = path.starting_equity
        for _, equity in path.day_closes:
            out.append(equity / previous - ONE if previous else ZERO)
            previous = equity
        return out


def monthly_returns(path: EquityPath) -> list[tuple[str, Decimal]]:
    """Each calendar month's (UTC) return in percent, chained like the daily returns."""
    with localcontext(_ratio_context()):
        closes: dict[str, Decimal] = {}
        for day, equity in path.day_closes:
            closes[_month(day)] = equity  # the last day seen of each month wins
        out: list[tuple[str, Decimal]] = []
        previous = path.starting_equity
        for month, equity in closes.items():
            out.append((month, (equity / previous - ONE) * HUNDRED if previous else ZERO))
            previous = equity
        return out


def cagr_pct(start: Decimal, final: Decimal, span_ms: int) -> Decimal | None:
    """Compound annual growth rate in percent; None over an empty span or from no equity."""
    if span_ms <= 0 or start <= 0 or final < 0:
        return None
    with localcontext(_ratio_context()):
        years = Decimal(span_ms) / YEAR_MS
        return ((final / start) ** (ONE / years) - ONE) * HUNDRED


def sharpe(daily: list[Decimal]) -> Decimal | None:
    """mean / sample stdev x sqrt(365); None below two returns or without variation."""
    with localcontext(_ratio_context()):
        std = _stdev(daily)
        if not std:
            return None
        return _mean(daily) / std * Decimal(TRADING_DAYS).sqrt()


def sortino(daily: list[Decimal]) -> Decimal | None:
    """mean / downside deviation (target 0, over every day) x sqrt(365); None without losses."""
    if not daily:
        return None
    with localcontext(_ratio_context()):
        downside = (sum((r * r for r in daily if r < 0), ZERO) / len(daily)).sqrt()
        if not downside:
            return None
        return _mean(daily) / downside * Decimal(TRADING_DAYS).sqrt()


def _volatility_pct(daily: list[Decimal]) -> Decimal | None:
    std = _stdev(daily)
    return None if std is None else std * Decimal(TRADING_DAYS).sqrt() * HUNDRED


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, ZERO) / len(values)


def _stdev(values: list[Decimal]) -> Decimal | None:
    """Sample standard deviation (n - 1); None below two values."""
    if len(values) < 2:
        return None
    with localcontext(_ratio_context()):
        mean = _mean(values)
        return (sum(((v - mean) ** 2 for v in values), ZERO) / (len(values) - 1)).sqrt()


def _trade_stats(closed: list[RoundTrip]) -> dict[str, Decimal | None]:
    if not closed:
        return dict.fromkeys(
            (
                "win_rate_pct",
                "profit_factor",
                "expectancy",
                "avg_return_pct",
                "best_pct",
                "worst_pct",
                "avg_duration_ms",
            )
        )
    count = len(closed)
    gross_profit = sum((t.pnl for t in closed if t.pnl > 0), ZERO)
    gross_loss = -sum((t.pnl for t in closed if t.pnl < 0), ZERO)
    returns = [t.return_pct for t in closed]
    return {
        "win_rate_pct": Decimal(sum(1 for t in closed if t.pnl > 0)) * HUNDRED / count,
        "profit_factor": gross_profit / gross_loss if gross_loss else None,
        "expectancy": sum((t.pnl for t in closed), ZERO) / count,
        "avg_return_pct": sum(returns, ZERO) / count,
        "best_pct": max(returns),
        "worst_pct": min(returns),
        "avg_duration_ms": Decimal(sum(t.duration_ms for t in closed)) / count,
    }


def _month(day: int) -> str:
    moment = datetime.fromtimestamp(day * 86_400, tz=UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def _out(value: Decimal | None) -> str:
    """A ratio as a decimal string rounded half-even to 10 places (None: "0", see to_json)."""
    if value is None:
        return "0"
    return fmt(value.quantize(PLACES, rounding=ROUND_HALF_EVEN, context=Context(prec=100)))


def _seconds(ms: int | Decimal) -> str:
    return fmt(Decimal(ms) / 1000)


def _iso(ts: int | None) -> str | None:
    return None if ts is None else ms_to_iso(ts)
