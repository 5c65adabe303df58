"""The HTML report: one self-contained file, charts drawn as inline SVG (no script, no network).

Charts have a time axis. A replay of a million candles is drawn at the
chart's resolution: the plot is split into one bucket per horizontal pixel
(`PLOT_WIDTH`) and each bucket keeps its first, lowest, highest and last value
(the M4 reduction), which draws the same picture as every point would, in
about 4 x 900 points. Trades are marked on the price chart one by one up to
`MAX_MARKERS` fills; beyond that, each bucket gets at most one buy and one
sell marker at the average price of its fills, whose tooltip says how many
fills it stands for. Every figure in the tables carries its exact value in a
`data-value` attribute (the statistics' JSON strings); the text shows it
rounded for reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Any

import numpy as np

from hean_engine.model.money import fmt
from hean_engine.model.orders import Side
from hean_engine.model.timefmt import ms_to_iso
from hean_engine.report.build import BacktestReport
from hean_engine.report.trades import RoundTrip

WIDTH = 1000
LEFT = 78
RIGHT = 16
PLOT_WIDTH = WIDTH - LEFT - RIGHT
MAX_MARKERS = 600
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True, slots=True)
class _Frame:
    """A chart's plot area and the value ranges it maps."""

    top: int
    height: int
    t0: int
    t1: int
    lo: float
    hi: float

    def x(self, ts: float) -> float:
        span = max(self.t1 - self.t0, 1)
        return LEFT + (ts - self.t0) * PLOT_WIDTH / span

    def y(self, value: float) -> float:
        span = self.hi - self.lo or 1.0
        return self.top + (self.hi - value) * self.height / span


def render_report(report: BacktestReport) -> str:
    """The whole page as one string."""
    stats = report.stats.to_json()
    path = report.path
    ts = np.asarray(path.ts, dtype=np.int64)  # array("q"): read through the buffer protocol
    prices = np.asarray(path.prices, dtype=np.float64)
    equity = np.asarray(path.equity, dtype=np.float64)
    peaks = np.maximum.accumulate(equity)
    drawdown = np.where(peaks > 0, (equity / np.where(peaks > 0, peaks, 1.0) - 1.0) * 100, 0.0)
    t0, t1 = int(ts[0]), int(ts[-1])
    body = [
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="sub">{escape(stats["start"])} to {escape(stats["end"])} · '
        f"{path.marks:,} market events · {stats['fills']:,} fills · "
        f"{stats['trades']:,} round trips · money in {escape(report.quote_ccy)}</p>",
        "<h2>Price and trades</h2>",
        _price_chart(report, ts, prices, t0, t1),
        f"<h2>Equity ({escape(report.quote_ccy)})</h2>",
        _line_chart(
            "equity-chart", ts, equity, t0, t1, 240, "#1f6feb", float(path.starting_equity)
        ),
        "<h2>Drawdown (% below the running peak)</h2>",
        _drawdown_chart(ts, drawdown, t0, t1),
        '<div class="cols"><div>',
        "<h2>Statistics</h2>",
        _stats_table(stats, report.quote_ccy),
        "</div><div>",
        "<h2>Monthly returns (%)</h2>",
        _monthly_table(report.stats.monthly_returns),
        "<h2>Best and worst trades</h2>",
        _trades_table(report.trips.closed, report.quote_ccy),
        "</div></div>",
        '<p class="sub">Definitions of every figure: docs/backtesting.md. Charts are reduced to '
        "one bucket per pixel (first, lowest, highest and last value of each).</p>",
    ]
    return _PAGE.format(title=escape(report.title), body="\n".join(body))


def _buckets(ts: np.ndarray, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) index of each non-empty pixel bucket (ts sorted)."""
    span = max(t1 - t0, 1)
    index = (ts - t0) * (PLOT_WIDTH - 1) // span
    starts = np.flatnonzero(np.diff(index)) + 1
    starts = np.concatenate(([0], starts))
    ends = np.concatenate((starts[1:], [len(ts)]))
    return starts, ends


def _m4(ts: np.ndarray, values: np.ndarray, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of each bucket's first, lowest, highest and last point."""
    starts, ends = _buckets(ts, t0, t1)
    lows = np.minimum.reduceat(values, starts)
    highs = np.maximum.reduceat(values, starts)
    firsts, lasts = values[starts], values[ends - 1]
    # Each bucket is drawn at its first point's time, as one vertical stroke.
    times = np.repeat(ts[starts], 4)
    out = np.empty(4 * len(starts))
    out[0::4], out[1::4], out[2::4], out[3::4] = firsts, lows, highs, lasts
    return times, out


def _points(frame: _Frame, times: np.ndarray, values: np.ndarray) -> str:
    xs = LEFT + (times - frame.t0) * PLOT_WIDTH / max(frame.t1 - frame.t0, 1)
    span = frame.hi - frame.lo or 1.0
    ys = frame.top + (frame.hi - values) * frame.height / span
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True))


def _range(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    if hi == lo:
        pad = abs(hi) * 0.01 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def _svg(chart_id: str, height: int, frame: _Frame, inner: list[str]) -> str:
    return (
        f'<svg id="{chart_id}" class="chart" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" xmlns="http://www.w3.org/2000/svg">'
        + "".join(_axes(frame))
        + "".join(inner)
        + "</svg>"
    )


def _line_chart(
    chart_id: str,
    ts: np.ndarray,
    values: np.ndarray,
    t0: int,
    t1: int,
    height: int,
    colour: str,
    baseline: float | None = None,
) -> str:
    lo, hi = _range(values if baseline is None else np.append(values, baseline))
    frame = _Frame(10, height - 40, t0, t1, lo, hi)
    times, reduced = _m4(ts, values, t0, t1)
    inner = []
    if baseline is not None:
        y = frame.y(baseline)
        inner.append(
            f'<line class="base" x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
    inner.append(
        f'<polyline class="series" fill="none" stroke="{colour}" '
        f'points="{_points(frame, times, reduced)}"/>'
    )
    return _svg(chart_id, height, frame, inner)


def _drawdown_chart(ts: np.ndarray, drawdown: np.ndarray, t0: int, t1: int) -> str:
    height = 170
    lo = min(float(drawdown.min()) * 1.05, -0.01)
    frame = _Frame(10, height - 40, t0, t1, lo, 0.0)
    starts, _ = _buckets(ts, t0, t1)
    deepest = np.minimum.reduceat(drawdown, starts)
    times = ts[starts]
    line = _points(frame, times, deepest)
    x_first, x_last = frame.x(float(times[0])), frame.x(float(times[-1]))
    zero = frame.y(0.0)
    polygon = f"{x_first:.1f},{zero:.1f} {line} {x_last:.1f},{zero:.1f}"
    inner = [f'<polygon class="series dd" points="{polygon}"/>']
    return _svg("drawdown-chart", height, frame, inner)


def _price_chart(
    report: BacktestReport, ts: np.ndarray, prices: np.ndarray, t0: int, t1: int
) -> str:
    height = 300
    lo, hi = _range(prices)
    frame = _Frame(10, height - 40, t0, t1, lo, hi)
    times, reduced = _m4(ts, prices, t0, t1)
    inner = [
        f'<polyline class="series" fill="none" stroke="#57606a" '
        f'points="{_points(frame, times, reduced)}"/>'
    ]
    inner += _markers(report, frame)
    return _svg("price-chart", height, frame, inner)


def _markers(report: BacktestReport, frame: _Frame) -> list[str]:
    """Buy (green, up) and sell (red, down) triangles; grouped per pixel when there are many."""
    fills = report.fills
    out: list[str] = []
    if len(fills) <= MAX_MARKERS:
        for fill in fills:
            label = (
                f"{ms_to_iso(fill.ts)} {fill.side.value} {fmt(fill.quantity)} @ {fmt(fill.price)}"
            )
            out.append(_marker(frame, fill.ts, float(fill.price), fill.side is Side.BUY, label))
        return out
    groups: dict[tuple[int, bool], list[float]] = {}
    for fill in fills:
        pixel = int(frame.x(fill.ts))
        key = (pixel, fill.side is Side.BUY)
        group = groups.setdefault(key, [0.0, 0.0, float(fill.ts)])
        group[0] += 1
        group[1] += float(fill.price)
    for (_, buy), (count, total, first_ts) in sorted(groups.items()):
        side = "buys" if buy else "sells"
        label = f"{int(count)} {side} from {ms_to_iso(int(first_ts))}, average {total / count:,.2f}"
        out.append(_marker(frame, first_ts, total / count, buy, label))
    return out


def _marker(frame: _Frame, ts: float, price: float, buy: bool, label: str) -> str:
    x, y = frame.x(ts), frame.y(price)
    if buy:
        shape = f"{x:.1f},{y + 1:.1f} {x - 4:.1f},{y + 8:.1f} {x + 4:.1f},{y + 8:.1f}"
    else:
        shape = f"{x:.1f},{y - 1:.1f} {x - 4:.1f},{y - 8:.1f} {x + 4:.1f},{y - 8:.1f}"
    kind = "buy" if buy else "sell"
    return f'<polygon class="{kind}" points="{shape}"><title>{escape(label)}</title></polygon>'


def _axes(frame: _Frame) -> list[str]:
    bottom = frame.top + frame.height
    out = [
        f'<rect class="plot" x="{LEFT}" y="{frame.top}" width="{PLOT_WIDTH}" '
        f'height="{frame.height}"/>'
    ]
    for value in _nice_ticks(frame.lo, frame.hi):
        y = frame.y(value)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + PLOT_WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="ylab" x="{LEFT - 6}" y="{y + 4:.1f}">{_tick_label(value)}</text>'
        )
    for i, ts in enumerate(np.linspace(frame.t0, frame.t1, 6).tolist()):
        x = frame.x(ts)
        anchor = ' style="text-anchor: end"' if i == 5 else ""
        out.append(
            f'<text class="xlab" x="{x:.1f}" y="{bottom + 18}"{anchor}>'
            f"{_time_label(int(ts), frame.t1 - frame.t0)}</text>"
        )
    return out


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _tick_label(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _time_label(ts: int, span_ms: int) -> str:
    moment = datetime.fromtimestamp(ts / 1000, tz=UTC)
    if span_ms < 3 * 86_400_000:
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%Y-%m-%d")


# (key, label, kind): kind says how the text is rounded (pct, ratio, money, count, time, text).
_ROWS = [
    ("start", "Start", "text"),
    ("end", "End", "text"),
    ("startingEquity", "Starting equity", "money"),
    ("finalEquity", "Final equity", "money"),
    ("peakEquity", "Peak equity", "money"),
    ("pnl", "Profit", "money"),
    ("totalReturnPct", "Total return", "pct"),
    ("annualReturnPct", "Annualised return (CAGR)", "pct"),
    ("volatilityAnnPct", "Volatility (annualised)", "pct"),
    ("sharpe", "Sharpe ratio", "ratio"),
    ("sortino", "Sortino ratio", "ratio"),
    ("calmar", "Calmar ratio", "ratio"),
    ("maxDrawdownPct", "Max drawdown", "pct"),
    ("maxDrawdownPeak", "Max drawdown from", "text"),
    ("maxDrawdownTrough", "Max drawdown to", "text"),
    ("maxDrawdownDurationSeconds", "Longest drawdown", "time"),
    ("exposurePct", "Exposure", "pct"),
    ("trades", "Trades (round trips)", "count"),
    ("openTrade", "Position open at the end", "text"),
    ("winRatePct", "Win rate", "pct"),
    ("profitFactor", "Profit factor", "ratio"),
    ("expectancy", "Expectancy (per trade)", "money4"),
    ("avgTradeReturnPct", "Average trade return", "pct"),
    ("bestTradePct", "Best trade", "pct"),
    ("worstTradePct", "Worst trade", "pct"),
    ("avgTradeDurationSeconds", "Average trade duration", "time"),
    ("grossProfit", "Gross profit", "money"),
    ("grossLoss", "Gross loss", "money"),
    ("fees", "Fees paid", "money"),
    ("fills", "Fills", "count"),
]


def _stats_table(stats: dict[str, Any], quote: str) -> str:
    rows = []
    undefined = set(stats.get("undefined", []))
    for key, label, kind in _ROWS:
        value = None if key in undefined else stats.get(key)
        exact = "" if value is None else str(value).lower() if isinstance(value, bool) else value
        shown = _show(value, kind, quote)
        rows.append(
            f'<tr><th>{escape(label)}</th><td data-key="{key}" data-value="{escape(str(exact))}">'
            f"{escape(shown)}</td></tr>"
        )
    return '<table id="stats">' + "".join(rows) + "</table>"


def _show(value: Any, kind: str, quote: str) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if kind == "text":
        return str(value)
    if kind == "count":
        return f"{int(value):,}"
    number = Decimal(str(value))
    if kind == "pct":
        return f"{number:,.2f} %"
    if kind == "ratio":
        return f"{number:,.3f}"
    if kind == "money":
        return f"{number:,.2f} {quote}"
    if kind == "money4":
        return f"{number:,.4f} {quote}"
    return _duration(number)


def _duration(seconds: Decimal) -> str:
    total = int(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {total % 60}s"


def _monthly_table(monthly: list[tuple[str, Decimal]]) -> str:
    by_year: dict[str, dict[int, Decimal]] = {}
    for month, pct in monthly:
        by_year.setdefault(month[:4], {})[int(month[5:7])] = pct
    head = "".join(f"<th>{m}</th>" for m in _MONTHS)
    rows = [f"<tr><th>Year</th>{head}<th>Year</th></tr>"]
    for year, months in by_year.items():
        cells = []
        compound = Decimal(1)
        for number in range(1, 13):
            month_pct = months.get(number)
            if month_pct is None:
                cells.append("<td></td>")
                continue
            compound *= 1 + month_pct / 100
            cells.append(_pct_cell(f"{year}-{number:02d}", month_pct))
        cells.append(_pct_cell(year, (compound - 1) * 100))
        rows.append(f"<tr><th>{year}</th>{''.join(cells)}</tr>")
    return '<table id="monthly">' + "".join(rows) + "</table>"


def _pct_cell(key: str, pct: Decimal) -> str:
    strength = min(abs(float(pct)) / 10.0, 1.0)
    colour = "46,160,67" if pct >= 0 else "207,34,46"
    style = f"background: rgba({colour},{0.12 + 0.5 * strength:.2f})"
    exact = fmt(pct.quantize(Decimal("1e-10")))
    return f'<td data-key="{key}" data-value="{exact}" style="{style}">{pct:.2f}</td>'


def _trades_table(closed: list[RoundTrip], quote: str) -> str:
    if not closed:
        return "<p>No closed trades.</p>"
    ranked = sorted(closed, key=lambda t: t.return_pct)
    chosen = ranked[-10:][::-1] + ([] if len(ranked) <= 10 else ranked[: min(10, len(ranked) - 10)])
    rows = [
        "<tr><th>Entry</th><th>Exit</th><th>Qty</th><th>Entry price</th><th>Exit price</th>"
        f"<th>Profit ({escape(quote)})</th><th>Return</th></tr>"
    ]
    for trip in chosen:
        rows.append(
            f"<tr><td>{ms_to_iso(trip.entry_ts)}</td><td>{ms_to_iso(trip.exit_ts)}</td>"
            f"<td>{fmt(trip.quantity)}</td><td>{trip.entry_price:,.2f}</td>"
            f"<td>{trip.exit_price:,.2f}</td><td>{trip.pnl:,.4f}</td>"
            f"<td>{trip.return_pct:.3f} %</td></tr>"
        )
    return '<table id="trades">' + "".join(rows) + "</table>"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="hean engine replay --report">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
  margin: 24px auto; max-width: 1040px; padding: 0 12px; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }}
h2 {{ font-size: 16px; margin: 22px 0 6px; }}
.sub {{ color: #57606a; margin: 0 0 8px; }}
svg.chart {{ display: block; max-width: 100%; height: auto; }}
.plot {{ fill: #fbfcfd; stroke: #d0d7de; }}
.grid {{ stroke: #eaeef2; }}
.base {{ stroke: #8c959f; stroke-dasharray: 4 3; }}
.series {{ stroke-width: 1.2; }}
.dd {{ fill: rgba(207,34,46,0.25); stroke: #cf222e; }}
.buy {{ fill: #1a7f37; }}
.sell {{ fill: #cf222e; }}
text {{ font-size: 11px; fill: #57606a; }}
.ylab {{ text-anchor: end; }}
.xlab {{ text-anchor: middle; }}
.cols {{ display: flex; gap: 28px; flex-wrap: wrap; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 3px 8px; border-bottom: 1px solid #eaeef2; text-align: right; }}
#stats th {{ text-align: left; font-weight: normal; color: #57606a; }}
#monthly td, #monthly th {{ padding: 3px 5px; font-size: 12px; }}
#trades td, #trades th {{ font-size: 12px; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
