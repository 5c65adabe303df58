"""The engine's one retry/backoff policy for calls to an exchange.

Everything that talks to an exchange goes through `call_with_retry`, so there
is exactly one answer to "what happens when the network or the exchange
misbehaves": transient failures (network errors, timeouts, 5xx, rate limits)
are retried with capped exponential backoff and full jitter; a `Retry-After`
the exchange sent is honoured (never retried sooner); anything else (bad
symbol, bad request, authentication) is raised at once, since retrying cannot
fix it. The waits and their jitter come from the engine's `Clock`, so tests
run on a fake one.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import ccxt

from hean_engine.model.clock import SYSTEM_CLOCK, Clock

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter (AWS's "full jitter" scheme)."""

    base_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    # None retries for ever: right for a market data feed that must come back
    # by itself; a bounded number suits a single request.
    max_attempts: int | None = 8

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """The delay before retry number `attempt` (1-based), without Retry-After."""
        ceiling = min(self.max_delay, self.base_delay * self.multiplier ** (attempt - 1))
        return rng.uniform(0.0, ceiling)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        backoff = self.backoff(attempt, rng)
        if retry_after is None:
            return backoff
        # The exchange said when: never sooner, and never waiting past our own cap
        # by more than it asked.
        return max(retry_after, backoff)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying can help: network trouble, timeouts, 5xx and rate limits.

    ccxt maps those to NetworkError (RequestTimeout, ExchangeNotAvailable,
    DDoSProtection, RateLimitExceeded); InvalidNonce is a NetworkError too and
    is fixed by retrying with a fresh timestamp. Its parent OperationFailed is
    what Binance's -1000/-1001 ("unknown error", "internal error") become: the
    request may or may not have been processed, so it is transient as well
    (and, for an order, an unknown outcome).
    """
    return isinstance(exc, ccxt.OperationFailed | asyncio.TimeoutError | ConnectionError)


def is_rate_limit(exc: BaseException) -> bool:
    return isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection)


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), if any."""
    if not headers:
        return None
    value = None
    for key, header in headers.items():
        if key.lower() == "retry-after":
            value = header.strip()
            break
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class RetriesExhausted(Exception):
    """A transient failure outlasted the policy's attempts; `__cause__` is the last one."""


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    what: str,
    clock: Clock = SYSTEM_CLOCK,
    retry_after: Callable[[], float | None] = lambda: None,
    on_retry: Callable[[str, int, BaseException, float], None] | None = None,
) -> T:
    """Run `call`, retrying transient failures by `policy`.

    `retry_after` reads the server's hint after a failure (for ccxt: from the
    client's last response headers). `on_retry(what, attempt, exc, delay)` is
    told before each wait, for logs and metrics. The waits are `clock`'s sleeps,
    their jitter its `rng`.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            if policy.max_attempts is not None and attempt >= policy.max_attempts:
                raise RetriesExhausted(f"{what}: gave up after {attempt} attempts") from exc
            hint = retry_after() if is_rate_limit(exc) or _is_unavailable(exc) else None
            delay = policy.delay(attempt, hint, clock.rng)
            if on_retry is not None:
                on_retry(what, attempt, exc, delay)
            await clock.sleep(delay)


def _is_unavailable(exc: BaseException) -> bool:
    # A 503 may carry Retry-After too.
    return isinstance(exc, ccxt.ExchangeNotAvailable)
