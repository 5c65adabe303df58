"""The console's rendering: exact money, charts from decimals, risk usage, redaction."""

from __future__ import annotations

from decimal import Decimal

from console_fake import CONTROL_TOKEN, report_for

from hean_desk.console.display import money, redact, signed_money
from hean_desk.console.svg import drawdowns, sparkline
from hean_desk.console.views import risk_usages


def test_money_is_the_reported_digits_grouped() -> None:
    assert money("1234567.123456789012345678") == "1,234,567.123456789012345678"
    assert money("0.00000001") == "0.00000001"
    assert money("-19.250") == "-19.250"  # trailing zeros as reported
    assert signed_money("12.5") == "+12.5" and signed_money("-3") == "-3"
    assert money(None) == "—" and money("n/a") == "n/a"


def test_sparkline_coordinates_are_exact_decimals() -> None:
    svg = sparkline([Decimal("100"), Decimal("110"), Decimal("105")], width=104, height=24)
    assert 'points="2.0,22.0 52.0,2.0 102.0,12.0"' in svg
    assert "up" in svg
    flat = sparkline([Decimal("5"), Decimal("5")], width=104, height=24)
    assert 'points="2.0,12.0 102.0,12.0"' in flat


def test_drawdowns_from_the_running_peak() -> None:
    values = [Decimal(v) for v in ("100", "120", "90", "130", "125")]
    assert drawdowns(values) == [Decimal(v) for v in ("0", "0", "-30", "0", "-5")]


def test_risk_usage_of_each_limit() -> None:
    risk = {
        "maxOrderNotional": "20000",
        "maxPositionNotional": "20000",
        "maxOpenOrders": 4,
        "maxDailyLoss": "50",
        "maxDrawdownPct": "20",
    }
    points = [
        {"time": "2026-01-01T23:59:00Z", "equity": "100100", "position": "0.5", "price": "30000"},
        {"time": "2026-01-02T00:00:00Z", "equity": "100030", "position": "0.5", "price": "30000"},
    ]
    report = report_for("desk", "btc", equity="100012.5")
    usage = {u.limit: u for u in risk_usages(risk, report, points, "2026-01-02T00:00:00")}
    assert usage["maxPositionNotional"].used == "15,000.0" and usage[
        "maxPositionNotional"
    ].share == Decimal("75.0")
    assert usage["maxOrderNotional"].used == "15,050.25"  # 0.5 remaining x 30100.5
    assert usage["maxOpenOrders"].share == Decimal("25.0")
    assert usage["maxDailyLoss"].used == "17.5" and usage["maxDailyLoss"].share == Decimal("35.0")
    # (100100 - 100012.5) / 100100 = 0.0874...%
    assert usage["maxDrawdownPct"].used == "0.09"


def test_redaction_masks_values_after_secret_words() -> None:
    text = redact(
        f'token={CONTROL_TOKEN} {{"apiKey": "abc123"}} Authorization: Bearer {CONTROL_TOKEN} ok=1'
    )
    assert CONTROL_TOKEN not in text and "abc123" not in text
    assert "ok=1" in text
