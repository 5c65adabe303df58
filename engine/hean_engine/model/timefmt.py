"""Timestamps: integer milliseconds since the Unix epoch, UTC, everywhere inside the engine."""

from __future__ import annotations

import time
from datetime import UTC, datetime

DAY_MS = 86_400_000
MINUTE_MS = 60_000

# RFC 3339 in UTC to the whole second, `2026-11-25T23:00:00Z`: the one spelling of a
# `datetime` on the wire (Kubernetes timestamps, approval times).
ISO_SECONDS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The same with microseconds: Kubernetes' MicroTime (an Event's `eventTime`).
ISO_MICROS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


# Per-day "YYYY-MM-DDT" prefixes (bounded), and the times of day as text.
_DAY_PREFIXES: dict[int, str] = {}
_HOURS_MINUTES = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
_SECONDS = [f":{s:02d}" for s in range(60)]


def ms_to_iso(ms: int) -> str:
    """`2017-01-01T00:00:00Z`, or with milliseconds when there are any."""
    day, into_day = divmod(ms, DAY_MS)
    prefix = _DAY_PREFIXES.get(day)
    if prefix is None:
        try:
            t = time.gmtime(day * 86_400)
        except (OverflowError, OSError, ValueError):
            return _ms_to_iso_datetime(ms)  # raises as datetime does
        if not 1000 <= t.tm_year <= 9999:  # unpadded %Y below; datetime's range above
            return _ms_to_iso_datetime(ms)
        if len(_DAY_PREFIXES) >= 4096:
            _DAY_PREFIXES.clear()
        prefix = _DAY_PREFIXES[day] = "%04d-%02d-%02dT" % t[:3]  # noqa: UP031
    minute, into_minute = divmod(into_day, MINUTE_MS)
    second, millis = divmod(into_minute, 1000)
    if millis:
        return f"{prefix}{_HOURS_MINUTES[minute]}{_SECONDS[second]}.{millis:03d}Z"
    return prefix + _HOURS_MINUTES[minute] + _SECONDS[second] + "Z"


def _ms_to_iso_datetime(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % 1000:
        return dt.strftime(ISO_SECONDS_FORMAT[:-1]) + f".{ms % 1000:03d}Z"
    return dt.strftime(ISO_SECONDS_FORMAT)


def datetime_to_iso(moment: datetime) -> str:
    """`2026-11-25T23:00:00Z`: UTC, whole seconds (anything finer is dropped).

    A naive `datetime` is a ValueError: its time zone would be a guess.
    """
    if moment.tzinfo is None:
        raise ValueError("a timestamp must carry a time zone")
    return moment.astimezone(UTC).strftime(ISO_SECONDS_FORMAT)


def now_iso() -> str:
    """The wall-clock time now, as `datetime_to_iso` spells it."""
    return datetime.now(UTC).strftime(ISO_SECONDS_FORMAT)


def now_iso_micros() -> str:
    """The wall-clock time now, to the microsecond (`ISO_MICROS_FORMAT`)."""
    return datetime.now(UTC).strftime(ISO_MICROS_FORMAT)


def iso_to_ms(text: str) -> int:
    """Parse an ISO-8601 timestamp that must carry a UTC offset (`Z` or `+00:00`)."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None or dt.utcoffset() != UTC.utcoffset(None):
        raise ValueError(f"timestamp {text!r} is not in UTC (expected a 'Z' suffix)")
    return round(dt.timestamp() * 1000)


def day_start_ms(ms: int) -> int:
    return ms - ms % DAY_MS
