"""`kubectl hean console`: the command center, a web console on loopback.

`kubectl hean console --port PORT --no-browser` serves it on 127.0.0.1:PORT
until interrupted, as the kubeconfig's user (the plugin's DeskClient): its
first page lists every TradingEngine that user can list. `serve(client, ...)`
is the same from Python; `console` is the click command the plugin runs.

`--in-cluster` is the chart's console (`console.enabled`): a pod that acts as
its own ServiceAccount (read-only RBAC), always read-only, listening on the
pod's address so that `kubectl port-forward` and the kubelet's probes reach
it (0.0.0.0, or $HEAN_HOST where a node without network namespaces names the
pod's address there, as HEAN's sandbox does). Browsers still reach it only
under a loopback name (port-forward's); see hean_desk.console.server and
docs/desk.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import sys
import webbrowser
from collections.abc import Sequence
from typing import Any

import click

from hean_desk.client import DeskClient
from hean_desk.console.desk_source import DeskSource
from hean_desk.console.server import make_app, run
from hean_desk.console.source import ConsoleClient
from hean_desk.errors import EXIT_FAILED, EXIT_USAGE, DeskError

__all__ = ["ConsoleClient", "console", "make_app", "serve"]

DEFAULT_PORT = 8765
WILDCARDS = ("0.0.0.0", "::")  # noqa: S104 - names, compared: all of a pod's addresses


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    client: DeskClient | ConsoleClient,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    open_browser: bool = True,
    *,
    report_interval: float = 2.0,
    read_only: bool = False,
    in_cluster: bool = False,
    namespaces: Sequence[str] = (),
) -> None:
    """Serve the console until interrupted (Ctrl-C or SIGTERM).

    Only a loopback address is accepted, except `in_cluster`: the console acts
    with the user's own Kubernetes identity and has no login, so it must not be
    reachable by others. In a cluster it is read-only, acts as its pod's
    ServiceAccount, and listens in the pod's own network namespace, where only
    `kubectl port-forward` (and what a NetworkPolicy lets in) reaches it.
    """
    if in_cluster:
        read_only = True
    elif not _loopback(host):
        raise DeskError(f"the console binds to a loopback address only, not {host}", EXIT_USAGE)
    source: ConsoleClient = (
        DeskSource(client, namespaces) if isinstance(client, DeskClient) else client
    )

    def ready(url: str) -> None:
        mode = " (read-only)" if read_only else ""
        print(f"HEAN desk console{mode} on {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
        if open_browser:
            webbrowser.open(url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run(
            source,
            host=host,
            port=port,
            on_ready=ready,
            stop=stop,
            report_interval=report_interval,
            read_only=read_only,
            any_port=in_cluster,
        )

    try:
        asyncio.run(main())
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise DeskError(f"console: cannot listen on {host}:{port}: {exc.strerror}") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="The port on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="A loopback address to listen on (nothing else is accepted).",
)
@click.option("--no-browser", is_flag=True, help="Do not open a browser.")
@click.option(
    "--refresh",
    type=click.FloatRange(0.5, 60),
    default=2.0,
    show_default=True,
    help="Seconds between reads of an open engine page's report and history.",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="No pause/resume/halt: the pages have no action buttons and the action endpoint refuses.",
)
@click.option(
    "--in-cluster",
    is_flag=True,
    help="Run in a pod as its ServiceAccount (the chart's console): read-only, and "
    "--address may be the pod's (0.0.0.0) for kubectl port-forward ($HEAN_HOST, when "
    "set, stands for 0.0.0.0).",
)
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Show this namespace's engines (repeatable; default: every namespace you may "
    "list, else the context's).",
)
@click.option("--kubeconfig", help="The kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")
@click.option("--context", help="The kubeconfig context (default: the current one).")
@click.pass_context
def console(
    ctx: click.Context,
    port: int,
    address: str,
    no_browser: bool,
    refresh: float,
    read_only: bool,
    in_cluster: bool,
    namespaces: tuple[str, ...],
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Serve the web console on loopback, as your kubeconfig's user, until Ctrl-C."""
    if not in_cluster and not _loopback(address):
        click.echo(
            f"error: --address: the console binds to a loopback address only, not {address} "
            "(--in-cluster excepted)",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    if in_cluster and address in WILDCARDS and os.environ.get("HEAN_HOST"):
        # The pod's own addresses: in a pod's network namespace the wildcard is
        # exactly those; a node without network namespaces (HEAN's sandbox, which
        # runs pods as local processes) names the pod's address in HEAN_HOST, as
        # for the engine and the operator, so that two pods' consoles do not
        # contend for one port on the machine's every address.
        address = os.environ["HEAN_HOST"]
    parent: Any = ctx.obj  # the plugin's settings (its --kubeconfig/--context/-n), if any
    kubeconfig = kubeconfig or getattr(parent, "kubeconfig", None)
    context = context or getattr(parent, "context", None)
    if not namespaces and getattr(parent, "namespace", None):
        namespaces = (str(parent.namespace),)
    try:
        desk = DeskClient(kubeconfig, context, in_cluster=in_cluster)
        try:
            serve(
                desk,
                host=address,
                port=port,
                open_browser=not no_browser and not in_cluster,
                report_interval=refresh,
                read_only=read_only or in_cluster,
                in_cluster=in_cluster,
                namespaces=namespaces,
            )
        finally:
            desk.close()
    except DeskError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code or EXIT_FAILED)
