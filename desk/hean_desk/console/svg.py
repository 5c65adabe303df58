"""Inline SVG charts drawn from exact decimals.

No chart library and no build step: a polyline whose coordinates are computed
with Decimal arithmetic and rounded to a tenth of a pixel. The axis labels are
the series' own decimal strings (the extremes), so the chart never shows a
figure the engine did not report.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape

from hean_desk.console.display import money

_TENTH = Decimal("0.1")


def _coordinates(values: Sequence[Decimal], width: int, height: int, pad: int) -> list[str]:
    low, high = min(values), max(values)
    span = high - low
    inner_w, inner_h = Decimal(width - 2 * pad), Decimal(height - 2 * pad)
    steps = max(len(values) - 1, 1)
    points = []
    for index, value in enumerate(values):
        x = pad + inner_w * index / steps
        # a flat series sits in the middle rather than on an edge
        y = pad + (inner_h / 2 if span == 0 else inner_h * (high - value) / span)
        points.append(f"{x.quantize(_TENTH)},{y.quantize(_TENTH)}")
    return points


def sparkline(values: Sequence[Decimal], *, width: int = 120, height: int = 28) -> str:
    """A small line of the series (the overview's PnL column)."""
    if len(values) < 2:
        return f'<svg class="spark" width="{width}" height="{height}" aria-hidden="true"></svg>'
    trend = "up" if values[-1] >= values[0] else "down"
    points = " ".join(_coordinates(values, width, height, 2))
    return (
        f'<svg class="spark {trend}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-hidden="true">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/></svg>'
    )


def line_chart(
    title: str,
    values: Sequence[Decimal],
    *,
    first_label: str = "",
    last_label: str = "",
    area: bool = False,
    width: int = 560,
    height: int = 160,
) -> str:
    """A titled chart of the series with its extremes and time range as labels."""
    label = escape(title)
    if len(values) < 2:
        return (
            f'<figure class="chart"><figcaption>{label}</figcaption>'
            f'<p class="muted">Not enough points yet ({len(values)}).</p></figure>'
        )
    pad = 16
    points = _coordinates(values, width, height, pad)
    shape = (
        f'<polygon class="area" points="{pad},{height - pad} {" ".join(points)} '
        f'{width - pad},{height - pad}"/>'
        if area
        else ""
    )
    return (
        f'<figure class="chart"><figcaption>{label}</figcaption>'
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{label}">'
        f'<line class="axis" x1="{pad}" y1="{height - pad}" x2="{width - pad}" '
        f'y2="{height - pad}"/>{shape}'
        f'<polyline class="line" fill="none" points="{" ".join(points)}"/>'
        f'<text x="{pad}" y="11" class="tick">max {escape(money(max(values)))}</text>'
        f'<text x="{pad}" y="{height - 3}" class="tick">min {escape(money(min(values)))}</text>'
        f'<text x="{width - pad}" y="{height - 3}" class="tick end">'
        f"{escape(first_label)} → {escape(last_label)}</text>"
        f"</svg></figure>"
    )


def drawdowns(values: Sequence[Decimal]) -> list[Decimal]:
    """Each point's drop below the running peak, as a non-positive number."""
    peak: Decimal | None = None
    result = []
    for value in values:
        peak = value if peak is None or value > peak else peak
        result.append(value - peak)
    return result
