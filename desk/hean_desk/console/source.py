"""What the console reads and changes, and through what.

The console holds no credentials of its own: everything goes through the
`kubectl hean` plugin's client, which talks to the API server as the user of
the kubeconfig (their RBAC decides what the console may show and do). The
console only needs the few methods below, so it names them in a Protocol: the
plugin's `DeskClient` satisfies it, and so does the fake in the unit tests.

The client is synchronous (the Kubernetes client is); the server calls it in
worker threads so that one slow pod-proxy read never stalls the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from hean_contract.report import EngineReport

# The kinds of rows the engine's read API serves (`GET /<what>`).
HISTORY_KINDS = ("fills", "orders", "positions", "equity", "events")

WatchEvent = tuple[str, dict[str, Any]]  # (ADDED | MODIFIED | DELETED, TradingEngine object)


class ConsoleClient(Protocol):
    """The plugin client's methods that the console uses."""

    def list_engines(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every TradingEngine the user can list (all namespaces when None)."""
        ...

    def get_engine(self, namespace: str, name: str) -> dict[str, Any]: ...

    def engine_report(self, namespace: str, name: str) -> EngineReport:
        """The engine's `GET /status`, through the API server's pod proxy."""
        ...

    def engine_history(
        self,
        namespace: str,
        name: str,
        what: str,
        *,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of the engine's read API (`what` in HISTORY_KINDS), oldest first."""
        ...

    def patch_spec(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A merge patch of the TradingEngine's spec, as the user."""
        ...

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The Kubernetes Events about the TradingEngine."""
        ...

    def logs(self, namespace: str, name: str, tail: int = 200) -> str:
        """The tail of the engine pod's log."""
        ...

    def list_approvals(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every LiveApproval the user can list (all namespaces when None)."""
        ...

    def list_backtests(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every Backtest the user can list (all namespaces when None)."""
        ...

    def get_backtest(self, namespace: str, name: str) -> dict[str, Any]: ...

    def backtest_report(self, namespace: str, name: str, run: int | None = None) -> bytes:
        """A Backtest's HTML report (of its sweep's run `run`; None: the best run), read
        through a reader pod that is kept for the next read while the console runs."""
        ...

    def close_report_readers(self) -> None:
        """Delete the reader pods this console started (when it stops)."""
        ...

    def watch_engines(self) -> Iterator[WatchEvent]:
        """A Kubernetes watch of TradingEngines (all namespaces the user can list).

        Blocks between events; ends when the watch does (the console starts another).
        """
        ...


@dataclass(frozen=True)
class Refusal:
    """A request the API server refused, as the console shows it."""

    status: int  # the HTTP status the console answers with
    message: str


def refusal_of(exc: Exception) -> Refusal:
    """How an exception from the client reads in the UI.

    The client raises its own error for refusals (with the API server's status);
    the Kubernetes client's ApiException has one too. A 403 is the user's RBAC
    saying no: the console says exactly that rather than "error".
    """
    status = getattr(exc, "status", None)
    if not isinstance(status, int):
        status = getattr(exc, "code", None)
    text = str(exc).strip() or type(exc).__name__
    if status == 403 or "forbidden" in text.lower():
        return Refusal(403, f"Refused by Kubernetes RBAC: your user may not do this. ({text})")
    if status == 404 or text.startswith(("no TradingEngine", "no Backtest")):
        return Refusal(404, f"Not found: {text}")
    if isinstance(status, int) and 400 <= status < 500:
        return Refusal(status, text)
    return Refusal(502, f"The API server could not be reached or failed: {text}")
