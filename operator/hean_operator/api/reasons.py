"""The reasons the operator writes: of the TradingEngine's conditions, and of its Events.

One CamelCase word each (the Kubernetes convention), named once here so that
the status logic, the status writer, the handlers and the tests spell them
alike. A LiveApproved condition that is False carries the verifier's own
reason instead (`hean_engine.approval.verify.Reason`, or one of the operator's
in `hean_operator.approvals.evaluate`): those say what is wrong with an approval.
"""

from __future__ import annotations

from typing import Final

# -- SpecValid ----------------------------------------------------------------
VALID: Final = "Valid"
INVALID_SPEC: Final = "InvalidSpec"  # also the Warning Event's reason
REFUSED_BY_ENGINE: Final = "RefusedByEngine"  # the engine refused its spec at start-up

# -- Ready --------------------------------------------------------------------
ENGINE_READY: Final = "EngineReady"
ENGINE_NOT_READY: Final = "EngineNotReady"
STATUS_POLL_FAILED: Final = "StatusPollFailed"
POD_MISSING: Final = "PodMissing"
NAME_TAKEN: Final = "NameTaken"  # also the Warning Event's reason

# -- Reconciled (the engine's books against the exchange's) -------------------
PAPER_ACCOUNT: Final = "PaperAccount"
IN_SYNC: Final = "InSync"
DRIFT: Final = "Drift"
RECONCILE_FAILED: Final = "ReconcileFailed"
NOT_YET_RECONCILED: Final = "NotYetReconciled"

# -- LiveApproved -------------------------------------------------------------
APPROVED: Final = "Approved"  # a valid LiveApproval; also the Normal Event's reason
NOT_REQUIRED: Final = "NotRequired"  # paper engines

# -- Events only --------------------------------------------------------------
FORBIDDEN: Final = "Forbidden"  # RBAC refused one of the operator's calls
NOT_APPROVED: Final = "NotApproved"  # a live engine's approvals are not valid (Warning)
APPROVAL_LOST: Final = "ApprovalLost"  # a running engine lost its approval (Warning)
DELETED: Final = "Deleted"
DELETE_UNCONFIRMED: Final = "DeleteUnconfirmed"
