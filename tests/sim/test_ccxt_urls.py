"""The simulator points ccxt at itself as the engine's `exchange.endpoint` does.

Two implementations (the simulator imports nothing of the engine); this test
holds them to the same URLs on ccxt's own binance client.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import ccxt

from hean_engine.net.exchange import rewrite_urls
from hean_sim.exchange import point_ccxt_at


def test_same_urls_as_the_engine_endpoint() -> None:
    urls = copy.deepcopy(ccxt.binance().urls["api"])
    for endpoint in ("http://127.0.0.1:9000", "http://127.0.0.1:9000/", "https://sim.test/base"):
        client = SimpleNamespace(urls={"api": copy.deepcopy(urls)})
        point_ccxt_at(client, endpoint)
        assert client.urls["api"] == rewrite_urls(urls, endpoint.rstrip("/"))
        assert client.urls["api"] != urls
