"""Point a ccxt exchange at the simulator by rewriting its API base URLs.

The rewriting itself is the engine's (`exchange.endpoint` uses it), so a test
client and an engine are pointed at the simulator the same way; families the
simulator does not serve answer 404.
"""

from __future__ import annotations

from typing import Any

from hean_engine.net.exchange import rewrite_urls


def point_ccxt_at(exchange: Any, url: str) -> None:
    """Rewrite every http(s) URL under `exchange.urls['api']` to `url`, keeping paths."""
    exchange.urls["api"] = rewrite_urls(exchange.urls["api"], url.rstrip("/"))
