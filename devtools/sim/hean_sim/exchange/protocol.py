"""What one exchange's REST protocol is to the server, over the shared market and accounts.

The simulator has one market (`market`), one set of accounts and one matching
engine (`orders`); a protocol puts an exchange's REST API in front of them:
its endpoints, its signing, its error bodies and its rate limits. The server
(`server.SimExchange`) picks one by `SimConfig.protocol` and keeps what is
common: fault injection, lazy matching before every request, the test hooks.

Two protocols exist: `binance.BinanceProtocol` and `okx.OkxProtocol`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable

from aiohttp import web

from hean_sim.exchange.endpoints import Endpoint
from hean_sim.exchange.faults import Fault


class ExchangeProtocol(abc.ABC):
    """One exchange's REST API over the simulator's shared state."""

    name: str
    # (method, path) of the requests that change state: the only ones a
    # `drop` fault hits (executed, then the response is lost).
    state_changing: frozenset[tuple[str, str]]

    @abc.abstractmethod
    def endpoints(self) -> Iterable[Endpoint]:
        """Every endpoint served, public and private."""

    @abc.abstractmethod
    async def serve(self, request: web.Request, endpoint: Endpoint | None) -> web.StreamResponse:
        """Answer one request: rate limits, the handler, errors in this exchange's shape.

        `endpoint` is None for a path the protocol does not serve.
        """

    @abc.abstractmethod
    def fault_response(self, fault: Fault, request: web.Request, retry_after: int) -> web.Response:
        """The exchange's own answer for an injected 500, 503 or 429 (not executed)."""

    @abc.abstractmethod
    def used(self, ip: str) -> int:
        """How much of the rate limit `ip` has used now (for logs and tests)."""
