"""A live engine's reconcile result as the operator reports it (pure: no cluster)."""

from __future__ import annotations

from typing import Any

import pytest
from operator_fakes import report as engine_report

from hean_contract.status import ConditionStatus, ConditionType
from hean_operator.engines.pods import PodView
from hean_operator.status.derive import Observation, derive_conditions, reconcile_status

NOW = "2026-11-25T12:00:00Z"
DRIFT = {
    "result": "drift",
    "time": "2026-11-25T11:59:30.000Z",
    "summary": "USDT engine 10000 exchange 9749.5",
    "drift_since": "2026-11-25T11:58:00.000Z",
    "balances": {"USDT": {"engine": "10000", "exchange": "9749.5", "difference": "-250.5"}},
}
FAILED = {
    "result": "failed",
    "time": "2026-11-25T11:59:30.000Z",
    "reason": "start-up: RequestTimeout",
}
OK = {"result": "ok", "time": "2026-11-25T11:59:30.000Z", "summary": "books match"}


def _reconciled(report: dict[str, Any] | None) -> tuple[ConditionStatus, str, str]:
    obs = Observation(
        generation=1,
        pod=PodView(exists=True, phase="Running", ready=False),
        engine=engine_report(mode="live", last_reconcile=report),
        mode="live",
    )
    condition = next(c for c in derive_conditions(obs, NOW) if c.type is ConditionType.RECONCILED)
    return condition.status, condition.reason, condition.message


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (OK, (ConditionStatus.TRUE, "InSync", "books match the exchange")),
        (DRIFT, (ConditionStatus.FALSE, "Drift", "USDT engine 10000 exchange 9749.5")),
        (FAILED, (ConditionStatus.FALSE, "ReconcileFailed", "start-up: RequestTimeout")),
        (None, (ConditionStatus.UNKNOWN, "NotYetReconciled", "no reconcile reported yet")),
    ],
)
def test_the_reconciled_condition_says_what_the_engine_found(
    report: dict[str, Any] | None, expected: tuple[ConditionStatus, str, str]
) -> None:
    assert _reconciled(report) == expected


def test_the_status_carries_what_differs_and_since_when() -> None:
    status = reconcile_status(engine_report(last_reconcile=DRIFT))
    assert status is not None
    assert (status.result, status.drift, status.since) == (
        "drift",
        "USDT engine 10000 exchange 9749.5",
        "2026-11-25T11:58:00.000Z",
    )
    failed = reconcile_status(engine_report(last_reconcile=FAILED))
    assert (
        failed is not None and failed.drift == "start-up: RequestTimeout" and failed.since is None
    )
    assert reconcile_status(engine_report()) is None
    assert reconcile_status(None) is None
