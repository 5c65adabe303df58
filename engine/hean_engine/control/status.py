"""The /status document: everything the operator copies into the resource's status.

Money is written as decimal strings (exact), times as ISO-8601 UTC. Nothing
from the credentials or the control token is ever part of it: the document is
built from the books and the kernel only.
"""

from __future__ import annotations

from typing import Any

from hean_engine.control.runtime import Runtime
from hean_engine.model.money import fmt
from hean_engine.model.orders import Order
from hean_engine.model.timefmt import ms_to_iso


def _order(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": fmt(order.quantity),
        "remaining": fmt(order.remaining),
        "price": fmt(order.price) if order.price is not None else None,
        "created": ms_to_iso(order.created_ts) if order.created_ts else None,
        "tag": order.tag,
    }


def last_data_ms(runtime: Runtime) -> int | None:
    feed = runtime.feed
    if feed is not None and feed.last_event_ts is not None:
        return feed.last_event_ts
    return runtime.kernel.now or None


def build_status(runtime: Runtime) -> dict[str, Any]:
    kernel = runtime.kernel
    ledger = kernel.ledger
    risk = kernel.risk
    spec = runtime.spec
    ready, ready_reason = runtime.readiness()
    data_ms = last_data_ms(runtime)
    return {
        "name": runtime.identity.name,
        "namespace": runtime.identity.namespace,
        "generation": runtime.identity.generation,
        "run_id": runtime.run_id,
        "mode": runtime.mode,
        "exchange": spec.exchange.id,
        "symbol": spec.market.symbol,
        "strategy": spec.strategy.name,
        "ready": ready,
        "ready_reason": ready_reason,
        "risk_state": risk.state.value,
        "risk_state_reason": risk.state_reason,
        "paused": risk.paused,
        "position": fmt(ledger.position),
        "balances": {ccy: fmt(amount) for ccy, amount in sorted(ledger.balances().items())},
        "equity": fmt(ledger.equity),
        "pnl": fmt(ledger.pnl),
        "max_drawdown": fmt(ledger.max_drawdown),
        "fees": fmt(ledger.fees),
        "open_orders": [_order(order) for order in kernel.open_orders],
        "orders_submitted": kernel.orders_submitted,
        "orders_closed": dict(sorted(kernel.orders_by_status.items())),
        "fills": len(kernel.fills),
        "rejections": dict(sorted(risk.rejections.items())),
        "events": kernel.events,
        "last_data_time": ms_to_iso(data_ms) if data_ms else None,
        "last_reconcile": runtime.last_reconcile,
        "live": runtime.live.status() if runtime.live is not None else None,
        "approval": runtime.approval.as_dict() if runtime.approval is not None else None,
        "recent_events": [
            {"time": ms_to_iso(e.ts) if e.ts else None, "kind": e.kind, "detail": e.detail}
            for e in list(kernel.recent_events)[-20:]
        ],
    }
