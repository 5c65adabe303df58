"""`kubectl hean console`: the command center, a web console on loopback.

`serve(client, port=PORT, open_browser=False)` serves it on 127.0.0.1:PORT
until interrupted, as the kubeconfig's user behind `client` (the plugin's
DeskClient): its first page lists every TradingEngine that user can list.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import sys
import webbrowser

from hean_desk.console.server import make_app, run
from hean_desk.console.source import ConsoleClient

__all__ = ["ConsoleClient", "make_app", "serve"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    client: ConsoleClient,
    host: str = "127.0.0.1",
    port: int = 8080,
    open_browser: bool = True,
    *,
    report_interval: float = 2.0,
) -> None:
    """Serve the console until interrupted (Ctrl-C or SIGTERM).

    Only a loopback address is accepted: the console acts with the user's own
    Kubernetes identity and has no login, so it must not be reachable by others.
    """
    if not _loopback(host):
        raise ValueError(f"the console binds to a loopback address only, not {host}")

    def ready(url: str) -> None:
        print(f"HEAN desk console on {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
        if open_browser:
            webbrowser.open(url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run(
            client, host=host, port=port, on_ready=ready, stop=stop, report_interval=report_interval
        )

    asyncio.run(main())
