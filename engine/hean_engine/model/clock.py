"""The engine's one clock: what time it is, how to wait, and the jitter of backoff.

A running engine reads the time and waits in many places: market data polls,
the backoff of exchange calls, the live session's loops, the approval's
re-checks, staleness and the journal's timestamps. All of them take one
`Clock`, so a test drives the whole engine from one fake timeline (sleeping
moves it; nothing waits for real) and one seeded random generator (the
jitter of backoff delays, which decides how long the next sleep is). The
running engine gets `SystemClock`: wall time, `asyncio.sleep`, an unseeded
generator.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol


class Clock(Protocol):
    """Unix seconds now, a sleep on the same timeline, and the randomness of backoff."""

    @property
    def rng(self) -> random.Random:
        """Jitter for backoff delays (seeded in tests, so delays repeat exactly)."""
        ...

    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real thing: wall time, `asyncio.sleep` and an unseeded generator."""

    def __init__(self) -> None:
        self.rng = random.Random()

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


def now_ms(clock: Clock) -> int:
    """The clock's time in whole epoch milliseconds (the engine's unit for timestamps)."""
    return int(clock.now() * 1000)
