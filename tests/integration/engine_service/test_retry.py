"""The one retry/backoff policy: what is retried, how long it waits, when it gives up."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import ccxt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine_support import FakeClock
from hean_engine.net.retry import (
    RetriesExhausted,
    RetryPolicy,
    call_with_retry,
    is_transient,
    parse_retry_after,
)


class Script:
    """A call that fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.mark.parametrize(
    "error",
    [
        ccxt.NetworkError("reset"),
        ccxt.RequestTimeout("timeout"),
        ccxt.ExchangeNotAvailable("502"),
        ccxt.RateLimitExceeded("429"),
        ccxt.DDoSProtection("418"),
        TimeoutError(),
        ConnectionResetError(),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_transient_failures_are_retried(error: Exception) -> None:
    call, clock = Script(error, error), FakeClock()
    result = await call_with_retry(call, policy=RetryPolicy(), what="x", clock=clock)
    assert result == "ok"
    assert call.calls == 3
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize(
    "error",
    [ccxt.BadSymbol("no such market"), ccxt.AuthenticationError("bad key"), ValueError("bug")],
    ids=lambda e: type(e).__name__,
)
async def test_permanent_failures_are_raised_at_once(error: Exception) -> None:
    call, clock = Script(error), FakeClock()
    with pytest.raises(type(error)):
        await call_with_retry(call, policy=RetryPolicy(), what="x", clock=clock)
    assert call.calls == 1
    assert clock.sleeps == []


async def test_gives_up_after_max_attempts_with_the_last_error_as_cause() -> None:
    errors = [ccxt.RequestTimeout(f"t{i}") for i in range(5)]
    call, clock = Script(*errors), FakeClock()
    with pytest.raises(RetriesExhausted) as info:
        await call_with_retry(call, policy=RetryPolicy(max_attempts=3), what="fetch", clock=clock)
    assert call.calls == 3
    assert len(clock.sleeps) == 2
    assert str(info.value) == "fetch: gave up after 3 attempts"
    assert str(info.value.__cause__) == "t2"


async def test_retry_after_is_honoured_for_rate_limits() -> None:
    call, clock = Script(ccxt.RateLimitExceeded("429"), ccxt.RequestTimeout("t")), FakeClock()
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    await call_with_retry(call, policy=policy, what="x", clock=clock, retry_after=lambda: 7.0)
    assert clock.sleeps[0] == 7.0  # the server's hint, not the 0.1 s backoff
    assert clock.sleeps[1] <= 0.2  # a timeout carries no hint: plain backoff


async def test_on_retry_is_told_before_each_wait() -> None:
    seen: list[tuple[str, int, str, float]] = []
    call, clock = Script(ccxt.NetworkError("a"), ccxt.NetworkError("b")), FakeClock()
    await call_with_retry(
        call,
        policy=RetryPolicy(),
        what="fetch_ohlcv",
        clock=clock,
        on_retry=lambda what, n, exc, delay: seen.append((what, n, str(exc), delay)),
    )
    assert [(w, n, e) for w, n, e, _ in seen] == [("fetch_ohlcv", 1, "a"), ("fetch_ohlcv", 2, "b")]
    assert [d for *_, d in seen] == clock.sleeps


@given(attempt=st.integers(1, 60), seed=st.integers(0, 2**32))
def test_backoff_is_capped_exponential_with_full_jitter(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, multiplier=2.0)
    delay = policy.backoff(attempt, random.Random(seed))
    assert 0.0 <= delay <= min(30.0, 0.5 * 2 ** (attempt - 1))


async def test_forever_policy_keeps_retrying() -> None:
    call, clock = Script(*[ccxt.NetworkError("down")] * 20), FakeClock()
    policy = RetryPolicy(max_attempts=None, base_delay=0.1, max_delay=1.0)
    assert await call_with_retry(call, policy=policy, what="x", clock=clock) == "ok"
    assert call.calls == 21
    assert len(clock.sleeps) == 20 and max(clock.sleeps) <= 1.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "12"}, 12.0),
        ({"retry-after": " 3 "}, 3.0),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str] | None, expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after({"Retry-After": later}, now=now.timestamp()) == 30.0


def test_is_transient_classifies_ccxt_errors() -> None:
    assert is_transient(ccxt.InvalidNonce("clock"))
    # Binance's -1000 "unknown error": the request may have been processed.
    assert is_transient(ccxt.OperationFailed("binance -1000"))
    assert not is_transient(ccxt.InsufficientFunds("poor"))
    assert not is_transient(ccxt.ExchangeError("other"))
