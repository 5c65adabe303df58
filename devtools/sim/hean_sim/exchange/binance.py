"""Binance spot's REST protocol over the shared market and accounts.

Requests are charged their endpoint's weight against the client IP's limit
per minute (429 / 418 when over it; see `weights`), the handler runs (a
`BinanceError` becomes Binance's `{"code": -NNNN, "msg": ...}` response), and
the used weight goes back in `X-MBX-USED-WEIGHT-1M`. Signing is in `auth`,
the endpoints in `public` and `private`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web

from hean_sim.exchange import errors
from hean_sim.exchange.auth import Authenticator
from hean_sim.exchange.config import SimConfig
from hean_sim.exchange.endpoints import Endpoint
from hean_sim.exchange.faults import Fault
from hean_sim.exchange.orders import OrderEngine
from hean_sim.exchange.private import STATE_CHANGING, PrivateApi
from hean_sim.exchange.protocol import ExchangeProtocol
from hean_sim.exchange.public import PublicApi
from hean_sim.exchange.weights import Admission, Verdict, WeightLimiter

log = logging.getLogger(__name__)

USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
LEGACY_USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT"


class BinanceProtocol(ExchangeProtocol):
    """Binance spot: `/api/v3` and the `/sapi` endpoints ccxt's load_markets needs."""

    name = "binance"
    state_changing = STATE_CHANGING

    def __init__(self, config: SimConfig, matching: OrderEngine) -> None:
        self.config = config
        self.limiter = WeightLimiter(
            config.weight_limit,
            config.clock,
            ban_seconds=config.ban_seconds,
            ban_after=config.ban_after,
        )
        self.auth = Authenticator(matching.accounts, matching.market.wall_ms)
        self.public = PublicApi(matching.market)
        self.private = PrivateApi(matching, self.auth, config.clock)

    def endpoints(self) -> Iterable[Endpoint]:
        return [*self.public.endpoints(), *self.private.endpoints()]

    def used(self, ip: str) -> int:
        return self.limiter.used(ip)

    async def serve(self, request: web.Request, endpoint: Endpoint | None) -> web.StreamResponse:
        ip = request.remote or "unknown"
        if endpoint is None:
            response: web.StreamResponse = errors.not_found(request.method, request.path).response()
            self._report_weight(response, self.limiter.used(ip))
            return response
        try:
            weight = endpoint.weight(request.query)
        except errors.BinanceError:
            weight = 1  # the handler will report the bad parameter
        decision = self.limiter.admit(ip, weight)
        if decision.verdict is not Verdict.OK:
            response = self._refusal(decision)
        else:
            try:
                response = await endpoint.handler(request)
            except errors.BinanceError as exc:
                response = exc.response()
            except Exception:
                log.exception("simulator endpoint %s %s failed", request.method, request.path)
                response = errors.error_response(
                    500,
                    errors.UNKNOWN,
                    "An unknown error occurred while processing the request.",
                )
        self._report_weight(response, decision.used)
        return response

    def fault_response(self, fault: Fault, request: web.Request, retry_after: int) -> web.Response:
        if fault is Fault.E500:
            return errors.error_response(
                500, errors.UNKNOWN, "An unknown error occurred while processing the request."
            )
        if fault is Fault.E503:
            return errors.error_response(
                503,
                errors.DISCONNECTED,
                "Internal error; unable to process your request. Please try again.",
                {"Retry-After": str(retry_after)},
            )
        if fault is Fault.TOO_MANY:
            ip = request.remote or "unknown"
            refused = self._refusal(Admission(Verdict.TOO_MANY, 0, retry_after))
            self._report_weight(refused, self.limiter.used(ip))
            return refused
        raise ValueError(f"no Binance response for fault {fault}")

    def _refusal(self, decision: Admission) -> web.Response:
        limit = self.config.weight_limit
        headers = {"Retry-After": str(decision.retry_after)}
        if decision.verdict is Verdict.BANNED:
            msg = (
                f"Way too much request weight used; IP banned until "
                f"{decision.banned_until_ms}. Please use WebSocket Streams for live "
                "updates to avoid bans."
            )
            return errors.error_response(418, errors.TOO_MANY_REQUESTS, msg, headers)
        msg = (
            f"Too much request weight used; current limit is {limit} request weight per "
            "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."
        )
        return errors.error_response(429, errors.TOO_MANY_REQUESTS, msg, headers)

    @staticmethod
    def _report_weight(response: web.StreamResponse, used: int) -> None:
        response.headers[USED_WEIGHT_HEADER] = str(used)
        response.headers[LEGACY_USED_WEIGHT_HEADER] = str(used)
