"""The TradingEngine CustomResourceDefinition, generated from the typed models.

The spec schema comes from the engine's own `TradingEngineSpec` and the status
schema from `TradingEngineStatus`: one source of truth, and CI fails when the
committed YAML under crds/ drifts from what this module generates.
"""

from __future__ import annotations

from typing import Any

from hean_contract.spec import KIND, TradingEngineSpec
from hean_contract.status import TradingEngineStatus
from hean_contract.strategies import BUILTIN_STRATEGIES, StrategyParams, default_of, wire_name
from hean_operator.api.resources import ENGINES, GROUP, VERSION
from hean_operator.builders.common import MAX_NAME_LENGTH, NAME_PATTERN
from hean_operator.crds.schema import namespaced_crd, status_schema, structural_schema

SINGULAR = "tradingengine"
SHORT_NAMES = ["te"]
CATEGORIES = ["hean"]

# Cross-field rules the apiserver checks with CEL before the operator sees the
# object. The engine's model checks the same rules again (a schema can be
# bypassed by an old CRD; the model cannot).
SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": "self.mode != 'live' || has(self.exchange) && has(self.exchange.credentialsSecret)",
        "message": "live mode needs exchange.credentialsSecret",
        "fieldPath": ".exchange.credentialsSecret",
        "reason": "FieldValueRequired",
    },
]

# On the whole object (CEL reaches metadata.name there): the engine's children are
# named after it (`<name>-approval` the longest), and a name they cannot carry
# would be refused for each child on every retry.
# The operator checks the same (builders/common.py::name_problems).
NAME_RULES: list[dict[str, str]] = [
    {
        "rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
        "message": f"metadata.name: at most {MAX_NAME_LENGTH} characters (the engine's "
        "children are named after it, NAME-approval the longest, and such names have at "
        "most 63)",
    },
    {
        "rule": f"self.metadata.name.matches('{NAME_PATTERN}')",
        "message": "metadata.name: must start with a letter and hold only lowercase letters, "
        "digits and '-' (it is a DNS label: its children and labels carry it)",
    },
]

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Risk", "type": "string", "jsonPath": ".status.riskState"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Equity", "type": "string", "jsonPath": ".status.equity"},
    {"name": "PnL", "type": "string", "jsonPath": ".status.pnl"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _default_empty_objects(schema: dict[str, Any]) -> None:
    """Give optional object fields with no required members `default: {}`.

    The apiserver applies a nested field's default only when its parent object
    exists; an empty default for the parent makes `exchange.id: binance` and
    the paper account's defaults appear on a spec that omits them.
    """
    required = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        if child.get("type") == "object" and "properties" in child:
            _default_empty_objects(child)
            if name not in required and "default" not in child and not child.get("required"):
                child["default"] = {}


def _cel_string(text: str) -> str:
    """A CEL string literal (the registry's names are identifiers; quotes escaped anyway)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ordered_rule(
    name: str, model: type[StrategyParams], smaller: str, larger: str
) -> dict[str, str]:
    """CEL for `smaller < larger` of one strategy, an absent parameter taking its default."""
    terms = []
    for field in (smaller, larger):
        key = wire_name(model, field)
        terms.append(
            f"(has(self.params.{key}) ? int(self.params.{key}) : {default_of(model, field)})"
        )
    a, b = wire_name(model, smaller), wire_name(model, larger)
    return {
        "rule": f"self.name != {_cel_string(name)} || !has(self.params) || {terms[0]} < {terms[1]}",
        "message": f"{name} needs params.{a} < params.{b}",
        "fieldPath": ".params",
    }


def strategy_rules() -> list[dict[str, str]]:
    """The CEL rules on `spec.strategy`, from the strategy registry as it is now.

    Each built-in strategy's ordered parameter pairs (`StrategyParams.ordered`),
    applied only when the name is that strategy's. The name itself is checked by
    its pattern only: a well-formed name that is not built in may be a strategy
    installed in the engine's image, which the engine checks at start-up. The
    engine's model checks the same again.
    """
    rules: list[dict[str, str]] = []
    for info in BUILTIN_STRATEGIES.values():
        for smaller, larger in info.params.ordered:
            rules.append(_ordered_rule(info.name, info.params, smaller, larger))
    return rules


def compared_params() -> dict[str, dict[str, Any]]:
    """The parameters a CEL rule reads, declared int-or-string with whose they are."""
    described: dict[str, list[str]] = {}
    for info in BUILTIN_STRATEGIES.values():
        for field in sorted({f for pair in info.params.ordered for f in pair}):
            text = info.params.model_fields[field].description or field
            described.setdefault(wire_name(info.params, field), []).append(f"{info.name}: {text}")
    return {
        key: {"x-kubernetes-int-or-string": True, "description": " ".join(texts)}
        for key, texts in described.items()
    }


def build_tradingengine_crd() -> dict[str, Any]:
    spec_schema = structural_schema(TradingEngineSpec)
    _default_empty_objects(spec_schema)
    spec_schema["x-kubernetes-validations"] = SPEC_RULES
    strategy = spec_schema["properties"]["strategy"]
    strategy["x-kubernetes-validations"] = strategy_rules()
    # CEL reaches only declared fields: an open object's unknown fields are not
    # in its type, so the real apiserver refuses a rule that reads them. The
    # parameters the rules compare are declared (every other key stays open).
    strategy["properties"]["params"]["properties"] = compared_params()
    status = status_schema(TradingEngineStatus)
    crd = namespaced_crd(
        group=GROUP,
        version=VERSION,
        kind=KIND,
        plural=ENGINES,
        singular=SINGULAR,
        short_names=SHORT_NAMES,
        categories=CATEGORIES,
        printer_columns=PRINTER_COLUMNS,
        description="A trading engine: one market on one account, "
        "run by the HEAN operator as one pod.",
        spec_schema=spec_schema,
        status_schema=status,
    )
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    root["x-kubernetes-validations"] = NAME_RULES
    return crd
