"""Binance's error responses: HTTP status plus `{"code": -NNNN, "msg": "..."}`.

ccxt maps the numeric code (not the text) to its exception classes, so the
codes here are Binance's own: -1121 becomes `BadSymbol`, -1003 (with HTTP 429
or 418) `DDoSProtection`, -11xx parameter errors `BadRequest`.
"""

from __future__ import annotations

import json

from aiohttp import web

UNKNOWN = -1000
DISCONNECTED = -1001
TOO_MANY_REQUESTS = -1003
TOO_MANY_ORDERS = -1015
UNSUPPORTED_OPERATION = -1020
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
DUPLICATE_PARAM = -1101
MANDATORY_PARAM = -1102
UNEXPECTED_PARAM = -1106
BAD_PRECISION = -1111
BAD_TIME_IN_FORCE = -1115
BAD_ORDER_TYPE = -1116
BAD_SIDE = -1117
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
INVALID_LOOKUP_INTERVAL = -1127
BAD_PARAM_COMBINATION = -1128
INVALID_PARAMETER = -1130
BAD_RECV_WINDOW = -1131
FILTER_FAILURE = -1013
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FORMAT = -2014
REJECTED_MBX_KEY = -2015

# The messages ccxt matches exactly (it maps "insufficient balance" by text,
# the -2010 code alone would only give InvalidOrder).
INSUFFICIENT_BALANCE_MSG = "Account has insufficient balance for requested action."
DUPLICATE_ORDER_MSG = "Duplicate order sent."
WOULD_TAKE_MSG = "Order would immediately match and take."
UNKNOWN_ORDER_MSG = "Unknown order sent."
NO_SUCH_ORDER_MSG = "Order does not exist."


class BinanceError(Exception):
    """Raised by a handler; the server turns it into Binance's error response."""

    def __init__(
        self,
        status: int,
        code: int,
        msg: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.msg, self.headers)


def error_response(
    status: int, code: int, msg: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = json.dumps({"code": code, "msg": msg})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def bad_request(code: int, msg: str) -> BinanceError:
    return BinanceError(400, code, msg)


def invalid_symbol() -> BinanceError:
    return bad_request(BAD_SYMBOL, "Invalid symbol.")


def missing_param(name: str) -> BinanceError:
    return bad_request(
        MANDATORY_PARAM,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def illegal_chars(name: str) -> BinanceError:
    return bad_request(
        ILLEGAL_CHARS,
        f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
    )


def invalid_value(name: str) -> BinanceError:
    return bad_request(INVALID_PARAMETER, f"Data sent for parameter '{name}' is not valid.")


def not_found(method: str, path: str) -> BinanceError:
    return BinanceError(
        404, UNSUPPORTED_OPERATION, f"This operation is not supported: {method} {path}"
    )


def unexpected_param(name: str) -> BinanceError:
    return bad_request(UNEXPECTED_PARAM, f"Parameter '{name}' sent when not required.")


def filter_failure(name: str) -> BinanceError:
    return bad_request(FILTER_FAILURE, f"Filter failure: {name}")


def order_rejected(msg: str) -> BinanceError:
    return bad_request(NEW_ORDER_REJECTED, msg)


def unknown_order() -> BinanceError:
    return bad_request(CANCEL_REJECTED, UNKNOWN_ORDER_MSG)


def no_such_order() -> BinanceError:
    return bad_request(NO_SUCH_ORDER, NO_SUCH_ORDER_MSG)


def one_of_params(first: str, second: str) -> BinanceError:
    return bad_request(
        MANDATORY_PARAM, f"Param '{first}' or '{second}' must be sent, but both were empty/null!"
    )
