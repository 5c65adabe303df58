"""OKX v5's request signing, error bodies and per-endpoint rate limits, as OKX checks them.

Signing (private endpoints):

- Four headers: `OK-ACCESS-KEY`, `OK-ACCESS-PASSPHRASE`, `OK-ACCESS-TIMESTAMP`
  (ISO 8601 UTC with milliseconds, `2020-12-08T09:08:57.715Z`) and
  `OK-ACCESS-SIGN`, the Base64 HMAC-SHA256, keyed with the secret, of
  timestamp + METHOD + request path (with the query string, exactly as sent)
  + body (the JSON text exactly as sent; empty for a GET).
- Refusals are HTTP 401 with OKX's codes: an empty header 50103 / 50104 /
  50106 / 50107 (key, passphrase, sign, timestamp), a timestamp that does
  not parse 50112, one more than 30 s away from the server's clock 50102
  ("Timestamp request expired"), an unknown key 50111, a wrong passphrase
  50105, a wrong signature 50113.

Every error body is `{"code": "NNNNN", "msg": "...", "data": []}` (codes are
strings); ccxt maps the code to its exception classes. Per-order failures
(place, cancel) are HTTP 200 with `code` "1" and the reason in
`data[0].sCode` / `sMsg`, which is where ccxt looks first.

Rate limits are per endpoint in fixed windows (mostly 2 s), counted per
client IP for public endpoints and per account (user ID) for private ones, as
OKX publishes them; over the limit is HTTP 429 with code 50011.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

from hean_sim.exchange.accounts import Account
from hean_sim.exchange.config import WallSeconds

KEY_HEADER = "OK-ACCESS-KEY"
PASSPHRASE_HEADER = "OK-ACCESS-PASSPHRASE"  # noqa: S105 - a header's name, not a secret
TIMESTAMP_HEADER = "OK-ACCESS-TIMESTAMP"
SIGN_HEADER = "OK-ACCESS-SIGN"
# OKX refuses a request whose timestamp is more than 30 s from its clock.
TIMESTAMP_WINDOW_MS = 30_000

SYSTEM_ERROR = "50026"
UNAVAILABLE = "50001"
TOO_MANY = "50011"
EMPTY_PARAM = "50014"
JSON_SYNTAX = "50002"
PARAM_ERROR = "51000"


class OkxError(Exception):
    """Raised by a handler; the protocol turns it into OKX's error response."""

    def __init__(
        self,
        status: int,
        code: str,
        msg: str,
        data: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.data = list(data or [])
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.msg, self.data, self.headers)


def error_response(
    status: int,
    code: str,
    msg: str,
    data: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = json.dumps({"code": code, "msg": msg, "data": data or []})
    return web.Response(
        status=status, text=body, content_type="application/json", headers=dict(headers or {})
    )


def empty_param(name: str) -> OkxError:
    return OkxError(400, EMPTY_PARAM, f"Parameter {name} can not be empty.")


def param_error(name: str) -> OkxError:
    return OkxError(400, PARAM_ERROR, f"Parameter {name} error")


def _unauthorized(code: str, msg: str) -> OkxError:
    return OkxError(401, code, msg)


def parse_timestamp(value: str) -> int | None:
    """Epoch ms of an `OK-ACCESS-TIMESTAMP` (`2020-12-08T09:08:57.715Z`), None if malformed."""
    try:
        parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None
    return int(parsed.replace(tzinfo=UTC).timestamp() * 1000)


def signature(secret: str, prehash: str) -> str:
    digest = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class OkxAuthenticator:
    """Finds the account of a private request and checks its headers and signature."""

    def __init__(self, accounts: Mapping[str, Account], wall_ms: Callable[[], int]) -> None:
        self.accounts = accounts
        self.wall_ms = wall_ms

    async def signed(self, request: web.Request) -> tuple[Account, str]:
        """The request's account and its body text, once every check passed."""
        headers = request.headers
        api_key = headers.get(KEY_HEADER, "")
        passphrase = headers.get(PASSPHRASE_HEADER, "")
        stamp = headers.get(TIMESTAMP_HEADER, "")
        sign = headers.get(SIGN_HEADER, "")
        for value, code, name in (
            (api_key, "50103", KEY_HEADER),
            (passphrase, "50104", PASSPHRASE_HEADER),
            (sign, "50106", SIGN_HEADER),
            (stamp, "50107", TIMESTAMP_HEADER),
        ):
            if not value:
                raise _unauthorized(code, f'Request header "{name}" cannot be empty.')
        when = parse_timestamp(stamp)
        if when is None:
            raise _unauthorized("50112", "Invalid OK-ACCESS-TIMESTAMP.")
        if abs(self.wall_ms() - when) > TIMESTAMP_WINDOW_MS:
            raise _unauthorized("50102", "Timestamp request expired.")
        account = self.accounts.get(api_key)
        if account is None:
            raise _unauthorized("50111", "Invalid OK-ACCESS-KEY.")
        if not hmac.compare_digest(account.key.passphrase.encode(), passphrase.encode()):
            raise _unauthorized("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
        body = (await request.text()) if request.body_exists else ""
        expected = signature(account.key.secret, stamp + request.method + request.raw_path + body)
        if not hmac.compare_digest(expected.encode(), sign.encode()):
            raise _unauthorized("50113", "Invalid signature.")
        return account, body


@dataclass(frozen=True)
class Rule:
    """One endpoint's limit: `limit` requests per `seconds`, per IP or per user."""

    limit: int
    seconds: float
    per: Literal["ip", "user"]


@dataclass
class _Window:
    seconds: float
    index: int = -1
    count: int = 0


class RateLimiter:
    """OKX's per-endpoint limits in fixed windows; refused requests are not counted."""

    def __init__(self, clock: WallSeconds, factor: int = 1) -> None:
        self.clock = clock
        self.factor = factor
        self._windows: dict[tuple[str, str], _Window] = {}

    def admit(self, path: str, rule: Rule, who: str) -> int | None:
        """Count one request; None if admitted, else the seconds until the window ends."""
        now = self.clock()
        window = self._windows.setdefault((path, who), _Window(rule.seconds))
        index = math.floor(now / rule.seconds)
        if index != window.index:
            window.index, window.count = index, 0
        if window.count >= rule.limit * self.factor:
            return max(1, math.ceil((index + 1) * rule.seconds - now))
        window.count += 1
        return None

    def used(self, who: str) -> int:
        """Requests `who` made in the endpoints' current windows."""
        now = self.clock()
        return sum(
            window.count
            for (_, owner), window in self._windows.items()
            if owner == who and window.index == math.floor(now / window.seconds)
        )
