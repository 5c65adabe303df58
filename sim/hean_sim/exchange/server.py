"""`SimExchange`: the aiohttp server that puts a `MarketState` behind Binance's paths.

One catch-all route dispatches on (method, path) to the registered
`Endpoint`s, so endpoint sets can be added at any time (the private half
registers its own) and every request, known or not, goes through the same
steps: find the endpoint (404 with Binance's error JSON if none), charge its
weight to the client's IP (429 / 418 when over the limit), run the handler
(a `BinanceError` becomes Binance's error response), and report the used
weight in `X-MBX-USED-WEIGHT-1M`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiohttp import web

from hean_sim.exchange import errors
from hean_sim.exchange.config import SimConfig
from hean_sim.exchange.endpoints import Endpoint
from hean_sim.exchange.market import MarketState
from hean_sim.exchange.public import PublicApi
from hean_sim.exchange.weights import Decision, Verdict, WeightLimiter

log = logging.getLogger(__name__)

USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
LEGACY_USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT"


class SimExchange:
    """A fake Binance spot exchange replaying one recorded market."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.market = MarketState(config)
        self.limiter = WeightLimiter(
            config.weight_limit,
            config.clock,
            ban_seconds=config.ban_seconds,
            ban_after=config.ban_after,
        )
        self.public = PublicApi(self.market)
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.register(self.public.endpoints())
        self._runner: web.AppRunner | None = None
        self.url = ""

    def register(self, endpoints: Iterable[Endpoint]) -> None:
        """Serve more endpoints (a later registration of a path replaces the earlier)."""
        for endpoint in endpoints:
            self.endpoints[(endpoint.method, endpoint.path)] = endpoint

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port); `url` is set once listening."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.url = f"http://{address[0]}:{address[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        ip = request.remote or "unknown"
        endpoint = self.endpoints.get((request.method, request.path))
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

    def _refusal(self, decision: Decision) -> web.Response:
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


async def serve_forever(config: SimConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run a simulator until cancelled (the CLI's entry point)."""
    sim = SimExchange(config)
    await sim.start(host, port)
    log.info("simulated Binance spot %s at %s", config.symbol, sim.url)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
