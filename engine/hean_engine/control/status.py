"""The /status document: the engine's `EngineReport`, which the operator copies into status.

The report's type lives in `hean_contract.report`, shared with the operator
and the sandbox's fake engine, so a field changed here and not there fails the
type checker, not a poll. Money is written as decimal strings (exact), times
as RFC 3339 UTC. Nothing from the credentials or the control token is ever
part of it: the report is built from the books and the kernel only.
"""

from __future__ import annotations

from hean_contract.report import EngineReport, RecentEvent, ReportedOrder
from hean_engine.control.runtime import Runtime
from hean_engine.kernel.engine import KernelEvent
from hean_engine.model.money import fmt
from hean_engine.model.orders import Order
from hean_engine.model.timefmt import ms_to_iso

# How many of the kernel's recent events the report carries.
RECENT_EVENTS = 20


def _order(order: Order) -> ReportedOrder:
    return ReportedOrder(
        id=order.id,
        side=order.side.value,
        type=order.type.value,
        quantity=fmt(order.quantity),
        remaining=fmt(order.remaining),
        price=fmt(order.price) if order.price is not None else None,
        created=ms_to_iso(order.created_ts) if order.created_ts else None,
        tag=order.tag,
    )


def _event(event: KernelEvent) -> RecentEvent:
    return RecentEvent(
        time=ms_to_iso(event.ts) if event.ts else None, kind=event.kind, detail=event.detail
    )


def last_data_ms(runtime: Runtime) -> int | None:
    feed = runtime.feed
    if feed is not None and feed.last_event_ts is not None:
        return feed.last_event_ts
    return runtime.kernel.now or None


def build_report(runtime: Runtime) -> EngineReport:
    kernel = runtime.kernel
    ledger = kernel.ledger
    risk = kernel.risk
    spec = runtime.spec
    ready, ready_reason = runtime.readiness()
    data_ms = last_data_ms(runtime)
    return EngineReport(
        name=runtime.identity.name,
        namespace=runtime.identity.namespace,
        generation=runtime.identity.generation,
        run_id=runtime.run_id,
        mode=runtime.mode,
        exchange=spec.exchange.id,
        symbol=spec.market.symbol,
        strategy=spec.strategy.name,
        ready=ready,
        ready_reason=ready_reason,
        risk_state=risk.state.value,
        risk_state_reason=risk.state_reason,
        paused=risk.paused,
        position=fmt(ledger.position),
        balances={ccy: fmt(amount) for ccy, amount in sorted(ledger.balances().items())},
        equity=fmt(ledger.equity),
        pnl=fmt(ledger.pnl),
        max_drawdown=fmt(ledger.max_drawdown),
        fees=fmt(ledger.fees),
        open_orders=[_order(order) for order in kernel.open_orders],
        orders_submitted=kernel.orders_submitted,
        orders_closed=dict(sorted(kernel.orders_by_status.items())),
        fills=len(kernel.fills),
        rejections=dict(sorted(risk.rejections.items())),
        events=kernel.events,
        last_data_time=ms_to_iso(data_ms) if data_ms else None,
        last_reconcile=runtime.last_reconcile,
        live=runtime.live.report() if runtime.live is not None else None,
        approval=runtime.approval.report() if runtime.approval is not None else None,
        recent_events=[_event(e) for e in list(kernel.recent_events)[-RECENT_EVENTS:]],
    )


def status_document(runtime: Runtime) -> dict[str, object]:
    """What GET /status answers: the report in its wire form (camelCase keys)."""
    return build_report(runtime).model_dump(mode="json", by_alias=True)
