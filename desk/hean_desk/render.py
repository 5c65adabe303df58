"""How `kubectl hean` shows things: documents for -o json|yaml, and text for people.

The documents are built first (`status_document`, the history rows as the
engine sent them) and the tables and the status report are drawn from them,
so `-o json` and the table never disagree. Money stays a decimal string all
the way; only the sparkline turns it into a height (a Decimal, never a float).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from hean_contract.report import EngineReport
from hean_contract.status import TradingEngineStatus
from hean_desk.views import ApprovalView, BacktestView, EngineView

OUTPUTS = ("table", "json", "yaml")
SPARKS = "▁▂▃▄▅▆▇█"


def dump(document: Any, output: str) -> str:
    """`document` as JSON or YAML text (ending in a newline)."""
    if output == "json":
        return json.dumps(document, indent=2, sort_keys=False) + "\n"
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A kubectl-style table: upper-case headers, columns padded to their widest cell."""
    header = [title for _, title in columns]
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for r in cells:
        lines.append("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sparkline(values: Sequence[str], width: int = 60) -> str:
    """The values' shape in block characters (the last `width` of them); "" if none."""
    numbers: list[Decimal] = []
    for value in values[-width:]:
        try:
            numbers.append(Decimal(value))
        except (InvalidOperation, TypeError):
            continue
    if not numbers:
        return ""
    low, high = min(numbers), max(numbers)
    if high == low:
        return SPARKS[len(SPARKS) // 2] * len(numbers)
    top = len(SPARKS) - 1
    return "".join(SPARKS[int((n - low) / (high - low) * top)] for n in numbers)


def age(created: str, now: datetime | None = None) -> str:
    """kubectl's AGE: 45s, 12m, 3h, 5d."""
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


# -- engines ---------------------------------------------------------------------------


def engine_row(view: EngineView, approvals: Sequence[ApprovalView] = ()) -> dict[str, Any]:
    """One engine at a glance (the table of `status` without ENGINE, and its JSON)."""
    status = view.status
    approval = latest_approval(view.name, view.namespace, approvals)
    reconcile = status.reconcile if status is not None else None
    return {
        "namespace": view.namespace,
        "name": view.name,
        "mode": view.mode,
        "phase": view.phase,
        "riskState": status.risk_state if status else None,
        "equity": status.equity if status else None,
        "pnl": status.pnl if status else None,
        "openOrders": status.open_orders if status else None,
        "reconcile": reconcile.result if reconcile else None,
        "approvalExpires": approval.expires_at if approval else None,
        "age": age(view.created),
    }


ENGINE_COLUMNS = (
    ("name", "NAME"),
    ("mode", "MODE"),
    ("phase", "PHASE"),
    ("riskState", "RISK"),
    ("equity", "EQUITY"),
    ("pnl", "PNL"),
    ("openOrders", "ORDERS"),
    ("reconcile", "RECONCILE"),
    ("approvalExpires", "APPROVAL EXPIRES"),
    ("age", "AGE"),
)


def latest_approval(
    engine: str, namespace: str, approvals: Sequence[ApprovalView]
) -> ApprovalView | None:
    """The engine's LiveApproval that matters now: of those the operator judged valid, the
    one that expires last; only without a valid one, the latest of the others (a refused
    approval applied after the valid one must not be shown as the engine's approval)."""
    mine = [a for a in approvals if a.engine == engine and a.namespace == namespace]
    valid = [a for a in mine if a.valid is True]
    return max(valid or mine, key=lambda a: a.expires_at) if mine else None


def status_document(
    view: EngineView,
    report: EngineReport | None,
    fills: Sequence[Mapping[str, Any]],
    approvals: Sequence[ApprovalView],
    report_error: str | None = None,
    history_error: str | None = None,
) -> dict[str, Any]:
    """`kubectl hean status ENGINE -o json`: the operator's status, the engine's report.

    The engine's own figures (its report) win over the operator's copy of them,
    which is at most one poll old; without a report (no pod yet, not reachable)
    the operator's copy is shown and `reportError` says why.
    """
    status = view.status
    equity = report.equity if report else (status.equity if status else None)
    pnl = report.pnl if report else (status.pnl if status else None)
    risk = report.risk_state if report else (status.risk_state if status else None)
    position = report.position if report else (status.position if status else None)
    symbol = report.symbol if report else str((view.spec.get("market") or {}).get("symbol", ""))
    approval = latest_approval(view.name, view.namespace, approvals)
    condition = view.condition("LiveApproved")
    reconcile = _reconcile(report, status)
    return {
        "name": view.name,
        "namespace": view.namespace,
        "mode": view.mode,
        "phase": view.phase,
        "message": status.message if status else None,
        "generation": view.generation,
        "observedGeneration": status.observed_generation if status else None,
        "paused": bool(view.spec.get("paused", False)),
        "halt": bool(view.spec.get("halt", False)),
        "riskState": risk,
        "riskStateReason": report.risk_state_reason if report else None,
        "equity": equity,
        "pnl": pnl,
        "maxDrawdown": report.max_drawdown if report else (status.max_drawdown if status else None),
        "fees": report.fees if report else None,
        "balances": dict(report.balances) if report else {},
        "positions": [{"symbol": symbol, "quantity": position}]
        if position not in (None, "0")
        else [],
        "openOrders": [o.model_dump(by_alias=True) for o in report.open_orders] if report else [],
        "lastFills": list(fills),
        "reconcile": reconcile,
        "approval": {
            "condition": condition.status.value if condition else None,
            "reason": condition.reason if condition else None,
            "name": approval.name if approval else None,
            "signers": list(approval.signers) if approval else [],
            "expiresAt": (report.approval.expires_at if report and report.approval else None)
            or (approval.expires_at if approval else None),
            "valid": report.approval.valid if report and report.approval else None,
        },
        "lastDataTime": report.last_data_time if report else None,
        "reportError": report_error,
        "historyError": history_error,
    }


def _reconcile(
    report: EngineReport | None, status: TradingEngineStatus | None
) -> dict[str, str | None]:
    """The last reconcile: the engine's own (its report), else the operator's copy, which
    is at most one poll old (a fresh comparison must not be shown beside a stale one).
    `drift` is what differed (result drift) or why it could not compare (failed)."""
    last = report.last_reconcile if report is not None else None
    if last is not None:
        detail = {"drift": last.summary, "failed": last.reason}.get(last.result)
        return {
            "result": last.result,
            "time": last.time,
            "drift": detail or None,
            "since": last.drift_since or None,
        }
    copy = status.reconcile if status is not None else None
    return {
        "result": copy.result if copy else None,
        "time": copy.time if copy else None,
        "drift": copy.drift if copy else None,
        "since": copy.since if copy else None,
    }


def status_text(doc: Mapping[str, Any]) -> str:
    """The CloudNativePG-style report of one engine, for a person."""
    out: list[str] = []

    def section(title: str) -> None:
        out.append("")
        out.append(title)

    def field(label: str, value: Any) -> None:
        out.append(f"{label + ':':<22}{_cell(value)}")

    out.append(f"Engine {doc['namespace']}/{doc['name']}")
    field("Mode", doc["mode"])
    field("Phase", doc["phase"])
    if doc.get("message"):
        field("Message", doc["message"])
    wanted = "halt" if doc["halt"] else ("paused" if doc["paused"] else "running")
    field("Spec asks", f"{wanted} (generation {doc['generation']})")
    field("Risk state", _joined(doc["riskState"], doc.get("riskStateReason")))
    section("Account")
    field("Equity", doc["equity"])
    field("PnL", doc["pnl"])
    field("Max drawdown", doc["maxDrawdown"])
    field("Fees", doc["fees"])
    for currency, amount in sorted(doc["balances"].items()):
        field(f"Balance {currency}", amount)
    section("Approval")
    approval = doc["approval"]
    field("LiveApproved", _joined(approval["condition"], approval["reason"]))
    field("LiveApproval", approval["name"])
    field("Signed by", ", ".join(approval["signers"]) or None)
    field("Expires", _expiry(approval["expiresAt"]))
    section("Reconcile")
    reconcile = doc["reconcile"]
    field("Last", _joined(reconcile["result"], reconcile["time"]))
    if reconcile["drift"]:
        field("Drift", f"{reconcile['drift']} (since {_cell(reconcile['since'])})")
    section("Positions")
    out.append(
        table(doc["positions"], (("symbol", "SYMBOL"), ("quantity", "QUANTITY"))).rstrip()
        if doc["positions"]
        else "  (flat)"
    )
    section("Open orders")
    out.append(
        table(doc["openOrders"], ORDER_COLUMNS).rstrip() if doc["openOrders"] else "  (none)"
    )
    section("Last fills")
    out.append(table(doc["lastFills"], FILL_COLUMNS).rstrip() if doc["lastFills"] else "  (none)")
    if doc.get("historyError"):
        out.append(f"  (unavailable: {doc['historyError']})")
    if doc.get("reportError"):
        out.append("")
        out.append(f"Engine report unavailable: {doc['reportError']}")
    return "\n".join(out) + "\n"


def _joined(first: Any, second: Any) -> str | None:
    if not first:
        return None
    return f"{first} ({second})" if second else str(first)


def _expiry(expires_at: str | None, now: datetime | None = None) -> str | None:
    """The expiry with how long is left ("in 7h59m") or that it passed."""
    if not expires_at:
        return None
    try:
        moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return expires_at
    left = int((moment - (now or datetime.now(UTC))).total_seconds())
    if left <= 0:
        return f"{expires_at} (expired)"
    return f"{expires_at} (in {left // 3600}h{left % 3600 // 60:02d}m)"


# -- history ---------------------------------------------------------------------------

ORDER_COLUMNS = (
    ("id", "ID"),
    ("side", "SIDE"),
    ("type", "TYPE"),
    ("quantity", "QUANTITY"),
    ("remaining", "REMAINING"),
    ("price", "PRICE"),
    ("created", "CREATED"),
)
FILL_COLUMNS = (
    ("time", "TIME"),
    ("tradeId", "TRADE"),
    ("orderId", "ORDER"),
    ("side", "SIDE"),
    ("price", "PRICE"),
    ("quantity", "QUANTITY"),
    ("fee", "FEE"),
    ("feeCurrency", "FEE CCY"),
)
ORDER_HISTORY_COLUMNS = (
    ("time", "TIME"),
    ("orderId", "ORDER"),
    ("change", "CHANGE"),
    ("status", "STATUS"),
    ("side", "SIDE"),
    ("type", "TYPE"),
    ("quantity", "QUANTITY"),
    ("price", "PRICE"),
    ("filled", "FILLED"),
)
POSITION_COLUMNS = (("time", "TIME"), ("position", "POSITION"), ("reason", "REASON"))
EQUITY_COLUMNS = (("time", "TIME"), ("equity", "EQUITY"), ("pnl", "PNL"), ("price", "PRICE"))


def pnl_text(points: Sequence[Mapping[str, Any]], tail: int = 10) -> str:
    """The equity series' sparkline, its range, and its last points."""
    if not points:
        return "No equity points recorded yet.\n"
    equities = [str(p.get("equity", "")) for p in points]
    first, last = points[0], points[-1]
    lines = [
        f"Equity {first.get('time')} .. {last.get('time')} ({len(points)} points)",
        sparkline(equities),
        f"Equity: {last.get('equity')}   PnL: {last.get('pnl')}",
        "",
        table(points[-tail:], EQUITY_COLUMNS).rstrip(),
    ]
    return "\n".join(lines) + "\n"


def positions_rows(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per currency of a positions snapshot (its balances)."""
    balances = snapshot.get("balances") or {}
    return [{"currency": c, "balance": v} for c, v in sorted(balances.items())]


# -- backtests -------------------------------------------------------------------------

# The Backtest CRD's printer columns, in its order (and NAME first).
BACKTEST_COLUMNS = (
    ("name", "NAME"),
    ("strategy", "STRATEGY"),
    ("market", "MARKET"),
    ("from", "FROM"),
    ("to", "TO"),
    ("phase", "PHASE"),
    ("totalReturnPct", "RETURN"),
    ("maxDrawdownPct", "MAXDD"),
    ("sharpe", "SHARPE"),
    ("trades", "TRADES"),
    ("age", "AGE"),
)
RANKING_STATS = ("totalReturnPct", "maxDrawdownPct", "sharpe", "trades")


def backtest_row(view: BacktestView, now: datetime | None = None) -> dict[str, Any]:
    """One Backtest at a glance: its printer columns, statistics as the status has them."""
    stats = view.stats
    return {
        "namespace": view.namespace,
        "name": view.name,
        "strategy": view.strategy,
        "market": view.market,
        "from": view.start,
        "to": view.end,
        "phase": view.phase,
        "totalReturnPct": stats.total_return_pct if stats else None,
        "maxDrawdownPct": stats.max_drawdown_pct if stats else None,
        "sharpe": stats.sharpe if stats else None,
        "trades": stats.trades if stats else None,
        "age": age(view.created, now),
    }


def backtest_document(view: BacktestView) -> dict[str, Any]:
    """`kubectl hean backtest NAME -o json`: the summary, the ranking, where the report is."""
    status = view.status
    sweep = status.sweep if status else None
    report = status.report if status else None
    return {
        "name": view.name,
        "namespace": view.namespace,
        "strategy": view.strategy,
        "market": view.market,
        "from": view.start,
        "to": view.end,
        "phase": view.phase,
        "message": status.message if status else None,
        "jobName": status.job_name if status else None,
        "startTime": status.start_time if status else None,
        "completionTime": status.completion_time if status else None,
        "params": status.params if status and status.params is not None else None,
        "stats": status.stats.model_dump(by_alias=True, exclude_none=True)
        if status and status.stats
        else None,
        "report": report.model_dump(by_alias=True) if report else None,
        "sweep": sweep.model_dump(mode="json", by_alias=True) if sweep else None,
    }


def report_location(report: Mapping[str, Any] | None) -> str | None:
    """Where the HTML report is, said so that a person can fetch it."""
    if not report:
        return None
    return (
        f"{report['path']} on PersistentVolumeClaim {report['claimName']} "
        "(the other runs' reports sit next to it, named by their index)"
    )


def backtest_text(doc: Mapping[str, Any]) -> str:
    """One Backtest for a person: its range, phase, statistics and (a sweep's) ranking."""
    out: list[str] = []

    def field(label: str, value: Any) -> None:
        out.append(f"{label + ':':<22}{_cell(value)}")

    out.append(f"Backtest {doc['namespace']}/{doc['name']}")
    field("Strategy", doc["strategy"])
    field("Market", doc["market"])
    field("Range", f"{doc['from']} .. {doc['to']}")
    field("Phase", doc["phase"])
    if doc.get("message"):
        field("Message", doc["message"])
    field("Job", doc["jobName"])
    field("Started", doc["startTime"])
    field("Completed", doc["completionTime"])
    if doc.get("params"):
        field("Params", params_text(doc["params"]))
    out.append("")
    out.append("Statistics" + (" (the best run)" if doc.get("sweep") else ""))
    stats = doc.get("stats") or {}
    if stats:
        for key, value in stats.items():
            if key != "undefined":
                field(f"  {key}", value)
        if stats.get("undefined"):
            field("  undefined", ", ".join(stats["undefined"]))
    else:
        out.append("  (none yet)")
    sweep = doc.get("sweep")
    if sweep:
        out.append("")
        out.append(
            f"Sweep: {sweep['runs']} runs, {sweep['succeeded']} succeeded, "
            f"{sweep['failed']} failed, {sweep['skipped']} skipped; ranked by {sweep['rankBy']}"
        )
        rows = ranking_rows(sweep)
        columns: tuple[tuple[str, str], ...] = (
            ("rank", "RANK"),
            ("index", "RUN"),
            ("params", "PARAMS"),
            ("value", "VALUE"),
            *((k, k.upper()) for k in RANKING_STATS),
        )
        out.append(table(rows, columns).rstrip() if rows else "  (no results yet)")
    out.append("")
    field("Report", report_location(doc.get("report")) or "none (the Backtest has no spec.output)")
    if doc.get("report") and doc.get("phase") == "Succeeded":
        field("Open it", f"kubectl hean backtest report {doc['name']} -n {doc['namespace']} --open")
    return "\n".join(out) + "\n"


def ranking_rows(sweep: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A sweep's best runs, best first, with the statistics the list shows."""
    rows = []
    for rank, run in enumerate(sweep.get("top") or [], start=1):
        stats = run.get("stats") or {}
        rows.append(
            {
                "rank": rank,
                "index": run.get("index"),
                "params": params_text(run.get("params") or {}),
                "value": run.get("value"),
                **{k: stats.get(k) for k in RANKING_STATS},
            }
        )
    return rows


def params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
