"""The Backtest CustomResourceDefinition (`backtests.hean.io`), generated from its typed models.

The spec schema is `BacktestSpec`'s and the status schema `BacktestStatus`'s
(hean_contract.backtest); the strategy's CEL rules are the TradingEngine's own
(`strategy_rules`), so a Backtest refuses the parameters an engine would.
"""

from __future__ import annotations

from typing import Any

from hean_contract.backtest import (
    CATEGORIES,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    UNUSED_FIELDS,
    BacktestSpec,
    BacktestStatus,
)
from hean_operator.api.resources import GROUP, VERSION
from hean_operator.builders.job import MAX_NAME_LENGTH
from hean_operator.crds.schema import namespaced_crd, status_schema, structural_schema
from hean_operator.crds.tradingengine import (
    NAME_RULES,
    _default_empty_objects,
    compared_params,
    strategy_rules,
)

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Strategy", "type": "string", "jsonPath": ".spec.strategy.name"},
    {"name": "Market", "type": "string", "jsonPath": ".spec.market.symbol"},
    {"name": "From", "type": "string", "jsonPath": ".spec.from"},
    {"name": "To", "type": "string", "jsonPath": ".spec.to"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Return", "type": "string", "jsonPath": ".status.stats.totalReturnPct"},
    {"name": "MaxDD", "type": "string", "jsonPath": ".status.stats.maxDrawdownPct"},
    {"name": "Sharpe", "type": "string", "jsonPath": ".status.stats.sharpe"},
    {"name": "Trades", "type": "integer", "jsonPath": ".status.stats.trades"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

# Checked by the API server before the operator sees the object; the model
# checks the same again (an old CRD can be bypassed, the model cannot).
SPEC_RULES: list[dict[str, str]] = [
    {
        # A Backtest is the record of one run: its results belong to its spec.
        "rule": "self == oldSelf",
        "message": "a Backtest's spec cannot change: create a new Backtest to run another",
    },
    {
        "rule": "timestamp(self.to) > timestamp(self.from)",
        "message": "to: must be later than from",
        "fieldPath": ".to",
    },
]

DATA_RULES: list[dict[str, str]] = [
    {
        "rule": "[has(self.volume), has(self.configMap), has(self.fetch)].filter(x, x).size() == 1",
        "message": "set exactly one of volume, configMap, fetch",
    }
]

SWEEP_RULES: list[dict[str, str]] = [
    {
        "rule": "self.mode != 'random' || has(self.samples)",
        "message": "samples: required when mode is random",
        "fieldPath": ".samples",
    },
    {
        "rule": "self.mode == 'random' || !has(self.samples)",
        "message": "samples: only for mode random",
        "fieldPath": ".samples",
    },
]

# The Backtest's Job is named after it (`<name>-backtest`): a name the Job and its
# pods' labels can carry (63 characters), and a DNS-1035 label as an engine's.
BACKTEST_NAME_RULES: list[dict[str, str]] = [
    {
        "rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
        "message": f"metadata.name: at most {MAX_NAME_LENGTH} characters (its Job, "
        "NAME-backtest, is a label value of its pods: at most 63)",
    },
    {
        "rule": NAME_RULES[1]["rule"],
        "message": "metadata.name: must start with a letter and hold only lowercase letters, "
        "digits and '-' (its Job and pods are named after it)",
    },
]


def build_backtest_crd() -> dict[str, Any]:
    spec_schema = structural_schema(BacktestSpec)
    _default_empty_objects(spec_schema)
    # data and sweep choose between their members: no empty default for them
    for name in ("data", "sweep", "output"):
        spec_schema["properties"][name].pop("default", None)
    for name in ("volume", "configMap", "fetch"):
        spec_schema["properties"]["data"]["properties"][name].pop("default", None)
    # What a Backtest never uses is not in its schema: kubectl's strict field
    # validation refuses it as an unknown field, naming it (the model refuses it too).
    for part, names in UNUSED_FIELDS.items():
        for name in names:
            spec_schema["properties"][part]["properties"].pop(name)
    spec_schema["x-kubernetes-validations"] = SPEC_RULES
    spec_schema["properties"]["data"]["x-kubernetes-validations"] = DATA_RULES
    spec_schema["properties"]["sweep"]["x-kubernetes-validations"] = SWEEP_RULES
    strategy = spec_schema["properties"]["strategy"]
    strategy["x-kubernetes-validations"] = strategy_rules()
    strategy["properties"]["params"]["properties"] = compared_params()
    status = status_schema(BacktestStatus)
    crd = namespaced_crd(
        group=GROUP,
        version=VERSION,
        kind=KIND,
        plural=PLURAL,
        singular=SINGULAR,
        short_names=SHORT_NAMES,
        categories=CATEGORIES,
        printer_columns=PRINTER_COLUMNS,
        description="A backtest: one strategy replayed over a time range of recorded or "
        "fetched candles (or a sweep over its parameters), run by the HEAN operator as a Job.",
        spec_schema=spec_schema,
        status_schema=status,
    )
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    root["x-kubernetes-validations"] = BACKTEST_NAME_RULES
    return crd
