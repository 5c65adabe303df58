"""What the console asks of the API server: the RBAC a read-only console needs.

The chart's in-cluster console (charts/hean/templates/console.yaml) runs as a
ServiceAccount of its own; it is granted exactly `CONSOLE_VERBS` in each
namespace the operator serves (cluster-wide with `clusterWide`), and
tests/repo/chart/test_chart_console.py checks the rendered rules against this
table both ways. Every entry is a call in hean_desk.client or the watch in
hean_desk.console.desk_source:

- tradingengines: list and watch (the overview and its live updates), get (an
  engine's page);
- liveapprovals: list (the approvals page and each engine's approval panel);
- backtests: list and get (their pages);
- events: list, with a field selector on the engine (its Events panel);
- pods/log: get (the engine's log panel);
- pods/proxy: get (the engine's `GET /status` and history routes through the API
  server; `create`, which a POST such as /test-order or /control needs, is never
  granted).

`HISTORY_VERBS` is what the engines' history (fills, orders, equity) needs on top:
the engine's control token, from its Secret `NAME-control`. The chart grants it
only for the engines `console.engineHistory` names, by resourceNames; without
it the console shows the report and says which permission the history lacks.
"""

from __future__ import annotations

CONSOLE_VERBS: dict[str, tuple[str, ...]] = {
    "tradingengines": ("get", "list", "watch"),
    "liveapprovals": ("list",),
    "backtests": ("get", "list"),
    "events": ("list",),
    "pods/log": ("get",),
    "pods/proxy": ("get",),
}

HISTORY_VERBS: dict[str, tuple[str, ...]] = {"secrets": ("get",)}
