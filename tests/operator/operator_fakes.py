"""Stand-ins for the operator's tests: an in-memory cluster with resourceVersions, an
engine's report, and an operator context over them (no API server, no kopf)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import datetime
from typing import Any

import kopf

from hean_contract.report import EngineReport
from hean_operator.context import CONTEXT, OperatorContext
from hean_operator.kube.cluster import Conflict
from hean_operator.metrics import OperatorMetrics
from hean_operator.settings import OperatorSettings

Key = tuple[str, str, str]  # (kind, namespace, name)


class FakeCluster:
    """The `Cluster` protocol over a dict of objects, as the API server would answer.

    Every object gets a resourceVersion that moves with each write; a status
    patch that names an older one is refused with Conflict (the API server's 409).
    With `linger`, a deleted pod stays, marked, until `finish_deletions` (the
    kubelet's graceful termination).
    """

    def __init__(self, *, linger: bool = False) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []  # (verb, kind) of children and statuses
        self.approval_status: dict[str, dict[str, Any]] = {}
        self.linger = linger
        self._versions = itertools.count(1)
        # Called before a status patch is applied (a test's other writer, in between).
        self.before_status_patch: Callable[[], None] | None = None

    def _stamp(self, obj: dict[str, Any]) -> None:
        obj.setdefault("metadata", {})["resourceVersion"] = str(next(self._versions))

    # -- children ----------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def create(self, kind: str, body: dict[str, Any]) -> None:
        key = (kind, body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.objects:
            raise Conflict("exists")
        stored = copy.deepcopy(body)
        self._stamp(stored)
        self.objects[key] = stored
        self.writes.append(("create", kind))

    def replace(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (kind, body["metadata"]["namespace"], body["metadata"]["name"])
        stored = copy.deepcopy(body)
        self._stamp(stored)
        self.objects[key] = stored
        self.writes.append(("replace", kind))
        return copy.deepcopy(stored)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.writes.append(("delete", kind))
        if self.linger and kind == "pods" and (kind, namespace, name) in self.objects:
            self.objects[(kind, namespace, name)]["metadata"]["deletionTimestamp"] = "now"
            return
        self.objects.pop((kind, namespace, name), None)

    def finish_deletions(self) -> None:
        for key in [k for k, v in self.objects.items() if v["metadata"].get("deletionTimestamp")]:
            del self.objects[key]

    def pods(self) -> list[dict[str, Any]]:
        return [v for (kind, _, _), v in self.objects.items() if kind == "pods"]

    # -- engines and approvals ---------------------------------------------------
    def add_engine(self, namespace: str, name: str, uid: str, spec: dict[str, Any]) -> None:
        engine = {
            "apiVersion": "hean.io/v1alpha1",
            "kind": "TradingEngine",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 1},
            "spec": copy.deepcopy(spec),
        }
        self._stamp(engine)
        self.objects[("tradingengines", namespace, name)] = engine

    def engine(self, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[("tradingengines", namespace, name)]

    def get_engine(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get("tradingengines", namespace, name)

    def patch_engine_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any] | None:
        if self.before_status_patch is not None:
            hook, self.before_status_patch = self.before_status_patch, None
            hook()
        engine = self.objects.get(("tradingengines", namespace, name))
        if engine is None:
            return None
        if resource_version is not None and resource_version != engine["metadata"].get(
            "resourceVersion"
        ):
            self.writes.append(("conflict", "tradingengines/status"))
            raise Conflict("the object has been modified")
        stored = engine.setdefault("status", {})
        for key, value in copy.deepcopy(status).items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
        self._stamp(engine)
        self.writes.append(("patch", "tradingengines/status"))
        return copy.deepcopy(engine)

    def patch_approval_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.approval_status[name] = copy.deepcopy(status)

    def condition(self, namespace: str, name: str, kind: str) -> dict[str, Any]:
        engine = self.engine(namespace, name)
        (found,) = [c for c in engine["status"]["conditions"] if c["type"] == kind]
        return found


def report_doc(**overrides: Any) -> dict[str, Any]:
    """An idle paper engine's `GET /status` document, as the engine writes it today."""
    doc: dict[str, Any] = {
        "name": "btc",
        "namespace": "trading",
        "generation": 1,
        "run_id": "r",
        "mode": "paper",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "strategy": "ema_cross",
        "ready": True,
        "ready_reason": "ok",
        "risk_state": "ACTIVE",
        "risk_state_reason": "",
        "paused": False,
        "position": "0",
        "balances": {"USDT": "10000"},
        "equity": "10000",
        "pnl": "0",
        "max_drawdown": "0",
        "fees": "0",
        "open_orders": [],
        "orders_submitted": 0,
        "orders_closed": {},
        "fills": 0,
        "rejections": {},
        "events": 0,
        "last_data_time": None,
        "last_reconcile": None,
        "live": None,
        "approval": None,
        "recent_events": [],
    }
    doc.update(overrides)
    return doc


def report(**overrides: Any) -> EngineReport:
    return EngineReport.model_validate(report_doc(**overrides))


def make_context(
    cluster: Any, *, port: int = 8080, now: Callable[[], datetime] | None = None
) -> OperatorContext:
    ctx = OperatorContext(
        cluster=cluster, settings=OperatorSettings(engine_port=port), metrics=OperatorMetrics()
    )
    if now is not None:
        ctx.now = now
    return ctx


def memo(ctx: OperatorContext) -> kopf.Memo:
    """A per-object memo as kopf hands it to a handler (the context under its key)."""
    found = kopf.Memo()
    found[CONTEXT] = ctx
    return found
