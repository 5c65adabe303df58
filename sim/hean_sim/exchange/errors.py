"""Binance's error responses: HTTP status plus `{"code": -NNNN, "msg": "..."}`.

ccxt maps the numeric code (not the text) to its exception classes, so the
codes here are Binance's own: -1121 becomes `BadSymbol`, -1003 (with HTTP 429
or 418) `DDoSProtection`, -11xx parameter errors `BadRequest`.
"""

from __future__ import annotations

import json

from aiohttp import web

UNKNOWN = -1000
TOO_MANY_REQUESTS = -1003
UNSUPPORTED_OPERATION = -1020
ILLEGAL_CHARS = -1100
MANDATORY_PARAM = -1102
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
INVALID_LOOKUP_INTERVAL = -1127
BAD_PARAM_COMBINATION = -1128
INVALID_PARAMETER = -1130


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
