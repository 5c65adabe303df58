"""The `LiveApproval` resource: spec (what was signed) and status (the operator's verdict).

The CRD is generated from these models (`hean crds generate`), as TradingEngine's is.
The spec mirrors `hean_engine.approval.manifest.parse_approval`; times are RFC 3339
UTC strings with a trailing `Z` and second precision, exactly as signed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from hean_engine.approval.verify import Reason
from hean_operator.approvals.evaluate import ENGINE_NOT_FOUND, NO_TRUST_POLICY, TRUST_POLICY_INVALID

# Every reason a status can carry, from their definitions (not a copy that drifts).
_REASONS = ", ".join(
    [*(reason.value for reason in Reason), ENGINE_NOT_FOUND, NO_TRUST_POLICY, TRUST_POLICY_INVALID]
)

KIND = "LiveApproval"
SINGULAR = "liveapproval"
SHORT_NAMES = ["la"]
CATEGORIES = ["hean"]

RFC3339_Z = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"
KEY_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class EngineReference(_Camel):
    """The TradingEngine this approval is for (in the approval's namespace)."""

    name: str = Field(min_length=1, max_length=253, description="The TradingEngine's name.")


class ApprovalSignature(_Camel):
    """One approver's Ed25519 signature over the approval's signed payload."""

    key_id: str = Field(
        pattern=KEY_ID,
        description="The trusted key that signed (`<keyId>.pub` in the trust policy).",
    )
    signature: str = Field(
        min_length=1,
        max_length=128,
        description="Base64 (standard encoding) of the 64-byte Ed25519 signature.",
    )


class LiveApprovalSpec(_Camel):
    """What the approvers signed: one engine, one trading spec, one time window."""

    engine_ref: EngineReference = Field(description="The approved TradingEngine.")
    engine_uid: str = Field(
        min_length=1,
        max_length=64,
        description="`metadata.uid` of the approved TradingEngine: a deleted and recreated "
        "engine of the same name is not approved.",
    )
    spec_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (lowercase hex) of the engine's trading spec (mode, exchange, "
        "market, strategy, risk, live, and image when set): any change of those fields voids "
        "the approval.",
    )
    not_before: str = Field(
        pattern=RFC3339_Z,
        description="Start of validity (RFC 3339 UTC, `Z`, whole seconds).",
    )
    expires_at: str = Field(
        pattern=RFC3339_Z,
        description="End of validity, exclusive (RFC 3339 UTC, `Z`, whole seconds).",
    )
    nonce: str = Field(
        min_length=8, max_length=128, description="Random, so that no two approvals sign alike."
    )
    signatures: list[ApprovalSignature] = Field(
        default_factory=list,
        max_length=32,
        description="Signatures by trusted keys; the trust policy says how many distinct "
        "keys are required.",
    )


class LiveApprovalStatus(_Camel):
    """The operator's verdict on this approval, against the trust policy and the engine."""

    valid: bool | None = Field(default=None, description="Whether the approval is valid now.")
    reason: str | None = Field(
        default=None,
        description=f"valid, or why not: {_REASONS.removeprefix('valid, ')}.",
    )
    message: str | None = Field(default=None, description="Details for a person.")
    key_ids: list[str] = Field(
        default_factory=list, description="Distinct trusted keys whose signatures verified."
    )
    last_evaluated: str | None = Field(
        default=None, description="When the operator last evaluated it (RFC 3339)."
    )
