"""What the control server knows about a running engine, and what it may change.

The app layer fills a `Runtime` in; the HTTP handlers, the status document
and the metrics collector only read it (and `apply_command` changes the
kernel's state), so they are testable without a network or an exchange.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from hean_contract.commands import Command
from hean_contract.report import ApprovalReport, LiveReport, ReconcileReport
from hean_contract.spec import EngineIdentity, TradingEngineSpec
from hean_engine.data.exchange_feed import FeedHealth
from hean_engine.kernel.engine import TradingKernel
from hean_engine.model.clock import SYSTEM_CLOCK, Clock
from hean_engine.model.orders import RiskState
from hean_engine.model.timefmt import ms_to_iso
from hean_engine.telemetry.logs import LogThrottle

RunMode = Literal["paper", "live", "replay"]


class LiveView(Protocol):
    """What the control layer reads of a live session (`app.live.LiveSession`)."""

    def report(self) -> LiveReport:
        """The live part of /status."""
        ...

    def metrics(self) -> dict[str, float]:
        """Counters and gauges by metric name (without the prefix)."""
        ...

    def reconciles(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class ApprovalStatus:
    """The latest LiveApproval verdict of a live engine (its /status part and gauges)."""

    valid: bool
    reason: str
    message: str
    key_ids: tuple[str, ...] = ()
    expires_at: float | None = None  # Unix seconds
    checked_at: float | None = None

    def report(self) -> ApprovalReport:
        """Its part of /status (times as RFC 3339; the seconds stay here for the gauges)."""
        return ApprovalReport(
            valid=self.valid,
            reason=self.reason,
            message=self.message,
            key_ids=list(self.key_ids),
            expires_at=_iso(self.expires_at),
            checked_at=_iso(self.checked_at),
        )


@dataclass
class ConnectionStats:
    """The control server's connections: open now, and those closed by a limit (metrics)."""

    open: int = 0
    refused: int = 0
    timed_out: int = 0
    throttle: LogThrottle = field(default_factory=LogThrottle)


def _iso(seconds: float | None) -> str | None:
    return ms_to_iso(int(seconds * 1000)) if seconds is not None else None


@dataclass
class Runtime:
    identity: EngineIdentity
    spec: TradingEngineSpec
    kernel: TradingKernel
    mode: RunMode
    run_id: str
    feed: FeedHealth | None = None
    clock: Clock = SYSTEM_CLOCK
    # Unix seconds; 0 means "when this Runtime was made", on its clock.
    started: float = 0.0
    # Seconds without a successful market data poll after which the engine is not ready.
    stale_after: float = 180.0
    # Live mode: the result of the last reconcile with the exchange (None until one ran).
    last_reconcile: ReconcileReport | None = None
    reconcile_required: bool = False
    # Live mode: the session with the exchange (its /status part and counters).
    live: LiveView | None = None
    # Live mode: the LiveApproval as last checked (None in paper mode).
    approval: ApprovalStatus | None = None
    loop_lag: float = 0.0
    stopping: bool = False
    control_requests: dict[tuple[str, str], int] = field(default_factory=dict)
    connections: ConnectionStats = field(default_factory=ConnectionStats)
    # A paper engine with a history: starts its account again from the spec's starting
    # balances (the `reset-paper-account` command). None: nothing to reset (a live
    # engine, or no history: then every start is a fresh account anyway).
    reset_paper_account: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if not self.started:
            self.started = self.clock.now()

    def readiness(self) -> tuple[bool, str]:
        """Ready once market data flows (and, in live, the startup reconcile passed)."""
        if self.stopping:
            return False, "shutting down"
        feed = self.feed
        if feed is None or feed.last_ok is None:
            return False, "waiting for market data"
        age = self.clock.now() - feed.last_ok
        if age > self.stale_after:
            return False, f"market data stale: last successful poll {age:.0f}s ago"
        if self.reconcile_required and (
            self.last_reconcile is None or self.last_reconcile.result != "ok"
        ):
            return False, "waiting for a clean reconcile with the exchange"
        return True, "ready"

    def count_control(self, command: str, result: str) -> None:
        key = (command, result)
        self.control_requests[key] = self.control_requests.get(key, 0) + 1


class CommandUnavailable(Exception):
    """The command does not apply to this engine (a 409 with this message)."""


def apply_command(
    kernel: TradingKernel,
    command: Command,
    reset_paper_account: Callable[[], None] | None = None,
) -> None:
    """Change the running engine as `command` says; CommandUnavailable when it cannot
    (`reset_paper_account` is the runtime's, None where there is no account to reset)."""
    if command == "reset-paper-account":
        if reset_paper_account is None:
            raise CommandUnavailable(
                "reset-paper-account: only a paper engine with a history (--history) has an "
                "account to reset"
            )
        reset_paper_account()
    elif command == "pause":
        kernel.pause()
    elif command == "resume":
        kernel.resume()
    elif command == "reduce":
        kernel.set_risk_state(RiskState.REDUCING, "control command: reduce")
    elif command == "reset-halt":
        kernel.reset_halt()
    else:
        kernel.set_risk_state(RiskState.HALTED, "control command: halt")
