"""The real LiveGate: a signed LiveApproval, checked by the engine itself, then while it runs.

The operator checks approvals too, but the engine does not take its word for
it: a bug in the operator, or a pod made by hand with `mode: live`, must not
be able to trade. `ApprovalGate` reads `approval.yaml` and `trust/` from a
directory (the operator mounts a ConfigMap there) on every check, since a
mounted ConfigMap changes in place when an approval is replaced or a key is
revoked.

`ApprovalWatch` is the running engine's side: it checks again every
`RECHECK_SECONDS` and exactly when the verdict can change by time alone
(expiry, a key's end of life), on the injected clock. When the approval stops
being valid the risk state moves as `spec.live.onApprovalLoss` says; it cannot
be lifted while the approval is invalid, and once it is valid again only the
explicit `reset-halt` command lifts it (never `resume`).

A file that cannot be read at all (an I/O error such as too many open files)
is not a verdict on the approval: the check reports `could_not_check` and is
retried every `UNCHECKED_RETRY_SECONDS`. A running engine whose approval was
valid keeps trading through such failures for at most `UNCHECKED_GRACE_SECONDS`
after its last successful check (and never past the approval's own expiry or
a key's end of life); then it fails closed as for any other loss.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hean_contract.spec import EngineIdentity, RiskPolicy, TradingEngineSpec
from hean_engine.approval.manifest import parse_approval
from hean_engine.approval.trust import load_trust_dir
from hean_engine.approval.verify import Reason, Verdict, verify
from hean_engine.control.runtime import ApprovalStatus, Runtime
from hean_engine.execution.live import GateDecision, LiveGate
from hean_engine.kernel.engine import KernelEvent, TradingKernel
from hean_engine.model.clock import SYSTEM_CLOCK, Clock
from hean_engine.model.errors import ConfigError, UnreadableError
from hean_engine.model.orders import RiskState
from hean_engine.model.yamltext import load_one, read_text
from hean_engine.telemetry.logs import LogThrottle, get_logger

log = get_logger("hean.engine.approval")

APPROVAL_FILE = "approval.yaml"
TRUST_DIR = "trust"
# How often a running engine looks at its approval again (revocations, a
# changed spec); expiry is not left to this: it has its own exact timer.
RECHECK_SECONDS = 5.0
# An unreadable approval (I/O error): retried this often, tolerated this long
# after the last successful check of a valid approval, then a loss.
UNCHECKED_RETRY_SECONDS = 1.0
UNCHECKED_GRACE_SECONDS = 30.0


class ApprovalGate:
    """`LiveGate` over a directory holding `approval.yaml` and `trust/`."""

    def __init__(self, approval_dir: Path, clock: Clock = SYSTEM_CLOCK) -> None:
        self.approval_dir = approval_dir
        self._clock = clock

    def evaluate(self, identity: EngineIdentity, spec: TradingEngineSpec) -> GateDecision:
        verdict = self.verdict(identity, spec)
        return GateDecision(verdict.valid, describe(verdict))

    def verdict(
        self, identity: EngineIdentity, spec: TradingEngineSpec, *, at: float | None = None
    ) -> Verdict:
        """Read the files again and verify; any problem is a refusal (never an exception).

        `at` (Unix seconds) replaces the gate's clock: the running engine's
        watch passes its own injected clock, so its timers and the verdict agree.
        """
        now = datetime.fromtimestamp(self._clock.now() if at is None else at, tz=UTC)
        path = self.approval_dir / APPROVAL_FILE
        if not path.exists():
            return Verdict(False, Reason.MALFORMED, f"no LiveApproval at {path}")
        try:
            approval = parse_approval(load_one(read_text(path, str(path)), str(path)))
            policy = load_trust_dir(self.approval_dir / TRUST_DIR)
        except UnreadableError as exc:
            return Verdict(False, Reason.UNCHECKED, "; ".join(exc.problems))
        except ConfigError as exc:
            return Verdict(False, Reason.MALFORMED, "; ".join(exc.problems))
        if not policy.keys:
            return Verdict(False, Reason.UNTRUSTED_KEY, "no trusted keys in the trust directory")
        return verify(
            approval,
            policy,
            namespace=identity.namespace,
            engine=identity.name,
            engine_uid=identity.uid,
            spec=spec,
            now=now,
        )


def describe(verdict: Verdict) -> str:
    return f"{verdict.reason.value}: {verdict.message}"


def _timestamp(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


class ApprovalWatch:
    """Re-checks a running live engine's approval and acts when it is lost."""

    def __init__(
        self,
        gate: LiveGate,
        identity: EngineIdentity,
        spec: TradingEngineSpec,
        kernel: TradingKernel,
        runtime: Runtime,
        *,
        clock: Clock,
        interval: float = RECHECK_SECONDS,
    ) -> None:
        self.gate = gate
        self.interval = interval
        self.identity = identity
        self.spec = spec
        self.kernel = kernel
        self.runtime = runtime
        self._clock = clock
        self.policy = spec.live.on_approval_loss
        self.next_change: float | None = None
        self.lost_reason: str | None = None
        self.checks = 0
        # When the approval was last seen valid, and until when that verdict held
        # by time alone: the bounds of the grace for an unreadable approval.
        self.valid_at: float | None = None
        self.valid_until: float | None = None
        self.unchecked_since: float | None = None
        self._throttle = LogThrottle(clock=clock)
        # A risk state change made elsewhere (a `resume` command) must not lift
        # what a lost approval imposed: the listener puts it back at once.
        kernel.listeners.append(self._on_event)

    def check(self) -> ApprovalStatus:
        """Ask the gate now; update /status and act on a loss."""
        self.checks += 1
        now = self._clock.now()
        if isinstance(self.gate, ApprovalGate):
            verdict = self.gate.verdict(self.identity, self.spec, at=now)
            status = ApprovalStatus(
                valid=verdict.valid,
                reason=verdict.reason.value,
                message=verdict.message,
                key_ids=verdict.key_ids,
                expires_at=_timestamp(verdict.expires_at),
                checked_at=now,
            )
            self.next_change = _timestamp(verdict.next_change)
        else:
            # Another gate (a test's): only its yes or no is known.
            decision = self.gate.evaluate(self.identity, self.spec)
            status = ApprovalStatus(
                valid=decision.allowed,
                reason=Reason.VALID.value if decision.allowed else "refused",
                message=decision.reason,
                checked_at=now,
            )
            self.next_change = None
        if status.reason == Reason.UNCHECKED.value and self._in_grace(now):
            # Could not check (an I/O error): keep the last verdict, retry soon.
            self.unchecked_since = self.unchecked_since or now
            self.next_change = now + UNCHECKED_RETRY_SECONDS
            suppressed = self._throttle.allow("unchecked")
            if suppressed is not None:
                log.warning(
                    "live approval could not be checked; retrying",
                    detail=status.message,
                    grace_left_seconds=round(self._grace_end() - now, 1),
                    suppressed=suppressed,
                )
            return self.runtime.approval or status
        self.unchecked_since = None
        self.runtime.approval = status
        if status.valid:
            self.valid_at = now
            self.valid_until = self.next_change
            if self.lost_reason is not None:
                log.warning(
                    "live approval valid again; the risk state stays until reset-halt lifts it",
                    reason=status.reason,
                )
                self.kernel._emit("approval", "LiveApproval valid again")
            self.lost_reason = None
        else:
            self._lose(status)
        return status

    def _grace_end(self) -> float:
        assert self.valid_at is not None
        end = self.valid_at + UNCHECKED_GRACE_SECONDS
        return min(end, self.valid_until) if self.valid_until is not None else end

    def _in_grace(self, now: float) -> bool:
        """Whether an unreadable approval may still ride on the last valid verdict."""
        if self.lost_reason is not None or self.valid_at is None:
            return False
        return now < self._grace_end()

    def _lose(self, status: ApprovalStatus) -> None:
        first = self.lost_reason is None
        self.lost_reason = f"approval: {status.reason}"
        if first:
            log.error("live approval lost", reason=status.reason, detail=status.message)
            # Its own event even when the risk state does not change (already
            # halted): the loss is what an operator needs to see in /status.
            self.kernel._emit("approval", f"LiveApproval lost: {status.reason}: {status.message}")
        self._enforce()

    def _required(self) -> RiskState:
        return RiskState.HALTED if self.policy is RiskPolicy.HALT else RiskState.REDUCING

    def _enforce(self) -> None:
        if self.lost_reason is None:
            return
        current = self.kernel.risk.state
        # Never loosen: REDUCING does not replace a HALTED state.
        if current is RiskState.HALTED or current is self._required():
            return
        self.kernel.set_risk_state(self._required(), self.lost_reason)

    def _on_event(self, event: KernelEvent) -> None:
        if event.kind == "risk_state" and self.lost_reason is not None:
            self._enforce()

    def delay(self) -> float:
        """Seconds until the next check: the regular interval, or sooner at a known change."""
        wait = self.interval
        if self.next_change is not None:
            wait = min(wait, self.next_change - self._clock.now())
        return max(wait, 0.0)

    async def run(self) -> None:
        """Check, sleep until the next check, forever (the first check is `check()` at start)."""
        while True:
            await self._clock.sleep(self.delay())
            try:
                self.check()
            except Exception as exc:
                # A gate that fails is a gate that refuses (the type only: the
                # message of an unexpected error is not known to be safe to show).
                status = ApprovalStatus(
                    False,
                    Reason.MALFORMED.value,
                    f"the approval check failed: {type(exc).__name__}",
                    checked_at=self._clock.now(),
                )
                self.runtime.approval = status
                self.next_change = None
                self._lose(status)
