"""OKX's v5 REST protocol (spot, cash mode) over the shared market, accounts and matching.

What ccxt's real `okx` client needs, in OKX's shapes (decimals as strings,
every answer wrapped in `{"code": "0", "msg": "", "data": [...]}`):

- public: `public/time`, `public/instruments` (SPOT: the one simulated
  instrument, `BTC-USDT` style; other types are empty), `market/candles` and
  `market/history-candles` (newest first, `after`/`before` in ms, `confirm`
  "0" for the candle in progress), `market/ticker`, `market/trades`;
- private (signed; see `okx_auth`): `account/balance`, `asset/currencies`
  (ccxt's load_markets asks for it once it has keys), `trade/order` (POST
  places, GET looks up by `ordId` or `clOrdId`), `trade/cancel-order`,
  `trade/orders-pending`, `trade/fills` and `trade/fills-history` (paged by
  `billId` with `after`/`before`).

Order semantics are OKX's: `clOrdId` is 1 to 32 letters and digits (anything
else is 51000); a `clOrdId` of one of the account's pending orders is refused
with sCode 51016 ("Duplicated clOrdId"), that of a finished order can be used
again, and a lookup by `clOrdId` returns the latest order with it. An order
placed with an `expTime` header after that time is refused with 50037
("Order expired.") and never executed. Fees are reported negative (charged).
Spot instruments have a minimum size (`minSz`) and no minimum notional, so the
shared matching engine's notional filter is off under this protocol.

The matching engine raises Binance-coded refusals (it came first); they are
translated here to OKX's sCodes (`_refusal`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from hean_sim.exchange import errors
from hean_sim.exchange.accounts import Account
from hean_sim.exchange.book import synthetic_book
from hean_sim.exchange.config import SimConfig
from hean_sim.exchange.endpoints import Endpoint, fixed
from hean_sim.exchange.faults import Fault
from hean_sim.exchange.market import Kline
from hean_sim.exchange.model import AccountTrade, Order, OrderType, Side, Status
from hean_sim.exchange.numbers import ZERO, dec, ftext, rounded, text
from hean_sim.exchange.okx_auth import (
    KEY_HEADER,
    PARAM_ERROR,
    SYSTEM_ERROR,
    TOO_MANY,
    UNAVAILABLE,
    OkxAuthenticator,
    OkxError,
    RateLimiter,
    Rule,
    empty_param,
    error_response,
    param_error,
)
from hean_sim.exchange.orders import OrderEngine, OrderRequest
from hean_sim.exchange.protocol import ExchangeProtocol
from hean_sim.exchange.times import DAY_MS, MINUTE_MS

log = logging.getLogger(__name__)

API = "/api/v5"
HOUR_MS = 60 * MINUTE_MS
# The bars served; the Hong Kong-time variants of 6h and longer (`6H`, `1D`,
# ...) are not simulated (ccxt asks for the UTC ones).
BARS = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1H": HOUR_MS,
    "2H": 2 * HOUR_MS,
    "4H": 4 * HOUR_MS,
    "6Hutc": 6 * HOUR_MS,
    "12Hutc": 12 * HOUR_MS,
    "1Dutc": DAY_MS,
}
_CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_DECIMAL = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
_STATES = {
    Status.NEW: "live",
    Status.PARTIALLY_FILLED: "partially_filled",
    Status.FILLED: "filled",
    Status.CANCELED: "canceled",
    Status.EXPIRED: "canceled",
    Status.REJECTED: "canceled",
}
# OKX's order types and what the matching engine makes of them.
_ORDER_TYPES = {
    "market": (OrderType.MARKET, "GTC"),
    "limit": (OrderType.LIMIT, "GTC"),
    "ioc": (OrderType.LIMIT, "IOC"),
    "fok": (OrderType.LIMIT, "FOK"),
}
# Bill ids are their own sequence, not the trade ids (a client that pages
# fills must use them): spaced and offset so that the two never coincide.
_BILL_BASE = 600_000_000_000
_BILL_STEP = 7

PLACE = f"{API}/trade/order"
PLACE_BATCH = f"{API}/trade/batch-orders"
CANCEL = f"{API}/trade/cancel-order"
BATCH_MAX = 20
Handler = Callable[[web.Request], Awaitable[web.Response]]


def ip2(limit: int) -> Rule:
    """`limit` requests per 2 s per client IP."""
    return Rule(limit, 2.0, "ip")


def user2(limit: int) -> Rule:
    """`limit` requests per 2 s per account (OKX's "user ID" rule)."""
    return Rule(limit, 2.0, "user")


def bill_id(trade: AccountTrade) -> int:
    return _BILL_BASE + _BILL_STEP * trade.id


def _ok(data: list[dict[str, Any]] | list[list[str]], **extra: str) -> web.Response:
    return web.json_response({"code": "0", "msg": "", "data": data, **extra})


def _micros() -> str:
    return str(time.time_ns() // 1000)


def _decimal(p: Mapping[str, Any], name: str, *, required: bool) -> Decimal | None:
    value = p.get(name)
    if value is None or value == "":
        if required:
            raise empty_param(name)
        return None
    if not isinstance(value, str) or not _DECIMAL.match(value):
        raise param_error(name)
    try:
        return Decimal(value)
    except InvalidOperation:
        raise param_error(name) from None


def _required(p: Mapping[str, Any], name: str) -> str:
    value = p.get(name)
    if value is None or value == "":
        raise empty_param(name)
    if not isinstance(value, str):
        raise param_error(name)
    return value


def _int(p: Mapping[str, Any], name: str) -> int | None:
    value = p.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.isdigit():
        raise param_error(name)
    return int(value)


def _limit(p: Mapping[str, Any], default: int, maximum: int) -> int:
    value = _int(p, "limit")
    if value is None:
        return default
    if value < 1:
        raise param_error("limit")
    return min(value, maximum)


def _json_object(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise OkxError(400, "50002", "JSON syntax error")
    return parsed


def _failure(client_order_id: str, s_code: str, s_msg: str, order_id: str = "") -> dict[str, Any]:
    """One order's failure item, as place, batch place and cancel report it."""
    return {
        "clOrdId": client_order_id,
        "ordId": order_id,
        "tag": "",
        "ts": str(int(time.time() * 1000)),
        "sCode": s_code,
        "sMsg": s_msg,
    }


class OrderFailed(OkxError):
    """A single order's failure: HTTP 200, code "1", the reason in data[0].sCode / sMsg."""

    def __init__(self, client_order_id: str, s_code: str, s_msg: str, order_id: str = "") -> None:
        item = _failure(client_order_id, s_code, s_msg, order_id)
        super().__init__(200, "1", "All operations failed", [item])


class OkxProtocol(ExchangeProtocol):
    """OKX v5 spot over the shared state (see the module's docstring)."""

    name = "okx"
    state_changing = frozenset({("POST", PLACE), ("POST", PLACE_BATCH), ("POST", CANCEL)})

    def __init__(self, config: SimConfig, matching: OrderEngine) -> None:
        self.config = config
        self.engine = matching
        self.market = matching.market
        # OKX spot has a minimum size but no minimum order value.
        matching.filters = dataclasses.replace(
            matching.filters, min_notional=ZERO, notional_filter="MIN_NOTIONAL"
        )
        self.filters = matching.filters
        self.inst_id = config.inst_id
        self.auth = OkxAuthenticator(matching.accounts, self.market.wall_ms)
        self.limiter = RateLimiter(config.clock, config.rate_limit_factor)
        self._routes: dict[tuple[str, str], Rule] = {}

    # -- the protocol ---------------------------------------------------------

    def endpoints(self) -> Iterable[Endpoint]:
        # OKX's published limits, per 2 s unless said otherwise.
        table: list[tuple[str, str, Rule, Handler]] = [
            ("GET", "public/time", ip2(10), self.server_time),
            ("GET", "public/instruments", ip2(20), self.instruments),
            ("GET", "market/candles", ip2(40), self.candles),
            ("GET", "market/history-candles", ip2(20), self.history_candles),
            ("GET", "market/ticker", ip2(20), self.ticker),
            ("GET", "market/trades", ip2(100), self.trades),
            ("GET", "account/balance", user2(10), self.balance),
            ("GET", "asset/currencies", Rule(6, 1.0, "user"), self.currencies),
            ("POST", "trade/order", user2(60), self.place),
            # OKX counts batch orders per order (300 per 2 s); here per request.
            ("POST", "trade/batch-orders", user2(300), self.place_batch),
            ("GET", "trade/order", user2(60), self.order),
            ("POST", "trade/cancel-order", user2(60), self.cancel),
            ("GET", "trade/orders-pending", user2(60), self.pending),
            ("GET", "trade/fills", user2(60), self.fills),
            ("GET", "trade/fills-history", user2(10), self.fills_history),
        ]
        endpoints = []
        for method, path, rule, handler in table:
            full = f"{API}/{path}"
            self._routes[(method, full)] = rule
            endpoints.append(Endpoint(method, full, fixed(1), handler))
        return endpoints

    def used(self, ip: str) -> int:
        return self.limiter.used(ip)

    async def serve(self, request: web.Request, endpoint: Endpoint | None) -> web.StreamResponse:
        if endpoint is None:
            return error_response(404, "50005", "API endpoint is inactive or unavailable.")
        rule = self._routes[(request.method, request.path)]
        # Private limits count per user: the key names the account (an unknown
        # key is refused by the signature check, after counting).
        who = request.remote or "unknown"
        if rule.per == "user":
            who = "user:" + request.headers.get(KEY_HEADER, who)
        wait = self.limiter.admit(request.path, rule, who)
        if wait is not None:
            return error_response(429, TOO_MANY, "Too Many Requests")
        try:
            return await endpoint.handler(request)
        except OkxError as exc:
            return exc.response()
        except Exception:
            log.exception("simulator endpoint %s %s failed", request.method, request.path)
            return error_response(500, SYSTEM_ERROR, "System error. Try again later")

    def fault_response(self, fault: Fault, request: web.Request, retry_after: int) -> web.Response:
        if fault is Fault.E500:
            return error_response(500, SYSTEM_ERROR, "System error. Try again later")
        if fault is Fault.E503:
            return error_response(
                503, UNAVAILABLE, "Service temporarily unavailable. Please try again later."
            )
        if fault is Fault.TOO_MANY:
            return error_response(429, TOO_MANY, "Too Many Requests")
        raise ValueError(f"no OKX response for fault {fault}")

    # -- helpers --------------------------------------------------------------

    def _check_inst(self, p: Mapping[str, Any], *, required: bool = True) -> None:
        inst = _required(p, "instId") if required else p.get("instId")
        if inst and inst != self.inst_id:
            raise OkxError(200, "51001", "Instrument ID or Spread ID doesn't exist.")

    def _check_inst_type(self, p: Mapping[str, Any], *, required: bool) -> bool:
        """Whether the request is about SPOT (the only type simulated)."""
        inst_type = _required(p, "instType") if required else p.get("instType")
        return not inst_type or inst_type == "SPOT"

    # -- public ---------------------------------------------------------------

    async def server_time(self, request: web.Request) -> web.Response:
        return _ok([{"ts": str(self.market.wall_ms())}])

    def instrument(self) -> dict[str, Any]:
        f = self.filters
        base, quote = self.config.base_asset, self.config.quote_asset
        return {
            "instType": "SPOT",
            "instId": self.inst_id,
            "instIdCode": 1,
            "uly": "",
            "instFamily": "",
            "category": "1",
            "baseCcy": base,
            "quoteCcy": quote,
            "settleCcy": "",
            "ctVal": "",
            "ctMult": "",
            "ctValCcy": "",
            "optType": "",
            "stk": "",
            "listTime": str(self.market.store.ts[0] + self.market.offset_ms),
            "expTime": "",
            "lever": "",
            "tickSz": text(f.tick_size),
            "lotSz": text(f.step_size),
            "minSz": text(f.min_qty),
            "ctType": "",
            "alias": "",
            "state": "live",
            "ruleType": "normal",
            "maxLmtSz": text(f.max_qty),
            "maxMktSz": "1000000",
            "maxLmtAmt": "20000000",
            "maxMktAmt": "1000000",
            "maxTwapSz": text(f.max_qty),
            "maxIcebergSz": text(f.max_qty),
            "maxTriggerSz": text(f.max_qty),
            "maxStopSz": "1000000",
        }

    async def instruments(self, request: web.Request) -> web.Response:
        p = request.query
        if not self._check_inst_type(p, required=True):
            return _ok([])
        self._check_inst(p, required=False)
        return _ok([self.instrument()])

    def _candle_json(self, kline: Kline, served_now: int) -> list[str]:
        bar = kline.bar
        confirm = "1" if kline.close_time < served_now else "0"
        quote = text(rounded(bar.quote_volume))
        return [
            str(kline.open_time),
            ftext(bar.open),
            ftext(bar.high),
            ftext(bar.low),
            ftext(bar.close),
            text(bar.volume),
            quote,
            quote,
            confirm,
        ]

    async def _candles(self, request: web.Request, maximum: int) -> web.Response:
        p = request.query
        self._check_inst(p)
        bar = p.get("bar") or "1m"
        interval = BARS.get(bar)
        if interval is None:
            raise param_error("bar")
        after = _int(p, "after")  # records earlier than this ts
        before = _int(p, "before")  # records newer than this ts
        limit = _limit(p, 100, maximum)
        self.market.on_data_request()
        end = after - 1 if after is not None else None
        klines = self.market.klines(interval, None, end, limit) if end is None or end >= 0 else []
        if before is not None:
            klines = [k for k in klines if k.open_time > before]
        served_now = self.market.now_ms()
        return _ok([self._candle_json(k, served_now) for k in reversed(klines)])

    async def candles(self, request: web.Request) -> web.Response:
        return await self._candles(request, 300)

    async def history_candles(self, request: web.Request) -> web.Response:
        return await self._candles(request, 100)

    async def ticker(self, request: web.Request) -> web.Response:
        self._check_inst(request.query)
        self.market.on_data_request()
        stats = self.market.window_stats(DAY_MS)
        last = dec(stats.last_price)
        bar = stats.bar
        book = synthetic_book(self.market, 1)
        (bid, bid_qty), (ask, ask_qty) = book.bids[0], book.asks[0]
        open_price = dec(bar.open) if bar is not None else last
        return _ok(
            [
                {
                    "instType": "SPOT",
                    "instId": self.inst_id,
                    "last": text(last),
                    "lastSz": ftext(stats.last_qty),
                    "askPx": text(ask),
                    "askSz": text(ask_qty),
                    "bidPx": text(bid),
                    "bidSz": text(bid_qty),
                    "open24h": text(open_price),
                    "high24h": text(dec(bar.high)) if bar is not None else text(last),
                    "low24h": text(dec(bar.low)) if bar is not None else text(last),
                    "volCcy24h": text(rounded(bar.quote_volume)) if bar is not None else "0",
                    "vol24h": text(bar.volume) if bar is not None else "0",
                    "sodUtc0": text(open_price),
                    "sodUtc8": text(open_price),
                    "ts": str(stats.close_time),
                }
            ]
        )

    async def trades(self, request: web.Request) -> web.Response:
        p = request.query
        self._check_inst(p)
        limit = _limit(p, 100, 500)
        self.market.on_data_request()
        rows = [
            {
                "instId": self.inst_id,
                "side": "sell" if t.buyer_maker else "buy",
                "sz": ftext(t.qty),
                "px": ftext(t.price),
                "source": "0",
                "tradeId": str(t.id),
                "ts": str(t.time),
            }
            for t in reversed(self.market.recent_trades(limit))
        ]
        return _ok(rows)

    # -- account --------------------------------------------------------------

    async def balance(self, request: web.Request) -> web.Response:
        account, _ = await self.auth.signed(request)
        wanted = {c for c in (request.query.get("ccy") or "").split(",") if c}
        now = str(account.update_time)
        details = []
        for asset, b in account.balances().items():
            if b.total == 0 or (wanted and asset not in wanted):
                continue
            details.append(
                {
                    "ccy": asset,
                    "eq": text(b.total),
                    "cashBal": text(b.total),
                    "availBal": text(b.free),
                    "frozenBal": text(b.locked),
                    "ordFrozen": text(b.locked),
                    "availEq": "",
                    "disEq": "",
                    "eqUsd": "",
                    "isoEq": "",
                    "upl": "",
                    "liab": "",
                    "maxLoan": "",
                    "interest": "",
                    "crossLiab": "",
                    "stgyEq": "0",
                    "spotInUseAmt": "",
                    "uTime": now,
                }
            )
        return _ok(
            [
                {
                    "adjEq": "",
                    "availEq": "",
                    "borrowFroz": "",
                    "details": details,
                    "imr": "",
                    "isoEq": "",
                    "mgnRatio": "",
                    "mmr": "",
                    "notionalUsd": "",
                    "ordFroz": "",
                    "totalEq": "",
                    "uTime": now,
                    "upl": "",
                }
            ]
        )

    async def currencies(self, request: web.Request) -> web.Response:
        account, _ = await self.auth.signed(request)
        assets = sorted(set(account.assets()) | {self.config.base_asset, self.config.quote_asset})
        return _ok([_currency_json(asset) for asset in assets])

    # -- orders ---------------------------------------------------------------

    async def place(self, request: web.Request) -> web.Response:
        """`POST trade/order`: one order, a JSON object."""
        account, body = await self.auth.signed(request)
        item = self._place_one(account, _json_object(body), request.headers.get("expTime"))
        return self._placed([item])

    async def place_batch(self, request: web.Request) -> web.Response:
        """`POST trade/batch-orders` (ccxt's create_order uses it): 1 to 20 orders, a JSON list.

        Each order succeeds or fails on its own; `code` is "0" when all were
        placed, "1" when none was, "2" otherwise.
        """
        account, body = await self.auth.signed(request)
        try:
            orders = json.loads(body) if body else None
        except ValueError:
            orders = None
        if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
            raise OkxError(400, "50002", "JSON syntax error")
        if not 1 <= len(orders) <= BATCH_MAX:
            raise OkxError(200, "50025", f"Parameter order count exceeds the limit {BATCH_MAX}.")
        deadline = request.headers.get("expTime")
        return self._placed([self._place_one(account, p, deadline) for p in orders])

    @staticmethod
    def _placed(items: list[dict[str, Any]]) -> web.Response:
        failed = sum(1 for item in items if item["sCode"] != "0")
        if failed == 0:
            return _ok(items, inTime=_micros(), outTime=_micros())
        code, msg = ("1", "All operations failed") if failed == len(items) else ("2", "")
        body = {"code": code, "msg": msg, "data": items, "inTime": _micros(), "outTime": _micros()}
        return web.json_response(body)

    def _place_one(
        self, account: Account, p: Mapping[str, Any], deadline: str | None
    ) -> dict[str, Any]:
        """Place one order; its result item (sCode "0", or why it was not placed)."""
        cid = p.get("clOrdId") or ""
        try:
            if not isinstance(cid, str) or (cid and not _CLIENT_ID.match(cid)):
                raise param_error("clOrdId")
            if deadline:
                if not deadline.isdigit():
                    raise param_error("expTime")
                if self.market.wall_ms() > int(deadline):
                    return _failure(cid, "50037", "Order expired.")
            order_request = self._order_request(p)
            try:
                order = self.engine.place(account, order_request)
            except errors.BinanceError as exc:
                return _failure(cid, *self._refusal(exc, order_request))
        except OkxError as exc:
            return _failure(cid if isinstance(cid, str) else "", exc.code, exc.msg)
        return {
            "clOrdId": cid,
            "ordId": str(order.order_id),
            "tag": str(p.get("tag") or ""),
            "ts": str(order.time),
            "sCode": "0",
            "sMsg": "Order placed",
        }

    def _order_request(self, p: Mapping[str, Any]) -> OrderRequest:
        self._check_inst(p)
        if _required(p, "tdMode") != "cash":
            raise param_error("tdMode")
        side = _required(p, "side")
        if side not in ("buy", "sell"):
            raise param_error("side")
        kind = _ORDER_TYPES.get(_required(p, "ordType"))
        if kind is None:
            raise param_error("ordType")
        order_type, tif = kind
        size = _decimal(p, "sz", required=True)
        assert size is not None
        price = _decimal(p, "px", required=order_type is not OrderType.MARKET)
        target = p.get("tgtCcy") or "base_ccy"
        if target not in ("base_ccy", "quote_ccy"):
            raise param_error("tgtCcy")
        quote_qty = None
        if order_type is OrderType.MARKET:
            price = None
            if side == "buy" and target == "quote_ccy":
                quote_qty, size = size, None
        return OrderRequest(
            side=Side.BUY if side == "buy" else Side.SELL,
            type=order_type,
            time_in_force=tif,
            quantity=size,
            quote_order_qty=quote_qty,
            price=price,
            client_order_id=str(p.get("clOrdId") or "") or None,
        )

    def _refusal(self, exc: errors.BinanceError, request: OrderRequest) -> tuple[str, str]:
        """OKX's sCode and sMsg for a refusal of the shared matching engine."""
        if exc.msg == errors.DUPLICATE_ORDER_MSG:
            return "51016", "Duplicated clOrdId"
        if exc.msg == errors.INSUFFICIENT_BALANCE_MSG:
            asset = self.config.quote_asset if request.side is Side.BUY else self.config.base_asset
            return "51008", f"Order failed. Insufficient {asset} balance in account."
        if exc.msg.endswith("PRICE_FILTER"):
            return PARAM_ERROR, "Parameter px error"
        if exc.msg.endswith("LOT_SIZE"):
            size = request.quantity
            if size is not None and size < self.filters.min_qty:
                return "51020", "Your order should meet or exceed the minimum order amount."
            return "51121", "Order quantity must be a multiple of the lot size."
        return PARAM_ERROR, f"Parameter error: {exc.msg}"

    def _find(self, account: Account, p: Mapping[str, Any]) -> Order | None:
        """By ordId if given (clOrdId is then ignored, as OKX does), else by clOrdId."""
        order_id = p.get("ordId") or None
        client_id = p.get("clOrdId") or None
        if order_id is None and client_id is None:
            raise OkxError(200, "51003", "Either client order ID or order ID is required.")
        if order_id is not None:
            if not isinstance(order_id, str) or not order_id.isdigit():
                return None
            return self.engine.find(account, int(order_id), None)
        return self.engine.find(account, None, str(client_id))

    async def order(self, request: web.Request) -> web.Response:
        account, _ = await self.auth.signed(request)
        p = request.query
        self._check_inst(p)
        found = self._find(account, p)
        if found is None:
            raise OkxError(200, "51603", "Order does not exist")
        return _ok([self._order_json(found)])

    async def cancel(self, request: web.Request) -> web.Response:
        account, body = await self.auth.signed(request)
        p = _json_object(body)
        self._check_inst(p)
        cid = str(p.get("clOrdId") or "")
        found = self._find(account, p)
        if found is None:
            raise OrderFailed(
                cid,
                "51400",
                "Order cancellation failed as the order has been filled, canceled or does "
                "not exist.",
                str(p.get("ordId") or ""),
            )
        if not found.is_open:
            if found.status is Status.FILLED:
                code, msg = "51402", "Order cancellation failed as the order has been completed."
            else:
                code, msg = "51401", "Order cancellation failed as the order has been canceled."
            raise OrderFailed(found.client_order_id, code, msg, str(found.order_id))
        self.engine.cancel(account, found)
        item = {
            "clOrdId": found.client_order_id,
            "ordId": str(found.order_id),
            "ts": str(found.update_time),
            "sCode": "0",
            "sMsg": "",
        }
        return _ok([item], inTime=_micros(), outTime=_micros())

    async def pending(self, request: web.Request) -> web.Response:
        account, _ = await self.auth.signed(request)
        p = request.query
        if not self._check_inst_type(p, required=False):
            return _ok([])
        self._check_inst(p, required=False)
        limit = _limit(p, 100, 100)
        after, before = _int(p, "after"), _int(p, "before")
        orders = [
            o
            for o in reversed(self.engine.open_orders(account))
            if (after is None or o.order_id < after) and (before is None or o.order_id > before)
        ]
        return _ok([self._order_json(o) for o in orders[:limit]])

    def _order_json(self, o: Order) -> dict[str, Any]:
        base, quote = self.config.base_asset, self.config.quote_asset
        last = o.fills[-1] if o.fills else None
        fee = sum((f.commission for f in o.fills), ZERO)
        average = rounded(o.cummulative_quote_qty / o.executed_qty) if o.executed_qty else None
        market = o.type is OrderType.MARKET
        by_quote = market and o.side is Side.BUY and o.orig_quote_qty > 0
        if o.type is OrderType.LIMIT and o.time_in_force in ("IOC", "FOK"):
            kind = o.time_in_force.lower()
        else:
            kind = "market" if market else "limit"
        return {
            "instType": "SPOT",
            "instId": self.inst_id,
            "ccy": "",
            "ordId": str(o.order_id),
            "clOrdId": o.client_order_id,
            "tag": "",
            "px": "" if market else text(o.price),
            "pxUsd": "",
            "pxVol": "",
            "pxType": "",
            "sz": text(o.orig_quote_qty if by_quote else o.orig_qty),
            "pnl": "0",
            "ordType": kind,
            "side": o.side.value.lower(),
            "posSide": "net",
            "tdMode": "cash",
            "accFillSz": text(o.executed_qty),
            "fillPx": text(last.price) if last else "",
            "tradeId": str(last.id) if last else "",
            "fillSz": text(last.qty) if last else "",
            "fillTime": str(last.time) if last else "",
            "avgPx": text(average) if average is not None else "",
            "state": _STATES[o.status],
            "lever": "",
            "attachAlgoClOrdId": "",
            "tpTriggerPx": "",
            "tpTriggerPxType": "",
            "tpOrdPx": "",
            "slTriggerPx": "",
            "slTriggerPxType": "",
            "slOrdPx": "",
            "attachAlgoOrds": [],
            "stpId": "",
            "stpMode": "cancel_maker",
            "feeCcy": base if o.side is Side.BUY else quote,
            "fee": text(-fee) if fee else "0",
            "rebateCcy": quote if o.side is Side.BUY else base,
            "rebate": "0",
            "source": "",
            "category": "normal",
            "reduceOnly": "false",
            "isTpLimit": "false",
            "cancelSource": "",
            "quickMgnType": "",
            "algoClOrdId": "",
            "algoId": "",
            "uTime": str(o.update_time),
            "cTime": str(o.time),
            "tgtCcy": ("quote_ccy" if by_quote else "base_ccy") if market else "",
        }

    # -- fills ----------------------------------------------------------------

    async def fills(self, request: web.Request) -> web.Response:
        return await self._fills(request, inst_type_required=False)

    async def fills_history(self, request: web.Request) -> web.Response:
        return await self._fills(request, inst_type_required=True)

    async def _fills(self, request: web.Request, *, inst_type_required: bool) -> web.Response:
        """The account's fills, newest first, paged by billId.

        `before=B` gives the `limit` fills right after bill B (the oldest of
        the newer ones), `after=A` the `limit` fills right before bill A, and
        neither the newest `limit`; `ordId`, `begin` and `end` (ms) filter.
        """
        account, _ = await self.auth.signed(request)
        p = request.query
        if not self._check_inst_type(p, required=inst_type_required):
            return _ok([])
        self._check_inst(p, required=False)
        limit = _limit(p, 100, 100)
        after, before = _int(p, "after"), _int(p, "before")
        begin, end = _int(p, "begin"), _int(p, "end")
        order_id = _int(p, "ordId")
        rows = [
            t
            for t in account.trades
            if (after is None or bill_id(t) < after)
            and (before is None or bill_id(t) > before)
            and (begin is None or t.time >= begin)
            and (end is None or t.time <= end)
            and (order_id is None or t.order_id == order_id)
        ]
        page = rows[:limit] if before is not None else rows[-limit:]
        return _ok([self._fill_json(account, t) for t in reversed(page)])

    def _fill_json(self, account: Account, t: AccountTrade) -> dict[str, Any]:
        order = account.orders.get(t.order_id)
        return {
            "instType": "SPOT",
            "instId": self.inst_id,
            "tradeId": str(t.id),
            "ordId": str(t.order_id),
            "clOrdId": order.client_order_id if order is not None else "",
            "billId": str(bill_id(t)),
            "subType": "1" if t.is_buyer else "2",
            "tag": "",
            "fillPx": text(t.price),
            "fillSz": text(t.qty),
            "fillIdxPx": "",
            "fillPnl": "0",
            "fillPxVol": "",
            "fillPxUsd": "",
            "fillMarkVol": "",
            "fillFwdPx": "",
            "fillMarkPx": "",
            "side": "buy" if t.is_buyer else "sell",
            "posSide": "net",
            "execType": "M" if t.is_maker else "T",
            "feeCcy": t.commission_asset,
            "fee": text(-t.commission) if t.commission else "0",
            "ts": str(t.time),
            "fillTime": str(t.time),
            "feeRate": "",
        }


_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "USDT": "Tether", "USDC": "USD Coin"}


def _currency_json(asset: str) -> dict[str, Any]:
    name = _NAMES.get(asset, asset)
    return {
        "ccy": asset,
        "name": name,
        "logoLink": "",
        "chain": f"{asset}-{name.replace(' ', '')}",
        "ctAddr": "",
        "canDep": False,
        "canWd": False,
        "canInternal": False,
        "depEstOpenTime": "",
        "wdEstOpenTime": "",
        "minDep": "0",
        "minWd": "0",
        "maxWd": "0",
        "wdTickSz": "8",
        "wdQuota": "0",
        "usedWdQuota": "0",
        "fee": "0",
        "minFee": "0",
        "maxFee": "0",
        "mainNet": True,
        "needTag": False,
        "minDepArrivalConfirm": "1",
        "minWdUnlockConfirm": "1",
        "depQuotaFixed": "",
        "usedDepQuotaFixed": "",
        "depQuoteDailyLayer2": "",
        "burningFeeRate": "",
    }
