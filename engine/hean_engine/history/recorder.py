"""The recorder: what the kernel and the live venue report, written to the history store.

Hooks (`on_order`, `on_fill`, kernel events, one equity point per closed
candle) run on the event loop. Each builds its rows at once (the order is
mutable; the row is what it was at that moment) and puts them on a queue:
microseconds, never a disk or a network wait. A writer thread of its own
takes everything queued when it wakes and writes it in ONE transaction (one
fsync per batch, however many rows): a thread rather than batching on the
loop because an SQLite fsync takes milliseconds and a PostgreSQL commit a
network round trip, and the loop must not wait for either.

Durability: a fill, its order change and the account's balances after it are
written in the same transaction, so the account restored after a crash is
always the one the recorded fills lead to. The structured log line of an
order or a fill (`order`, `fill`) is written after its commit returned: what
the logs and the read API report is on disk. A process killed between the
kernel booking a fill and the commit (one batch: milliseconds) loses that fill
from the history and from the paper account alike; a live engine's exchange
still has it.

A failing write (a full volume, a lost database) is retried with backoff,
the batch kept; `write_failures` and `pending` say so on /metrics.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

from hean_engine.execution.live_venue import LiveVenue
from hean_engine.execution.simulated import SimulatedVenue
from hean_engine.history.store import (
    AccountState,
    EquityPoint,
    EventRecord,
    FillRecord,
    HistoryStore,
    OrderChange,
    PositionSnapshot,
    Record,
    Retention,
    open_store,
)
from hean_engine.kernel.engine import KernelEvent, TradingKernel
from hean_engine.model.market import Candle, Trade
from hean_engine.model.money import fmt
from hean_engine.model.orders import Fill, Order, OrderStatus
from hean_engine.model.timefmt import ms_to_iso
from hean_engine.strategy.base import DataKind, Strategy
from hean_engine.telemetry.logs import REDACTOR, LogThrottle, get_logger

log = get_logger("hean.engine.history")

# Paper order ids are o<N> (SimulatedVenue); simulated fills get paper-<seq>.
_PAPER_ORDER_PREFIX = "o"
_PAPER_TRADE_PREFIX = "paper-"
# How long the writer waits for work before it looks at the retention again.
_WAKE_SECONDS = 60.0
# The most rows in one transaction (a backlog after an outage is written in slices).
_BATCH_ROWS = 5000


class _Flush:
    """A marker: set once everything queued before it is committed."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class HistoryRecorder:
    def __init__(
        self,
        store: HistoryStore,
        kernel: TradingKernel,
        *,
        run_id: str,
        paper: bool,
        timeframe_ms: int,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.time,
        prune_interval: float = 3600.0,
        retry_delay: float = 1.0,
    ) -> None:
        self.store = store
        self.kernel = kernel
        self.run_id = run_id
        self.paper = paper
        self.timeframe_ms = timeframe_ms
        self.retention = retention or Retention()
        self._clock = clock
        self._prune_interval = prune_interval
        self.retry_delay = retry_delay
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._seq = store.last_seqs()
        self._exchange_ids: dict[str, str] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._throttle = LogThrottle()
        self._last_balances: dict[str, Decimal] | None = None
        self._last_market_events = 0
        self._last_bucket: int | None = None
        account = store.account()
        self.epoch = account.epoch if account is not None else 0
        self.baseline = account.baseline if account is not None else None
        self.baseline_ts = account.baseline_ts if account is not None else None
        self.restored = account if paper else None
        # Counters for /metrics (written by the writer thread, read at scrape time).
        self.enqueued = 0
        self.written = 0
        self.write_failures = 0
        self.store_bytes = 0
        # (free, capacity) of the store's volume in bytes; None for PostgreSQL or unread.
        self.volume: tuple[int, int] | None = None
        self._next_prune = 0.0

    # -- start-up -----------------------------------------------------------------------
    def attach(self) -> None:
        """Restore the paper account, hook into the kernel and the venue, start writing."""
        kernel = self.kernel
        ledger = kernel.ledger
        venue = kernel.venue
        if self.paper:
            if self.restored is not None:
                ledger.set_balances(self.restored.balances)
                detail = f"paper account continued (epoch {self.epoch})"
            else:
                detail = "paper account opened"
                self._put([self._account_state()])
            if isinstance(venue, SimulatedVenue):
                last = self.store.last_order_id(_PAPER_ORDER_PREFIX)
                if last is not None and last[len(_PAPER_ORDER_PREFIX) :].isdigit():
                    venue.continue_ids(int(last[len(_PAPER_ORDER_PREFIX) :]))
        else:
            detail = "live account: balances are the exchange's"
        if isinstance(venue, LiveVenue):
            venue.recorder = self
        kernel.recorder = self
        kernel.listeners.append(self.on_event)
        kernel.attach(_EquityTap(kernel, kernel.strategy, self))
        self._put([self._event("history", f"run {self.run_id}: {detail}"), self._snapshot("start")])
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    # -- hooks (the event loop) ---------------------------------------------------------
    def on_order(self, order: Order, change: str, exchange_order_id: str = "") -> None:
        if exchange_order_id:
            self._exchange_ids[order.id] = exchange_order_id
        exchange_id = self._exchange_ids.get(order.id, "")
        if not order.is_open:
            self._exchange_ids.pop(order.id, None)
        self._put([self._order_change(order, change, exchange_id)])

    def on_fill(self, order: Order, fill: Fill) -> None:
        exchange_id = self._exchange_ids.get(order.id, "")
        if not order.is_open:
            self._exchange_ids.pop(order.id, None)
        record, change = self._fill_rows(order, fill, exchange_id)
        self._put([record, change, self._account_state(), self._snapshot("fill")])

    def _fill_rows(
        self, order: Order, fill: Fill, exchange_order_id: str
    ) -> tuple[FillRecord, OrderChange]:
        """A fill's row and its order's state change after it (filled or partly)."""
        seq = self._next("fills")
        record = FillRecord(
            seq=seq,
            ts=fill.ts,
            trade_id=fill.trade_id or f"{_PAPER_TRADE_PREFIX}{seq}",
            order_id=order.id,
            exchange_order_id=exchange_order_id,
            side=fill.side.value,
            price=fill.price,
            quantity=fill.quantity,
            fee=fill.fee,
            fee_currency=fill.fee_asset or self.kernel.ledger.quote_ccy,
            liquidity=fill.liquidity,
            run_id=self.run_id,
        )
        change = "filled" if order.status is OrderStatus.FILLED else "partially_filled"
        return record, self._order_change(order, change, exchange_order_id)

    def missed_fills_from(self) -> tuple[int, set[str]] | None:
        """(the newest recorded fill's time, else the oldest order change's; the trade ids
        recorded from then on), or None for a history with neither (read at start-up,
        before anything trades: a read on the loop is acceptable there)."""
        since = self.store.resume_ts()
        if since is None:
            return None
        return since, self.store.trade_ids_since(since)

    def on_missed_fill(self, order: Order, fill: Fill, exchange_order_id: str) -> None:
        """A fill the exchange has and the history lacks (it happened while no engine ran,
        or the run before was killed before its batch was committed), found at start-up:
        recorded with its order's state, not booked (the books are the exchange's
        balances, which include it)."""
        record, change = self._fill_rows(order, fill, exchange_order_id)
        self._put(
            [
                record,
                change,
                self._event(
                    "missed_fill",
                    f"trade {record.trade_id} of order {order.id} recorded at start-up "
                    "(the exchange had it, the history did not)",
                ),
            ]
        )

    def on_event(self, event: KernelEvent) -> None:
        self._put([self._event(event.kind, event.detail)])

    def on_candle_closed(self, close_ts: int) -> None:
        """One equity point at a closed candle's close time (and the PnL baseline, once)."""
        ledger = self.kernel.ledger
        equity = ledger.equity
        records: list[Record] = []
        if self.baseline is None:
            start = ledger.starting_equity
            self.baseline = start if start is not None else equity
            self.baseline_ts = close_ts
            records.append(self._account_state())
        if ledger.starting_equity is not None and ledger.starting_equity != self.baseline:
            # PnL is relative to the recorded baseline, not to this run's start.
            ledger.starting_equity = self.baseline
        records.append(
            EquityPoint(
                ts=close_ts,
                equity=equity,
                pnl=equity - self.baseline,
                baseline=self.baseline,
                position=ledger.position,
                price=ledger.last_price,
            )
        )
        if ledger.balances() != self._last_balances:
            records.append(self._snapshot("valuation"))  # e.g. live books taken at start-up
        self._put(records)

    def on_market_event(self, ts: int, candle_close_ts: int | None) -> None:
        """From the tap: a live (not warm-up) event; trades give one point per timeframe."""
        kernel = self.kernel
        if kernel.events == self._last_market_events:
            return  # warm-up: the strategy sees history, nothing is valued
        self._last_market_events = kernel.events
        if candle_close_ts is not None:
            self.on_candle_closed(candle_close_ts)
            return
        bucket = ts // self.timeframe_ms
        if self._last_bucket is not None and bucket != self._last_bucket:
            self.on_candle_closed(bucket * self.timeframe_ms)
        self._last_bucket = bucket

    # -- the explicit reset ---------------------------------------------------------------
    def reset_paper_account(self, balances: dict[str, Decimal]) -> AccountState:
        """Start the paper account again from `balances` (the spec's starting balances).

        The running books take them at once; the PnL baseline is set again at the
        next valuation. Orders, fills and equity points stay. The control command
        `reset-paper-account` calls this (`app.nodes`), and only it.
        """
        if not self.paper:
            raise ValueError("only a paper account can be reset")
        ledger = self.kernel.ledger
        ledger.set_balances(balances)
        ledger.starting_equity = None  # the next valuation starts the books again
        self.baseline = self.baseline_ts = None
        self.epoch += 1
        state = self._account_state()
        shown = ", ".join(f"{c} {fmt(v)}" for c, v in sorted(balances.items()))
        self._put(
            [
                state,
                self._event("paper_account_reset", f"epoch {self.epoch}, balances: {shown}"),
                self._snapshot("reset"),
            ]
        )
        return state

    # -- rows -------------------------------------------------------------------------------
    def _next(self, table: str) -> int:
        seq = self._seq[table] + 1
        self._seq[table] = seq
        return seq

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _order_change(self, order: Order, change: str, exchange_id: str) -> OrderChange:
        return OrderChange(
            seq=self._next("orders"),
            ts=self._now_ms(),
            order_id=order.id,
            exchange_order_id=exchange_id,
            change=change,
            status=order.status.value,
            side=order.side.value,
            type=order.type.value,
            quantity=order.quantity,
            price=order.price,
            filled=order.filled,
            reason=order.reason,
            tag=order.tag,
            run_id=self.run_id,
        )

    def _event(self, kind: str, detail: str) -> EventRecord:
        return EventRecord(self._next("events"), self._now_ms(), kind, detail, self.run_id)

    def _account_state(self) -> AccountState:
        return AccountState(
            balances=self.kernel.ledger.balances(),
            baseline=self.baseline,
            baseline_ts=self.baseline_ts,
            epoch=self.epoch,
            updated_ts=self._now_ms(),
        )

    def _snapshot(self, reason: str) -> PositionSnapshot:
        ledger = self.kernel.ledger
        balances = ledger.balances()
        self._last_balances = balances
        return PositionSnapshot(
            self._next("positions"), self._now_ms(), dict(balances), ledger.position, reason
        )

    def _put(self, records: list[Record]) -> None:
        self.enqueued += len(records)
        self._queue.put(records)

    # -- the writer thread ----------------------------------------------------------------
    @property
    def pending(self) -> int:
        return self.enqueued - self.written

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything recorded so far is committed (shutdown, tests)."""
        if self._thread is None or not self._thread.is_alive():
            return self.pending == 0
        marker = _Flush()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, stop the writer and close the store."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)
            if thread.is_alive():
                self._stopping.set()  # a failing store: give up retrying
                thread.join(timeout)
        with contextlib.suppress(Exception):
            self.store.close()

    def _run(self) -> None:
        self._maybe_prune()
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=_WAKE_SECONDS)
            except queue.Empty:
                self._maybe_prune()
                continue
            batch: list[Record] = []
            markers: list[_Flush] = []
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, _Flush):
                    markers.append(item)
                else:
                    batch.extend(item)
                if len(batch) >= _BATCH_ROWS:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
            for marker in markers:
                marker.done.set()
            self._maybe_prune()

    def _commit(self, batch: list[Record]) -> None:
        attempt = 0
        while True:
            try:
                self.store.write(batch)
                break
            except Exception as exc:
                attempt += 1
                self.write_failures += 1
                if self._throttle.allow(("history write", type(exc).__name__)) is not None:
                    log.error(
                        "history write failed, retrying",
                        error=f"{type(exc).__name__}: {REDACTOR.redact(str(exc))[:200]}",
                        rows=len(batch),
                        attempt=attempt,
                    )
                if self._stopping.wait(min(30.0, self.retry_delay * 2 ** min(attempt, 5))):
                    log.error("history write abandoned at shutdown", rows=len(batch))
                    self.written += len(batch)
                    return
        self.written += len(batch)
        try:
            for record in batch:
                if isinstance(record, FillRecord):
                    _log_fill(record)
                elif isinstance(record, OrderChange):
                    _log_order(record)
        except Exception:  # noqa: S110 - a log line must never stop the writer
            pass
        self._measure()

    def _measure(self) -> None:
        with contextlib.suppress(Exception):
            self.store_bytes = self.store.size_bytes()
        with contextlib.suppress(OSError):
            self.volume = self.store.volume_bytes()

    def _maybe_prune(self) -> None:
        now = self._clock()
        if now < self._next_prune:
            return
        self._next_prune = now + self._prune_interval
        try:
            deleted = self.store.prune(self.retention, int(now * 1000))
        except Exception as exc:
            log.error("history retention failed", error=type(exc).__name__)
            return
        if any(deleted.values()):
            log.info("history retention applied", deleted=deleted)
        self._measure()


def _log_fill(r: FillRecord) -> None:
    log.info(
        "fill",
        trade_id=r.trade_id,
        order_id=r.order_id,
        exchange_order_id=r.exchange_order_id or None,
        side=r.side,
        price=fmt(r.price),
        quantity=fmt(r.quantity),
        fee=fmt(r.fee),
        fee_currency=r.fee_currency,
        liquidity=r.liquidity,
        time=ms_to_iso(r.ts),
    )


def _log_order(r: OrderChange) -> None:
    log.info(
        "order",
        order_id=r.order_id,
        exchange_order_id=r.exchange_order_id or None,
        change=r.change,
        status=r.status,
        side=r.side,
        type=r.type,
        quantity=fmt(r.quantity),
        price=fmt(r.price) if r.price is not None else None,
        filled=fmt(r.filled),
        reason=r.reason or None,
        tag=r.tag or None,
    )


class _EquityTap(Strategy):
    """Sits between the kernel and the strategy in paper and live: after the kernel
    valued the books at a live event (and before the strategy acts on it), the
    recorder takes an equity point. The kernel's hot path is untouched, and a
    replay, which has no recorder, has no tap either."""

    name: ClassVar[str] = "history-tap"
    consumes: ClassVar[DataKind] = "candles"  # unused: the engine reads its own strategy's

    def __init__(
        self, kernel: TradingKernel, inner: Strategy | None, recorder: HistoryRecorder
    ) -> None:
        assert inner is not None, "attach the strategy before the history"
        super().__init__(kernel, inner.params)
        self.inner = inner
        self._recorder = recorder
        self._tf = recorder.timeframe_ms

    def on_candle(self, candle: Candle) -> None:
        self._recorder.on_market_event(candle.ts, candle.ts + self._tf)
        self.inner.on_candle(candle)

    def on_trade(self, trade: Trade) -> None:
        self._recorder.on_market_event(trade.ts, None)
        self.inner.on_trade(trade)

    def on_fill(self, fill: Fill, order: Order) -> None:
        self.inner.on_fill(fill, order)

    def on_order_closed(self, order: Order) -> None:
        self.inner.on_order_closed(order)


def open_history(
    target: str,
    kernel: TradingKernel,
    *,
    namespace: str,
    name: str,
    run_id: str,
    paper: bool,
    timeframe_ms: int,
    retention: Retention | None = None,
    clock: Callable[[], float] = time.time,
) -> HistoryRecorder:
    """Open the store at `target` (path or URL) and attach a recorder to the kernel."""
    store = open_store(target, f"{namespace}/{name}")
    recorder = HistoryRecorder(
        store,
        kernel,
        run_id=run_id,
        paper=paper,
        timeframe_ms=timeframe_ms,
        retention=retention,
        clock=clock,
    )
    recorder.attach()
    log.info(
        "history opened",
        backend=store.kind,
        location=store.location,
        migrated_from=store.schema_migrated_from,
        account_epoch=recorder.epoch,
        continued=recorder.restored is not None,
        retention_days=recorder.retention.days(),
    )
    return recorder
