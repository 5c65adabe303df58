"""Binance's request-weight limit, per client IP, in fixed wall-clock minutes.

Every request costs its endpoint's weight (Binance's published weights; see
`public.py`). The used weight of the current minute goes back in the
`X-MBX-USED-WEIGHT-1M` header. A request that would exceed the limit is
refused with 429 and `Retry-After` (seconds to the next minute), and the
client is told to back off until then. A client that keeps calling while told
to back off is banned: `ban_after` such requests earn a 418 and a ban of
`ban_seconds` (doubled for every later ban, as Binance escalates from minutes
to days); every request during a ban is answered 418 with the time left.
Refused requests cost nothing. Time comes from the injected wall clock, so
tests advance it instead of sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from hean_sim.exchange.config import WallSeconds

WINDOW_SECONDS = 60.0
_MAX_BAN_SECONDS = 3 * 24 * 3600.0


class Verdict(Enum):
    OK = 200
    TOO_MANY = 429
    BANNED = 418


@dataclass(frozen=True)
class Admission:
    """What `WeightLimiter.admit` decided about one request."""

    verdict: Verdict
    used: int  # weight used in the current minute, after this request
    retry_after: int = 0  # whole seconds, for 429 and 418
    banned_until_ms: int = 0


@dataclass
class _Client:
    window: int = -1
    used: int = 0
    backoff_until: float = 0.0
    strikes: int = 0
    banned_until: float = 0.0
    bans: int = 0


class WeightLimiter:
    def __init__(
        self,
        limit: int,
        clock: WallSeconds,
        *,
        ban_seconds: float = 120.0,
        ban_after: int = 1,
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.ban_seconds = ban_seconds
        self.ban_after = ban_after
        self._clients: dict[str, _Client] = {}

    def _client(self, ip: str, now: float) -> _Client:
        client = self._clients.setdefault(ip, _Client())
        window = math.floor(now / WINDOW_SECONDS)
        if window != client.window:
            client.window = window
            client.used = 0
        return client

    def used(self, ip: str) -> int:
        return self._client(ip, self.clock()).used

    def admit(self, ip: str, weight: int) -> Admission:
        """Charge `weight` to `ip`, or refuse (429 / 418) without charging."""
        now = self.clock()
        client = self._client(ip, now)
        if client.banned_until > now:
            return self._banned(client, now)
        if client.backoff_until > now:
            client.strikes += 1
            if client.strikes >= self.ban_after:
                seconds = min(self.ban_seconds * 2**client.bans, _MAX_BAN_SECONDS)
                client.banned_until = now + seconds
                client.bans += 1
                client.strikes = 0
                client.backoff_until = 0.0
                return self._banned(client, now)
            return Admission(Verdict.TOO_MANY, client.used, _seconds(client.backoff_until - now))
        if client.used + weight > self.limit:
            client.backoff_until = (client.window + 1) * WINDOW_SECONDS
            client.strikes = 0
            return Admission(Verdict.TOO_MANY, client.used, _seconds(client.backoff_until - now))
        client.used += weight
        return Admission(Verdict.OK, client.used)

    def _banned(self, client: _Client, now: float) -> Admission:
        return Admission(
            Verdict.BANNED,
            client.used,
            _seconds(client.banned_until - now),
            int(client.banned_until * 1000),
        )


def _seconds(delta: float) -> int:
    return max(1, math.ceil(delta))
