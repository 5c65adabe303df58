"""`SimExchange`: the aiohttp server that puts a `MarketState` behind an exchange's paths.

Whose paths is the protocol's choice (`SimConfig.protocol`: `binance.py` or
`okx.py`, both over the same market, accounts and matching engine). One
catch-all route dispatches on (method, path) to the registered `Endpoint`s,
so endpoint sets can be added at any time, and every request, known or not,
goes through the same steps: injected faults first (latency, then at most one
failure, in the protocol's error shapes; see `faults`), then matching of
resting orders up to the market's current time, then the protocol
(`ExchangeProtocol.serve`): its rate limits, the handler, its error bodies
and headers.

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
from typing import Protocol

from aiohttp import web

from hean_sim.exchange.accounts import Account, Balance, generate_key_pair
from hean_sim.exchange.binance import BinanceProtocol
from hean_sim.exchange.config import ApiKey, SimConfig
from hean_sim.exchange.endpoints import Endpoint
from hean_sim.exchange.faults import Fault, FaultPlan
from hean_sim.exchange.market import MarketState
from hean_sim.exchange.model import AccountTrade, Order
from hean_sim.exchange.okx import OkxProtocol
from hean_sim.exchange.orders import OrderEngine
from hean_sim.exchange.protocol import ExchangeProtocol

log = logging.getLogger(__name__)


class SimExchange:
    """A fake spot exchange (Binance's or OKX's REST API) replaying one recorded market."""

    def __init__(self, config: SimConfig, faults: FaultPlan | None = None) -> None:
        self.config = config
        self.market = MarketState(config)
        self.matching = OrderEngine(self.market, config)
        for key in config.keys:
            self.matching.add_account(key)
        self.protocol = _protocol(config, self.matching)
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.register(self.protocol.endpoints())
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

    @property
    def limiter(self) -> _UsedByIp:
        """The protocol's rate limiter (what `used(ip)` it has counted)."""
        return self.protocol

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
        fault = self.faults.draw(request.method, request.path, key in self.protocol.state_changing)
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
        elif fault is Fault.E502:
            return web.Response(status=502, text=_BAD_GATEWAY, content_type="text/html")
        elif fault in (Fault.E500, Fault.E503, Fault.TOO_MANY):
            return self.protocol.fault_response(fault, request, self.faults.retry_after)
        # The connection is gone: aiohttp drops whatever is returned.
        return web.Response(status=599)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.matching.sync()
        endpoint = self.endpoints.get((request.method, request.path))
        return await self.protocol.serve(request, endpoint)

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


class _UsedByIp(Protocol):
    def used(self, ip: str) -> int: ...


def _protocol(config: SimConfig, matching: OrderEngine) -> ExchangeProtocol:
    if config.protocol == "okx":
        return OkxProtocol(config, matching)
    return BinanceProtocol(config, matching)


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
    log.info("simulated %s spot %s at %s", config.protocol, config.symbol, sim.url)
    try:
        await asyncio.Event().wait()
    finally:
        await sim.stop()
