"""Binance spot's public REST endpoints (`/api/v3/...`), served from a `MarketState`.

Response shapes are Binance's, field for field, with numbers as decimal
strings; weights are Binance's published request weights. Every market-data
request calls `market.on_data_request()` first, which in step mode advances
the replay by one record.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from aiohttp import web

from hean_sim.exchange import errors, params
from hean_sim.exchange.book import synthetic_book
from hean_sim.exchange.endpoints import Endpoint, fixed
from hean_sim.exchange.market import DAY_MS, INTERVALS, Kline, MarketState, PublicTrade
from hean_sim.exchange.numbers import ZERO, dec, ftext, rounded, text
from hean_sim.exchange.params import Query
from hean_sim.exchange.times import MINUTE_MS

API = "/api/v3"
HOUR_MS = 3_600_000
_WINDOW = re.compile(r"^([1-9][0-9]?)([mhd])$")
_WINDOW_UNITS = {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}


def _depth_weight(query: Query) -> int:
    try:
        limit = params.limit(query, 100, 5000)
    except errors.BinanceError:
        return 5
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def _ticker_24hr_weight(query: Query) -> int:
    count = params.symbol_count(query)
    if count is None or count > 100:
        return 80
    return 2 if count <= 20 else 40


def _by_symbol_weight(query: Query) -> int:
    return 2 if params.symbol_count(query) == 1 else 4


def _rolling_weight(query: Query) -> int:
    return min(4 * (params.symbol_count(query) or 1), 200)


def _json(data: Any) -> web.Response:
    return web.json_response(data)


class PublicApi:
    """The public endpoints of one simulated symbol."""

    def __init__(self, market: MarketState) -> None:
        self.market = market
        self.config = market.config
        self.symbol = market.config.symbol_id

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("GET", f"{API}/ping", fixed(1), self.ping),
            Endpoint("GET", f"{API}/time", fixed(1), self.time),
            Endpoint("GET", f"{API}/exchangeInfo", fixed(20), self.exchange_info),
            Endpoint("GET", f"{API}/klines", fixed(2), self.klines),
            Endpoint("GET", f"{API}/uiKlines", fixed(2), self.klines),
            Endpoint("GET", f"{API}/trades", fixed(25), self.trades),
            Endpoint("GET", f"{API}/aggTrades", fixed(4), self.agg_trades),
            Endpoint("GET", f"{API}/depth", _depth_weight, self.depth),
            Endpoint("GET", f"{API}/avgPrice", fixed(2), self.avg_price),
            Endpoint("GET", f"{API}/ticker/24hr", _ticker_24hr_weight, self.ticker_24hr),
            Endpoint("GET", f"{API}/ticker", _rolling_weight, self.ticker_rolling),
            Endpoint("GET", f"{API}/ticker/price", _by_symbol_weight, self.ticker_price),
            Endpoint("GET", f"{API}/ticker/bookTicker", _by_symbol_weight, self.book_ticker),
        ]

    # -- helpers ------------------------------------------------------------

    def _check_symbol(self, symbol: str) -> None:
        if symbol != self.symbol:
            raise errors.invalid_symbol()

    def _symbol(self, query: Query) -> None:
        """The one mandatory `symbol` parameter, which must be ours."""
        self._check_symbol(params.required(query, "symbol"))

    def _symbols(self, query: Query) -> bool:
        """Validate optional `symbol`/`symbols`; True when one object (not a list) is wanted."""
        names = params.symbol_list(query)
        for name in names or []:
            self._check_symbol(name)
        return "symbol" in query and bool(query["symbol"])

    def _one_or_list(self, single: bool, item: dict[str, Any]) -> web.Response:
        return _json(item if single else [item])

    # -- general ------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return _json({})

    async def time(self, request: web.Request) -> web.Response:
        return _json({"serverTime": self.market.wall_ms()})

    def symbol_info(self) -> dict[str, Any]:
        filters = self.market.filters
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.config.base_asset,
            "baseAssetPrecision": 8,
            "quoteAsset": self.config.quote_asset,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "amendAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": filters.to_json(),
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": [
                "EXPIRE_TAKER",
                "EXPIRE_MAKER",
                "EXPIRE_BOTH",
            ],
        }

    async def exchange_info(self, request: web.Request) -> web.Response:
        self._symbols(request.query)
        limit = self.config.weight_limit
        return _json(
            {
                "timezone": "UTC",
                "serverTime": self.market.wall_ms(),
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": limit,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": 100,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "DAY",
                        "intervalNum": 1,
                        "limit": 200000,
                    },
                    {
                        "rateLimitType": "RAW_REQUESTS",
                        "interval": "MINUTE",
                        "intervalNum": 5,
                        "limit": 61000,
                    },
                ],
                "exchangeFilters": [],
                "symbols": [self.symbol_info()],
            }
        )

    # -- market data --------------------------------------------------------

    @staticmethod
    def _kline_json(kline: Kline) -> list[Any]:
        bar = kline.bar
        return [
            kline.open_time,
            ftext(bar.open),
            ftext(bar.high),
            ftext(bar.low),
            ftext(bar.close),
            text(bar.volume),
            kline.close_time,
            text(rounded(bar.quote_volume)),
            bar.trades,
            text(bar.taker_buy_volume),
            text(rounded(bar.taker_buy_quote_volume)),
            "0",
        ]

    async def klines(self, request: web.Request) -> web.Response:
        query = request.query
        self._symbol(query)
        interval = params.required(query, "interval")
        interval_ms = INTERVALS.get(interval)
        if interval_ms is None:
            raise errors.bad_request(errors.BAD_INTERVAL, "Invalid interval.")
        start = params.optional_int(query, "startTime")
        end = params.optional_int(query, "endTime")
        limit = params.limit(query, 500, 1000)
        self.market.on_data_request()
        if start is not None and end is not None and start > end:
            return _json([])
        klines = self.market.klines(interval_ms, start, end, limit)
        return _json([self._kline_json(k) for k in klines])

    async def trades(self, request: web.Request) -> web.Response:
        query = request.query
        self._symbol(query)
        limit = params.limit(query, 500, 1000)
        self.market.on_data_request()
        return _json([_trade_json(t) for t in self.market.recent_trades(limit)])

    async def agg_trades(self, request: web.Request) -> web.Response:
        query = request.query
        self._symbol(query)
        from_id = params.optional_int(query, "fromId")
        start = params.optional_int(query, "startTime")
        end = params.optional_int(query, "endTime")
        limit = params.limit(query, 500, 1000)
        if start is not None and end is not None:
            if end < start:
                raise errors.bad_request(
                    errors.BAD_PARAM_COMBINATION, "Combination of optional parameters invalid."
                )
            if end - start > HOUR_MS:
                raise errors.bad_request(
                    errors.INVALID_LOOKUP_INTERVAL,
                    "More than 1 hours between startTime and endTime.",
                )
        self.market.on_data_request()
        trades = self.market.agg_trades(from_id, start, end, limit)
        return _json([_agg_trade_json(t) for t in trades])

    async def depth(self, request: web.Request) -> web.Response:
        query = request.query
        self._symbol(query)
        limit = params.limit(query, 100, 5000)
        self.market.on_data_request()
        book = synthetic_book(self.market, limit)
        return _json(
            {
                "lastUpdateId": book.last_update_id,
                "bids": [[text(p), text(q)] for p, q in book.bids],
                "asks": [[text(p), text(q)] for p, q in book.asks],
            }
        )

    async def avg_price(self, request: web.Request) -> web.Response:
        self._symbol(request.query)
        self.market.on_data_request()
        stats = self.market.window_stats(5 * MINUTE_MS)
        bar = stats.bar
        if bar is None or bar.volume == 0:
            price = dec(stats.last_price)
        else:
            price = rounded(bar.quote_volume / bar.volume)
        return _json({"mins": 5, "price": text(price), "closeTime": stats.close_time})

    def _ticker(self, window_ms: int, full: bool, rolling: bool) -> dict[str, Any]:
        stats = self.market.window_stats(window_ms)
        last = dec(stats.last_price)
        bar = stats.bar
        if bar is None:
            open_price = high = low = last
            volume = quote = ZERO
            first_id = last_id = -1
            count = 0
        else:
            open_price, high, low = dec(bar.open), dec(bar.high), dec(bar.low)
            volume, quote = bar.volume, bar.quote_volume
            first_id, last_id, count = bar.first_id, bar.last_id, bar.trades
        change = last - open_price
        percent = rounded(change / open_price * 100, Decimal("0.001"))
        average = rounded(quote / volume) if volume else ZERO
        ticker: dict[str, Any] = {"symbol": self.symbol}
        if full:
            ticker["priceChange"] = text(change)
            ticker["priceChangePercent"] = format(percent, "f")
            ticker["weightedAvgPrice"] = text(average)
            if not rolling:
                prev = stats.prev_close
                ticker["prevClosePrice"] = text(dec(prev) if prev is not None else ZERO)
        ticker["lastPrice"] = text(last)
        if full and not rolling:
            book = synthetic_book(self.market, 1)
            ticker["lastQty"] = text(dec(stats.last_qty))
            ticker["bidPrice"] = text(book.bids[0][0] if book.bids else ZERO)
            ticker["bidQty"] = text(book.bids[0][1] if book.bids else ZERO)
            ticker["askPrice"] = text(book.asks[0][0])
            ticker["askQty"] = text(book.asks[0][1])
        ticker.update(
            {
                "openPrice": text(open_price),
                "highPrice": text(high),
                "lowPrice": text(low),
                "volume": text(volume),
                "quoteVolume": text(rounded(quote)),
                "openTime": stats.open_time,
                "closeTime": stats.close_time,
                "firstId": first_id,
                "lastId": last_id,
                "count": count,
            }
        )
        return ticker

    @staticmethod
    def _full(query: Query) -> bool:
        kind = query.get("type", "FULL")
        if kind not in ("FULL", "MINI"):
            raise errors.invalid_value("type")
        return kind == "FULL"

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        single = self._symbols(request.query)
        full = self._full(request.query)
        self.market.on_data_request()
        return self._one_or_list(single, self._ticker(DAY_MS, full, rolling=False))

    async def ticker_rolling(self, request: web.Request) -> web.Response:
        query = request.query
        if params.symbol_list(query) is None:
            raise errors.missing_param("symbol")
        single = self._symbols(query)
        full = self._full(query)
        match = _WINDOW.match(query.get("windowSize", "1d"))
        if match is None:
            raise errors.invalid_value("windowSize")
        amount, unit = int(match.group(1)), match.group(2)
        if (
            (unit == "m" and amount > 59)
            or (unit == "h" and amount > 23)
            or (unit == "d" and amount > 7)
        ):
            raise errors.invalid_value("windowSize")
        self.market.on_data_request()
        ticker = self._ticker(amount * _WINDOW_UNITS[unit], full, rolling=True)
        return self._one_or_list(single, ticker)

    async def ticker_price(self, request: web.Request) -> web.Response:
        single = self._symbols(request.query)
        self.market.on_data_request()
        item = {"symbol": self.symbol, "price": text(self.market.last_price())}
        return self._one_or_list(single, item)

    async def book_ticker(self, request: web.Request) -> web.Response:
        single = self._symbols(request.query)
        self.market.on_data_request()
        book = synthetic_book(self.market, 1)
        item = {
            "symbol": self.symbol,
            "bidPrice": text(book.bids[0][0] if book.bids else ZERO),
            "bidQty": text(book.bids[0][1] if book.bids else ZERO),
            "askPrice": text(book.asks[0][0]),
            "askQty": text(book.asks[0][1]),
        }
        return self._one_or_list(single, item)


def _trade_json(trade: PublicTrade) -> dict[str, Any]:
    price, qty = dec(trade.price), dec(trade.qty)
    return {
        "id": trade.id,
        "price": text(price),
        "qty": text(qty),
        "quoteQty": text(rounded(price * qty)),
        "time": trade.time,
        "isBuyerMaker": trade.buyer_maker,
        "isBestMatch": True,
    }


def _agg_trade_json(trade: PublicTrade) -> dict[str, Any]:
    return {
        "a": trade.id,
        "p": ftext(trade.price),
        "q": ftext(trade.qty),
        "f": trade.id,
        "l": trade.id,
        "T": trade.time,
        "m": trade.buyer_maker,
        "M": True,
    }
