"""Timestamps: integer milliseconds since the Unix epoch, UTC, everywhere inside the engine."""

from __future__ import annotations

from datetime import UTC, datetime

DAY_MS = 86_400_000
MINUTE_MS = 60_000


def ms_to_iso(ms: int) -> str:
    """`2017-01-01T00:00:00Z`, or with milliseconds when there are any."""
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
