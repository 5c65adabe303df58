"""Prometheus metrics, read from the engine's state at scrape time.

A custom collector instead of counters updated on the hot path: a replay or a
busy market calls the kernel hundreds of thousands of times a second, and the
kernel already counts in plain integers. Scraping reads them. Each engine gets
its own registry (tests run several engines in one process).

Every series carries the `engine` and `engine_namespace` labels so that
dashboards and alerts can tell engines apart without relabelling.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hean_engine.control.runtime import LiveView, Runtime
from hean_engine.control.status import last_data_ms
from hean_engine.model.orders import OrderStatus, Reject, RiskState

PREFIX = "hean_engine"
_LABELS = ["engine", "engine_namespace"]


def _num(value: Decimal) -> float:
    # Prometheus samples are floats: fine for display; the books stay Decimal.
    return float(value)


class EngineCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self._runtime
        kernel = rt.kernel
        ledger = kernel.ledger
        risk = kernel.risk
        ident = [rt.identity.name, rt.identity.namespace]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=_LABELS)
            family.add_metric(ident, value)
            return family

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=_LABELS)
            family.add_metric(ident, value)
            return family

        info = GaugeMetricFamily(
            f"{PREFIX}_info",
            "The engine's identity and configuration (always 1).",
            labels=[*_LABELS, "mode", "exchange", "symbol", "strategy", "run_id", "generation"],
        )
        info.add_metric(
            [
                *ident,
                rt.mode,
                rt.spec.exchange.id,
                rt.spec.market.symbol,
                rt.spec.strategy.name,
                rt.run_id,
                str(rt.identity.generation),
            ],
            1,
        )
        yield info
        yield counter("events", "Market data records processed (candles or trades).", kernel.events)
        yield counter(
            "orders_submitted", "Orders accepted by risk and sent.", kernel.orders_submitted
        )
        closed = CounterMetricFamily(
            f"{PREFIX}_orders_closed",
            "Orders that left the book, by final status.",
            labels=[*_LABELS, "status"],
        )
        for status in OrderStatus:
            if status is OrderStatus.OPEN:
                continue
            closed.add_metric([*ident, status.value], kernel.orders_by_status.get(status.value, 0))
        yield closed
        yield gauge("open_orders", "Orders working at the venue now.", len(kernel.open))
        yield counter("fills", "Fills booked.", len(kernel.fills))
        rejections = CounterMetricFamily(
            f"{PREFIX}_rejections",
            "Order intents refused by the risk engine, by reason.",
            labels=[*_LABELS, "reason"],
        )
        for reason in Reject:
            rejections.add_metric([*ident, reason.value], risk.rejections.get(reason.value, 0))
        yield rejections
        yield gauge("equity", "Equity in the quote currency.", _num(ledger.equity))
        yield gauge("pnl", "Equity minus starting equity, in the quote currency.", _num(ledger.pnl))
        yield gauge("position", "Base currency held.", _num(ledger.position))
        yield gauge("fees", "Fees paid, in the quote currency.", _num(ledger.fees))
        yield gauge(
            "max_drawdown", "Largest peak-to-trough equity drop so far.", _num(ledger.max_drawdown)
        )
        yield gauge(
            "drawdown_percent",
            "Current drop of equity from its peak, in percent.",
            _num(ledger.drawdown_pct),
        )
        yield gauge(
            "max_drawdown_limit_percent",
            "The spec's maxDrawdownPct: the drawdown that halts trading.",
            _num(rt.spec.risk.max_drawdown_pct),
        )
        state = GaugeMetricFamily(
            f"{PREFIX}_risk_state",
            "1 for the current risk state, 0 for the others.",
            labels=[*_LABELS, "state"],
        )
        for candidate in RiskState:
            state.add_metric([*ident, candidate.value], 1 if risk.state is candidate else 0)
        yield state
        yield gauge("paused", "1 while trading is paused.", 1 if risk.paused else 0)
        ready, _ = rt.readiness()
        yield gauge(
            "ready",
            "1 when the engine is ready (data flowing, books reconciled).",
            1 if ready else 0,
        )
        yield gauge(
            "loop_lag_seconds", "How late the event loop ran a scheduled wake-up.", rt.loop_lag
        )
        now = rt.clock.now()
        data_ms = last_data_ms(rt)
        age = now - data_ms / 1000 if data_ms else now - rt.started
        yield gauge(
            "last_data_age_seconds", "Seconds since the newest market data event.", max(age, 0.0)
        )
        if rt.feed is not None:
            yield counter("feed_polls", "Market data requests made.", rt.feed.polls)
            yield counter(
                "feed_failures",
                "Market data requests that failed and were retried.",
                rt.feed.failures,
            )
        control = CounterMetricFamily(
            f"{PREFIX}_control_requests",
            "POST /control requests, by command and result.",
            labels=[*_LABELS, "command", "result"],
        )
        for (command, result), count in sorted(rt.control_requests.items()):
            control.add_metric([*ident, command, result], count)
        yield control
        connections = rt.connections
        yield gauge(
            "control_connections", "Connections open to the engine's HTTP server.", connections.open
        )
        yield counter(
            "control_connections_refused",
            "Connections closed at once because the server's connection limit was reached.",
            connections.refused,
        )
        yield counter(
            "control_connections_timed_out",
            "Connections closed because no complete request headers arrived in time.",
            connections.timed_out,
        )
        yield gauge("start_time_seconds", "Unix time the engine started.", rt.started)
        if rt.live is not None:
            yield from _live_metrics(rt, rt.live, ident, gauge, counter)
        if rt.approval is not None:
            yield gauge(
                "approval_valid",
                "1 while the engine's LiveApproval is valid (checked every few seconds).",
                1 if rt.approval.valid else 0,
            )
            # NaN (no sample value) would break `time() > x` alerts; 0 reads as "long past".
            yield gauge(
                "approval_expiry_timestamp_seconds",
                "Unix time the LiveApproval expires (0 when there is none).",
                rt.approval.expires_at or 0.0,
            )


def _live_metrics(
    rt: Runtime, live: LiveView, ident: list[str], gauge: Any, counter: Any
) -> Iterator[Metric]:
    """Live mode: the order path and the reconcile with the exchange."""
    values = live.metrics()
    yield counter(
        "order_unknown_outcomes",
        "Order submissions whose outcome was unknown (timeout, reset, 5xx, rate limit).",
        values["order_unknown_outcomes"],
    )
    yield counter(
        "order_lookups",
        "Orders looked up by client order id before a retry.",
        values["order_lookups"],
    )
    yield counter(
        "order_resends",
        "Submissions sent again after a lookup proved the first never arrived.",
        values["order_resends"],
    )
    yield counter(
        "foreign_fills", "Fills of orders this engine did not send.", values["foreign_fills"]
    )
    yield counter(
        "exchange_call_failures",
        "Exchange calls that failed (any reason).",
        values["exchange_call_failures"],
    )
    yield gauge(
        "journal_bytes",
        "Size of the intent journal file; compacted while running to the unresolved intents.",
        values["journal_bytes"],
    )
    yield counter(
        "journal_compactions",
        "Rewrites of the intent journal down to its unresolved intents.",
        values["journal_compactions"],
    )
    report = rt.last_reconcile
    yield gauge(
        "exchange_drift",
        "1 while the books differ from the exchange's beyond the tolerance (or a foreign "
        "order is open).",
        1 if report is not None and report.result == "drift" else 0,
    )
    value = report.difference_value if report is not None else None
    yield gauge(
        "exchange_drift_value",
        "Difference between the books and the exchange, valued in the quote currency.",
        float(value) if value is not None else 0.0,
    )
    yield gauge(
        "foreign_open_orders",
        "Open orders on the account that this engine did not send.",
        len(report.foreign_orders or ()) if report is not None else 0,
    )
    results = CounterMetricFamily(
        f"{PREFIX}_reconciles",
        "Comparisons of the books with the exchange, by result.",
        labels=[*_LABELS, "result"],
    )
    for result, count in sorted(live.reconciles().items()):
        results.add_metric([*ident, result], count)
    yield results


def build_registry(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(runtime))
    return registry
