"""What differs between the exchanges the live path trades on, as data, in one place.

Everything exchange-specific that the live path needs is a field of `Venue`:

- `ccxt_options`: options merged under the ccxt client's (spot only, so that
  `load_markets` does not call the derivatives APIs);
- `credentials`: the keys of the mounted Secret ccxt needs (OKX adds its
  passphrase, ccxt's `password`);
- `url_keys`: the entries of ccxt's `urls['api']` that are rewritten when
  `exchange.endpoint` points the client elsewhere (the simulator);
- `client_ids`: the create-order parameter carrying the client order id, the
  fetch-order parameter that looks an order up by it, and the ids the
  exchange accepts (Binance: 1-36 of `[.A-Z:/a-z0-9_-]`; OKX: 1-32 letters
  and digits, so HEAN's ids drop their dashes there);
- `recv_window`: how a request's deadline reaches the exchange, so that an
  order not found once the deadline has passed never arrived (Binance: the
  signed `recvWindow` parameter, a ccxt option; OKX: an `expTime` header on
  order placement, set when ccxt signs);
- `trades`: how the account's trade list is paged after a cursor (Binance:
  `fromId`, the trade id, 1000 a page; OKX: `before`, the fill's `billId`,
  100 a page);
- `errors`: exchange error codes whose meaning for an order placement ccxt's
  exception class does not say (a duplicate client id, an outcome that is
  unknown although ccxt calls it a plain error, a refusal that certainly
  executed nothing); anything not listed is judged by the class;
- `min_notional`: whether the market's `limits.cost.min` is a rule the
  exchange enforces (Binance's NOTIONAL filter) or absent (OKX spot has a
  minimum size only); a priced order below it is not sent.

Adding an exchange is adding an entry (and a simulator protocol to prove it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Outcome(StrEnum):
    """What a failed order placement means for the order."""

    # The exchange refused it as a duplicate of an open order: an earlier
    # attempt arrived. Look it up; it exists.
    DUPLICATE = "duplicate"
    # Certainly not executed, and sending it again is fine (a rate limit).
    RETRY = "retry"
    # Maybe executed: look it up by client id before any new attempt.
    UNKNOWN = "unknown"
    # Certainly not executed, and another attempt would be refused alike.
    NOT_PLACED = "not-placed"


@dataclass(frozen=True)
class ClientIds:
    param: str  # create_order parameter
    lookup_param: str  # fetch_order parameter (order id None)
    pattern: re.Pattern[str]  # what the exchange accepts
    separator: str  # between HEAN's id parts; "" where the exchange allows no dash


@dataclass(frozen=True)
class TradePaging:
    param: str  # the "after this cursor" parameter of fetch_my_trades
    cursor_field: str | None  # None: the trade's id; else this field of its raw `info`
    inclusive: bool  # True: the parameter names the first trade wanted (cursor + 1)
    page: int  # the most the exchange returns at once


@dataclass(frozen=True)
class RecvWindow:
    how: Literal["option", "header"]
    name: str  # the ccxt option (`recvWindow`) or the request header (`expTime`)
    # Header only: the (method, ccxt path) requests it is sent with (order placement).
    requests: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Venue:
    id: str
    ccxt_options: Mapping[str, Any]
    credentials: tuple[str, ...]
    url_keys: tuple[str, ...]
    client_ids: ClientIds
    recv_window: RecvWindow
    trades: TradePaging
    min_notional: bool
    # (exchange code, message or None for any) -> outcome, checked in order.
    errors: tuple[tuple[str, str | None, Outcome], ...] = field(default=())

    def placement_outcome(self, exc: BaseException, transient: bool) -> Outcome:
        """How a failed create_order is to be treated; `transient` is ccxt's class verdict."""
        code, message = error_code(exc)
        for known, text, outcome in self.errors:
            if code == known and (text is None or text == message):
                return outcome
        return Outcome.UNKNOWN if transient else Outcome.NOT_PLACED

    def trade_cursor(self, trade: Mapping[str, Any]) -> int:
        """The position of a ccxt trade in the account's trade list (increasing)."""
        if self.trades.cursor_field is None:
            return int(trade["id"])
        return int((trade.get("info") or {})[self.trades.cursor_field])

    def trades_after(self, cursor: int) -> dict[str, Any]:
        """fetch_my_trades parameters for the trades after `cursor`."""
        paging = self.trades
        if paging.inclusive:
            return {paging.param: cursor + 1}
        # No trade yet (-1): every id is newer than 0 (ids are positive).
        return {paging.param: str(max(cursor, 0))}


VENUES: dict[str, Venue] = {
    "binance": Venue(
        id="binance",
        # Spot only: without this, load_markets also calls the futures APIs (fapi, dapi).
        ccxt_options={"defaultType": "spot", "fetchMarkets": ["spot"]},
        credentials=("apiKey", "secret"),
        url_keys=(),  # all of them: api, sapi, public, private, ...
        client_ids=ClientIds(
            param="newClientOrderId",
            lookup_param="origClientOrderId",
            pattern=re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$"),
            separator="-",
        ),
        recv_window=RecvWindow("option", "recvWindow"),
        trades=TradePaging(param="fromId", cursor_field=None, inclusive=True, page=1000),
        min_notional=True,
        errors=(
            # -2010 is also "insufficient balance": the message tells them apart.
            ("-2010", "Duplicate order sent.", Outcome.DUPLICATE),
            ("-1003", None, Outcome.RETRY),  # too much request weight: not executed
            ("-1015", None, Outcome.RETRY),  # too many new orders: not executed
            ("-1000", None, Outcome.UNKNOWN),  # unknown error
            ("-1001", None, Outcome.UNKNOWN),  # internal error; disconnected
            ("-1007", None, Outcome.UNKNOWN),  # backend timeout: "execution status unknown"
        ),
    ),
    "okx": Venue(
        id="okx",
        ccxt_options={"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}},
        credentials=("apiKey", "secret", "password"),
        url_keys=("rest",),
        client_ids=ClientIds(
            param="clOrdId",
            lookup_param="clOrdId",
            pattern=re.compile(r"^[A-Za-z0-9]{1,32}$"),
            separator="",
        ),
        recv_window=RecvWindow(
            "header",
            "expTime",
            frozenset({("POST", "trade/order"), ("POST", "trade/batch-orders")}),
        ),
        trades=TradePaging(param="before", cursor_field="billId", inclusive=False, page=100),
        min_notional=False,
        errors=(
            ("51016", None, Outcome.DUPLICATE),  # Duplicated clOrdId
            ("50011", None, Outcome.RETRY),  # rate limit reached: not executed
            ("50004", None, Outcome.UNKNOWN),  # endpoint timeout: "does not indicate success"
            ("51149", None, Outcome.UNKNOWN),  # order timed out, outcome unknown (ccxt: plain)
            ("50037", None, Outcome.NOT_PLACED),  # past its expTime: never executed
        ),
    ),
}

SUPPORTED = frozenset(VENUES)


class UnsupportedExchange(ValueError):
    """Live trading on an exchange without an entry in `VENUES`."""


def venue(exchange_id: str) -> Venue:
    found = VENUES.get(exchange_id)
    if found is None:
        names = ", ".join(sorted(VENUES))
        raise UnsupportedExchange(
            f"live trading supports {names}; {exchange_id!r} has no entry in the venue table"
        )
    return found


def options_for(exchange_id: str) -> Mapping[str, Any]:
    """The ccxt options of an exchange (none for one without an entry: paper mode)."""
    found = VENUES.get(exchange_id)
    return found.ccxt_options if found is not None else {}


def error_code(exc: BaseException) -> tuple[str | None, str | None]:
    """The exchange's own error code and message in a ccxt exception, if it carries its body.

    ccxt raises with "<exchange id> <response body>". Binance's body is
    `{"code": -2010, "msg": ...}`; OKX's `{"code": "1", "data": [{"sCode": ...,
    "sMsg": ...}]}` for a failed order (the per-order code is the one that
    says why) or `{"code": "50011", "msg": ...}`.
    """
    text = str(exc)
    start = text.find("{")
    if start < 0:
        return None, None
    try:
        body = json.loads(text[start:])
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    data = body.get("data")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        s_code = data[0].get("sCode")
        if s_code not in (None, "", "0"):
            return str(s_code), _text(data[0].get("sMsg"))
    code = body.get("code")
    return (str(code) if code is not None else None), _text(body.get("msg"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
