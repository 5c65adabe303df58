"""The operator's own Prometheus metrics (engines' trading metrics come from the engines)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hean_contract.status import Phase

HANDLERS = ("reconcile", "poll", "pod", "control", "delete", "approval")


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
        self.pods_replaced = Counter(
            "hean_operator_engine_pods_replaced_total",
            "Engine pods that had failed (evicted, node lost...) deleted to start a new one, "
            "by the pod's status reason (or its phase when it gives none).",
            ["reason"],
            registry=self.registry,
        )
        self.approval_evaluations = Counter(
            "hean_operator_liveapproval_evaluations_total",
            "Evaluations of a live engine's LiveApprovals, by result (valid, invalid) and "
            "reason (the verifier's reason, or no_approval / no_trust_policy).",
            ["result", "reason"],
            registry=self.registry,
        )
        self.approval_enforcements = Counter(
            "hean_operator_liveapproval_enforcements_total",
            "Running live engines told to stop trading (halt or reduce) because their "
            "LiveApproval stopped being valid, by command and reason.",
            ["command", "reason"],
            registry=self.registry,
        )
        self.approval_expiry = Gauge(
            "hean_operator_liveapproval_expiry_timestamp_seconds",
            "When the valid LiveApproval a live engine runs on expires (Unix time).",
            ["namespace", "engine", "approval"],
            registry=self.registry,
        )
        self._expiry_labels: dict[tuple[str, str], str] = {}
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

    def observe_expiry(
        self, namespace: str, engine: str, approval: str | None, expires: float | None
    ) -> None:
        """The expiry of the approval an engine runs on; None forgets the engine's series."""
        key = (namespace, engine)
        previous = self._expiry_labels.pop(key, None)
        if previous is not None:
            self.approval_expiry.remove(namespace, engine, previous)
        if approval is not None and expires is not None:
            self.approval_expiry.labels(namespace=namespace, engine=engine, approval=approval).set(
                expires
            )
            self._expiry_labels[key] = approval
