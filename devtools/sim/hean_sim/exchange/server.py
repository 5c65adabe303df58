"""`SimExchange`: the aiohttp server that puts a `MarketState` behind Binance's paths.

One catch-all route dispatches on (method, path) to the registered
`Endpoint`s, so endpoint sets can be added at any time (the private half
registers its own) and every request, known or not, goes through the same
steps: injected faults first (latency, then at most one failure; see
`faults`), then matching of resting orders up to the market's current time,
find the endpoint (404 with Binance's error JSON if none), charge its
weight to the client's IP (429 / 418 when over the limit), run the handler
(a `BinanceError` becomes Binance's error response), and report the used
weight in `X-MBX-USED-WEIGHT-1M`.

The methods after `stop` are the test and operations hooks: accounts,
balances, orders and trades as the exchange sees them (matched up to now),
and changes behind the client's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal

from aiohttp import web

from hean_sim.exchange import errors
from hean_sim.exchange.accounts import Account, Balance, generate_key_pair
from hean_sim.exchange.auth import Authenticator
from hean_sim.exchange.config import ApiKey, SimConfig
from hean_sim.exchange.endpoints import Endpoint
from hean_sim.exchange.faults import Fault, FaultPlan
from hean_sim.exchange.market import MarketState
from hean_sim.exchange.model import AccountTrade, Order
from hean_sim.exchange.orders import OrderEngine
from hean_sim.exchange.private import STATE_CHANGING, PrivateApi
from hean_sim.exchange.public import PublicApi
from hean_sim.exchange.weights import Admission, Verdict, WeightLimiter

log = logging.getLogger(__name__)

USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
LEGACY_USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT"


class SimExchange:
    """A fake Binance spot exchange replaying one recorded market."""

    def __init__(self, config: SimConfig, faults: FaultPlan | None = None) -> None:
        self.config = config
        self.market = MarketState(config)
        self.limiter = WeightLimiter(
            config.weight_limit,
            config.clock,
            ban_seconds=config.ban_seconds,
            ban_after=config.ban_after,
        )
        self.matching = OrderEngine(self.market, config)
        for key in config.keys:
            self.matching.add_account(key)
        self.auth = Authenticator(self.matching.accounts, self.market.wall_ms)
        self.public = PublicApi(self.market)
        self.private = PrivateApi(self.matching, self.auth, config.clock)
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.register(self.public.endpoints())
        self.register(self.private.endpoints())
        # Replaceable at any time (`sim.faults = FaultPlan.parse(...)`).
        self.faults = faults if faults is not None else FaultPlan()
        # How injected latency waits; tests replace it to record delays
        # instead of sleeping.
        self.sleep: Callable[[float], Awaitable[None]] = self._sleep
        self._closing = asyncio.Event()
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
        # A fresh event per run: an event is bound to the loop that first waits on it.
        self._closing = asyncio.Event()
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self.url = f"http://{address[0]}:{address[1]}"

    async def stop(self) -> None:
        # Wake requests held by latency or a timeout fault, so that shutdown
        # does not wait for them.
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less if the simulator stops meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        delay = self.faults.delay()
        if delay > 0:
            await self.sleep(delay)
        key = (request.method, request.path)
        fault = self.faults.draw(request.method, request.path, key in STATE_CHANGING)
        if fault is not None and fault is not Fault.DROP:
            log.info("injected fault %s into %s %s", fault, request.method, request.path)
            return await self._inject(request, fault)
        response = await self._handle(request)
        if fault is Fault.DROP:
            log.info("injected fault drop after %s %s", request.method, request.path)
            _close(request)
        return response

    async def _inject(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        """Fail the request without executing it."""
        if fault is Fault.RESET:
            _close(request, reset=True)
        elif fault is Fault.TIMEOUT:
            # A real wait even when tests record latency: the point is that
            # the client's own timeout expires first.
            await self._sleep(self.faults.hold)
            _close(request)
        elif fault is Fault.E500:
            return errors.error_response(
                500, errors.UNKNOWN, "An unknown error occurred while processing the request."
            )
        elif fault is Fault.E502:
            return web.Response(status=502, text=_BAD_GATEWAY, content_type="text/html")
        elif fault is Fault.E503:
            return errors.error_response(
                503,
                errors.DISCONNECTED,
                "Internal error; unable to process your request. Please try again.",
                {"Retry-After": str(self.faults.retry_after)},
            )
        elif fault is Fault.TOO_MANY:
            ip = request.remote or "unknown"
            refused = self._refusal(Admission(Verdict.TOO_MANY, 0, self.faults.retry_after))
            self._report_weight(refused, self.limiter.used(ip))
            return refused
        # The connection is gone: aiohttp drops whatever is returned.
        return web.Response(status=599)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.matching.sync()
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

    # -- test and operations hooks ------------------------------------------

    def add_account(
        self, key: ApiKey | None = None, balances: Mapping[str, Decimal] | None = None
    ) -> ApiKey:
        """A new account for `key` (default: a fresh random pair) with `balances`
        (default: the config's starting balances)."""
        key = key if key is not None else generate_key_pair()
        self.matching.add_account(key, None if balances is None else dict(balances))
        return key

    def account(self, api_key: str) -> Account:
        """The live account (matched up to now); prefer the snapshot methods below."""
        self.matching.sync()
        account = self.matching.accounts.get(api_key)
        if account is None:
            raise KeyError(f"no account for API key {api_key[:8]}...")
        return account

    def balances(self, api_key: str) -> dict[str, Balance]:
        return self.account(api_key).balances()

    def balance(self, api_key: str, asset: str) -> Balance:
        return self.account(api_key).balance(asset.upper())

    def orders(self, api_key: str, *, open_only: bool = False) -> list[Order]:
        """The account's orders, oldest first, as snapshots."""
        return [
            o.snapshot()
            for o in self.account(api_key).orders.values()
            if o.is_open or not open_only
        ]

    def order(
        self, api_key: str, order_id: int | None = None, *, client_order_id: str | None = None
    ) -> Order:
        """One order (a snapshot) by id, or the latest with `client_order_id`."""
        found = self.matching.find(self.account(api_key), order_id, client_order_id)
        if found is None:
            raise KeyError(f"no order {order_id or client_order_id!r}")
        return found.snapshot()

    def trades(self, api_key: str) -> list[AccountTrade]:
        return list(self.account(api_key).trades)

    def adjust_balance(self, api_key: str, asset: str, delta: Decimal | int | str) -> Balance:
        """Add `delta` (negative: take) to the free balance behind the client's back."""
        amount = delta if isinstance(delta, Decimal) else Decimal(str(delta))
        return self.account(api_key).adjust(asset.upper(), amount, self.market.now_ms())

    def fill_order(self, api_key: str, order_id: int, qty: Decimal | None = None) -> Order:
        """Fill a resting order now, wholly or `qty` of it (a partial fill), at its price."""
        account = self.account(api_key)
        order = account.orders.get(order_id)
        if order is None:
            raise KeyError(f"no order {order_id}")
        return self.matching.fill(account, order, qty).snapshot()


def _close(request: web.Request, *, reset: bool = False) -> None:
    """Close the request's connection without a response; `reset` sends a TCP RST."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends RST instead of FIN ("connection reset by peer").
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()


_BAD_GATEWAY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


async def serve_forever(
    config: SimConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    faults: FaultPlan | None = None,
) -> None:
    """Run a simulator until cancelled."""
    sim = SimExchange(config, faults)
    await sim.start(host, port)
    log.info("simulated Binance spot %s at %s", config.symbol, sim.url)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
