"""The equity path's fast pass against the always-exact reference, on random replays.

`equity_path` (report/equity.py) values the books exactly only where a float
pre-check says an exact value may matter (candidate peaks, the possibly
deepest drawdowns' troughs, each day's last mark). `reference_path` here is the
always-exact definition: every mark valued in Decimal, one after the other,
with the running peak, the drawdowns and their durations as docs/backtesting.md
defines them. The two must agree on every figure to the last digit (the
Decimals' text included), on random marks built to make the float bounds
ambiguous: repeated prices, flat stretches at the peak, fills at the first
mark, several fills in one mark, equal times (trades), fees in either
currency, a position held at the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hean_engine.model.money import ZERO
from hean_engine.model.orders import Fill, Side
from hean_engine.report.equity import RATIO_CONTEXT, EquityPath, equity_path
from hean_engine.report.trades import Books

D = Decimal
DAY = 86_400_000
T0 = 1_483_228_800_000  # 2017-01-01T00:00:00Z


@dataclass
class Reference:
    starting: Decimal
    final: Decimal
    highest: Decimal
    max_pct: Decimal
    peak_ts: int | None
    trough_ts: int | None
    longest_ms: int
    longest_start_ts: int | None
    exposed: int
    day_closes: list[tuple[int, Decimal]]


def reference_path(
    ts: list[int], prices: list[float], fills: list[Fill], books: Books
) -> Reference:
    """Every mark valued exactly, in order: the definition the fast pass must meet."""
    quote, position = books.quote, books.position
    starting = quote + position * D(repr(prices[0]))
    peak, peak_ts, highest = starting, ts[0], starting
    below, trough, trough_ts = False, ZERO, 0
    deepest, deepest_at = ZERO, None
    longest, longest_start = 0, None
    exposed, k = 0, 0
    closes: dict[int, Decimal] = {}

    def end_drawdown(t: int) -> None:
        nonlocal deepest, deepest_at, longest, longest_start
        depth = RATIO_CONTEXT.divide(peak - trough, peak) if peak > 0 else ZERO
        if depth > deepest:
            deepest, deepest_at = depth, (peak_ts, trough_ts)
        if t - peak_ts > longest:
            longest, longest_start = t - peak_ts, peak_ts

    for t, p in zip(ts, prices, strict=True):
        before = position
        while k < len(fills) and fills[k].ts <= t:
            f = fills[k]
            fee_quote = f.fee if not f.fee_asset or f.fee_asset == books.quote_ccy else ZERO
            fee_base = f.fee if f.fee_asset == books.base else ZERO
            notional = f.price * f.quantity
            if f.side is Side.BUY:
                quote, position = quote - notional - fee_quote, position + f.quantity - fee_base
            else:
                quote, position = quote + notional - fee_quote, position - f.quantity - fee_base
            k += 1
        equity = quote + position * D(repr(p)) if position else quote
        exposed += bool(before or position)
        closes[t // DAY] = equity
        if equity >= peak:
            if below:
                end_drawdown(t)
                below = False
            peak, peak_ts = equity, t
            if equity > highest:
                highest = equity
        elif not below:
            below, trough, trough_ts = True, equity, t
        elif equity < trough:
            trough, trough_ts = equity, t
    if below:
        end_drawdown(ts[-1])
    return Reference(
        starting=starting,
        final=list(closes.values())[-1],
        highest=highest,
        max_pct=deepest * 100,
        peak_ts=deepest_at[0] if deepest_at else None,
        trough_ts=deepest_at[1] if deepest_at else None,
        longest_ms=longest,
        longest_start_ts=longest_start,
        exposed=exposed,
        day_closes=list(closes.items()),
    )


def assert_same(path: EquityPath, ref: Reference) -> None:
    def text(value: Decimal) -> str:
        return str(value)  # the digits, not only the value

    assert text(path.starting_equity) == text(ref.starting)
    assert text(path.final_equity) == text(ref.final)
    assert text(path.peak_equity) == text(ref.highest)
    assert text(path.drawdown.max_pct) == text(ref.max_pct)
    assert (path.drawdown.peak_ts, path.drawdown.trough_ts) == (ref.peak_ts, ref.trough_ts)
    assert path.drawdown.longest_ms == ref.longest_ms
    assert path.drawdown.longest_start_ts == ref.longest_start_ts
    assert path.exposed_marks == ref.exposed
    assert [(d, text(e)) for d, e in path.day_closes] == [(d, text(e)) for d, e in ref.day_closes]


# Few distinct prices (ties, returns to the same level), some with long reprs.
_PRICES = [1.0, 2.0, 2.5, 3.0, 0.1 + 0.2, 0.3, 7.7, 9.99, 10.0, 10.000000000000002, 12.0]
_QUANTITIES = ["1", "2", "0.5", "0.001", "3.3333", "100", "0.1", "0.7", "1.23456789"]


@st.composite
def replays(draw: st.DrawFn) -> tuple[list[int], list[float], list[Fill], Books]:
    count = draw(st.integers(min_value=1, max_value=120))
    equal_times = draw(st.booleans())  # trades may share a timestamp; candles may not
    steps = draw(
        st.lists(
            st.sampled_from(
                [0, 1, 60_000, 3_600_000, DAY, 3 * DAY]
                if equal_times
                else [1, 60_000, 3_600_000, DAY, 3 * DAY]
            ),
            min_size=count,
            max_size=count,
        )
    )
    ts: list[int] = []
    t = T0 + draw(st.integers(min_value=0, max_value=DAY))
    for step in steps:
        t += step
        ts.append(t)
    walk = draw(st.sampled_from(["random", "flat", "rising", "falling"]))
    if walk == "random":
        prices = draw(st.lists(st.sampled_from(_PRICES), min_size=count, max_size=count))
    elif walk == "flat":
        prices = [draw(st.sampled_from(_PRICES))] * count
    else:
        base = sorted(draw(st.lists(st.sampled_from(_PRICES), min_size=count, max_size=count)))
        prices = base if walk == "rising" else base[::-1]
    start_position = D(draw(st.sampled_from(["0", "0", "1", "0.5"])))
    books = Books(
        "BTC",
        "USD",
        D(draw(st.sampled_from(["1000", "50", "0", "12.34", "0.3", "1e-7"]))),
        start_position,
    )
    fills: list[Fill] = []
    held, cash = start_position, books.quote
    for k in range(count):
        for _ in range(draw(st.integers(min_value=0, max_value=2))):
            action = draw(st.sampled_from(["none", "buy", "sell", "sell_all"]))
            at = ts[k] - draw(st.sampled_from([0, 0, 1])) if k else ts[0]
            if fills and at < fills[-1].ts:
                at = fills[-1].ts
            # Often at the mark's own price: the books' equity then ties across stretches
            # exactly while the floats round apart (what the margins are for).
            mark = draw(st.booleans())
            price = D(repr(prices[k] if mark else draw(st.sampled_from(_PRICES))))
            fee_rate = D(draw(st.sampled_from(["0", "0.001", "0.1"])))
            in_base = draw(st.booleans())
            if action == "buy":
                qty = D(draw(st.sampled_from(_QUANTITIES)))
                fee = qty * fee_rate if in_base else price * qty * fee_rate
                if price * qty + (ZERO if in_base else fee) > cash:
                    continue
                fills.append(
                    Fill(
                        at,
                        f"o{len(fills)}",
                        Side.BUY,
                        price,
                        qty,
                        fee,
                        "taker",
                        "BTC" if in_base else "USD",
                    )
                )
                cash -= price * qty + (ZERO if in_base else fee)
                held += qty - (fee if in_base else ZERO)
            elif action.startswith("sell") and held > 0:
                qty = (
                    held
                    if action == "sell_all"
                    else min(held, D(draw(st.sampled_from(_QUANTITIES))))
                )
                fee = price * qty * fee_rate  # in the quote currency: never more base than held
                fills.append(Fill(at, f"o{len(fills)}", Side.SELL, price, qty, fee, "taker", "USD"))
                cash += price * qty - fee
                held -= qty
    return ts, prices, fills, books


@settings(max_examples=200, deadline=None)
@given(replays())
def test_the_fast_pass_equals_the_always_exact_path(
    case: tuple[list[int], list[float], list[Fill], Books],
) -> None:
    ts, prices, fills, books = case
    path = equity_path(np.array(ts, np.int64), np.array(prices, np.float64), fills, books)
    assert_same(path, reference_path(ts, prices, fills, books))
    assert path.marks == len(ts)


def test_books_beyond_floats_are_valued_exactly_everywhere() -> None:
    """Balances a float cannot hold (1e400) turn every mark into a candidate: still exact."""
    books = Books("BTC", "USD", D("1e400"), D("0"))
    ts = [T0 + k * 60_000 for k in range(6)]
    prices = [10.0, 11.0, 9.0, 12.0, 8.0, 12.0]
    fills = [
        Fill(ts[1], "o1", Side.BUY, D("11"), D("1e399"), D("0"), "taker", "USD"),
        Fill(ts[4], "o2", Side.SELL, D("8"), D("5e398"), D("0"), "taker", "USD"),
    ]
    path = equity_path(ts, prices, fills, books)
    assert_same(path, reference_path(ts, prices, fills, books))
    assert path.drawdown.max_pct > 0
