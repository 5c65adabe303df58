"""What an endpoint is to the server: a method and path, a weight, a handler.

Public and (later) private endpoint sets are lists of `Endpoint`s registered
on `SimExchange`; the server charges the weight before calling the handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from hean_sim.exchange.params import Query

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Weigher = Callable[[Query], int]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    weight: Weigher
    handler: Handler


def fixed(weight: int) -> Weigher:
    """A weight that does not depend on the parameters."""

    def weigh(_query: Query) -> int:
        return weight

    return weigh
