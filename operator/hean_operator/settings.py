"""The operator's own settings (command-line flags and Helm values), not any user's spec."""

from __future__ import annotations

from dataclasses import dataclass, field

from hean_operator.builders.pod import EngineImage


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    poll_interval: float = 10.0  # seconds between /status polls of each engine
    poll_jitter: float = 0.2  # fraction of the interval, so engines are not polled in lockstep
    delete_timeout: float = 30.0  # how long deletion waits for an engine to cancel its orders
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a pod's servers answer on its own address
    metrics_port: int | None = 8000
    liveness_endpoint: str | None = "http://0.0.0.0:8081/healthz"
    image: EngineImage = field(default_factory=EngineImage)
    engine_port: int = 8080
    log_format: str = "json"  # json | text
    verbose: bool = False
    kubeconfig: str | None = None  # outside a cluster; None: in-cluster, then ~/.kube/config
    # The LiveApproval trust policy: a ConfigMap in the operator's own namespace.
    # None: no key is trusted, so no live engine starts.
    trust_configmap: str | None = None
    trust_namespace: str = "default"

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces
