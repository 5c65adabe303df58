"""The engine's read API over its history: GET /orders, /fills, /positions, /equity, /events.

Every route needs the token of POST /control (the same file, read on each
request; `Authorization: Bearer` or, through the API server's pod proxy,
`X-Hean-Token`): the books are the account's business. Without a token file
the routes answer 403, like /control.

Query parameters, all optional; anything else, or a bad value, is a 400 that
names the parameter and the problem:
- `from`, `to`: a time range [from, to), as epoch milliseconds or RFC 3339
  with a zone (`2026-01-02T03:04:05Z`, `...+01:00`);
- `limit`: rows per page, 1 to 1000 (default 100);
- `cursor`: the `nextCursor` of the previous page;
- `latest=true` (/orders: each order's newest state only; /positions: only
  the newest snapshot).

A page is `{"items": [...], "nextCursor": "..." or null}`, oldest first, keys
in camelCase, money as exact decimal strings, times as RFC 3339 UTC.
`/metrics` gains `hean_engine_history_bytes` (the store's size, for an alert
on a nearly full volume) and the writer's backlog and failures.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hean_engine.control.metrics import PREFIX
from hean_engine.control.server import REGISTRY, RUNTIME, _authorize
from hean_engine.history.recorder import HistoryRecorder
from hean_engine.history.store import (
    MAX_PAGE,
    EquityPoint,
    EventRecord,
    FillRecord,
    OrderChange,
    Page,
    PositionSnapshot,
    Window,
)
from hean_engine.model.money import fmt
from hean_engine.model.timefmt import ms_to_iso
from hean_engine.telemetry.logs import get_logger

log = get_logger("hean.control.history")

HISTORY = web.AppKey("history", HistoryRecorder)
DEFAULT_LIMIT = 100
_WINDOW_PARAMS = frozenset({"from", "to", "limit", "cursor"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadQuery(Exception):
    """A query parameter the API refuses; the message names it."""


def _shown(value: str) -> str:
    return json.dumps(value[:40])


def parse_time(name: str, value: str) -> int:
    """Epoch milliseconds, or RFC 3339 with a zone, as epoch milliseconds."""
    if value.isascii() and value.isdigit():
        if len(value) > 15:
            raise BadQuery(f"{name}: {_shown(value)} is out of range")
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadQuery(
            f"{name}: expected epoch milliseconds or an RFC 3339 time, got {_shown(value)}"
        ) from None
    if moment.tzinfo is None:
        raise BadQuery(f"{name}: {_shown(value)} has no time zone (add Z or an offset)")
    # Integer arithmetic: a float timestamp x 1000 can land a millisecond short.
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _int(name: str, value: str, low: int, high: int) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise BadQuery(f"{name}: expected a whole number, got {_shown(value)}")
    number = int(value)
    if not low <= number <= high:
        raise BadQuery(f"{name}: must be between {low} and {high}, got {number}")
    return number


def parse_query(query: Any, extra: frozenset[str] = frozenset()) -> tuple[Window, dict[str, bool]]:
    """The window and the boolean flags (`extra`) of a request's query string."""
    allowed = _WINDOW_PARAMS | extra
    for key in query:
        if key not in allowed:
            raise BadQuery(f"{_shown(key)}: unknown query parameter (allowed: {sorted(allowed)})")
        if len(query.getall(key)) > 1:
            raise BadQuery(f"{key}: given more than once")
    start = parse_time("from", query["from"]) if "from" in query else None
    end = parse_time("to", query["to"]) if "to" in query else None
    if start is not None and end is not None and start > end:
        raise BadQuery("from: is after to")
    limit = _int("limit", query["limit"], 1, MAX_PAGE) if "limit" in query else DEFAULT_LIMIT
    cursor = _int("cursor", query["cursor"], 0, 2**62) if "cursor" in query else None
    flags: dict[str, bool] = {}
    for name in extra:
        raw = query.get(name)
        if raw is None:
            flags[name] = False
        elif raw in ("true", "1"):
            flags[name] = True
        elif raw in ("false", "0"):
            flags[name] = False
        else:
            raise BadQuery(f"{name}: expected true or false, got {_shown(raw)}")
    return Window(start, end, cursor, limit), flags


# -- rows as JSON ------------------------------------------------------------------------


def _opt(value: Any) -> str | None:
    return fmt(value) if value is not None else None


def order_json(r: OrderChange) -> dict[str, Any]:
    return {
        "orderId": r.exchange_order_id or r.order_id,
        "clientOrderId": r.order_id,
        "exchangeOrderId": r.exchange_order_id or None,
        "change": r.change,
        "status": r.status,
        "side": r.side,
        "type": r.type,
        "quantity": fmt(r.quantity),
        "price": _opt(r.price),
        "filled": fmt(r.filled),
        "reason": r.reason,
        "tag": r.tag,
        "time": ms_to_iso(r.ts),
        "runId": r.run_id,
    }


def fill_json(r: FillRecord) -> dict[str, Any]:
    return {
        "tradeId": r.trade_id,
        "orderId": r.exchange_order_id or r.order_id,
        "clientOrderId": r.order_id,
        "side": r.side,
        "price": fmt(r.price),
        "quantity": fmt(r.quantity),
        "fee": fmt(r.fee),
        "feeCurrency": r.fee_currency,
        "liquidity": r.liquidity,
        "time": ms_to_iso(r.ts),
        "runId": r.run_id,
    }


def equity_json(r: EquityPoint) -> dict[str, Any]:
    return {
        "time": ms_to_iso(r.ts),
        "equity": fmt(r.equity),
        "pnl": fmt(r.pnl),
        "baseline": fmt(r.baseline),
        "position": fmt(r.position),
        "price": _opt(r.price),
    }


def event_json(r: EventRecord) -> dict[str, Any]:
    return {"time": ms_to_iso(r.ts), "kind": r.kind, "detail": r.detail, "runId": r.run_id}


def position_json(r: PositionSnapshot) -> dict[str, Any]:
    return {
        "time": ms_to_iso(r.ts),
        "balances": {ccy: fmt(v) for ccy, v in sorted(r.balances.items())},
        "position": fmt(r.position),
        "reason": r.reason,
    }


def _page_json(page: Page[Any], render: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    cursor = page.next_cursor
    return {
        "items": [render(item) for item in page.items],
        "nextCursor": str(cursor) if cursor is not None else None,
    }


# -- handlers ----------------------------------------------------------------------------


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(payload), status=status, content_type="application/json", headers=headers
    )


Reader = Callable[[HistoryRecorder, Window, dict[str, bool]], dict[str, Any]]


def _route(
    reader: Reader, flags: frozenset[str] = frozenset()
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        # The control token, as POST /control takes it (bearer, or X-Hean-Token
        # through the API server's pod proxy); refusals counted as "history".
        refused = _authorize(request, "history")
        if refused is not None:
            return refused
        try:
            window, flag_values = parse_query(request.query, flags)
        except BadQuery as exc:
            return _json({"error": str(exc)}, 400)
        recorder = request.app[HISTORY]
        try:
            # The store blocks (a disk, a database): never on the event loop.
            payload = await asyncio.to_thread(reader, recorder, window, flag_values)
        except Exception as exc:  # a database down: the caller may ask again
            log.warning("history read failed", path=request.path, error=type(exc).__name__)
            return _json({"error": f"history store unavailable: {type(exc).__name__}"}, 503)
        return _json(payload)

    return handler


def _orders(rec: HistoryRecorder, w: Window, f: dict[str, bool]) -> dict[str, Any]:
    return _page_json(rec.store.orders(w, latest=f["latest"]), order_json)


def _fills(rec: HistoryRecorder, w: Window, f: dict[str, bool]) -> dict[str, Any]:
    return _page_json(rec.store.fills(w), fill_json)


def _equity(rec: HistoryRecorder, w: Window, f: dict[str, bool]) -> dict[str, Any]:
    return _page_json(rec.store.equity(w), equity_json)


def _events(rec: HistoryRecorder, w: Window, f: dict[str, bool]) -> dict[str, Any]:
    return _page_json(rec.store.events(w), event_json)


def _positions(rec: HistoryRecorder, w: Window, f: dict[str, bool]) -> dict[str, Any]:
    if f["latest"]:
        latest = rec.store.latest_position()
        return {"items": [position_json(latest)] if latest else [], "nextCursor": None}
    return _page_json(rec.store.positions(w), position_json)


class HistoryCollector(Collector):
    """The store's size and the writer's health, read at scrape time (no store access)."""

    def __init__(self, recorder: HistoryRecorder, engine: str, namespace: str) -> None:
        self._recorder = recorder
        self._labels = [engine, namespace]

    def collect(self) -> Iterator[Metric]:
        rec = self._recorder
        labels = ["engine", "engine_namespace"]
        size = GaugeMetricFamily(
            f"{PREFIX}_history_bytes",
            "Bytes the history store takes (SQLite: the file and its WAL on the volume).",
            labels=labels,
        )
        size.add_metric(self._labels, rec.store_bytes)
        yield size
        pending = GaugeMetricFamily(
            f"{PREFIX}_history_pending_rows",
            "Rows recorded but not yet committed to the history store.",
            labels=labels,
        )
        pending.add_metric(self._labels, rec.pending)
        yield pending
        failures = CounterMetricFamily(
            f"{PREFIX}_history_write_failures",
            "Failed history store transactions (each is retried).",
            labels=labels,
        )
        failures.add_metric(self._labels, rec.write_failures)
        yield failures


def register_history_routes(app: web.Application, recorder: HistoryRecorder) -> None:
    """Add the read API and the history metrics to the control server's app (before start)."""
    app[HISTORY] = recorder
    app.router.add_get("/orders", _route(_orders, frozenset({"latest"})))
    app.router.add_get("/fills", _route(_fills))
    app.router.add_get("/positions", _route(_positions, frozenset({"latest"})))
    app.router.add_get("/equity", _route(_equity))
    app.router.add_get("/events", _route(_events))
    identity = app[RUNTIME].identity
    app[REGISTRY].register(HistoryCollector(recorder, identity.name, identity.namespace))
