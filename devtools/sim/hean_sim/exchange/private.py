"""Binance spot's SIGNED endpoints (orders, account, trades) over an `OrderEngine`.

Served: the `/api/v3` trading and account endpoints a spot client uses, and
the `/sapi` endpoints ccxt's `load_markets` calls once it has keys
(`capital/config/getall` for currencies, `margin/allPairs` and
`margin/isolated/allPairs` for margin flags: none, margin is not simulated),
plus the trade-fee queries. Shapes are Binance's field for field, decimals as
strings; weights are Binance's. Parameters are checked as Binance checks them
(-1102 missing, -1100 malformed, -1106 not expected, -1104 unknown) so that a
client bug shows here as it would in production.

New orders are also counted per account against Binance's order-rate limits
(100 per 10 seconds, 200,000 per day of wall time: -1015 with HTTP 429), and
the counts are reported in `X-MBX-ORDER-COUNT-10S` / `-1D`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from hean_sim.exchange import errors, params
from hean_sim.exchange.accounts import Account
from hean_sim.exchange.auth import Authenticator, Params
from hean_sim.exchange.config import WallSeconds
from hean_sim.exchange.endpoints import Endpoint, fixed
from hean_sim.exchange.model import AccountTrade, Order, OrderType, Side
from hean_sim.exchange.numbers import ZERO, decimals, text
from hean_sim.exchange.orders import OrderEngine, OrderRequest
from hean_sim.exchange.params import Query
from hean_sim.exchange.times import DAY_MS

API = "/api/v3"
SAPI = "/sapi/v1"
# The endpoints whose requests change state: the only ones a `drop` fault hits.
STATE_CHANGING = frozenset(
    {("POST", f"{API}/order"), ("DELETE", f"{API}/order"), ("DELETE", f"{API}/openOrders")}
)
ORDER_LIMITS = ((10.0, 100, "10S", "10 SECOND"), (86_400.0, 200_000, "1D", "1 DAY"))

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_SIGNING = frozenset({"timestamp", "recvWindow"})
_UNSIMULATED_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
_STP_MODES = frozenset({"NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"})
_NAMES = {"BTC": "Bitcoin", "ETH": "Ethereum", "USDT": "TetherUS", "BNB": "BNB", "BNT": "Bancor"}


def _json(data: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, headers=headers)


def _decimal(p: Params, name: str) -> Decimal | None:
    value = p.get(name)
    if value is None or value == "":
        return None
    if not _DECIMAL.match(value):
        raise errors.bad_request(
            errors.ILLEGAL_CHARS,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    number = Decimal(value)
    if decimals(number) > 8:
        raise errors.bad_request(
            errors.BAD_PRECISION, f"Parameter '{name}' has too much precision."
        )
    return number


def _only(p: Params, allowed: Iterable[str]) -> None:
    """-1104 when a parameter the endpoint does not read was sent (Binance's check)."""
    known = set(allowed) | _SIGNING
    read = sum(1 for name in p if name in known)
    if read != len(p):
        raise errors.bad_request(
            -1104,
            f"Not all sent parameters were read; read '{read + 1}' parameter(s) but was sent "
            f"'{len(p) + 1}'.",  # + 1: the signature
        )


def _bool(p: Params, name: str) -> bool:
    value = p.get(name, "false").lower()
    if value not in ("true", "false"):
        raise errors.invalid_value(name)
    return value == "true"


def _window(p: Params) -> tuple[int | None, int | None]:
    """startTime / endTime, at most 24 hours apart; one alone spans 24 hours."""
    start = params.optional_int(p, "startTime")
    end = params.optional_int(p, "endTime")
    if start is not None and end is not None:
        if end < start:
            raise errors.bad_request(
                errors.BAD_PARAM_COMBINATION, "Combination of optional parameters invalid."
            )
        if end - start > DAY_MS:
            raise errors.bad_request(
                errors.INVALID_LOOKUP_INTERVAL, "More than 24 hours between startTime and endTime."
            )
    elif start is not None:
        end = start + DAY_MS
    elif end is not None:
        start = end - DAY_MS
    return start, end


def _open_orders_weight(query: Query) -> int:
    return 6 if query.get("symbol") else 80


def _my_trades_weight(query: Query) -> int:
    return 5 if query.get("orderId") else 20


@dataclass
class _Window:
    index: int = -1
    count: int = 0


class OrderRateLimiter:
    """Binance's ORDERS limits per account, in fixed wall-clock windows."""

    def __init__(self, clock: WallSeconds) -> None:
        self.clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def admit(self, api_key: str) -> dict[str, str]:
        """Count a new order; its headers, or -1015 (429) when over a limit."""
        now = self.clock()
        headers: dict[str, str] = {}
        windows = []
        for seconds, limit, label, words in ORDER_LIMITS:
            window = self._windows.setdefault((api_key, label), _Window())
            index = math.floor(now / seconds)
            if index != window.index:
                window.index, window.count = index, 0
            if window.count >= limit:
                raise errors.BinanceError(
                    429,
                    errors.TOO_MANY_ORDERS,
                    f"Too many new orders; current limit is {limit} orders per {words}.",
                    {"Retry-After": str(max(1, math.ceil((index + 1) * seconds - now)))},
                )
            windows.append((window, label))
        for window, label in windows:
            window.count += 1
            headers[f"X-MBX-ORDER-COUNT-{label}"] = str(window.count)
        return headers


class PrivateApi:
    """The signed endpoints of one simulated symbol."""

    def __init__(self, engine: OrderEngine, auth: Authenticator, clock: WallSeconds) -> None:
        self.engine = engine
        self.market = engine.market
        self.auth = auth
        self.config = engine.config
        self.symbol = engine.config.symbol_id
        self.order_limits = OrderRateLimiter(clock)

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("GET", f"{API}/account", fixed(20), self.account),
            Endpoint("GET", f"{API}/account/commission", fixed(20), self.commission),
            Endpoint("POST", f"{API}/order", fixed(1), self.new_order),
            Endpoint("GET", f"{API}/order", fixed(4), self.query_order),
            Endpoint("DELETE", f"{API}/order", fixed(1), self.cancel_order),
            Endpoint("GET", f"{API}/openOrders", _open_orders_weight, self.open_orders),
            Endpoint("DELETE", f"{API}/openOrders", fixed(1), self.cancel_all),
            Endpoint("GET", f"{API}/allOrders", fixed(20), self.all_orders),
            Endpoint("GET", f"{API}/myTrades", _my_trades_weight, self.my_trades),
            Endpoint("GET", f"{SAPI}/capital/config/getall", fixed(10), self.coins),
            Endpoint("GET", f"{SAPI}/margin/allPairs", fixed(1), self.margin_pairs),
            Endpoint("GET", f"{SAPI}/margin/isolated/allPairs", fixed(10), self.margin_pairs),
            Endpoint("GET", f"{SAPI}/asset/tradeFee", fixed(1), self.trade_fee),
        ]

    # -- helpers ------------------------------------------------------------

    def _check_symbol(self, p: Params, required: bool = True) -> None:
        symbol = params.required(p, "symbol") if required else p.get("symbol")
        if symbol and symbol != self.symbol:
            raise errors.invalid_symbol()

    def _now(self) -> int:
        """Served market time, with resting orders matched up to it."""
        return self.engine.sync() + self.market.offset_ms

    def _lookup(self, account: Account, p: Params) -> Order | None:
        order_id = params.optional_int(p, "orderId")
        client_id = p.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise errors.one_of_params("orderId", "origClientOrderId")
        return self.engine.find(account, order_id, client_id)

    # -- account ------------------------------------------------------------

    async def account(self, request: web.Request) -> web.Response:
        account, p = await self.auth.signed(request)
        _only(p, {"omitZeroBalances"})
        omit_zero = _bool(p, "omitZeroBalances")
        self._now()
        balances = [
            {"asset": asset, "free": text(b.free), "locked": text(b.locked)}
            for asset, b in account.balances().items()
            if not (omit_zero and b.total == 0)
        ]
        maker, taker = self.config.maker_fee, self.config.taker_fee
        return _json(
            {
                "makerCommission": int(maker * 10_000),
                "takerCommission": int(taker * 10_000),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": text(maker),
                    "taker": text(taker),
                    "buyer": text(ZERO),
                    "seller": text(ZERO),
                },
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": account.update_time,
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": self._uid(account),
            }
        )

    def _uid(self, account: Account) -> int:
        return 100_000_000 + list(self.engine.accounts).index(account.api_key)

    async def commission(self, request: web.Request) -> web.Response:
        _, p = await self.auth.signed(request)
        _only(p, {"symbol"})
        self._check_symbol(p)
        zeros = {k: text(ZERO) for k in ("maker", "taker", "buyer", "seller")}
        return _json(
            {
                "symbol": self.symbol,
                "standardCommission": {
                    **zeros,
                    "maker": text(self.config.maker_fee),
                    "taker": text(self.config.taker_fee),
                },
                "specialCommission": zeros,
                "taxCommission": zeros,
                "discount": {
                    "enabledForAccount": False,
                    "enabledForSymbol": False,
                    "discountAsset": "BNB",
                    "discount": text(Decimal("0.75")),
                },
            }
        )

    async def trade_fee(self, request: web.Request) -> web.Response:
        _, p = await self.auth.signed(request)
        _only(p, {"symbol"})
        self._check_symbol(p, required=False)
        return _json(
            [
                {
                    "symbol": self.symbol,
                    "makerCommission": format(self.config.maker_fee.normalize(), "f"),
                    "takerCommission": format(self.config.taker_fee.normalize(), "f"),
                }
            ]
        )

    async def coins(self, request: web.Request) -> web.Response:
        account, p = await self.auth.signed(request)
        _only(p, set())
        self._now()
        return _json([_coin_json(asset, account) for asset in account.assets()])

    async def margin_pairs(self, request: web.Request) -> web.Response:
        # MARKET_DATA security: the key must exist, a signature is not checked.
        self.auth.account_of(request)
        # exchangeInfo says isMarginTradingAllowed false: no margin pairs,
        # cross or isolated.
        return _json([])

    # -- orders -------------------------------------------------------------

    def _order_request(self, p: Params) -> tuple[OrderRequest, str]:
        _only(
            p,
            {
                "symbol",
                "side",
                "type",
                "timeInForce",
                "quantity",
                "quoteOrderQty",
                "price",
                "newClientOrderId",
                "newOrderRespType",
                "selfTradePreventionMode",
                "strategyId",
                "strategyType",
                "stopPrice",
                "trailingDelta",
                "icebergQty",
            },
        )
        self._check_symbol(p)
        side_text = params.required(p, "side")
        if side_text not in Side.__members__:
            raise errors.bad_request(errors.BAD_SIDE, "Invalid side.")
        type_text = params.required(p, "type")
        if type_text in _UNSIMULATED_TYPES:
            raise errors.bad_request(
                errors.UNSUPPORTED_OPERATION,
                f"This operation is not supported: {type_text} orders are not simulated.",
            )
        if type_text not in OrderType.__members__:
            raise errors.bad_request(errors.BAD_ORDER_TYPE, "Invalid orderType.")
        order_type = OrderType(type_text)
        for name in ("stopPrice", "trailingDelta", "icebergQty"):
            if p.get(name):
                raise errors.unexpected_param(name)
        tif = p.get("timeInForce") or None
        if order_type is OrderType.LIMIT:
            if tif is None:
                raise errors.missing_param("timeInForce")
            if tif not in ("GTC", "IOC", "FOK"):
                raise errors.bad_request(errors.BAD_TIME_IN_FORCE, "Invalid timeInForce.")
        elif tif is not None:
            raise errors.unexpected_param("timeInForce")
        quantity = _decimal(p, "quantity")
        quote_qty = _decimal(p, "quoteOrderQty")
        price = _decimal(p, "price")
        if order_type is OrderType.MARKET:
            if price is not None:
                raise errors.unexpected_param("price")
            if quantity is None and quote_qty is None:
                raise errors.one_of_params("quantity", "quoteOrderQty")
            if quantity is not None and quote_qty is not None:
                raise errors.unexpected_param("quoteOrderQty")
        else:
            if quote_qty is not None:
                raise errors.unexpected_param("quoteOrderQty")
            if quantity is None:
                raise errors.missing_param("quantity")
            if price is None:
                raise errors.missing_param("price")
        client_id = p.get("newClientOrderId") or None
        if client_id is not None and not _CLIENT_ID.match(client_id):
            raise errors.bad_request(
                errors.ILLEGAL_CHARS,
                "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        stp = p.get("selfTradePreventionMode")
        if stp and stp not in _STP_MODES:
            raise errors.invalid_value("selfTradePreventionMode")
        default_resp = "FULL" if order_type in (OrderType.MARKET, OrderType.LIMIT) else "ACK"
        resp_type = p.get("newOrderRespType") or default_resp
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise errors.invalid_value("newOrderRespType")
        request = OrderRequest(
            side=Side(side_text),
            type=order_type,
            time_in_force=tif or "GTC",
            quantity=quantity,
            quote_order_qty=quote_qty,
            price=price,
            client_order_id=client_id,
        )
        return request, resp_type

    async def new_order(self, request: web.Request) -> web.Response:
        account, p = await self.auth.signed(request)
        headers = self.order_limits.admit(account.api_key)
        order_request, resp_type = self._order_request(p)
        order = self.engine.place(account, order_request)
        ack = {
            "symbol": self.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": order.time,
        }
        if resp_type == "ACK":
            return _json(ack, headers)
        result = {
            **ack,
            "price": text(order.price),
            "origQty": text(order.orig_qty),
            "executedQty": text(order.executed_qty),
            "origQuoteOrderQty": text(order.orig_quote_qty),
            "cummulativeQuoteQty": text(order.cummulative_quote_qty),
            "status": str(order.status),
            "timeInForce": order.time_in_force,
            "type": str(order.type),
            "side": str(order.side),
            "workingTime": order.time,
            "selfTradePreventionMode": p.get("selfTradePreventionMode") or "EXPIRE_MAKER",
        }
        if resp_type == "FULL":
            result["fills"] = [
                {
                    "price": text(t.price),
                    "qty": text(t.qty),
                    "commission": text(t.commission),
                    "commissionAsset": t.commission_asset,
                    "tradeId": t.id,
                }
                for t in order.fills
            ]
        return _json(result, headers)

    async def query_order(self, request: web.Request) -> web.Response:
        account, p = await self.auth.signed(request)
        _only(p, {"symbol", "orderId", "origClientOrderId"})
        self._check_symbol(p)
        self._now()
        order = self._lookup(account, p)
        if order is None:
            raise errors.no_such_order()
        return _json(self.order_json(order))

    async def cancel_order(self, request: web.Request) -> web.Response:
        account, p = await self.auth.signed(request)
        _only(
            p,
            {"symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions"},
        )
        self._check_symbol(p)
        self._now()
        order = self._lookup(account, p)
        if order is None:
            raise errors.unknown_order()
        self.engine.cancel(account, order)
        cancel_id = p.get("newClientOrderId") or self.engine.new_client_id()
        return _json(self.cancel_json(order, cancel_id))

    async def cancel_all(self, request: web.Request) -> web.Response:
        account, p = await self.auth.signed(request)
        _only(p, {"symbol"})
        self._check_symbol(p)
        self._now()
        open_orders = self.engine.open_orders(account)
        if not open_orders:
            raise errors.unknown_order()
        for order in open_orders:
            self.engine.cancel(account, order)
        return _json(
            [self.cancel_json(order, self.engine.new_client_id()) for order in open_orders]
        )

    async def open_orders(self, request: web.Request) -> web.Response:
        account, p = await self.auth.signed(request)
        _only(p, {"symbol"})
        self._check_symbol(p, required=False)
        self._now()
        return _json([self.order_json(o) for o in self.engine.open_orders(account)])

    async def all_orders(self, request: web.Request) -> web.Response:
        account, p = await self.auth.signed(request)
        _only(p, {"symbol", "orderId", "startTime", "endTime", "limit"})
        self._check_symbol(p)
        from_id = params.optional_int(p, "orderId")
        start, end = _window(p)
        limit = params.limit(p, 500, 1000)
        self._now()
        orders = [
            o
            for o in account.orders.values()
            if (from_id is None or o.order_id >= from_id)
            and (start is None or o.time >= start)
            and (end is None or o.time <= end)
        ]
        chosen = orders[:limit] if from_id is not None or start is not None else orders[-limit:]
        return _json([self.order_json(o) for o in chosen])

    async def my_trades(self, request: web.Request) -> web.Response:
        account, p = await self.auth.signed(request)
        _only(p, {"symbol", "orderId", "startTime", "endTime", "fromId", "limit"})
        self._check_symbol(p)
        order_id = params.optional_int(p, "orderId")
        from_id = params.optional_int(p, "fromId")
        has_time = "startTime" in p or "endTime" in p
        # Binance's supported combinations: orderId with fromId only; fromId
        # without a time window.
        if (order_id is not None and has_time) or (from_id is not None and has_time):
            raise errors.bad_request(
                errors.BAD_PARAM_COMBINATION, "Combination of optional parameters invalid."
            )
        start, end = _window(p)
        limit = params.limit(p, 500, 1000)
        self._now()
        trades = [
            t
            for t in account.trades
            if (order_id is None or t.order_id == order_id)
            and (from_id is None or t.id >= from_id)
            and (start is None or t.time >= start)
            and (end is None or t.time <= end)
        ]
        chosen = trades[:limit] if from_id is not None or "startTime" in p else trades[-limit:]
        return _json([self.trade_json(t) for t in chosen])

    # -- shapes -------------------------------------------------------------

    def order_json(self, order: Order) -> dict[str, Any]:
        """`GET /api/v3/order`'s shape (also openOrders and allOrders)."""
        return {
            "symbol": self.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "price": text(order.price),
            "origQty": text(order.orig_qty),
            "executedQty": text(order.executed_qty),
            "cummulativeQuoteQty": text(order.cummulative_quote_qty),
            "status": str(order.status),
            "timeInForce": order.time_in_force,
            "type": str(order.type),
            "side": str(order.side),
            "stopPrice": text(ZERO),
            "icebergQty": text(ZERO),
            "time": order.time,
            "updateTime": order.update_time,
            "isWorking": True,
            "workingTime": order.time,
            "origQuoteOrderQty": text(order.orig_quote_qty),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def cancel_json(self, order: Order, cancel_client_id: str) -> dict[str, Any]:
        """`DELETE /api/v3/order`'s shape: clientOrderId is the cancel's own id."""
        return {
            "symbol": self.symbol,
            "origClientOrderId": order.client_order_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_client_id,
            "transactTime": order.update_time,
            "price": text(order.price),
            "origQty": text(order.orig_qty),
            "executedQty": text(order.executed_qty),
            "origQuoteOrderQty": text(order.orig_quote_qty),
            "cummulativeQuoteQty": text(order.cummulative_quote_qty),
            "status": str(order.status),
            "timeInForce": order.time_in_force,
            "type": str(order.type),
            "side": str(order.side),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }

    def trade_json(self, trade: AccountTrade) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "id": trade.id,
            "orderId": trade.order_id,
            "orderListId": -1,
            "price": text(trade.price),
            "qty": text(trade.qty),
            "quoteQty": text(trade.quote_qty),
            "commission": text(trade.commission),
            "commissionAsset": trade.commission_asset,
            "time": trade.time,
            "isBuyer": trade.is_buyer,
            "isMaker": trade.is_maker,
            "isBestMatch": True,
        }


def _coin_json(asset: str, account: Account) -> dict[str, Any]:
    """One coin of `capital/config/getall`: deposits and withdrawals are not simulated,
    but the flags say what Binance says for a normal coin (ccxt derives `active`)."""
    balance = account.balance(asset)
    name = _NAMES.get(asset, asset)
    zero = "0"
    return {
        "coin": asset,
        "depositAllEnable": True,
        "withdrawAllEnable": True,
        "name": name,
        "free": text(balance.free),
        "locked": text(balance.locked),
        "freeze": zero,
        "withdrawing": zero,
        "ipoing": zero,
        "ipoable": zero,
        "storage": zero,
        "isLegalMoney": False,
        "trading": True,
        "networkList": [
            {
                "network": asset,
                "coin": asset,
                "withdrawIntegerMultiple": text(Decimal("0.00000001")),
                "isDefault": True,
                "depositEnable": True,
                "withdrawEnable": True,
                "depositDesc": "",
                "withdrawDesc": "",
                "specialTips": "",
                "specialWithdrawTips": "",
                "name": name,
                "resetAddressStatus": False,
                "addressRegex": "",
                "addressRule": "",
                "memoRegex": "",
                "withdrawFee": zero,
                "withdrawMin": zero,
                "withdrawMax": "9999999999.99999999",
                "minConfirm": 1,
                "unLockConfirm": 0,
                "sameAddress": False,
                "estimatedArrivalTime": 5,
                "busy": False,
            }
        ],
    }
