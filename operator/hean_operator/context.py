"""What the operator's handlers share: one `OperatorContext`, kept in kopf's memo.

The API calls (`cluster`), the engines' HTTP API (`engines`), the one status
writer (`status`), kopf's diff base (`handled`), the trust policy as last read,
and two small caches: each engine's parsed spec per generation, and why an
engine's children cannot be made (a name held by an object it does not own).
Handlers of both kinds (engines, approvals) take it from `memo["context"]`;
neither imports the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hean_contract.errors import ConfigError
from hean_contract.spec import TradingEngineSpec, parse_spec
from hean_operator.approvals.trust import TrustState, trust_state
from hean_operator.builders.common import EngineRef, name_problems
from hean_operator.builders.config import spec_revision
from hean_operator.builders.images import check_engine_image
from hean_operator.engines.api import EngineApi
from hean_operator.kube.cluster import Cluster
from hean_operator.metrics import OperatorMetrics
from hean_operator.settings import OperatorSettings
from hean_operator.status.handled import HandledSpecStorage
from hean_operator.status.writer import StatusWriter

log = logging.getLogger("hean.operator.trust")

CONTEXT = "context"  # its key in kopf's memo


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OperatorContext:
    cluster: Cluster
    settings: OperatorSettings
    metrics: OperatorMetrics
    engines: EngineApi = field(init=False)
    status: StatusWriter = field(init=False)
    handled: HandledSpecStorage = field(default_factory=HandledSpecStorage)
    # The LiveApproval trust policy; `trust_version` moves with each new reading.
    trust: TrustState = field(default_factory=lambda: trust_state(None, configured=False))
    trust_version: int = 0
    # Wall time for the approvals' time windows (tests pass a clock of their own).
    now: Callable[[], datetime] = _utc_now
    # uid -> (generation, spec revision, parsed spec): polls are frequent, specs change rarely
    revisions: dict[str, tuple[int, str, TradingEngineSpec]] = field(default_factory=dict)
    # uid -> why the engine's children cannot be made (a name held by an object it
    # does not own); the status says so, and the Warning Event is posted once per change.
    taken: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.engines = EngineApi(self.cluster, self.metrics, self.settings.engine_port)
        self.status = StatusWriter(self.cluster)

    @property
    def stopping(self) -> bool:
        """The operator is shutting down (or not started): no engine is called."""
        return self.engines.closed

    def set_trust(self, trust: TrustState) -> None:
        """A new reading of the trust ConfigMap: every live engine is judged again."""
        self.trust = trust
        self.trust_version += 1
        if trust.problem:
            log.warning("trust policy: %s", trust.problem)

    def parsed(
        self, meta: Mapping[str, Any], spec: Mapping[str, Any]
    ) -> tuple[str, TradingEngineSpec]:
        """The spec revision and model of the resource's generation, parsed once per generation.

        Raises ConfigError when the model rejects the spec, or the name cannot name
        children (a CRD without the name rule, from an old chart, lets it through,
        and the children's names would be refused on every retry).
        """
        uid, generation = str(meta["uid"]), int(meta.get("generation") or 1)
        cached = self.revisions.get(uid)
        if cached is not None and cached[0] == generation:
            return cached[1], cached[2]
        problems = name_problems(str(meta["name"]))
        if problems:
            raise ConfigError(problems)
        model = parse_spec(dict(spec))
        check_engine_image(model, self.settings.image)
        revision = spec_revision(model)
        self.revisions[uid] = (generation, revision, model)
        return revision, model

    def forget(self, engine: EngineRef) -> None:
        """The engine is deleted: drop everything kept about it."""
        self.revisions.pop(engine.uid, None)
        self.taken.pop(engine.uid, None)
        self.engines.forget(engine)
        self.status.forget(engine)
        self.handled.forget(engine.uid)


def engine_ref(meta: Mapping[str, Any]) -> EngineRef:
    return EngineRef(
        name=str(meta["name"]),
        namespace=str(meta["namespace"]),
        uid=str(meta["uid"]),
        generation=int(meta.get("generation") or 1),
    )
