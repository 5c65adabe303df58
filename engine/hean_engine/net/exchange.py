"""Building ccxt clients for an engine: quirks as data, endpoints rewritten.

Per-exchange differences live in `net.venues` (data, not branches): the
options that make a client fetch only what a spot engine needs, and which of
its API URLs `exchange.endpoint` rewrites. The endpoint points those URLs at
another host (the exchange simulator, a proxy), keeping the paths, so ccxt's
own request building, signing and parsing run unchanged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt.async_support as ccxt_async

from hean_contract.spec import ExchangeSpec
from hean_engine.net.venues import VENUES, options_for

DEFAULT_TIMEOUT_MS = 10_000


def rewrite_api_urls(exchange_id: str, urls: Any, endpoint: str) -> Any:
    """ccxt's `urls['api']` with the exchange's API URLs moved onto `endpoint`.

    The venue table names the keys (OKX: `rest`); an exchange without an entry,
    or with none named, has every URL moved.
    """
    venue = VENUES.get(exchange_id)
    keys = venue.url_keys if venue is not None else ()
    if not keys or not isinstance(urls, dict):
        return rewrite_urls(urls, endpoint)
    return {
        key: rewrite_urls(value, endpoint) if key in keys else value for key, value in urls.items()
    }


def rewrite_urls(urls: Any, endpoint: str) -> Any:
    """Every URL string under `urls` (nested dicts/lists) with its host replaced."""
    if isinstance(urls, str):
        return _rebase(urls, endpoint)
    if isinstance(urls, dict):
        return {key: rewrite_urls(value, endpoint) for key, value in urls.items()}
    if isinstance(urls, list):
        return [rewrite_urls(value, endpoint) for value in urls]
    return urls


def _rebase(url: str, endpoint: str) -> str:
    if not url.startswith(("http://", "https://")):
        return url  # e.g. websocket URLs: not used by the REST client
    target = urlsplit(endpoint)
    source = urlsplit(url)
    path = target.path.rstrip("/") + source.path
    return urlunsplit((target.scheme, target.netloc, path, source.query, source.fragment))


def create_client(
    spec: ExchangeSpec,
    *,
    credentials: dict[str, str] | None = None,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    options: dict[str, Any] | None = None,
) -> Any:
    """An async ccxt client for `spec`; public only unless `credentials` are given.

    ccxt's own rate limiter stays on: it spaces requests by the exchange's
    published limits, and the retry policy handles what gets through anyway.
    """
    cls = getattr(ccxt_async, spec.id)
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": timeout_ms,
        "options": {**options_for(spec.id), **(options or {})},
    }
    if credentials:
        config.update(credentials)
    client = cls(config)
    if spec.testnet:
        client.set_sandbox_mode(True)
    elif spec.endpoint is not None:
        client.urls["api"] = rewrite_api_urls(spec.id, client.urls["api"], spec.endpoint)
    return client
