"""Time in the simulator: integer epoch milliseconds, UTC; recorded times parsed here.

The simulator's own, not the engine's (`hean_engine.model.timefmt`): it reads
recorded files independently of the engine, timestamps included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MINUTE_MS = 60_000
DAY_MS = 86_400_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def iso_to_ms(text: str) -> int:
    """Epoch ms of an ISO-8601 time that says it is UTC (`Z` or `+00:00`).

    Exact (integer arithmetic, no float seconds); anything finer than a
    millisecond is a ValueError, since recorded times are whole milliseconds.
    """
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() != timedelta(0):
        raise ValueError(f"timestamp {text!r} is not in UTC (expected a 'Z' suffix)")
    whole, rest = divmod(moment - _EPOCH, _ONE_MS)
    if rest:
        raise ValueError(f"timestamp {text!r} is finer than a millisecond")
    return int(whole)
