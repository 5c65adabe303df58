"""Exact formatting of money, percentages and times for the pages.

Money arrives as decimal strings and is shown from `Decimal`s, never floats:
a figure on the page is the figure the engine reported, with only thousands
separators added. Charts are drawn with Decimal coordinates too (svg.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from hean_contract.spec import TIMEFRAMES

HUNDRED = Decimal(100)
DASH = "—"

# Values after these keys are replaced in anything the console shows from a log
# or a message: a token that leaked into a log line must not leak further.
_SECRET = re.compile(
    r"(?i)(\b(?:token|secret|password|passphrase|api[_-]?key|authorization|bearer)\b"
    r"[\"']?\s*[:=]?\s*[\"']?(?:bearer\s+)?)([^\s\"',;}]+)"
)


def decimal_or_none(value: object) -> Decimal | None:
    """The Decimal of a decimal string; None for missing or malformed values."""
    if value is None or isinstance(value, float | bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def money(value: object) -> str:
    """'1234567.5' -> '1,234,567.5' exactly (the digits given, no rounding)."""
    number = decimal_or_none(value)
    if number is None:
        return DASH if value in (None, "") else str(value)
    return f"{number:,f}"


def signed_money(value: object) -> str:
    number = decimal_or_none(value)
    if number is None:
        return money(value)
    return ("+" if number > 0 else "") + money(value)


def sign_class(value: object) -> str:
    """'up', 'down' or 'flat', for the colour of a PnL figure."""
    number = decimal_or_none(value)
    if number is None or number == 0:
        return "flat"
    return "up" if number > 0 else "down"


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """part/whole in percent, to 0.1 (Decimal division, exact enough to show)."""
    if whole == 0:
        return None
    return (part * HUNDRED / whole).quantize(Decimal("0.1"))


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def short_time(value: str | None) -> str:
    """RFC 3339 -> '2026-01-02 03:04:05Z' (seconds; the full value is in the title)."""
    moment = parse_time(value)
    if moment is None:
        return value or DASH
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def relative(value: str | None, now: datetime) -> str:
    """'in 3h 5m' or '12m ago' or 'expired 2h ago' style, for expiries."""
    moment = parse_time(value)
    if moment is None:
        return DASH
    seconds = int((moment - now).total_seconds())
    span = _span(abs(seconds))
    return f"in {span}" if seconds >= 0 else f"{span} ago"


def _span(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_data_time(engine: Mapping[str, Any]) -> datetime | None:
    """The time of the engine's latest market data, as its status says (market time:
    a replayed or simulated market's clock, not this machine's)."""
    return parse_time((engine.get("status") or {}).get("lastDataTime"))


def candles_before(engine: Mapping[str, Any], count: int, *, from_day_start: bool) -> str | None:
    """RFC 3339 time `count` candles before the engine's latest market data (and no
    later than that day's 00:00 UTC when `from_day_start`); None when unknown.

    History is paged oldest first, so a chart of recent points asks from here rather
    than reading an engine's whole history on every refresh."""
    last = last_data_time(engine)
    market = (engine.get("spec") or {}).get("market") or {}
    step = TIMEFRAMES.get(str(market.get("timeframe") or ""))
    if last is None or step is None:
        return None
    start = last - timedelta(milliseconds=step * count)
    if from_day_start:
        start = min(start, last.replace(hour=0, minute=0, second=0, microsecond=0))
    return rfc3339(start)


def redact(text: str) -> str:
    """`text` with the value after any token/secret/password/api key key word masked."""
    return _SECRET.sub(lambda m: m.group(1) + "***", text)
