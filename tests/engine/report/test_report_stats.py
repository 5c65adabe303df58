"""The report's statistics: exact values on hand-made books, a float reference, properties.

The hand-made cases are small enough to check on paper (each expected value
says how it is computed); the float reference recomputes the trade figures in
plain Python floats on random fill lists; the properties hold for any fills.
"""

from __future__ import annotations

import math
import statistics
from array import array
from decimal import Context, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hean_engine.model.orders import Fill, Side
from hean_engine.report.build import Marks, build_report
from hean_engine.report.equity import ReportError, equity_path
from hean_engine.report.stats import cagr_pct, sharpe, sortino
from hean_engine.report.trades import Books, round_trips

D = Decimal
DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_483_228_800_000  # 2017-01-01T00:00:00Z
USD = Books("BTC", "USD", D("1000"), D("0"))
RATIO = Context(prec=34)  # the statistics' precision (report/stats.py RATIO_DIGITS)


def fill(ts: int, side: str, price: str, qty: str, fee: str = "0", asset: str = "") -> Fill:
    return Fill(ts, f"o{ts}", Side(side), D(price), D(qty), D(fee), "taker", asset)


def marks(points: list[tuple[int, float]]) -> Marks:
    return Marks(array("q", [t for t, _ in points]), array("d", [p for _, p in points]))


# -- round trips -------------------------------------------------------------------


def test_a_round_trip_is_flat_to_flat_with_every_fee() -> None:
    fills = [
        fill(T0 + 1, "buy", "100", "1", "0.1"),
        fill(T0 + 2, "sell", "110", "1", "0.11"),
        fill(T0 + 3, "buy", "120", "2", "0.24"),
    ]
    trips = round_trips(fills, USD)
    (trip,) = trips.closed
    assert trip.pnl == D("9.79")  # 110 - 0.11 - 100 - 0.1
    assert trip.return_pct == D("9.79")  # of the entry notional, 100
    assert (trip.entry_ts, trip.exit_ts, trip.fills) == (T0 + 1, T0 + 2, 2)
    assert trips.open_trip is not None and trips.open_trip.quantity == D("2")
    assert trips.fees == D("0.45")


def test_partial_fills_and_scaling_out_make_one_trip() -> None:
    fills = [
        fill(1, "buy", "100", "0.5", "0.05"),
        fill(2, "buy", "102", "0.5", "0.051"),
        fill(3, "sell", "101", "0.3", "0.0303"),
        fill(4, "sell", "99", "0.7", "0.0693"),
    ]
    (trip,) = round_trips(fills, USD).closed
    # bought 50 + 51 + fees 0.101; sold 30.3 + 69.3 less fees 0.0996
    assert trip.pnl == D("99.6") - D("0.0996") - D("101") - D("0.101")
    assert trip.entry_price == D("101")
    assert trip.exit_price == D("99.6")
    assert trip.fills == 4


def test_fees_in_the_base_currency_are_valued_at_their_fill_price() -> None:
    books = Books("BTC", "USD", D("1000"), D("0"))
    fills = [
        fill(1, "buy", "100", "1", "0.001", "BTC"),  # receives 0.999 BTC
        fill(2, "sell", "110", "0.999", "0.11", "USD"),
    ]
    (trip,) = round_trips(fills, books).closed
    assert trip.pnl == D("109.89") - D("0.11") - D("100")
    assert trip.fees == D("0.1") + D("0.11")
    assert trip.sold == D("0.999")


def test_a_position_held_at_the_start_enters_at_the_first_price() -> None:
    books = Books("BTC", "USD", D("0"), D("2"))
    trips = round_trips([fill(5, "sell", "60", "2")], books, opening_price=D("50"), opening_ts=1)
    (trip,) = trips.closed
    assert (trip.entry_ts, trip.pnl, trip.return_pct) == (1, D("20"), D("20"))


# -- the equity path -------------------------------------------------------------


def test_equity_path_exact_on_a_hand_made_day() -> None:
    # Hourly marks; buy 1 at 100 (fee 0.1) at hour 1, sell at 90 (fee 0.09) at hour 4.
    path = equity_path(
        array("q", [T0 + h * HOUR for h in range(6)]),
        array("d", [100.0, 100.0, 105.0, 95.0, 90.0, 90.0]),
        [fill(T0 + HOUR, "buy", "100", "1", "0.1"), fill(T0 + 4 * HOUR, "sell", "90", "1", "0.09")],
        USD,
    )
    # equity: 1000, 999.9, 1004.9, 994.9, 989.81, 989.81
    assert path.starting_equity == D("1000")
    assert path.final_equity == D("989.81")
    assert path.peak_equity == D("1004.9")
    # from the peak 1004.9 (hour 2) to 989.81: 15.09 / 1004.9
    assert path.drawdown.max_pct == RATIO.divide(D("15.09"), D("1004.9")) * 100
    assert (path.drawdown.peak_ts, path.drawdown.trough_ts) == (T0 + 2 * HOUR, T0 + 4 * HOUR)
    # the first drop (hour 1) lasts one hour; the last runs from hour 2 to the end (hour 5)
    assert path.drawdown.longest_ms == 3 * HOUR
    # a position at hours 1, 2, 3 and at the start of hour 4 (the sell is in it)
    assert path.exposed_marks == 4
    assert path.day_closes == [(T0 // DAY, D("989.81"))]
    assert list(path.equity) == [1000.0, 999.9, 1004.9, 994.9, 989.81, 989.81]


def test_a_recovery_to_the_peak_ends_a_drawdown() -> None:
    path = equity_path(
        array("q", [0, 10, 20, 30, 40]),
        array("d", [10.0, 10.0, 8.0, 10.0, 9.0]),
        [fill(5, "buy", "10", "100")],
        USD,
    )
    # equity 1000, 1000, 800, 1000, 900: back at the peak at 30, down again from 30
    assert path.drawdown.max_pct == D("20")
    assert path.drawdown.longest_ms == 20  # 10 -> 30 (the one from 30 to the end is 10)


def test_fills_after_the_last_mark_or_no_marks_are_refused() -> None:
    with pytest.raises(ReportError):
        equity_path(array("q"), array("d"), [], USD)
    with pytest.raises(ReportError):
        equity_path(array("q", [1]), array("d", [1.0]), [fill(2, "buy", "1", "1")], USD)


# -- statistics: exact hand-computed values ------------------------------------------


def test_sharpe_and_sortino_known_values() -> None:
    # mean 0.02, sample stdev sqrt(0.0002): 0.02 / 0.01414... x sqrt(365) = sqrt(730)
    # (to the 34 digits the statistics are computed with)
    assert sharpe([D("0.01"), D("0.03")]) == RATIO.sqrt(D(730))
    # mean 0.005, downside sqrt(0.0001 / 2): ratio 1/sqrt(2) x sqrt(365) = sqrt(182.5)
    assert sortino([D("0.02"), D("-0.01")]) == RATIO.sqrt(D("182.5"))
    assert sharpe([D("0.01")]) is None  # one return: no deviation
    assert sharpe([D("0.01"), D("0.01")]) is None  # no variation
    assert sortino([D("0.01"), D("0.02")]) is None  # no losing day


def test_cagr_known_value() -> None:
    two_years = 2 * 36_525 * DAY // 100
    assert cagr_pct(D(100), D(121), two_years) == D(10)
    assert cagr_pct(D(100), D(121), 0) is None


def test_statistics_of_a_hand_made_replay() -> None:
    # Three days, one mark per day at 00:00 and 12:00; two round trips.
    points = [
        (T0 + k * DAY // 2, p) for k, p in enumerate([100.0, 100.0, 110.0, 110.0, 99.0, 99.0])
    ]
    fills = [
        fill(T0 + DAY // 2, "buy", "100", "1", "0"),
        fill(T0 + DAY, "sell", "110", "1", "0"),  # +10
        fill(T0 + 3 * DAY // 2, "buy", "110", "1", "0"),
        fill(T0 + 2 * DAY, "sell", "99", "1", "0"),  # -11
    ]
    report = build_report("t", marks(points), fills, USD)
    s = report.stats
    # day closes: day 0 (12:00) 1000, day 1 (12:00, holding at 110) 1010, day 2 999
    with localcontext(RATIO):
        assert s.daily_returns == [D(0), D("0.01"), D(999) / D(1010) - 1]
        assert s.profit_factor == D(10) / D(11)
        assert s.max_drawdown_pct == D(11) / D(1010) * 100
        assert s.exposure_pct == D(4) * 100 / 6  # marks 1, 2 (sell at 2), 3, 4 (sell at 4)
    assert s.total_return_pct == D("-0.1")
    assert s.trades == 2 and s.win_rate_pct == D(50)
    assert s.expectancy == D("-0.5")
    assert s.best_trade_pct == D(10) and s.worst_trade_pct == D(-10)
    assert s.avg_trade_duration_ms == DAY // 2
    assert s.monthly_returns == [("2017-01", D("-0.1"))]
    out = s.to_json()
    assert out["profitFactor"] == "0.9090909091"
    assert out["winRatePct"] == "50"
    assert out["trades"] == 2


def test_no_trades_leaves_trade_figures_undefined() -> None:
    report = build_report("t", marks([(T0, 1.0), (T0 + DAY, 2.0)]), [], USD)
    out = report.stats.to_json()
    assert out["trades"] == 0
    undefined = ["winRatePct", "profitFactor", "expectancy", "sharpe", "sortino", "calmar"]
    for key in undefined:
        assert out[key] == "0", key  # a number in the JSON, and named as undefined
    assert set(out["undefined"]) >= set(undefined)
    assert "totalReturnPct" not in out["undefined"]
    assert out["maxDrawdownPct"] == "0" and out["totalReturnPct"] == "0"


# -- a plain float reference, and properties, on random fills ----------------------------

prices = st.integers(min_value=50, max_value=150)


@st.composite
def replays(draw: st.DrawFn) -> tuple[list[tuple[int, float]], list[Fill]]:
    """Marks 1 to 30 hours apart (gaps of days included), long-only round trips between them."""
    closes = draw(st.lists(prices, min_size=4, max_size=40))
    gaps = draw(
        st.lists(st.sampled_from([1, 6, 6, 30]), min_size=len(closes), max_size=len(closes))
    )
    times = [T0 + HOUR * sum(gaps[:k]) for k in range(len(closes))]
    points = [(t, float(c)) for t, c in zip(times, closes, strict=True)]
    fills: list[Fill] = []
    held, cash = D(0), USD.quote
    for k, c in enumerate(closes[1:], start=1):
        action = draw(st.sampled_from(["none", "buy", "sell"]))
        ts = points[k][0]
        fee = D(draw(st.sampled_from(["0", "0.001"])))
        affordable = int(cash / (c * (1 + fee)))  # as the venue's funds check: never below zero
        if action == "buy" and not held and affordable >= 1:
            qty = D(draw(st.integers(min_value=1, max_value=min(5, affordable))))
            fills.append(fill(ts, "buy", str(c), str(qty), str(D(c) * qty * fee)))
            held, cash = qty, cash - D(c) * qty * (1 + fee)
        elif action == "sell" and held:
            fills.append(fill(ts, "sell", str(c), str(held), str(D(c) * held * fee)))
            held, cash = D(0), cash + D(c) * held * (1 - fee)
    return points, fills


@settings(max_examples=60, deadline=None)
@given(replays())
def test_trade_figures_match_a_float_reference(
    case: tuple[list[tuple[int, float]], list[Fill]],
) -> None:
    points, fills = case
    stats = build_report("t", marks(points), fills, USD).stats
    # The reference: pair buys with the next sell, in floats.
    pnl: list[float] = []
    ret: list[float] = []
    for buy, sell in zip(fills[0::2], fills[1::2], strict=False):
        cost = float(buy.price) * float(buy.quantity)
        p = float(sell.price) * float(sell.quantity) - float(sell.fee) - cost - float(buy.fee)
        pnl.append(p)
        ret.append(p / cost * 100)
    assert stats.trades == len(pnl)
    if not pnl:
        assert stats.win_rate_pct is None
        return
    assert stats.win_rate_pct is not None and stats.expectancy is not None
    assert float(stats.win_rate_pct) == pytest.approx(100 * sum(p > 0 for p in pnl) / len(pnl))
    assert float(stats.expectancy) == pytest.approx(statistics.fmean(pnl), abs=1e-9)
    assert float(stats.best_trade_pct or 0) == pytest.approx(max(ret), abs=1e-9)
    losses = -sum(p for p in pnl if p < 0)
    if losses > 1e-9:
        assert stats.profit_factor is not None
        assert float(stats.profit_factor) == pytest.approx(sum(p for p in pnl if p > 0) / losses)
    # The equity at the end, and the Sharpe ratio from the day closes, in floats.
    cash, pos = 1000.0, 0.0
    for f in fills:
        sign = 1 if f.side is Side.BUY else -1
        cash -= sign * float(f.price) * float(f.quantity) + float(f.fee)
        pos += sign * float(f.quantity)
    assert float(stats.final_equity) == pytest.approx(cash + pos * points[-1][1])
    daily = [float(r) for r in stats.daily_returns]
    if len(daily) > 1 and statistics.stdev(daily) > 1e-12:
        expected = statistics.fmean(daily) / statistics.stdev(daily) * math.sqrt(365)
        assert float(stats.sharpe or 0) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(replays(), st.sampled_from(["2", "10", "0.5", "1000"]))
def test_properties(case: tuple[list[tuple[int, float]], list[Fill]], factor: str) -> None:
    points, fills = case
    stats = build_report("t", marks(points), fills, USD).stats
    if stats.win_rate_pct is not None:
        assert 0 <= stats.win_rate_pct <= 100
    assert 0 <= stats.max_drawdown_pct <= 100
    assert 0 <= stats.exposure_pct <= 100
    assert stats.gross_profit >= 0 and stats.gross_loss >= 0
    # Scaling the account and every quantity scales equity: returns, Sharpe, Sortino,
    # drawdown and win rate do not change at all.
    k = D(factor)
    scaled_books = Books("BTC", "USD", USD.quote * k, D(0))
    scaled = [
        Fill(f.ts, f.order_id, f.side, f.price, f.quantity * k, f.fee * k, f.liquidity, f.fee_asset)
        for f in fills
    ]
    other = build_report("t", marks(points), scaled, scaled_books).stats
    assert other.daily_returns == stats.daily_returns
    assert (other.sharpe, other.sortino) == (stats.sharpe, stats.sortino)
    assert other.max_drawdown_pct == stats.max_drawdown_pct
    assert other.win_rate_pct == stats.win_rate_pct
    assert other.final_equity == stats.final_equity * k


@settings(max_examples=80, deadline=None)
@given(replays())
def test_the_equity_pass_matches_a_mark_by_mark_reference(
    case: tuple[list[tuple[int, float]], list[Fill]],
) -> None:
    """The pass skips flat stretches; a plain walk over every mark must agree exactly."""
    points, fills = case
    path = build_report("t", marks(points), fills, USD).path
    cash, pos, k = USD.quote, D(0), 0
    equity: list[Decimal] = []
    exposed = 0
    for t, price in points:
        before = pos
        while k < len(fills) and fills[k].ts <= t:
            f = fills[k]
            sign = 1 if f.side is Side.BUY else -1
            cash -= sign * f.price * f.quantity + f.fee
            pos += sign * f.quantity
            k += 1
        equity.append(cash + pos * D(repr(price)))
        exposed += bool(before or pos)
    closes: dict[int, Decimal] = {}
    for (t, _), e in zip(points, equity, strict=True):
        closes[t // DAY] = e
    assert path.day_closes == list(closes.items())
    assert path.exposed_marks == exposed
    assert path.final_equity == equity[-1]
    assert list(path.equity) == pytest.approx([float(e) for e in equity])
    # A drawdown lasts from the last mark at the running peak to the first back at it.
    peak, deepest, longest, since, below = equity[0], D(0), 0, points[0][0], False
    for (t, _), e in zip(points, equity, strict=True):
        if e >= peak:
            if below:
                longest = max(longest, t - since)
            peak, since, below = e, t, False
        else:
            below = True
            deepest = max(deepest, RATIO.divide(peak - e, peak))
    if below:
        longest = max(longest, points[-1][0] - since)
    assert path.drawdown.max_pct == deepest * 100
    assert path.drawdown.longest_ms == longest
