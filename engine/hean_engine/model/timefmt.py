"""Timestamps: integer milliseconds since the Unix epoch, UTC, everywhere inside the engine."""

from __future__ import annotations

import time
from datetime import UTC, datetime

DAY_MS = 86_400_000
MINUTE_MS = 60_000


def ms_to_iso(ms: int) -> str:
    """`2017-01-01T00:00:00Z`, or with milliseconds when there are any."""
    seconds, millis = divmod(ms, 1000)
    t = time.gmtime(seconds)
    if t.tm_year >= 1000:  # four digits, as strftime's %Y gives them
        if millis:
            return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (*t[:6], millis)  # noqa: UP031
        return "%04d-%02d-%02dT%02d:%02d:%02dZ" % t[:6]  # noqa: UP031
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_to_ms(text: str) -> int:
    """Parse an ISO-8601 timestamp that must carry a UTC offset (`Z` or `+00:00`)."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None or dt.utcoffset() != UTC.utcoffset(None):
        raise ValueError(f"timestamp {text!r} is not in UTC (expected a 'Z' suffix)")
    return round(dt.timestamp() * 1000)


def day_start_ms(ms: int) -> int:
    return ms - ms % DAY_MS
