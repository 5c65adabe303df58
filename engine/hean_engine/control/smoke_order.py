"""POST /test-order: one small order through a paper engine, the operator's smoke test.

The product HEAN recasts had a "test order" button: after deploying, a person
checks that the engine takes an order end to end (risk checks, the venue, a
fill in the books) without waiting for the strategy to trade. Here that is
one market order on a paper engine's simulated venue, through the same
kernel path as the strategy's orders (`TradingKernel.submit`, so the risk
limits, the pause and the halt all apply), tagged `test-order`.

Refused for anything but a paper engine: a live engine's order would be real
money, and `kubectl hean test-order` refuses it too, so that a single check
never stands between a typo and a live order. Authorized like /control (the
same token). The body is optional: `{"side": "buy"|"sell", "quantity": "0.001"}`
(defaults: buy, 0.001); 202 with the order, 400 naming a bad field, 403 for a
live engine, 409 when the risk engine refuses it (with its reason).

Kept apart from server.py (which registers it) so the engine's command
surface for the operator, POST /control, stays exactly the typed commands.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from hean_engine.control.runtime import Runtime
from hean_engine.model.money import fmt
from hean_engine.model.orders import OrderIntent, OrderType, Side
from hean_engine.telemetry.logs import get_logger

log = get_logger("hean.control")

TAG = "test-order"
DEFAULT_QUANTITY = Decimal("0.001")
# The longest quantity text read (a JSON string: a JSON number would be a float).
_MAX_TEXT = 40

Authorize = Callable[[web.Request, str], web.Response | None]
ReadBody = Callable[[web.Request], Awaitable[tuple[Any, str | None]]]
RuntimeOf = Callable[[web.Request], Runtime]


class BadOrder(ValueError):
    """A field of the body the endpoint refuses; the message names it."""


def _json(payload: dict[str, Any], status: int) -> web.Response:
    return web.Response(
        text=json.dumps(payload, sort_keys=True), status=status, content_type="application/json"
    )


def parse_order(body: Any) -> OrderIntent:
    """The market order the body asks for (an empty body: the defaults)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadOrder('body: expected a JSON object such as {"side": "buy", "quantity": "0.001"}')
    unknown = sorted(set(body) - {"side", "quantity"})
    if unknown:
        raise BadOrder(f"{json.dumps(unknown[0])[:40]}: unknown field (allowed: quantity, side)")
    side_text = body.get("side", "buy")
    if side_text not in ("buy", "sell"):
        raise BadOrder(f"side: must be buy or sell, got {json.dumps(side_text)[:40]}")
    quantity = _quantity(body.get("quantity", str(DEFAULT_QUANTITY)))
    return OrderIntent(Side(side_text), quantity, OrderType.MARKET, None, TAG)


def _quantity(value: Any) -> Decimal:
    """A positive decimal string (exact, as all money in HEAN), never a JSON number."""
    shown = json.dumps(value)[:_MAX_TEXT]
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise BadOrder(f'quantity: expected a decimal string such as "0.001", got {shown}')
    try:
        quantity = Decimal(value)
    except InvalidOperation:
        raise BadOrder(f"quantity: not a decimal number: {shown}") from None
    if not quantity.is_finite() or quantity <= 0 or "e" in value.lower():
        raise BadOrder(f"quantity: must be a positive plain decimal, got {shown}")
    return quantity


def test_order_handler(
    authorize: Authorize, read_body: ReadBody, runtime_of: RuntimeOf
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler, given the server's token check, body reader and runtime."""

    async def handler(request: web.Request) -> web.Response:
        refused = authorize(request, TAG)
        if refused is not None:
            return refused
        runtime = runtime_of(request)
        if runtime.mode != "paper":
            runtime.count_control(TAG, "refused")
            return _json(
                {
                    "error": f"test orders are for paper engines only: this engine runs "
                    f"{runtime.mode}, where an order is real"
                },
                403,
            )
        has_body = request.can_read_body
        body, problem = await read_body(request) if has_body else (None, None)
        if problem is not None:
            runtime.count_control(TAG, "invalid")
            return _json({"error": problem}, 400)
        try:
            intent = parse_order(body)
        except BadOrder as exc:
            runtime.count_control(TAG, "invalid")
            return _json({"error": str(exc)}, 400)
        return _place(runtime, intent)

    return handler


def _place(runtime: Runtime, intent: OrderIntent) -> web.Response:
    kernel = runtime.kernel
    before = dict(kernel.risk.rejections)
    order = kernel.submit(intent)
    if order is None:
        runtime.count_control(TAG, "rejected")
        # The risk engine counts each refusal by reason: the one that moved is why.
        moved = [r for r, n in kernel.risk.rejections.items() if n > before.get(r, 0)]
        why = moved[0] if moved else "the engine is still warming up"
        if why == "no_price":
            why = "no_price (no market price seen yet: try again after the next candle)"
        return _json({"error": f"the risk engine refused the order: {why}"}, 409)
    runtime.count_control(TAG, "ok")
    log.info(
        "test order submitted",
        order_id=order.id,
        side=order.side.value,
        quantity=fmt(order.quantity),
    )
    return _json(
        {
            "order": {
                "id": order.id,
                "side": order.side.value,
                "type": order.type.value,
                "quantity": fmt(order.quantity),
                "status": order.status.value,
                "tag": order.tag,
            },
            "mode": runtime.mode,
        },
        202,
    )
