"""A live engine's session with its exchange: start-up reconcile, fills, periodic reconcile.

Fail closed, in this order:
1. start-up: every intent the journal says may have been sent is resolved by
   client order id; then the newest trade id, the balances and the open orders
   are read, and read again if a trade arrived meanwhile (a snapshot is only
   used when nothing moved while it was taken). The books become the
   exchange's balances; this engine's open orders are adopted; foreign ones
   are drift. Until this succeeds the engine is not ready and sends nothing;
   it keeps trying, with backoff, and says why in /status.
2. fills: the account's trades are polled (and right after every order or
   cancel) and booked once each.
3. reconcile: every `live.reconcileIntervalSeconds`, and soon after any failed
   exchange call, the books are compared with a consistent snapshot. Drift is
   reported (what differs, by how much, since when) and moves the risk state
   as `live.onDrift` says. A halt stays until `reset-halt` lifts it; restarting
   the engine adopts the exchange's books after an investigation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

from hean_contract.report import (
    BalanceComparison,
    ForeignOrder,
    JournalReport,
    LiveReport,
    OrderCounts,
    ReconcileCounts,
    ReconcileReport,
)
from hean_contract.spec import RiskPolicy
from hean_engine.app.assembly import Engine
from hean_engine.control.runtime import Runtime
from hean_engine.execution.journal import JournaledIntent
from hean_engine.execution.live_venue import LiveVenue, describe
from hean_engine.execution.reconcile import Comparison, compare
from hean_engine.model.clock import Clock
from hean_engine.model.money import fmt, price_to_decimal
from hean_engine.model.orders import RiskState
from hean_engine.model.timefmt import ms_to_iso
from hean_engine.net.retry import RetryPolicy
from hean_engine.telemetry.logs import get_logger

log = get_logger("hean.engine.live")

# After a failed exchange call, reconcile this soon (seconds), not at the next interval.
_AFTER_FAULT_SECONDS = 1.0


class SnapshotMoved(Exception):
    """A trade arrived while the snapshot was taken: take it again."""


@dataclass
class ReconcileCounters:
    ok: int = 0
    drift: int = 0
    failed: int = 0
    inconclusive: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "ok": self.ok,
            "drift": self.drift,
            "failed": self.failed,
            "inconclusive": self.inconclusive,
        }

    def report(self) -> ReconcileCounts:
        return ReconcileCounts(**self.as_dict())


class LiveSession:
    def __init__(
        self,
        engine: Engine,
        venue: LiveVenue,
        runtime: Runtime,
        *,
        clock: Clock,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.venue = venue
        self.runtime = runtime
        self.spec = engine.spec.live
        self._clock = clock
        self._policy = policy or RetryPolicy(base_delay=0.5, max_delay=30.0, max_attempts=None)
        self.counters = ReconcileCounters()
        self.drift_since: float | None = None
        self.fault = asyncio.Event()
        self.started = asyncio.Event()
        self.journal_recovery: dict[str, int] = {}

    def on_fault(self, what: str, exc: BaseException) -> None:
        """Any failed exchange call: reconcile soon."""
        self.fault.set()

    # -- start-up ------------------------------------------------------------------
    async def start(self, pending: list[JournaledIntent]) -> None:
        """Return only once the books are the exchange's (never gives up; never guesses)."""
        attempt = 0
        while True:
            try:
                await self._start_once(pending)
                pending = []
                self.started.set()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self.counters.failed += 1
                self._report("failed", reason=f"start-up: {describe(exc)}")
                log.warning("start-up reconcile failed", attempt=attempt, error=describe(exc))
                await self._clock.sleep(self._policy.delay(attempt, None, self._clock.rng))

    async def _start_once(self, pending: list[JournaledIntent]) -> None:
        venue = self.venue
        if pending:
            outcome = await venue.resolve_journal(pending)
            for key, value in outcome.items():
                self.journal_recovery[key] = self.journal_recovery.get(key, 0) + value
            log.info("journal resolved", **outcome)
        before = await venue.latest_trade_id()
        balances = await venue.balances()
        orders = await venue.poll_orders()
        if await venue.trades_after(before):
            raise SnapshotMoved("trades arrived while the start-up snapshot was taken")
        venue.cursor = before
        # The history gets what the exchange has of this engine's and it lacks (fills
        # while no engine ran): `kubectl hean trades` is the exchange's trade list.
        missed = await venue.record_missed_fills(before)
        ledger = self.engine.ledger
        ledger.set_balances(balances)
        log.info(
            "books taken from the exchange",
            balances={ccy: fmt(amount) for ccy, amount in sorted(balances.items()) if amount},
            open_orders=len(self.engine.kernel.open),
            last_trade_id=before,
            missed_fills_recorded=missed,
        )
        self._judge(
            compare(ledger, balances, orders, venue.ids.is_ours, self._price(), self._tol())
        )

    # -- loops -----------------------------------------------------------------------
    async def run_fills(self) -> None:
        """Poll the account's trades and orders: now and then, and after each order."""
        await self.started.wait()
        venue = self.venue
        while True:
            await self._event_or_sleep(venue.sync_wanted, self.spec.sync_interval_seconds)
            venue.sync_wanted.clear()
            try:
                await venue.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("fill poll failed", error=describe(exc))
                self.fault.set()

    async def run_reconcile(self) -> None:
        await self.started.wait()
        while True:
            faulted = await self._wait_interval_or_fault()
            if faulted:
                await self._clock.sleep(_AFTER_FAULT_SECONDS)
            await self.reconcile_once()

    async def _wait_interval_or_fault(self) -> bool:
        faulted = await self._event_or_sleep(self.fault, self.spec.reconcile_interval_seconds)
        self.fault.clear()
        return faulted

    async def _event_or_sleep(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for `event` or `seconds` of the injected clock; True if the event came."""
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            done, _ = await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            timer.cancel()
        return waiter in done

    async def reconcile_once(self) -> str:
        """One comparison with a consistent snapshot; returns its result."""
        venue = self.venue
        try:
            async with venue.sync_lock:
                await venue.sync_unlocked()
                before = venue.cursor
                balances = await venue.balances()
                orders = await venue.poll_orders()
                moved = await venue.trades_after(before)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.counters.failed += 1
            self._report("failed", reason=describe(exc))
            self.fault.set()
            return "failed"
        if moved:
            # A fill landed between the poll and the balances: they may include it.
            self.counters.inconclusive += 1
            self.fault.set()
            return "inconclusive"
        comparison = compare(
            self.engine.ledger, balances, orders, venue.ids.is_ours, self._price(), self._tol()
        )
        return self._judge(comparison)

    # -- judgement -------------------------------------------------------------------
    def _judge(self, comparison: Comparison) -> str:
        if not comparison.drift:
            self.drift_since = None
            self.counters.ok += 1
            self._report("ok", comparison=comparison)
            return "ok"
        self.counters.drift += 1
        if self.drift_since is None:
            self.drift_since = self._clock.now()
            log.error("books drifted from the exchange", detail=comparison.summary())
        self._report("drift", comparison=comparison)
        kernel = self.engine.kernel
        state = RiskState.HALTED if self.spec.on_drift is RiskPolicy.HALT else RiskState.REDUCING
        current = kernel.risk.state
        # Never lift a halt, and never loosen: REDUCING does not replace HALTED.
        if current is not RiskState.HALTED and current is not state:
            kernel.set_risk_state(state, f"exchange drift: {comparison.summary()}")
        return "drift"

    def _report(
        self, result: str, *, comparison: Comparison | None = None, reason: str = ""
    ) -> None:
        c = comparison
        drift_since = self.drift_since if result == "drift" else None
        self.runtime.last_reconcile = ReconcileReport(
            result=result,
            time=_iso(self._clock.now()),
            reason=reason or None,
            balances=_balances(c) if c is not None else None,
            difference_value=fmt(c.difference_value) if c is not None else None,
            tolerance=fmt(c.tolerance) if c is not None else None,
            foreign_orders=_foreign_orders(c) if c is not None else None,
            summary=c.summary() if c is not None else None,
            drift_since=_iso(drift_since) if drift_since is not None else None,
        )

    def _price(self) -> Decimal | None:
        mark = self.engine.ledger.mark_price
        return price_to_decimal(mark) if mark is not None else self.engine.ledger.last_price

    def _tol(self) -> Decimal:
        return self.spec.drift_tolerance

    def reconciles(self) -> dict[str, int]:
        return self.counters.as_dict()

    def metrics(self) -> dict[str, float]:
        stats = self.venue.stats
        return {
            "order_unknown_outcomes": stats.unknown_outcomes,
            "order_lookups": stats.lookups,
            "order_resends": stats.resends,
            "foreign_fills": stats.foreign_fills,
            "exchange_call_failures": stats.call_failures,
            "journal_bytes": self.venue.journal.size,
            "journal_compactions": self.venue.journal.compactions,
        }

    def report(self) -> LiveReport:
        """The live part of /status."""
        stats = self.venue.stats
        journal = self.venue.journal
        return LiveReport(
            reconciles=self.counters.report(),
            drift=self.drift_since is not None,
            journal=JournalReport(
                path=str(journal.path),
                writes=journal.writes,
                unresolved=len(journal.intents),
                bytes=journal.size,
                compactions=journal.compactions,
                recovered=dict(self.journal_recovery),
            ),
            orders=OrderCounts(
                submissions=stats.submissions,
                acknowledged=stats.acks,
                unknown_outcomes=stats.unknown_outcomes,
                lookups=stats.lookups,
                lookups_found=stats.lookups_found,
                lookups_absent=stats.lookups_absent,
                resends=stats.resends,
                duplicates_refused=stats.duplicates_refused,
                not_placed=stats.exchange_rejections,
                in_flight=self.venue.in_flight,
                adopted=stats.adopted,
                foreign_fills=stats.foreign_fills,
            ),
            exchange_call_failures=stats.call_failures,
        )


def _iso(seconds: float) -> str:
    return ms_to_iso(int(seconds * 1000))


def _foreign_orders(comparison: Comparison) -> list[ForeignOrder]:
    return [ForeignOrder.model_validate(order) for order in comparison.foreign_orders]


def _balances(comparison: Comparison) -> dict[str, BalanceComparison]:
    return {
        b.currency: BalanceComparison(
            engine=fmt(b.engine), exchange=fmt(b.exchange), difference=fmt(b.difference)
        )
        for b in comparison.balances
    }
