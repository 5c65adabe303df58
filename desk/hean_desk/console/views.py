"""The console's HTML, rendered on the server.

Pages and the fragments that live updates replace are built here from the
TradingEngine objects, the engine's report and its history, with every value
escaped. The browser's script only swaps fragments in (static/console.js), so
there is one renderer, no template engine and no front-end build.

What is shown is picked field by field: an object is never dumped whole, so
nothing the console does not mean to show (annotations, a Secret's name or
data) reaches a page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from html import escape
from typing import Any

from hean_contract.report import EngineReport
from hean_desk import render
from hean_desk.console.display import (
    DASH,
    decimal_or_none,
    money,
    percent,
    redact,
    relative,
    short_time,
    sign_class,
    signed_money,
)
from hean_desk.console.svg import drawdowns, line_chart, sparkline
from hean_desk.views import BacktestView

ACTIONS = {
    # action -> (merge patch of the spec, what the confirmation says it does)
    "pause": ({"paused": True}, "stops sending new orders; open orders stay"),
    "resume": ({"paused": False}, "resumes trading after a pause"),
    "halt": ({"halt": True}, "cancels its open orders and stops trading until the halt is cleared"),
}

# What the fills filter's time fields take, as their placeholder says it: what the
# engine's history API parses (`hean_engine.control.history_api.parse_time`), to which
# they are passed as typed.
TIME_FORMATS = "RFC 3339 with Z or an offset, or epoch ms"


def e(value: object) -> str:
    return escape("" if value is None else str(value))


def key_of(engine: Mapping[str, Any]) -> str:
    meta = engine.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def dom_id(prefix: str, key: str) -> str:
    return prefix + "-" + "".join(c if c.isalnum() else "_" for c in key)


# -- the page frame ----------------------------------------------------------------------


def page(title: str, body: str, *, csrf: str, kind: str, engine: str = "") -> str:
    """A whole page: the frame, the navigation and the token actions must present."""
    section = kind.rstrip("s")  # a backtest's page is in the Backtests section
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if section == name.rstrip("s") else ""}>{label}</a>'
        for name, href, label in (
            ("overview", "/", "Engines"),
            ("approvals", "/approvals", "Approvals"),
            ("backtests", "/backtests", "Backtests"),
        )
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{e(title)} · HEAN desk</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf-token" content="{e(csrf)}">'
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head>'
        f'<body data-page="{e(kind)}" data-engine="{e(engine)}" data-live="connecting">'
        f'<header><strong class="brand">HEAN desk</strong><nav>{nav}</nav>'
        '<span id="live" class="live" title="live updates">connecting…</span></header>'
        '<div id="notice" role="alert" hidden></div>'
        f"<main>{body}</main>"
        '<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>'
        '<menu><button value="cancel" id="confirm-cancel">Cancel</button>'
        '<button value="ok" id="confirm-ok" class="danger">Confirm</button></menu></form></dialog>'
        "</body></html>"
    )


def refusal_page(title: str, message: str, *, csrf: str, kind: str) -> str:
    return page(
        title, f'<h1>{e(title)}</h1><p class="refusal">{e(message)}</p>', csrf=csrf, kind=kind
    )


# -- the overview ------------------------------------------------------------------------

OVERVIEW_COLUMNS = (
    "Namespace",
    "Engine",
    "Mode",
    "Phase",
    "Risk",
    "Equity",
    "PnL",
    "Approval expires",
    "Reconcile / drift",
)


def overview(rows: Iterable[str], count: int) -> str:
    head = "".join(f"<th>{c}</th>" for c in OVERVIEW_COLUMNS)
    empty = (
        ""
        if count
        else f'<tr class="empty"><td colspan="{len(OVERVIEW_COLUMNS)}">No TradingEngines '
        "that your user can list.</td></tr>"
    )
    return (
        "<h1>Engines</h1>"
        f'<table id="engines" class="grid"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}{empty}</tbody></table>"
    )


@dataclass(frozen=True)
class ApprovalSummary:
    expires_at: str | None
    valid: bool | None


def latest_approvals(approvals: Iterable[Mapping[str, Any]]) -> dict[str, ApprovalSummary]:
    """engine key -> its latest-expiring LiveApproval (valid ones first)."""
    best: dict[str, tuple[tuple[bool, str], ApprovalSummary]] = {}
    for item in approvals:
        meta, spec = item.get("metadata") or {}, item.get("spec") or {}
        status = item.get("status") or {}
        engine = (spec.get("engineRef") or {}).get("name")
        if not engine:
            continue
        key = f"{meta.get('namespace', '')}/{engine}"
        valid = status.get("valid")
        rank = (bool(valid), str(spec.get("expiresAt") or ""))
        if key not in best or rank > best[key][0]:
            best[key] = (rank, ApprovalSummary(spec.get("expiresAt"), valid))
    return {key: summary for key, (_, summary) in best.items()}


def overview_row(
    engine: Mapping[str, Any],
    equity_series: Sequence[Decimal],
    approval: ApprovalSummary | None,
    now: datetime,
) -> str:
    key = key_of(engine)
    meta, spec = engine.get("metadata") or {}, engine.get("spec") or {}
    status = engine.get("status") or {}
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    mode = status.get("mode") or spec.get("mode") or DASH
    phase = status.get("phase") or "Pending"
    pnl = status.get("pnl")
    cells = [
        ("namespace", e(namespace), ""),
        ("name", f'<a href="/engines/{e(namespace)}/{e(name)}">{e(name)}</a>', ""),
        ("mode", e(mode), ""),
        ("phase", f'<span class="badge phase-{e(phase)}">{e(phase)}</span>', ""),
        ("risk", risk_badge(status.get("riskState")), ""),
        ("equity", e(money(status.get("equity"))), "num"),
        (
            "pnl",
            f'<span class="{sign_class(pnl)}">{e(signed_money(pnl))}</span>'
            f"{sparkline(equity_series)}",
            "num",
        ),
        ("approval", approval_cell(mode, approval, now), ""),
        ("drift", reconcile_cell(status.get("reconcile")), ""),
    ]
    tds = "".join(
        f'<td data-field="{field}"{f" class={css}" if css else ""}>{html}</td>'
        for field, html, css in cells
    )
    return f'<tr data-key="{e(key)}" id="{dom_id("row", key)}">{tds}</tr>'


def risk_badge(state: object) -> str:
    text = str(state) if state else DASH
    return f'<span class="badge risk-{e(text)}">{e(text)}</span>'


def approval_cell(mode: str, approval: ApprovalSummary | None, now: datetime) -> str:
    if mode != "live":
        return '<span class="muted">not needed (paper)</span>'
    if approval is None:
        return '<span class="down">none</span>'
    verdict = "" if approval.valid else ' <span class="down">(not valid)</span>'
    return (
        f'<span title="{e(approval.expires_at)}">{e(relative(approval.expires_at, now))}</span>'
        + verdict
    )


def reconcile_cell(reconcile: Mapping[str, Any] | None) -> str:
    if not reconcile or not reconcile.get("result"):
        return f'<span class="muted">{DASH}</span>'
    result = str(reconcile["result"])
    css = "up" if result == "ok" else "down"
    drift = reconcile.get("drift")
    detail = f' <span class="muted">{e(drift)}</span>' if drift else ""
    return f'<span class="{css}">{e(result)}</span>{detail}'


# -- the engine page ---------------------------------------------------------------------

PANELS = (
    ("summary", "Summary"),
    ("actions", "Actions"),
    ("chart", "Equity and drawdown"),
    ("positions", "Positions"),
    ("orders", "Open orders"),
    ("fills", "Fills"),
    ("risk", "Risk limits"),
    ("reconcile", "Reconcile and drift"),
    ("approval", "Approval"),
    ("events", "Kubernetes Events"),
    ("logs", "Logs"),
)


@dataclass(frozen=True)
class FillFilter:
    side: str = ""  # "", buy or sell
    since: str = ""  # as typed: RFC 3339 with a zone, epoch milliseconds, or empty
    until: str = ""

    def query(self) -> str:
        parts = [f"{k}={escape(v)}" for k, v in self.__dict__.items() if v]
        return "&".join(parts)


def engine_page(namespace: str, name: str, panels: Mapping[str, str], filters: FillFilter) -> str:
    sections = []
    for panel, title in PANELS:
        extra = fills_form(filters) if panel == "fills" else ""
        sections.append(
            f'<section class="panel panel-{panel}"><h2>{title}</h2>{extra}'
            f'<div id="panel-{panel}" data-panel="{panel}">{panels.get(panel, "")}</div></section>'
        )
    return (
        f'<h1><a href="/">Engines</a> / {e(namespace)} / '
        f'<span id="engine-name">{e(name)}</span></h1>'
        f'<div class="panels">{"".join(sections)}</div>'
    )


def fills_form(filters: FillFilter) -> str:
    options = "".join(
        f'<option value="{v}"{" selected" if filters.side == v else ""}>{label}</option>'
        for v, label in (("", "both sides"), ("buy", "buys"), ("sell", "sells"))
    )
    return (
        '<form id="fills-filter" class="filters">'
        f'<label>Side <select name="side">{options}</select></label>'
        # The placeholder names the formats, not a value (an empty bound is no bound).
        f'<label>From <input name="since" placeholder="{TIME_FORMATS}" '
        f'value="{e(filters.since)}"></label>'
        f'<label>To <input name="until" placeholder="{TIME_FORMATS}" '
        f'value="{e(filters.until)}"></label>'
        '<button type="submit">Filter</button></form>'
    )


def error_note(message: str) -> str:
    return f'<p class="refusal">{e(message)}</p>'


def definition_list(items: Iterable[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def summary_panel(engine: Mapping[str, Any], report: EngineReport | None) -> str:
    spec, status = engine.get("spec") or {}, engine.get("status") or {}
    market = spec.get("market") or {}
    strategy = spec.get("strategy") or {}
    pnl = report.pnl if report else status.get("pnl")
    equity = report.equity if report else status.get("equity")
    risk_state = report.risk_state if report else status.get("riskState")
    exchange = (spec.get("exchange") or {}).get("id", "")
    items = [
        (
            "Phase",
            f'<span class="badge phase-{e(status.get("phase"))}" data-field="phase">'
            f"{e(status.get('phase') or 'Pending')}</span>",
        ),
        ("Mode", e(status.get("mode") or spec.get("mode"))),
        (
            "Risk state",
            f'<span data-field="risk">{risk_badge(risk_state)}</span>'
            + (
                f' <span class="muted">{e(report.risk_state_reason)}</span>'
                if report and report.risk_state_reason
                else ""
            ),
        ),
        (
            "Market",
            e(f"{exchange} {market.get('symbol', '')} {market.get('timeframe', '')}"),
        ),
        ("Strategy", e(strategy.get("name"))),
        (
            "Equity",
            f'<span data-field="equity">{e(money(equity))}</span>',
        ),
        ("PnL", f'<span data-field="pnl" class="{sign_class(pnl)}">{e(signed_money(pnl))}</span>'),
        ("Max drawdown", e(money(report.max_drawdown if report else status.get("maxDrawdown")))),
        ("Fees", e(money(report.fees)) if report else DASH),
        ("Fills", e(report.fills) if report else DASH),
        ("Paused / halt (spec)", e(f"{bool(spec.get('paused'))} / {bool(spec.get('halt'))}")),
        (
            "Last market data",
            e(short_time(report.last_data_time if report else status.get("lastDataTime"))),
        ),
        ("Message", e(status.get("message") or "")),
    ]
    return definition_list(items)


def actions_panel(namespace: str, name: str) -> str:
    buttons = "".join(
        f'<button data-action="{action}" data-engine="{e(namespace)}/{e(name)}"'
        f' data-effect="{e(effect)}" class="{"danger" if action == "halt" else ""}">'
        f"{action.capitalize()}</button>"
        for action, (_, effect) in ACTIONS.items()
    )
    return (
        f'<div class="actions">{buttons}</div>'
        '<p class="muted">Each action patches the TradingEngine\'s spec through the API server '
        "as your kubeconfig's user; a halt is cleared with "
        f"<code>kubectl patch te {e(name)} -n {e(namespace)} --type=merge "
        '-p \'{"spec":{"halt":false}}\'</code>.</p>'
    )


def read_only_panel(namespace: str, name: str) -> str:
    """Where the action buttons are on a read-only console: why there are none, and how."""
    return (
        '<p class="muted read-only">This console is read-only: no pause, resume or halt '
        "here. With your own credentials: "
        f"<code>kubectl hean halt {e(name)} -n {e(namespace)}</code> (or pause, resume).</p>"
    )


def chart_panel(points: Sequence[Mapping[str, Any]]) -> str:
    series = [(p.get("time"), decimal_or_none(p.get("equity"))) for p in points]
    kept = [(t, v) for t, v in series if v is not None]
    values = [v for _, v in kept]
    first = short_time(kept[0][0]) if kept else ""
    last = short_time(kept[-1][0]) if kept else ""
    return line_chart("Equity", values, first_label=first, last_label=last) + line_chart(
        "Drawdown from peak", drawdowns(values), first_label=first, last_label=last, area=True
    )


def table(columns: Sequence[str], rows: Iterable[str], empty: str, table_id: str = "") -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    body = "".join(rows)
    attr = f' id="{table_id}"' if table_id else ""
    if not body:
        body = f'<tr class="empty"><td colspan="{len(columns)}">{e(empty)}</td></tr>'
    return f'<table class="grid"{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def positions_panel(report: EngineReport | None, snapshot: Mapping[str, Any] | None) -> str:
    if report is None and snapshot is None:
        return '<p class="muted">No report from the engine.</p>'
    balances: Mapping[str, Any] = (
        report.balances if report else (snapshot or {}).get("balances", {})
    )
    position = report.position if report else (snapshot or {}).get("position")
    symbol = report.symbol if report else ""
    rows = [
        f'<tr><td>{e(ccy)}</td><td class="num">{e(money(amount))}</td></tr>'
        for ccy, amount in sorted(balances.items())
    ]
    return definition_list(
        [
            (
                "Position" + (f" ({e(symbol)})" if symbol else ""),
                f'<span data-field="position">{e(money(position))}</span>',
            )
        ]
    ) + table(("Currency", "Balance"), rows, "No balances.")


def orders_panel(report: EngineReport | None) -> str:
    if report is None:
        return '<p class="muted">No report from the engine.</p>'
    rows = [
        f'<tr data-order-id="{e(o.id)}"><td>{e(o.id)}</td><td class="{e(o.side)}">{e(o.side)}</td>'
        f'<td>{e(o.type)}</td><td class="num">{e(money(o.price))}</td>'
        f'<td class="num">{e(money(o.quantity))}</td><td class="num">{e(money(o.remaining))}</td>'
        f"<td>{e(short_time(o.created))}</td></tr>"
        for o in report.open_orders
    ]
    return table(
        ("Order", "Side", "Type", "Price", "Quantity", "Remaining", "Created"),
        rows,
        "No open orders.",
    )


def _exact_cell(field: str, value: object) -> str:
    """A money cell: grouped for reading, the engine's exact string in data-value."""
    return f'<td class="num" data-field="{field}" data-value="{e(value)}">{e(money(value))}</td>'


FILL_COLUMNS = ("Time", "Trade", "Order", "Side", "Price", "Quantity", "Fee", "Fee currency")


def fills_panel(fills: Sequence[Mapping[str, Any]], filters: FillFilter, limit: int) -> str:
    shown = [f for f in fills if not filters.side or f.get("side") == filters.side]
    newest = list(reversed(shown))[:limit]
    rows = [
        f'<tr data-trade-id="{e(f.get("tradeId"))}"><td title="{e(f.get("time"))}">'
        f"{e(short_time(f.get('time')))}</td><td>{e(f.get('tradeId'))}</td>"
        f'<td data-field="orderId">{e(f.get("orderId"))}</td>'
        f'<td class="{e(f.get("side"))}" data-field="side">{e(f.get("side"))}</td>'
        f"{_exact_cell('price', f.get('price'))}{_exact_cell('quantity', f.get('quantity'))}"
        f"{_exact_cell('fee', f.get('fee'))}"
        f'<td data-field="feeCurrency">{e(f.get("feeCurrency"))}</td></tr>'
        for f in newest
    ]
    note = (
        f'<p class="muted">{len(shown)} fills match; the newest {limit} are shown.</p>'
        if len(shown) > limit
        else f'<p class="muted" data-field="fill-count">{len(shown)} fills.</p>'
    )
    return note + table(FILL_COLUMNS, rows, "No fills match.", "fills-table")


@dataclass(frozen=True)
class Usage:
    limit: str
    label: str
    used: str  # the figure compared with the limit (display text)
    share: Decimal | None  # percent of the limit used, when it can be computed


def risk_usages(
    risk: Mapping[str, Any],
    report: EngineReport | None,
    equity_points: Sequence[Mapping[str, Any]],
    today: str,
) -> list[Usage]:
    """How close the engine is to each of its spec's risk limits, from exact figures."""
    usages: list[Usage] = []

    def add(key: str, label: str, used: Decimal | None) -> None:
        limit = decimal_or_none(risk.get(key))
        if limit is None:
            return
        share = percent(used, limit) if used is not None else None
        usages.append(Usage(key, label, money(used) if used is not None else DASH, share))

    last = equity_points[-1] if equity_points else {}
    position, price = decimal_or_none(last.get("position")), decimal_or_none(last.get("price"))
    if report is not None:
        position = decimal_or_none(report.position)
    add(
        "maxPositionNotional",
        "Position notional",
        abs(position * price) if position is not None and price is not None else None,
    )
    notionals = [
        decimal_or_none(o.remaining) * decimal_or_none(o.price)  # type: ignore[operator]
        for o in (report.open_orders if report else [])
        if decimal_or_none(o.price) is not None and decimal_or_none(o.remaining) is not None
    ]
    add("maxOrderNotional", "Largest open order notional", max(notionals, default=Decimal(0)))
    add(
        "maxOpenOrders",
        "Open orders",
        Decimal(len(report.open_orders)) if report is not None else None,
    )
    values = [(str(p.get("time") or ""), decimal_or_none(p.get("equity"))) for p in equity_points]
    series = [(t, v) for t, v in values if v is not None]
    day = [v for t, v in series if t >= today]
    current = decimal_or_none(report.equity) if report else (series[-1][1] if series else None)
    loss = max(day[0] - current, Decimal(0)) if day and current is not None else None
    add("maxDailyLoss", "Loss since 00:00 UTC", loss)
    peak = max((v for _, v in series), default=None)
    if peak is not None and current is not None and peak > 0:
        drop = max(peak - current, Decimal(0)) * 100 / peak
        usages.append(
            Usage(
                "maxDrawdownPct",
                "Drawdown from peak (%)",
                str(drop.quantize(Decimal("0.01"))),
                percent(drop, decimal_or_none(risk.get("maxDrawdownPct")) or Decimal(0)),
            )
        )
    return usages


def risk_panel(risk: Mapping[str, Any], usages: Sequence[Usage]) -> str:
    rows = []
    for usage in usages:
        share = usage.share
        level = "ok" if share is None or share < 50 else ("warn" if share < 80 else "high")
        bar_width = min(share, Decimal(100)) if share is not None else Decimal(0)
        shown = f"{share}%" if share is not None else DASH
        rows.append(
            f'<tr data-limit="{e(usage.limit)}"><td>{e(usage.label)}</td>'
            f'<td class="num">{e(usage.used)}</td>'
            f'<td class="num">{e(money(risk.get(usage.limit)))}</td>'
            f'<td><svg class="meter {level}" width="100" height="8" aria-hidden="true">'
            f'<rect width="100" height="8" class="track"/><rect width="{bar_width}" height="8" '
            f'class="fill"/></svg> <span data-field="share">{e(shown)}</span></td></tr>'
        )
    rate = risk.get("maxOrdersPerMinute")
    footer = (
        f'<p class="muted">At most {e(rate)} orders a minute (enforced by the engine).</p>'
        if rate
        else ""
    )
    return table(("Measure", "Now", "Limit", "Used"), rows, "No risk limits in the spec.") + footer


def reconcile_panel(engine: Mapping[str, Any], report: EngineReport | None) -> str:
    last = report.last_reconcile if report else None
    status_rec = (engine.get("status") or {}).get("reconcile") or {}
    if last is None and not status_rec:
        return (
            '<p class="muted">No reconcile yet (paper engines do not reconcile with an '
            "exchange).</p>"
        )
    if last is None:
        return definition_list(
            [
                ("Result", reconcile_cell(status_rec)),
                ("Time", e(short_time(status_rec.get("time")))),
                ("Drift since", e(short_time(status_rec.get("since")))),
            ]
        )
    items = [
        ("Result", reconcile_cell({"result": last.result, "drift": last.summary or last.reason})),
        ("Time", e(short_time(last.time))),
        ("Drift since", e(short_time(last.drift_since))),
        ("Difference value", e(money(last.difference_value))),
        ("Tolerance", e(money(last.tolerance))),
        (
            "Foreign orders",
            e(len(last.foreign_orders) if last.foreign_orders is not None else DASH),
        ),
    ]
    rows = [
        f"<tr><td>{e(ccy)}</td><td class=num>{e(money(v.engine))}</td>"
        f"<td class=num>{e(money(v.exchange))}</td>"
        f"<td class=num>{e(money(v.difference))}</td></tr>"
        for ccy, v in sorted((last.balances or {}).items())
    ]
    return definition_list(items) + table(
        ("Currency", "Engine", "Exchange", "Difference"), rows, "No balances compared."
    )


def approval_panel(
    mode: str, report: EngineReport | None, approvals: Sequence[Mapping[str, Any]], now: datetime
) -> str:
    if mode != "live" and not approvals:
        return '<p class="muted">Paper engines need no LiveApproval.</p>'
    parts = []
    if report is not None and report.approval is not None:
        a = report.approval
        parts.append(
            definition_list(
                [
                    (
                        "Engine's verdict",
                        f'<span class="{"up" if a.valid else "down"}">'
                        f"{e(a.reason)}</span> {e(a.message)}",
                    ),
                    ("Signed by", e(", ".join(a.key_ids) or DASH)),
                    (
                        "Expires",
                        f"{e(short_time(a.expires_at))} ({e(relative(a.expires_at, now))})",
                    ),
                    ("Checked", e(short_time(a.checked_at))),
                ]
            )
        )
    parts.append(approvals_table(approvals, now, with_engine=False))
    return "".join(parts)


def approvals_table(
    approvals: Sequence[Mapping[str, Any]], now: datetime, *, with_engine: bool = True
) -> str:
    rows = []
    for item in approvals:
        meta, spec = item.get("metadata") or {}, item.get("spec") or {}
        status = item.get("status") or {}
        signers = status.get("keyIds") or [
            s.get("keyId") for s in spec.get("signatures") or [] if isinstance(s, Mapping)
        ]
        valid = status.get("valid")
        verdict = (
            '<span class="muted">not evaluated yet</span>'
            if valid is None
            else f'<span class="{"up" if valid else "down"}">'
            f"{e(status.get('reason') or valid)}</span>"
            f' <span class="muted">{e(status.get("message") or "")}</span>'
        )
        engine_ref = (spec.get("engineRef") or {}).get("name", "")
        engine_cell = (
            f'<td><a href="/engines/{e(meta.get("namespace"))}/{e(engine_ref)}">'
            f"{e(engine_ref)}</a></td>"
            if with_engine
            else ""
        )
        rows.append(
            f'<tr data-approval="{e(meta.get("namespace"))}/{e(meta.get("name"))}">'
            f"<td>{e(meta.get('namespace'))}</td><td>{e(meta.get('name'))}</td>{engine_cell}"
            f"<td>{e(', '.join(str(s) for s in signers if s) or DASH)}</td>"
            f"<td>{e(short_time(spec.get('notBefore')))}</td>"
            f'<td title="{e(spec.get("expiresAt"))}">{e(short_time(spec.get("expiresAt")))} '
            f'<span class="muted">({e(relative(spec.get("expiresAt"), now))})</span></td>'
            f"<td>{verdict}</td></tr>"
        )
    columns = ["Namespace", "Name"] + (["Engine"] if with_engine else [])
    columns += ["Signed by", "Not before", "Expires", "Verdict"]
    return table(columns, rows, "No LiveApprovals.", "approvals")


def events_panel(events: Sequence[Mapping[str, Any]]) -> str:
    def when(item: Mapping[str, Any]) -> str:
        return str(
            item.get("lastTimestamp") or item.get("eventTime") or item.get("firstTimestamp") or ""
        )

    ordered = sorted(events, key=when, reverse=True)[:50]
    rows = [
        f'<tr class="{"down" if ev.get("type") == "Warning" else ""}">'
        f"<td>{e(short_time(when(ev)))}</td>"
        f"<td>{e(ev.get('type'))}</td><td>{e(ev.get('reason'))}</td>"
        f"<td>{e(redact(str(ev.get('message') or '')))}</td>"
        f"<td class=num>{e(ev.get('count') or 1)}</td></tr>"
        for ev in ordered
    ]
    return table(("Last seen", "Type", "Reason", "Message", "Count"), rows, "No Events.")


def logs_panel(text: str) -> str:
    return f'<pre class="logs">{e(redact(text)) or "(empty)"}</pre>'


def approvals_page(approvals: Sequence[Mapping[str, Any]], now: datetime) -> str:
    return "<h1>LiveApprovals</h1>" + approvals_table(approvals, now)


# -- backtests ---------------------------------------------------------------------------

# The Backtest CRD's printer columns (render.BACKTEST_COLUMNS), the namespace first.
BACKTEST_COLUMNS = (
    "Namespace",
    "Name",
    "Strategy",
    "Market",
    "From",
    "To",
    "Phase",
    "Return",
    "MaxDD",
    "Sharpe",
    "Trades",
    "Age",
)
_STAT_KEYS = ("totalReturnPct", "maxDrawdownPct", "sharpe", "trades")


def _exact(key: str, value: object) -> str:
    """A statistic exactly as the status wrote it (no rounding, no grouping)."""
    return f'<td class=num data-field="{key}">{e(DASH if value in (None, "") else value)}</td>'


def backtest_link(namespace: str, name: str) -> str:
    return f'<a href="/backtests/{e(namespace)}/{e(name)}">{e(name)}</a>'


def backtests_page(objects: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """Every Backtest, with the CRD's columns; each name opens its page."""
    rows = []
    for view in sorted(
        (BacktestView.from_object(dict(o)) for o in objects), key=lambda v: (v.namespace, v.name)
    ):
        row = render.backtest_row(view, now)
        rows.append(
            f'<tr data-backtest="{e(view.namespace)}/{e(view.name)}">'
            f"<td>{e(view.namespace)}</td><td>{backtest_link(view.namespace, view.name)}</td>"
            f"<td>{e(row['strategy'])}</td><td>{e(row['market'])}</td>"
            f"<td>{e(row['from'])}</td><td>{e(row['to'])}</td>"
            f'<td><span class="badge phase-{e(row["phase"])}" data-field="phase">'
            f"{e(row['phase'])}</span></td>"
            + "".join(_exact(k, row[k]) for k in _STAT_KEYS)
            + f"<td>{e(row['age'])}</td></tr>"
        )
    return "<h1>Backtests</h1>" + table(
        BACKTEST_COLUMNS, rows, "No Backtests that your user can list.", "backtests"
    )


def read_only_report_note(namespace: str, name: str) -> str:
    return (
        "This console is read-only: opening a report starts a reader pod, which its "
        "ServiceAccount may not. With your own credentials: kubectl hean backtest report "
        f"{name} -n {namespace} --open"
    )


def backtest_page(obj: Mapping[str, Any], *, read_only: bool = False) -> str:
    """One Backtest: its summary, its statistics, a sweep's ranking and where the report is
    (with a link that opens it, unless the console is read-only)."""
    doc = render.backtest_document(BacktestView.from_object(dict(obj)))
    summary = [
        (
            "Phase",
            f'<span class="badge phase-{e(doc["phase"])}" data-field="phase">'
            f"{e(doc['phase'])}</span>",
        ),
        ("Strategy", e(doc["strategy"])),
        ("Market", e(doc["market"])),
        ("From", e(doc["from"])),
        ("To", e(doc["to"])),
        ("Params", e(render.params_text(doc["params"] or {}) or DASH)),
        ("Job", e(doc["jobName"] or DASH)),
        ("Started", e(doc["startTime"] or DASH)),
        ("Completed", e(doc["completionTime"] or DASH)),
        ("Message", e(doc["message"] or "")),
    ]
    report = render.report_location(doc["report"])
    href = report_href(doc["namespace"], doc["name"])
    opens = report is not None and doc["phase"] == "Succeeded" and not read_only
    sections = [
        ("summary", "Summary", definition_list(summary)),
        ("stats", "Statistics" + (" (the best run)" if doc["sweep"] else ""), _stats(doc)),
    ]
    if doc["sweep"]:
        sections.append(("ranking", "Ranking", _ranking(doc["sweep"], href if opens else None)))
    has_output = bool((obj.get("spec") or {}).get("output"))
    if opens:
        body = (
            f'<p><a id="open-report" href="{e(href)}">Open the report</a> '
            '<span class="muted">(a short-lived reader pod serves it from the output '
            "volume, as your Kubernetes user)</span></p>"
            f'<p data-field="report">{e(report)}</p>'
        )
    elif read_only and report is not None:
        body = (
            f'<p class="muted read-only">{e(read_only_report_note(doc["namespace"], doc["name"]))}'
            f'</p><p data-field="report">{e(report)}</p>'
        )
    elif has_output:
        body = (
            '<p class="muted" data-field="report">The report opens here once the Backtest '
            "has Succeeded.</p>"
        )
    else:
        body = (
            '<p class="muted" data-field="report">No report: the Backtest has no '
            "<code>spec.output</code> claim; the statistics above are the summary.</p>"
        )
    sections.append(("report", "Report", body))
    panels = "".join(
        f'<section class="panel panel-{key}"><h2>{title}</h2>'
        f'<div id="panel-{key}" data-panel="{key}">{body}</div></section>'
        for key, title, body in sections
    )
    return (
        f'<h1><a href="/backtests">Backtests</a> / {e(doc["namespace"])} / '
        f'<span id="backtest-name">{e(doc["name"])}</span></h1>'
        f'<div class="panels">{panels}</div>'
    )


def _stats(doc: Mapping[str, Any]) -> str:
    stats = dict(doc["stats"] or {})
    if not stats:
        return '<p class="muted">No statistics yet.</p>'
    undefined = stats.pop("undefined", [])
    items = [(k, f'<span data-stat="{e(k)}">{e(v)}</span>') for k, v in stats.items()]
    if undefined:
        items.append(("undefined (written as 0)", e(", ".join(undefined))))
    return definition_list(items)


def report_href(namespace: str, name: str, run: object = None) -> str:
    base = f"/backtests/{namespace}/{name}/report"
    return base if run is None else f"{base}?run={run}"


def _ranking(sweep: Mapping[str, Any], href: str | None = None) -> str:
    """The best runs; with `href` (the report opens), each run's report is a link."""
    head = (
        f'<p data-field="sweep">{e(sweep["runs"])} runs: {e(sweep["succeeded"])} succeeded, '
        f"{e(sweep['failed'])} failed, {e(sweep['skipped'])} skipped; ranked by "
        f"<strong>{e(sweep['rankBy'])}</strong>.</p>"
    )
    rows = [
        f'<tr data-run="{e(r["index"])}"><td class=num>{e(r["rank"])}</td>'
        f"<td class=num>{e(r['index'])}</td><td>{e(r['params'])}</td>"
        + _exact("value", r["value"])
        + "".join(_exact(k, r[k]) for k in render.RANKING_STATS)
        + (
            f'<td><a class="run-report" href="{e(href)}?run={e(r["index"])}">report</a></td>'
            if href
            else ""
        )
        + "</tr>"
        for r in render.ranking_rows(sweep)
    ]
    columns: tuple[str, ...] = ("Rank", "Run", "Params", "Value", "Return", "MaxDD", "Sharpe")
    columns += ("Trades", "Report") if href else ("Trades",)
    return head + table(columns, rows, "No results yet.", "ranking")
