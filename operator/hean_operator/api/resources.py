"""The operator's custom resources as the Kubernetes API names them.

One group and version (from the engine's `API_VERSION`, the `apiVersion` a
TradingEngine manifest carries) and the plural of each kind: what the CRDs
declare, what kopf watches and what the API client asks for.
"""

from __future__ import annotations

from hean_contract.spec import API_VERSION

GROUP, VERSION = API_VERSION.split("/")
ENGINES = "tradingengines"  # the plural of TradingEngine
APPROVALS = "liveapprovals"  # the plural of LiveApproval
BACKTESTS = "backtests"  # the plural of Backtest
