"""Binance's request signing (SIGNED endpoints), checked the way Binance checks it.

- The API key travels in the `X-MBX-APIKEY` header: absent or empty is -2014
  ("API-key format invalid."), unknown is -2015, both HTTP 401.
- The signature is the hex HMAC-SHA256, keyed with the secret, of
  "totalParams": the query string concatenated with the request body (no
  separator), exactly as sent and without the `signature` parameter itself.
  ccxt 4.5 sends GET and DELETE parameters in the query string and POST
  parameters in a form body, and signs what it sends. A wrong one is -1022.
- `timestamp` (mandatory) must satisfy `timestamp < serverTime + 1000` and
  `serverTime - timestamp <= recvWindow` (default 5000, at most 60000), with
  serverTime the simulator's wall clock; otherwise -1021.
- A parameter sent in both the query string and the body: the query's wins.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from aiohttp import web

from hean_sim.exchange import errors, params
from hean_sim.exchange.accounts import Account

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60_000
MAX_AHEAD_MS = 1000
_SIGNATURE_PAIR = re.compile(r"(^|&)signature=[^&]*")
_RECV_WINDOW = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,3})?$")

Params = dict[str, str]


def _unauthorized(code: int, msg: str) -> errors.BinanceError:
    return errors.BinanceError(401, code, msg)


def _parse(raw: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise errors.bad_request(
            errors.ILLEGAL_CHARS, "Illegal characters found in a parameter."
        ) from None


def _without_signature(raw: str) -> tuple[str, str | None]:
    """`raw` minus its `signature=...` pair, and the signature (None if absent)."""
    found = _SIGNATURE_PAIR.search(raw)
    if found is None:
        return raw, None
    value = found.group(0).split("=", 1)[1]
    rest = raw[: found.start()] + raw[found.end() :]
    if found.group(1) == "" and rest.startswith("&"):
        rest = rest[1:]
    return rest, value


class Authenticator:
    """Finds the account of a request and checks its signature and timestamp."""

    def __init__(self, accounts: Mapping[str, Account], wall_ms: Callable[[], int]) -> None:
        self.accounts = accounts
        self.wall_ms = wall_ms

    def account_of(self, request: web.Request) -> Account:
        """The account of the request's API key (USER_STREAM / MARKET_DATA security)."""
        api_key = request.headers.get(API_KEY_HEADER, "")
        if not api_key:
            raise _unauthorized(errors.BAD_API_KEY_FORMAT, "API-key format invalid.")
        account = self.accounts.get(api_key)
        if account is None:
            raise _unauthorized(
                errors.REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action."
            )
        return account

    async def signed(self, request: web.Request) -> tuple[Account, Params]:
        """Authenticate a SIGNED request (TRADE / USER_DATA); its parameters, merged."""
        account = self.account_of(request)
        query = request.rel_url.raw_query_string
        body = (await request.text()) if request.body_exists else ""
        query_rest, query_signature = _without_signature(query)
        body_rest, body_signature = _without_signature(body)
        merged: Params = {}
        for raw in (body_rest, query_rest):  # the query string's value wins
            seen: set[str] = set()
            for name, value in _parse(raw):
                if name in seen:
                    raise errors.bad_request(
                        errors.DUPLICATE_PARAM, "Duplicate values for a parameter detected."
                    )
                seen.add(name)
                merged[name] = value
        signature = query_signature if query_signature is not None else body_signature
        if not signature:
            raise errors.missing_param("signature")
        self._check_timestamp(merged)
        expected = hmac.new(
            account.key.secret.encode(), (query_rest + body_rest).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise errors.bad_request(
                errors.INVALID_SIGNATURE, "Signature for this request is not valid."
            )
        return account, merged

    def _check_timestamp(self, merged: Params) -> None:
        timestamp = params.optional_int(merged, "timestamp")
        if timestamp is None:
            raise errors.missing_param("timestamp")
        window: float = DEFAULT_RECV_WINDOW
        raw_window = merged.get("recvWindow")
        if raw_window:
            if not _RECV_WINDOW.match(raw_window):
                raise errors.illegal_chars("recvWindow")
            window = float(raw_window)
            if window > MAX_RECV_WINDOW:
                raise errors.bad_request(
                    errors.BAD_RECV_WINDOW, f"recvWindow must be less than {MAX_RECV_WINDOW}"
                )
        server = self.wall_ms()
        if timestamp >= server + MAX_AHEAD_MS:
            raise errors.bad_request(
                errors.INVALID_TIMESTAMP,
                f"Timestamp for this request was {MAX_AHEAD_MS}ms ahead of the server's time.",
            )
        if server - timestamp > window:
            raise errors.bad_request(
                errors.INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow."
            )
