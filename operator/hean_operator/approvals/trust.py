"""The trust policy as the operator last read it, and an engine's verdict under it.

`TrustState` is the trust ConfigMap's files and the policy they make (or why
none: no ConfigMap configured, none in the cluster, or one that is refused as a
whole). `verdict` is `evaluate.decide` under that state: a refused policy is
reported as such on every live engine (`trust_policy_invalid`), not as a
missing one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hean_contract.errors import ConfigError
from hean_contract.spec import TradingEngineSpec
from hean_engine.approval.trust import TrustPolicy, trust_from_files
from hean_operator.approvals.evaluate import (
    TRUST_POLICY_INVALID,
    ApprovalDecision,
    decide,
    mounted_manifest,
)
from hean_operator.builders.approval import approval_data


@dataclass(frozen=True)
class TrustState:
    """The trust ConfigMap as last read: its files and the policy they make (or why none)."""

    files: Mapping[str, str] = field(default_factory=dict)
    policy: TrustPolicy | None = None
    problem: str | None = None
    # The ConfigMap exists but is refused (a key twice, an unknown key id in the
    # policy...): reported as its own reason, not as "no trust policy".
    invalid: bool = False


def trust_state(files: Mapping[str, str] | None, configured: bool = True) -> TrustState:
    if not configured:
        return TrustState({}, None, "no trust ConfigMap configured (--trust-configmap)")
    if files is None:
        return TrustState({}, None, "the trust ConfigMap does not exist")
    try:
        return TrustState(dict(files), trust_from_files(files))
    except (ConfigError, ValueError) as exc:
        problems = "; ".join(exc.problems) if isinstance(exc, ConfigError) else str(exc)
        return TrustState(
            dict(files), None, f"the trust ConfigMap is invalid: {problems}", invalid=True
        )


def verdict(
    approvals: Iterable[Mapping[str, Any]],
    trust: TrustState,
    *,
    namespace: str,
    engine: str,
    engine_uid: str,
    spec: TradingEngineSpec,
    now: datetime,
) -> ApprovalDecision:
    """Which of an engine's approvals counts under `trust`, and why (pure)."""
    decision = decide(
        approvals,
        trust.policy,
        namespace=namespace,
        engine=engine,
        engine_uid=engine_uid,
        spec=spec,
        now=now,
    )
    if trust.policy is None and (decision.chosen is not None or trust.invalid):
        decision = ApprovalDecision(
            namespace,
            engine,
            decision.chosen,
            decision.evaluated,
            TRUST_POLICY_INVALID if trust.invalid else decision.reason,
            f"{trust.problem}: no approval can be valid",
        )
    return decision


def mounted_files(decision: ApprovalDecision, trust: TrustState) -> dict[str, str]:
    """The approval ConfigMap's data: the approval that counts, and the trust files."""
    chosen = mounted_manifest(decision.chosen) if decision.chosen is not None else None
    return dict(approval_data(chosen, trust.files))
