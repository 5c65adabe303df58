"""Seeded fault injection: the network and exchange failures a live engine must survive.

A `FaultPlan` decides, request by request, whether to delay it and whether to
fail it, from a `random.Random(seed)`: the same seed and the same sequence of
requests give the same faults. Kinds (what the client sees through ccxt 4.5):

- latency: every request waits `latency` + uniform[0, `jitter`] seconds first.
- 500 / 502 / 503 (`5xx` picks one of the three at random): a server error in
  Binance's shapes; the request is NOT executed. 500 carries
  `{"code": -1000, ...}` and 503 `{"code": -1001, ...}` plus `Retry-After`,
  which ccxt maps by code to `OperationFailed` (the base class of
  `NetworkError`); 502 is the gateway's HTML page, which ccxt maps by HTTP
  status to `ExchangeNotAvailable`.
- 429: a burst; this request and the next `burst - 1` get 429 with
  `Retry-After` and Binance's -1003 body (ccxt: `DDoSProtection`). Not
  executed; the weight limiter is not involved.
- reset: the connection is reset (TCP RST) before the request is handled
  (ccxt: `ExchangeNotAvailable`, "Connection reset by peer"). Not executed.
- timeout: the request is held for `hold` seconds, then the connection is
  closed without a response (a client with a shorter timeout: `RequestTimeout`;
  a longer one: `ExchangeNotAvailable`). Not executed.
- drop: only on state-changing endpoints (new order, cancel, cancel all): the
  request IS executed, then the connection is closed without a response
  (ccxt: `ExchangeNotAvailable`). The order exists although the client saw
  an error: the classic cause of duplicate orders.

One uniform draw per request picks at most one failure: kind k has
probability p_k (the probabilities may add up to at most 1), `drop`'s share
of draws on other endpoints means no fault. `force` queues faults that hit
the next matching requests whatever the probabilities; `injected` counts what
was injected, by kind.

The spec grammar (the CLI's `--faults`):

    SPEC  := ITEM ("," ITEM)*
    ITEM  := "latency=" DUR ["~" DUR]
           | ("5xx" | "500" | "502" | "503" | "reset" | "drop") "=" PROB
           | "429=" PROB [":" COUNT]
           | "timeout=" PROB [":" DUR]
    PROB  := a decimal in [0, 1] ("0.05") or a percentage ("5%")
    DUR   := a non-negative number with a unit: "250ms", "2s", "1.5s"
    COUNT := a positive integer (the burst's length, default 1)

for example `latency=20ms~10ms,5xx=0.05,429=0.01:3,reset=0.02,timeout=0.01:2s,drop=5%`.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    LATENCY = "latency"
    E500 = "500"
    E502 = "502"
    E503 = "503"
    TOO_MANY = "429"
    RESET = "reset"
    TIMEOUT = "timeout"
    DROP = "drop"


SERVER_ERRORS = (Fault.E500, Fault.E502, Fault.E503)
# The order of the bands of the one uniform draw (fixed, so that seeds replay).
_DRAWN = (
    Fault.RESET,
    Fault.TIMEOUT,
    Fault.E500,
    Fault.E502,
    Fault.E503,
    Fault.TOO_MANY,
    Fault.DROP,
)
_PROBABILITY_NAMES = {
    "5xx": None,  # spread over 500, 502 and 503
    "500": Fault.E500,
    "502": Fault.E502,
    "503": Fault.E503,
    "429": Fault.TOO_MANY,
    "reset": Fault.RESET,
    "timeout": Fault.TIMEOUT,
    "drop": Fault.DROP,
}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_DURATION = re.compile(rf"^({_NUMBER})(ms|s)$")
_PROBABILITY = re.compile(rf"^({_NUMBER})(%?)$")
DEFAULT_HOLD = 30.0  # seconds: longer than any sane client timeout


class FaultSpecError(ValueError):
    """A bad `--faults` spec; the message quotes the offending item."""


@dataclass(frozen=True)
class Forced:
    fault: Fault
    method: str | None
    path: str | None

    def matches(self, method: str, path: str, mutates: bool) -> bool:
        if self.fault is Fault.DROP and not mutates:
            return False
        return (self.method is None or self.method == method) and (
            self.path is None or self.path == path
        )


def _duration(text: str, item: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise FaultSpecError(
            f"{item!r}: bad duration {text!r} (a number with ms or s, e.g. 250ms or 2s)"
        )
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def _probability(text: str, item: str) -> float:
    match = _PROBABILITY.match(text)
    if match is None:
        raise FaultSpecError(
            f"{item!r}: bad probability {text!r} (a number in [0, 1], or a percentage like 5%)"
        )
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    if not 0 <= value <= 1:
        raise FaultSpecError(f"{item!r}: probability {text!r} is not between 0 and 1 (0%-100%)")
    return value


class FaultPlan:
    """What to inject; seeded, forceable, counted. The default plan injects nothing.

    latency / jitter / hold are seconds; rates maps a `Fault` (not LATENCY) to
    its probability per request; burst is the length of a 429 burst.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        rates: dict[Fault, float] | None = None,
        burst: int = 1,
        hold: float = DEFAULT_HOLD,
        retry_after: int = 1,
        seed: int | None = None,
    ) -> None:
        self.latency = latency
        self.jitter = jitter
        self.rates: dict[Fault, float] = dict(rates or {})
        self.burst = burst
        self.hold = hold
        self.retry_after = retry_after
        self.seed = seed
        self.rng = random.Random(seed)
        self.injected: Counter[Fault] = Counter()
        self._forced: list[Forced] = []
        self._burst_left = 0
        self._validate()

    def _validate(self) -> None:
        if self.latency < 0 or self.jitter < 0 or self.hold < 0:
            raise FaultSpecError("latency, jitter and hold cannot be negative")
        if self.burst < 1:
            raise FaultSpecError(f"a 429 burst is at least 1 request, got {self.burst}")
        for fault, rate in self.rates.items():
            if fault is Fault.LATENCY:
                raise FaultSpecError("latency is not a probability: set latency/jitter")
            if not 0 <= rate <= 1:
                raise FaultSpecError(f"{fault}: probability {rate} is not between 0 and 1")
        total = sum(self.rates.values())
        if total > 1 + 1e-12:
            raise FaultSpecError(
                f"the probabilities add up to {total:g}; at most 1 (one fault per request)"
            )

    @classmethod
    def parse(cls, spec: str, seed: int | None = None) -> FaultPlan:
        """A plan from the spec grammar (module docstring); "" is no faults."""
        latency = jitter = 0.0
        hold = DEFAULT_HOLD
        burst = 1
        rates: dict[Fault, float] = {}
        seen: set[str] = set()
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                if spec.strip():
                    raise FaultSpecError(f"empty item in {spec!r} (a stray comma?)")
                continue
            name, eq, value = item.partition("=")
            name = name.strip().lower()
            value = value.strip()
            if not eq or not value:
                raise FaultSpecError(f"{item!r}: expected KIND=VALUE")
            if name in seen:
                raise FaultSpecError(f"{item!r}: {name} is given twice")
            seen.add(name)
            if name == "latency":
                fixed, tilde, spread = value.partition("~")
                latency = _duration(fixed.strip(), item)
                jitter = _duration(spread.strip(), item) if tilde else 0.0
                continue
            if name not in _PROBABILITY_NAMES:
                known = ", ".join(["latency", *_PROBABILITY_NAMES])
                raise FaultSpecError(f"{item!r}: unknown fault {name!r} (one of {known})")
            text, colon, extra = value.partition(":")
            if colon and name == "429":
                if not extra.isdigit() or int(extra) < 1:
                    raise FaultSpecError(
                        f"{item!r}: bad burst length {extra!r} (a positive integer)"
                    )
                burst = int(extra)
            elif colon and name == "timeout":
                hold = _duration(extra, item)
            elif colon:
                raise FaultSpecError(f"{item!r}: {name} takes no ':' part")
            probability = _probability(text, item)
            target = _PROBABILITY_NAMES[name]
            if target is None:
                for fault in SERVER_ERRORS:
                    rates[fault] = rates.get(fault, 0.0) + probability / 3
            else:
                rates[target] = rates.get(target, 0.0) + probability
        if "5xx" in seen and seen & {"500", "502", "503"}:
            raise FaultSpecError("give either 5xx or 500/502/503, not both")
        try:
            return cls(
                latency=latency, jitter=jitter, rates=rates, burst=burst, hold=hold, seed=seed
            )
        except FaultSpecError as exc:
            raise FaultSpecError(f"{spec!r}: {exc}") from None

    @property
    def active(self) -> bool:
        return bool(
            self.latency or self.jitter or any(self.rates.values()) or self._forced
        ) or bool(self._burst_left)

    def force(
        self,
        fault: Fault | str,
        times: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Inject `fault` into the next `times` requests that match (method, path).

        `drop` only ever hits state-changing endpoints. Forced faults come
        before bursts and random draws, in the order they were forced.
        """
        kind = Fault(fault)
        if kind is Fault.LATENCY:
            raise ValueError("latency is not forced: set plan.latency / plan.jitter")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        entry = Forced(kind, method.upper() if method else None, path)
        self._forced.extend([entry] * times)

    @property
    def pending(self) -> int:
        """Forced faults not yet injected."""
        return len(self._forced)

    def delay(self) -> float:
        """Seconds to hold this request before handling it (0: none)."""
        if not (self.latency or self.jitter):
            return 0.0
        seconds = self.latency + (self.rng.uniform(0, self.jitter) if self.jitter else 0.0)
        self.injected[Fault.LATENCY] += 1
        return seconds

    def draw(self, method: str, path: str, mutates: bool) -> Fault | None:
        """The failure to inject into this request, if any (counted as injected)."""
        fault = self._next(method, path, mutates)
        if fault is not None:
            self.injected[fault] += 1
        return fault

    def _next(self, method: str, path: str, mutates: bool) -> Fault | None:
        for i, forced in enumerate(self._forced):
            if forced.matches(method, path, mutates):
                del self._forced[i]
                return forced.fault
        if self._burst_left:
            self._burst_left -= 1
            return Fault.TOO_MANY
        if not self.rates:
            return None
        u = self.rng.random()
        edge = 0.0
        for fault in _DRAWN:
            edge += self.rates.get(fault, 0.0)
            if u < edge:
                if fault is Fault.DROP and not mutates:
                    return None
                if fault is Fault.TOO_MANY:
                    self._burst_left = self.burst - 1
                return fault
        return None
