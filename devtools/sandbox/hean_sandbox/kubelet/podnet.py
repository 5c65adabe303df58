"""Pod addresses the API server proxies to: a local route for a non-loopback range.

A real API server proxies `pods/NAME:PORT/proxy/...` (`kubectl hean`,
`kubectl get --raw`) only to a pod IP that is a global unicast address: it
refuses loopback ones ("address not allowed", `pod/strategy.go`
ResourceLocation), and EndpointSlices may not hold them either. The sandbox's
pods are local processes, so their addresses must be local, and 127.0.0.0/8 is
the only range that is local without configuration.

Where the sandbox may change the routing table (root, or CAP_NET_ADMIN), it
makes a benchmarking range local, as the Linux "AnyIP" idiom does: one route
`local 198.18.0.0/15 dev lo` (RFC 2544's range, never routed on the Internet),
and every address in it is then bound and reached on this machine like
127.x.y.z. The route is left in place (other sandboxes may be using it);
`ip route del local 198.18.0.0/15 dev lo table local` removes it. Where that is
not allowed, pods keep loopback addresses and everything but the API server's
proxy works (`local_pod_network` says why, for the log).
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess

POD_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")


def _reachable(address: str) -> bool:
    """Whether a listener bound to `address` here accepts a connection to it."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind((address, 0))
            server.listen(1)
            port = server.getsockname()[1]
            with socket.create_connection((address, port), timeout=2.0):
                pass
    except OSError:
        return False
    return True


def _add_route(network: ipaddress.IPv4Network) -> str | None:
    """None once the local route is in place; else why it could not be added."""
    ip = shutil.which("ip")
    if ip is None:
        return "no `ip` command (iproute2) to add the route"
    result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
        [ip, "route", "replace", "local", str(network), "dev", "lo", "table", "local"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    if result.returncode != 0:
        return f"`ip route replace local {network} dev lo` failed: {result.stderr.strip()[:200]}"
    return None


def local_pod_network(
    network: ipaddress.IPv4Network = POD_NETWORK,
) -> tuple[ipaddress.IPv4Network | None, str]:
    """(`network`, "") when its addresses are local here (adding the route if allowed),
    else (None, why not): pods then get loopback addresses."""
    probe = str(network.network_address + 1)
    if _reachable(probe):
        return network, ""
    problem = _add_route(network)
    if problem is None and _reachable(probe):
        return network, ""
    return None, problem or f"{network} is not reachable locally even with the route"
