"""Point a ccxt exchange at the simulator by rewriting its API base URLs.

The simulator's own rewriting, not the engine's (`exchange.endpoint` does the
same there): the simulator imports nothing of the engine. A test
(tests/sim/test_ccxt_urls.py) holds the two to the same result on ccxt's
binance URLs, so a test client and an engine reach the simulator alike;
families the simulator does not serve answer 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


def point_ccxt_at(exchange: Any, url: str) -> None:
    """Rewrite every http(s) URL under `exchange.urls['api']` to `url`, keeping paths."""
    exchange.urls["api"] = rebased_urls(exchange.urls["api"], url.rstrip("/"))


def rebased_urls(urls: Any, endpoint: str) -> Any:
    """Every http(s) URL string under `urls` (nested dicts and lists) moved onto `endpoint`."""
    if isinstance(urls, str):
        return _rebased(urls, endpoint)
    if isinstance(urls, dict):
        return {key: rebased_urls(value, endpoint) for key, value in urls.items()}
    if isinstance(urls, list):
        return [rebased_urls(value, endpoint) for value in urls]
    return urls


def _rebased(url: str, endpoint: str) -> str:
    if not url.startswith(("http://", "https://")):
        return url  # websocket URLs: the REST client never uses them
    target, source = urlsplit(endpoint), urlsplit(url)
    path = target.path.rstrip("/") + source.path
    return urlunsplit((target.scheme, target.netloc, path, source.query, source.fragment))
