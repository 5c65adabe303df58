"""What the desk reads, typed once for the plugin and the console.

`EngineView` wraps a TradingEngine object, `BacktestView` a Backtest: the
status parsed with the contract's model (`TradingEngineStatus`,
`BacktestStatus`; leniently: a status written by a newer operator, with
fields this client does not know, still parses) and the few spec fields every
view shows. Money stays the decimal strings the operator
and the engine wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from hean_contract.backtest import BacktestStats, BacktestStatus
from hean_contract.status import Condition, TradingEngineStatus

HISTORY_KINDS = ("fills", "orders", "positions", "equity", "events")


def _known(model: type[BaseModel], raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` without the keys `model` does not declare (its models forbid extra keys)."""
    names = {f.alias or n for n, f in model.model_fields.items()} | set(model.model_fields)
    return {k: v for k, v in raw.items() if k in names}


def parse_status(raw: Any) -> TradingEngineStatus | None:
    """The engine's status, or None when it has none yet or it cannot be read."""
    if not isinstance(raw, dict) or not raw:
        return None
    data = _known(TradingEngineStatus, raw)
    conditions = data.get("conditions")
    if isinstance(conditions, list):
        data["conditions"] = [_known(Condition, c) for c in conditions if isinstance(c, dict)]
    try:
        return TradingEngineStatus.model_validate(data)
    except ValidationError:
        return None


@dataclass(frozen=True)
class EngineView:
    """One TradingEngine as the API server returned it, with its status parsed."""

    name: str
    namespace: str
    uid: str
    generation: int
    created: str
    spec: dict[str, Any]
    status: TradingEngineStatus | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> EngineView:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            created=str(meta.get("creationTimestamp") or ""),
            spec=dict(spec or {}),
            status=parse_status(obj.get("status")),
            raw=obj,
        )

    @property
    def mode(self) -> str:
        running = self.status.mode if self.status is not None else None
        return running or str(self.spec.get("mode") or "paper")

    @property
    def is_live(self) -> bool:
        """Live as the spec asks or as the engine runs: either is real money."""
        return "live" in (self.spec.get("mode"), self.status.mode if self.status else None)

    @property
    def phase(self) -> str:
        phase = self.status.phase if self.status is not None else None
        return phase.value if phase is not None else "Pending"

    def condition(self, kind: str) -> Condition | None:
        if self.status is None:
            return None
        return next((c for c in self.status.conditions if c.type.value == kind), None)


@dataclass(frozen=True)
class KubeEvent:
    """One Kubernetes Event about the engine (oldest first in lists)."""

    time: str
    type: str
    reason: str
    message: str
    count: int


@dataclass(frozen=True)
class ApprovalView:
    """One LiveApproval: whom it approves, who signed, until when, and the verdict."""

    name: str
    namespace: str
    engine: str
    not_before: str
    expires_at: str
    signers: tuple[str, ...]
    valid: bool | None
    reason: str
    message: str

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> ApprovalView:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        signatures = spec.get("signatures") or []
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            engine=str((spec.get("engineRef") or {}).get("name", "")),
            not_before=str(spec.get("notBefore", "")),
            expires_at=str(spec.get("expiresAt", "")),
            signers=tuple(str(s.get("keyId", "")) for s in signatures if isinstance(s, dict)),
            valid=status.get("valid") if isinstance(status.get("valid"), bool) else None,
            reason=str(status.get("reason") or ""),
            message=str(status.get("message") or ""),
        )


def _lenient(model: type[BaseModel], raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` without the keys `model` or its nested models do not declare, at every level."""
    data = _known(model, raw)
    for name, info in model.model_fields.items():
        key = info.alias if info.alias in data else name
        if key not in data:
            continue
        nested = _model_in(info.annotation)
        value = data[key]
        if nested is None:
            continue
        if isinstance(value, dict):
            data[key] = _lenient(nested, value)
        elif isinstance(value, list):
            data[key] = [_lenient(nested, v) for v in value if isinstance(v, dict)]
    return data


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside `X`, `X | None` or `list[X]`, if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def parse_backtest_status(raw: Any) -> BacktestStatus | None:
    """A Backtest's status (unknown fields dropped), or None when absent or unreadable."""
    if not isinstance(raw, dict) or not raw:
        return None
    try:
        return BacktestStatus.model_validate(_lenient(BacktestStatus, raw))
    except ValidationError:
        return None


@dataclass(frozen=True)
class BacktestView:
    """One Backtest as the API server returned it, with its status parsed."""

    name: str
    namespace: str
    created: str
    spec: dict[str, Any]
    status: BacktestStatus | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> BacktestView:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            created=str(meta.get("creationTimestamp") or ""),
            spec=dict(spec or {}),
            status=parse_backtest_status(obj.get("status")),
            raw=obj,
        )

    @property
    def phase(self) -> str:
        phase = self.status.phase if self.status is not None else None
        return phase.value if phase is not None else "Pending"

    @property
    def strategy(self) -> str:
        return str((self.spec.get("strategy") or {}).get("name") or "")

    @property
    def market(self) -> str:
        return str((self.spec.get("market") or {}).get("symbol") or "")

    @property
    def start(self) -> str:
        return str(self.spec.get("from") or "")

    @property
    def end(self) -> str:
        return str(self.spec.get("to") or "")

    @property
    def stats(self) -> BacktestStats | None:
        return self.status.stats if self.status is not None else None
