"""The engine's timestamp spellings (`hean_engine.model.timefmt`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hean_engine.model.timefmt import datetime_to_iso, iso_to_ms, ms_to_iso, now_iso


def test_datetime_to_iso_is_utc_to_the_whole_second() -> None:
    moment = datetime(2026, 1, 31, 13, 0, 5, 999_000, tzinfo=timezone(timedelta(hours=1)))
    assert datetime_to_iso(moment) == "2026-01-31T12:00:05Z"


def test_datetime_to_iso_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="time zone"):
        datetime_to_iso(datetime(2026, 1, 31, 12, 0, 5))


def test_now_iso_round_trips_through_iso_to_ms() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    text = now_iso()
    assert text.endswith("Z") and len(text) == len("2026-01-31T12:00:05Z")
    assert iso_to_ms(text) >= round(before.timestamp() * 1000)
    assert ms_to_iso(iso_to_ms(text)) == text
