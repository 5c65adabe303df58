"""Orders at a real exchange through ccxt: idempotent, journaled, fail closed.

How a submission goes, and why:
1. The kernel's order gets a deterministic client order id (`client_ids`) and
   its quantity and price are rounded to the market's precision (so the books
   track what the exchange will hold); the intent is journaled and fsync'ed.
2. One sender task sends submissions and cancels in the kernel's order.
3. If a send fails in a way that leaves its outcome unknown (timeout,
   connection reset, 5xx), the order is looked up by its client order id
   BEFORE any new attempt. "Not found" is only believed once the request's
   deadline (the recvWindow, plus clock skew) has passed since the last
   attempt was signed: after that the exchange refuses the request even if it
   is still on its way. The deadline reaches the exchange as the venue table
   says (`net.venues`: Binance's signed `recvWindow`, OKX's `expTime` header,
   added here when ccxt signs). The time is taken when ccxt signs the request
   (a hook on the client's `sign`, after ccxt's rate limiter has queued it,
   which can take seconds), or, if the hook did not see it, when the attempt
   failed: never before the signed timestamp. Until then the lookup is
   repeated. A lookup that fails is retried for as long as it takes: an
   intent is never assumed absent. What an exchange's error code means for an
   order (a duplicate, an unknown outcome, certainly not placed, a rate limit
   to wait out and resend at once) is the venue table's too.
4. A resend reuses the client order id, so even a request that slipped
   through is refused as a duplicate while it is open.
5. Fills come from one source only, the account's trade list (paged by the
   venue's cursor, each trade booked once), and exact: ccxt's numbers are converted through their
   shortest repr, which gives back the exchange's decimal text.

Orders on the account without this engine's id prefix are foreign: reported,
never adopted. Orders with the prefix that the journal does not know (an
earlier run whose journal was lost) are adopted: they are this engine's.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import ccxt

from hean_engine.execution.client_ids import ClientOrderIds
from hean_engine.execution.journal import Journal, JournaledIntent
from hean_engine.execution.venue import OrderRecorder, VenueListener
from hean_engine.model.clock import SYSTEM_CLOCK, Clock, now_ms
from hean_engine.model.market import Candle, Trade
from hean_engine.model.money import ZERO, fmt, price_to_decimal
from hean_engine.model.orders import Fill, Order, OrderStatus, OrderType, Reject, Side
from hean_engine.net.retry import (
    RetryPolicy,
    is_rate_limit,
    is_transient,
    parse_retry_after,
)
from hean_engine.net.venues import VENUES, Outcome, Venue
from hean_engine.telemetry.logs import REDACTOR, get_logger

log = get_logger("hean.engine.live")

T = TypeVar("T")

# Binance accepts timestamps up to 1 s ahead of its clock; allow as much skew
# the other way before trusting a "not found" (on any exchange).
CLOCK_SKEW_MS = 1000
# Send attempts per intent. After the last one the intent is only looked up.
MAX_SEND_ATTEMPTS = 5
_EPSILON = Decimal("1e-18")
_TERMINAL = frozenset({"canceled", "expired", "rejected"})


def to_decimal(value: Any) -> Decimal:
    """A ccxt number as the exchange wrote it (None is zero)."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return Decimal(value)
    if isinstance(value, int):
        return Decimal(value)
    return price_to_decimal(float(value))


def describe(exc: BaseException) -> str:
    """An exception for logs and status: its class and text, secrets removed, bounded."""
    return f"{type(exc).__name__}: {REDACTOR.redact(str(exc))[:300]}"


@dataclass
class LiveOrder:
    order: Order
    cid: str
    exchange_id: str | None = None
    # pending (sent, not yet known), open, closed, canceled, expired, rejected
    exchange_status: str = "pending"
    exchange_filled: Decimal = ZERO
    cancel_requested: bool = False
    sent_ms: int = 0
    journaled_at: float = 0.0


@dataclass
class LiveStats:
    """Counters the metrics collector and /status read."""

    submissions: int = 0  # send attempts, retries included
    acks: int = 0
    unknown_outcomes: int = 0
    lookups: int = 0
    lookups_found: int = 0
    lookups_absent: int = 0
    resends: int = 0
    duplicates_refused: int = 0
    exchange_rejections: int = 0
    cancels: int = 0
    foreign_fills: int = 0
    adopted: int = 0
    call_failures: int = 0
    # Seconds from journaling an intent to the exchange's acknowledgement.
    ack_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    lookup_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    journal_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


class LiveVenue:
    def __init__(
        self,
        client: Any,
        symbol: str,
        journal: Journal,
        ids: ClientOrderIds,
        *,
        recv_window_ms: int,
        clock: Clock = SYSTEM_CLOCK,
        policy: RetryPolicy | None = None,
        on_fault: Callable[[str, BaseException], None] | None = None,
        venue: Venue = VENUES["binance"],
    ) -> None:
        self.client = client
        self.venue = venue
        self.symbol = symbol
        self.journal = journal
        self.ids = ids
        self.recv_window_ms = recv_window_ms
        self._clock = clock
        self.policy = policy or RetryPolicy(base_delay=0.2, max_delay=10.0, max_attempts=None)
        self.on_fault = on_fault
        self._listener: VenueListener | None = None
        self.recorder: OrderRecorder | None = None  # the durable history (exchange ids)
        # Trade ids recorded by record_missed_fills (a retried start-up asks again
        # before the writer has committed them: never twice).
        self.missed_recorded: set[str] = set()
        self.stats = LiveStats()
        self.by_cid: dict[str, LiveOrder] = {}
        self.by_oid: dict[str, LiveOrder] = {}
        self.foreign_oids: set[str] = set()
        # The newest trade booked, as the venue pages trades (Binance: the trade
        # id; OKX: the fill's billId); -1: none yet.
        self.cursor = -1
        self.queue: asyncio.Queue[tuple[str, LiveOrder]] = asyncio.Queue()
        self.sync_wanted = asyncio.Event()
        self.sync_lock = asyncio.Lock()
        self.idle = asyncio.Event()
        self.idle.set()
        self.dust = ZERO  # set from the market by `configure_market`
        self.min_notional = ZERO  # likewise, where the venue enforces one
        # Client ids of submissions in flight, and when ccxt signed each one.
        self._signing: set[str] = set()
        self._signed_ms: dict[str, int] = {}
        self._hook_sign()

    def _hook_sign(self) -> None:
        """Note when ccxt signs a submission: the moment its recvWindow starts.

        ccxt's rate limiter may hold a request for seconds before it is signed
        (with a timestamp of then); the hook runs right after `sign`, so the time
        it notes is never earlier than the signed timestamp. Where the venue
        sends the deadline as a header (OKX's `expTime`, not part of the
        signature), the hook adds it: that time plus the recvWindow.
        """
        original = getattr(self.client, "sign", None)
        if not callable(original):
            return
        signing = self._signing
        signed = self._signed_ms
        clock_ms = self._clock_ms
        window = self.venue.recv_window
        header = window.name if window.how == "header" else None
        recv_window_ms = self.recv_window_ms

        def sign(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            path = args[0] if args else kwargs.get("path")
            method = args[2] if len(args) > 2 else kwargs.get("method", "GET")
            params = args[3] if len(args) > 3 else kwargs.get("params")
            if not signing:
                return result
            for value in _param_values(params):
                if value in signing:
                    now = signed[value] = clock_ms()
                    placing = (method, path) in window.requests
                    if header is not None and placing and isinstance(result, dict):
                        headers = dict(result.get("headers") or {})
                        headers[header] = str(now + recv_window_ms)
                        result["headers"] = headers
            return result

        self.client.sign = sign

    def configure_market(self) -> None:
        """Read the market's smallest order once ccxt has loaded the markets."""
        market = self.client.markets[self.symbol]
        limits = (market.get("limits") or {}).get("amount") or {}
        smallest = to_decimal(limits.get("min") or (market.get("precision") or {}).get("amount"))
        # Quantities are multiples of the step, so anything below the smallest
        # order cannot be traded; `dust` is the largest such amount (<= comparisons).
        self.dust = max(ZERO, smallest - _EPSILON)
        if self.venue.min_notional:
            cost = (market.get("limits") or {}).get("cost") or {}
            self.min_notional = to_decimal(cost.get("min"))

    # -- the Venue protocol (synchronous: called by the kernel) ----------------
    def bind(self, listener: VenueListener) -> None:
        self._listener = listener

    def new_order_id(self) -> str:
        return self.ids.next()

    def submit(self, order: Order) -> None:
        cid = order.id
        quantity, price = self._to_precision(order)
        if quantity <= 0 or (price is not None and quantity * price < self.min_notional):
            # Below the market's smallest order: the exchange would refuse it.
            order.status = OrderStatus.REJECTED
            order.reason = Reject.INVALID_QUANTITY.value
            self._closed(order)
            return
        order.quantity = quantity
        order.price = price
        started = time.perf_counter()
        self.journal.record_intent(
            cid, order.side.value, order.type.value, quantity, price, order.tag
        )
        self.stats.journal_seconds.append(time.perf_counter() - started)
        live = LiveOrder(order, cid, journaled_at=started)
        self.by_cid[cid] = live
        self.idle.clear()
        self.queue.put_nowait(("submit", live))

    def cancel(self, order: Order) -> None:
        live = self.by_cid.get(order.id)
        if live is None or live.cancel_requested or not order.is_open:
            return
        live.cancel_requested = True
        self.idle.clear()
        self.queue.put_nowait(("cancel", live))

    def on_candle(self, candle: Candle) -> None:
        """Nothing to match: the exchange fills live orders."""

    def on_trade(self, trade: Trade) -> None:
        """Nothing to match: the exchange fills live orders."""

    def _to_precision(self, order: Order) -> tuple[Decimal, Decimal | None]:
        client = self.client
        try:
            quantity = Decimal(client.amount_to_precision(self.symbol, fmt(order.quantity)))
        except ccxt.InvalidOrder:
            return ZERO, order.price  # below the market's minimum amount
        price = order.price
        if price is not None:
            price = Decimal(client.price_to_precision(self.symbol, fmt(price)))
        return quantity, price

    # -- the sender --------------------------------------------------------------
    async def run_sender(self) -> None:
        """Send submissions and cancels one at a time, in the kernel's order."""
        while True:
            kind, live = await self.queue.get()
            try:
                if kind == "submit":
                    await self._place(live)
                else:
                    await self._cancel(live)
            finally:
                self.sync_wanted.set()
                if self.queue.empty():
                    self.idle.set()

    def _clock_ms(self) -> int:
        return now_ms(self._clock)

    async def _place(self, live: LiveOrder) -> None:
        attempts = 0
        while True:
            attempts += 1
            live.sent_ms = self._clock_ms()
            self.stats.submissions += 1
            try:
                info = await self._create(live)
            except Exception as exc:
                outcome = self.venue.placement_outcome(exc, is_transient(exc))
                if outcome is Outcome.DUPLICATE:
                    # An earlier attempt reached the exchange and is open there.
                    self.stats.duplicates_refused += 1
                    self._acked(live, await self._lookup(live, must_exist=True))
                    return
                if outcome is Outcome.NOT_PLACED:
                    self._reject(live, "rejected", describe(exc))
                    return
                self._fault("create_order", exc)
                await self._clock.sleep(self._backoff(1, exc))
                if outcome is Outcome.UNKNOWN:
                    self.stats.unknown_outcomes += 1
                    found = await self._lookup(live)
                    if found is not None:
                        self._acked(live, found)
                        return
                if attempts >= MAX_SEND_ATTEMPTS:
                    self._reject(live, "absent", f"not placed after {attempts} attempts")
                    return
                self.stats.resends += 1
                continue
            self._acked(live, info)
            return

    async def _create(self, live: LiveOrder) -> Any:
        """One create_order call; on failure `live.sent_ms` is when it was signed (or later)."""
        order = live.order
        self._signing.add(live.cid)
        self._signed_ms.pop(live.cid, None)
        try:
            return await self.client.create_order(
                self.symbol,
                order.type.value,
                order.side.value,
                fmt(order.quantity),
                fmt(order.price) if order.price is not None else None,
                {self.venue.client_ids.param: live.cid},
            )
        except Exception:
            # The recvWindow runs from the signed timestamp, not from the call;
            # unseen by the hook, the failure's time is an upper bound of it.
            signed = self._signed_ms.get(live.cid)
            live.sent_ms = signed if signed is not None else self._clock_ms()
            raise
        finally:
            self._signing.discard(live.cid)
            self._signed_ms.pop(live.cid, None)

    async def _lookup(self, live: LiveOrder, *, must_exist: bool = False) -> Any:
        """The exchange's order for this client id, or None once it certainly never arrived."""
        attempt = 0
        started = time.perf_counter()
        try:
            while True:
                self.stats.lookups += 1
                try:
                    info = await self.client.fetch_order(
                        None, self.symbol, {self.venue.client_ids.lookup_param: live.cid}
                    )
                except ccxt.OrderNotFound:
                    wait_ms = live.sent_ms + self.recv_window_ms + CLOCK_SKEW_MS - self._clock_ms()
                    if wait_ms <= 0 and not must_exist:
                        self.stats.lookups_absent += 1
                        return None
                    attempt += 1
                    await self._clock.sleep(max(wait_ms / 1000, self._backoff(attempt, None)))
                    continue
                except Exception as exc:
                    # Transient or not (an auth error, a 4xx): never guess. Retry.
                    attempt += 1
                    self._fault("fetch_order", exc)
                    await self._clock.sleep(self._backoff(attempt, exc))
                    continue
                self.stats.lookups_found += 1
                return info
        finally:
            self.stats.lookup_seconds.append(time.perf_counter() - started)

    def _acked(self, live: LiveOrder, info: Any) -> None:
        oid = str(info["id"])
        live.exchange_id = oid
        self.by_oid[oid] = live
        self.stats.acks += 1
        self.stats.ack_seconds.append(time.perf_counter() - live.journaled_at)
        self.journal.record_outcome(live.cid, "open", oid)
        if self.recorder is not None:
            self.recorder.on_order(live.order, "acknowledged", oid)
        self._update_from(live, info)

    def _reject(self, live: LiveOrder, status: str, reason: str) -> None:
        self.stats.exchange_rejections += 1
        log.warning("order not placed", client_order_id=live.cid, reason=reason)
        live.exchange_status = "rejected"
        self.journal.record_outcome(live.cid, status)
        order = live.order
        order.status = OrderStatus.REJECTED
        order.reason = reason
        self._forget(live)
        self._closed(order)

    async def _cancel(self, live: LiveOrder) -> None:
        if not live.order.is_open or live.exchange_id is None:
            return
        attempt = 0
        while True:
            self.stats.cancels += 1
            try:
                info = await self.client.cancel_order(live.exchange_id, self.symbol)
            except ccxt.OrderNotFound:
                # Already done at the exchange (filled, or cancelled by someone): ask how.
                info = await self._read(
                    "fetch_order", lambda: self.client.fetch_order(live.exchange_id, self.symbol)
                )
            except Exception as exc:
                if not is_transient(exc):
                    log.warning("cancel refused", client_order_id=live.cid, error=describe(exc))
                    live.cancel_requested = False
                    return
                attempt += 1
                self._fault("cancel_order", exc)
                await self._clock.sleep(self._backoff(attempt, exc))
                continue  # a cancel is idempotent: a repeat is "order not found" at worst
            self._update_from(live, info)
            return

    # -- state from the exchange -------------------------------------------------
    def _update_from(self, live: LiveOrder, info: Any) -> None:
        status = str(info.get("status") or "open")
        live.exchange_status = status
        filled = info.get("filled")
        if filled is not None:
            live.exchange_filled = max(live.exchange_filled, to_decimal(filled))
        self._maybe_close(live)

    def _maybe_close(self, live: LiveOrder) -> None:
        order = live.order
        if not order.is_open or live.exchange_status not in _TERMINAL:
            return
        if order.filled < live.exchange_filled:
            return  # its last fills are not booked yet: the trade poll will bring them
        rejected = live.exchange_status == "rejected"
        order.status = OrderStatus.REJECTED if rejected else OrderStatus.CANCELED
        order.reason = f"exchange: {live.exchange_status}"
        self.journal.record_outcome(
            live.cid, "rejected" if rejected else "canceled", live.exchange_id
        )
        self._forget(live)
        self._closed(order)

    def _forget(self, live: LiveOrder) -> None:
        self.by_cid.pop(live.cid, None)
        if live.exchange_id is not None:
            self.by_oid.pop(live.exchange_id, None)

    async def sync(self) -> None:
        """Book new fills and learn which tracked orders closed; raises if a call fails."""
        async with self.sync_lock:
            await self.sync_unlocked()

    async def sync_unlocked(self) -> None:
        """`sync` for a caller that holds `sync_lock` (two polls must never interleave:
        both would book the same trade)."""
        await self.poll_trades()
        await self.poll_orders()

    async def poll_trades(self) -> None:
        venue = self.venue
        page = venue.trades.page
        while True:
            trades = await self._read(
                "fetch_my_trades",
                functools.partial(
                    self.client.fetch_my_trades,
                    self.symbol,
                    None,
                    page,
                    venue.trades_after(self.cursor),
                ),
            )
            trades = sorted(trades, key=venue.trade_cursor)
            for trade in trades:
                position = venue.trade_cursor(trade)
                if position <= self.cursor:
                    continue
                await self._book(trade)
                self.cursor = position
            if len(trades) < page:
                return

    async def _book(self, trade: Any) -> None:
        oid = str(trade["order"])
        live = self.by_oid.get(oid)
        if live is None:
            if oid in self.foreign_oids:
                self.stats.foreign_fills += 1
                return
            info = await self._read(
                "fetch_order", lambda: self.client.fetch_order(oid, self.symbol)
            )
            cid = info.get("clientOrderId")
            live = self.by_cid.get(cid) if cid else None
            if live is None:
                if not self.ids.is_ours(cid):
                    self.foreign_oids.add(oid)
                    self.stats.foreign_fills += 1
                    log.warning("foreign fill on the account", exchange_order_id=oid)
                    return
                live = self.adopt(info)
            live.exchange_id = oid
            self.by_oid[oid] = live
        order = live.order
        fee = trade.get("fee") or {}
        quantity = to_decimal(trade["amount"])
        fill = Fill(
            ts=int(trade["timestamp"]),
            order_id=order.id,
            side=Side(trade["side"]),
            price=to_decimal(trade["price"]),
            quantity=quantity,
            fee=to_decimal(fee.get("cost")),
            liquidity=str(trade.get("takerOrMaker") or "taker"),
            fee_asset=str(fee.get("currency") or ""),
            trade_id=str(trade["id"]),
        )
        order.filled += quantity
        if order.filled >= order.quantity:
            order.status = OrderStatus.FILLED
            self.journal.record_outcome(live.cid, "filled", live.exchange_id)
            self._forget(live)
        assert self._listener is not None
        self._listener.on_fill(order, fill)
        if order.is_open:
            self._maybe_close(live)

    async def poll_orders(self) -> list[Any]:
        """The account's open orders on this market; tracked ones missing from it are asked."""
        orders = await self._read(
            "fetch_open_orders", lambda: self.client.fetch_open_orders(self.symbol)
        )
        open_ids = {str(o["id"]) for o in orders}
        for info in orders:
            cid = info.get("clientOrderId")
            if self.ids.is_ours(cid) and cid not in self.by_cid:
                self.adopt(info)
        for live in list(self.by_cid.values()):
            oid = live.exchange_id
            if oid is None or oid in open_ids or not live.order.is_open:
                continue
            info = await self._read(
                "fetch_order", functools.partial(self.client.fetch_order, oid, self.symbol)
            )
            self._update_from(live, info)
        return list(orders)

    def adopt(self, info: Any) -> LiveOrder:
        """Track an order of this engine that the exchange has and the books do not."""
        cid = str(info["clientOrderId"])
        price = info.get("price")
        order = Order(
            id=cid,
            side=Side(info["side"]),
            type=OrderType.LIMIT if info.get("type") == "limit" else OrderType.MARKET,
            quantity=to_decimal(info["amount"]),
            price=to_decimal(price) if price else None,
            created_ts=int(info.get("timestamp") or 0),
            filled=to_decimal(info.get("filled")),
        )
        live = LiveOrder(order, cid, exchange_id=str(info["id"]))
        live.exchange_status = str(info.get("status") or "open")
        live.exchange_filled = order.filled
        self.by_cid[cid] = live
        self.by_oid[str(info["id"])] = live
        self.stats.adopted += 1
        if self.recorder is not None:
            self.recorder.on_order(order, "adopted", live.exchange_id or "")
        assert self._listener is not None
        self._listener.adopt(order)
        return live

    # -- start-up ----------------------------------------------------------------
    async def resolve_journal(self, pending: list[JournaledIntent]) -> dict[str, int]:
        """Settle every intent a previous run may have sent: found, or certainly absent."""
        # The previous run's last attempt was before this start: waiting out the
        # recvWindow from now is conservative.
        now = self._clock_ms()
        outcome = {"found": 0, "absent": 0}
        for intent in pending:
            order = Order(
                id=intent.cid,
                side=Side(intent.side),
                type=OrderType(intent.type),
                quantity=intent.quantity,
                price=intent.price,
                created_ts=intent.ts,
                tag=intent.tag,
            )
            live = LiveOrder(order, intent.cid, sent_ms=now)
            info = await self._lookup(live)
            if info is None:
                self.journal.record_outcome(intent.cid, "absent")
                outcome["absent"] += 1
                continue
            outcome["found"] += 1
            status = str(info.get("status") or "open")
            if status == "open":
                self.journal.record_outcome(intent.cid, "open", str(info["id"]))
            else:
                # Its fills are in the balances the books start from.
                self.journal.record_outcome(
                    intent.cid, "filled" if status == "closed" else "canceled", str(info["id"])
                )
        return outcome

    async def record_missed_fills(self, upto: int) -> int:
        """Record in the history the fills of this engine's orders that the exchange has and
        the history lacks, up to trade cursor `upto` (the start-up snapshot's newest trade);
        returns how many. They happened while no engine ran (an order that filled after
        its pod was killed) or in the last milliseconds of a killed run, before its batch
        was committed. They are not booked: the books start from the exchange's balances,
        which include them."""
        recorder = self.recorder
        start = recorder.missed_fills_from() if recorder is not None else None
        if recorder is None or start is None:
            return 0
        since, known = start
        venue = self.venue
        page = venue.trades.page
        # Where the trade id is the venue's cursor (Binance), page after the newest
        # recorded one; else (OKX's billId is not recorded) by time from its fill's time.
        ids = [int(t) for t in known if t.isdigit()]
        cursor = max(ids) if venue.trades.cursor_field is None and ids else None
        recorded = 0
        while True:
            if cursor is not None:
                call = functools.partial(
                    self.client.fetch_my_trades,
                    self.symbol,
                    None,
                    page,
                    venue.trades_after(cursor),
                )
            else:
                call = functools.partial(self.client.fetch_my_trades, self.symbol, since, page)
            trades = sorted(await self._read("fetch_my_trades", call), key=venue.trade_cursor)
            for trade in trades:
                if venue.trade_cursor(trade) > upto:
                    return recorded
                trade_id = str(trade["id"])
                if trade_id in known or trade_id in self.missed_recorded:
                    continue  # recorded, or queued by an earlier start-up attempt
                known.add(trade_id)
                if await self._record_missed(recorder, trade):
                    self.missed_recorded.add(trade_id)
                    recorded += 1
            if len(trades) < page:
                return recorded
            if cursor is not None:
                cursor = venue.trade_cursor(trades[-1])
                continue
            newest = max(int(t["timestamp"]) for t in trades)
            if newest <= since:
                return recorded  # a whole page in one millisecond: no way forward by time
            since = newest

    async def _record_missed(self, recorder: OrderRecorder, trade: Any) -> int:
        """One missed trade, if it is of this engine's order: 1 recorded, 0 not ours."""
        oid = str(trade["order"])
        live = self.by_oid.get(oid)  # an order adopted as open at start-up
        if live is not None:
            order = live.order
        else:
            info = await self._read(
                "fetch_order", functools.partial(self.client.fetch_order, oid, self.symbol)
            )
            cid = info.get("clientOrderId")
            if not self.ids.is_ours(cid):
                return 0
            price = info.get("price")
            order = Order(
                id=str(cid),
                side=Side(info["side"]),
                type=OrderType.LIMIT if info.get("type") == "limit" else OrderType.MARKET,
                quantity=to_decimal(info["amount"]),
                price=to_decimal(price) if price else None,
                created_ts=int(info.get("timestamp") or 0),
                filled=to_decimal(info.get("filled")),
            )
            status = str(info.get("status") or "open")
            if status == "closed":
                order.status = OrderStatus.FILLED
            elif status == "canceled":
                order.status = OrderStatus.CANCELED
        fee = trade.get("fee") or {}
        fill = Fill(
            ts=int(trade["timestamp"]),
            order_id=order.id,
            side=Side(trade["side"]),
            price=to_decimal(trade["price"]),
            quantity=to_decimal(trade["amount"]),
            fee=to_decimal(fee.get("cost")),
            liquidity=str(trade.get("takerOrMaker") or "taker"),
            fee_asset=str(fee.get("currency") or ""),
            trade_id=str(trade["id"]),
        )
        recorder.on_missed_fill(order, fill, oid)
        log.warning(
            "missed fill recorded",
            trade_id=fill.trade_id,
            order_id=order.id,
            exchange_order_id=oid,
        )
        return 1

    async def latest_trade_id(self) -> int:
        """The newest trade's cursor (the venue's paging position; -1: no trade yet)."""
        trades = await self._read(
            "fetch_my_trades", lambda: self.client.fetch_my_trades(self.symbol, None, 1)
        )
        return max((self.venue.trade_cursor(t) for t in trades), default=-1)

    async def trades_after(self, trade_id: int) -> bool:
        """Whether a trade after cursor `trade_id` exists."""
        params = self.venue.trades_after(trade_id)
        trades = await self._read(
            "fetch_my_trades",
            lambda: self.client.fetch_my_trades(self.symbol, None, 1, params),
        )
        return any(self.venue.trade_cursor(t) > trade_id for t in trades)

    async def balances(self) -> dict[str, Decimal]:
        raw = await self._read("fetch_balance", self.client.fetch_balance)
        totals = raw.get("total") or {}
        return {
            str(ccy): to_decimal(amount) for ccy, amount in totals.items() if amount is not None
        }

    # -- plumbing ----------------------------------------------------------------
    async def _read(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """A read-only call: transient failures are retried a few times, then raised."""
        attempt = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                attempt += 1
                self._fault(what, exc)
                if not is_transient(exc) or attempt >= 4:
                    raise
                await self._clock.sleep(self._backoff(attempt, exc))

    def _backoff(self, attempt: int, exc: BaseException | None) -> float:
        hint = None
        if exc is not None and (is_rate_limit(exc) or isinstance(exc, ccxt.ExchangeNotAvailable)):
            hint = parse_retry_after(
                getattr(self.client, "last_response_headers", None), self._clock.now()
            )
        return self.policy.delay(attempt, hint, self._clock.rng)

    def _fault(self, what: str, exc: BaseException) -> None:
        self.stats.call_failures += 1
        log.warning("exchange call failed", call=what, error=describe(exc))
        if self.on_fault is not None:
            self.on_fault(what, exc)

    def _closed(self, order: Order) -> None:
        assert self._listener is not None
        self._listener.on_order_closed(order)

    @property
    def in_flight(self) -> int:
        """Orders sent whose outcome the exchange has not confirmed yet."""
        return sum(1 for live in self.by_cid.values() if live.exchange_status == "pending")


def _param_values(params: Any) -> list[str]:
    """The string values of a request's parameters (a dict, or OKX's batch: a list of dicts)."""
    items = params if isinstance(params, list) else [params]
    return [
        value
        for item in items
        if isinstance(item, dict)
        for value in item.values()
        if isinstance(value, str)
    ]
