"""The operator's own Prometheus metrics (engines' trading metrics come from the engines)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hean_operator.api.status import Phase

HANDLERS = ("reconcile", "poll", "pod", "control", "delete")


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "hean_operator_reconciles_total",
            "Handler runs, by handler.",
            ["handler"],
            registry=self.registry,
        )
        self.errors = Counter(
            "hean_operator_reconcile_errors_total",
            "Handler runs that failed, by handler.",
            ["handler"],
            registry=self.registry,
        )
        self.engines = Gauge(
            "hean_operator_engines",
            "TradingEngines by phase, as last observed.",
            ["phase"],
            registry=self.registry,
        )
        self.poll_seconds = Histogram(
            "hean_operator_engine_poll_seconds",
            "Latency of GET /status polls of engines.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.poll_failures = Counter(
            "hean_operator_engine_poll_failures_total",
            "Failed GET /status polls of engines.",
            registry=self.registry,
        )
        self._phases: dict[tuple[str, str], Phase] = {}
        # Every handler's series exists from the start, at zero: an alert on
        # `rate(...errors_total[5m])` then sees the first error as a change.
        for handler in HANDLERS:
            self.reconciles.labels(handler=handler)
            self.errors.labels(handler=handler)
        for phase in Phase:
            self.engines.labels(phase=phase.value).set(0)

    def observe_phase(self, namespace: str, name: str, phase: Phase | None) -> None:
        """Track one engine's phase; None forgets it (deleted)."""
        key = (namespace, name)
        if phase is None:
            self._phases.pop(key, None)
        else:
            self._phases[key] = phase
        for each in Phase:
            self.engines.labels(phase=each.value).set(
                sum(1 for p in self._phases.values() if p is each)
            )
