"""The TradingEngine CRD is generated from the typed models and committed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from operator_approval_support import signed

from hean_contract.spec import POSITIVE_PATTERN, TradingEngineSpec
from hean_engine.cli import main
from hean_operator.crds import drifted_crds, render_crds
from hean_operator.crds.liveapproval import build_liveapproval_crd
from hean_operator.crds.tradingengine import build_tradingengine_crd

ROOT = Path(__file__).resolve().parents[2]


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        found += _nodes(child, f"{path}.{name}")
    if "items" in schema:
        found += _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _nodes(schema["additionalProperties"], f"{path}{{}}")
    return found


def _version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = build_tradingengine_crd()["spec"]["versions"]
    return versions[0]


def test_committed_crds_match_the_models() -> None:
    assert drifted_crds(ROOT / "crds") == [], "run `hean crds generate --out crds`"


def test_generate_check_reports_drift(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["crds", "generate", "--out", str(tmp_path), "--check"])
    assert result.exit_code == 1
    assert "drifted" in result.output
    assert runner.invoke(main, ["crds", "generate", "--out", str(tmp_path)]).exit_code == 0
    result = runner.invoke(main, ["crds", "generate", "--out", str(tmp_path), "--check"])
    assert result.exit_code == 0, result.output
    (tmp_path / "tradingengines.hean.io.yaml").write_text("# edited\n")
    assert drifted_crds(tmp_path) == ["tradingengines.hean.io.yaml"]


def test_schema_is_structural_and_described() -> None:
    schema = _version()["schema"]["openAPIV3Schema"]
    for path, node in _nodes(schema["properties"]["spec"], "spec") + _nodes(
        schema["properties"]["status"], "status"
    ):
        # int-or-string nodes (decimals written bare or quoted) are typeless by the rules
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        if not path.endswith(("[]", "{}")):  # list items and map values are described above
            assert node.get("description"), f"{path} has no description (kubectl explain)"
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title"} & node.keys(), path
        if node.get("type") == "object":
            has_props = "properties" in node
            assert not (has_props and "additionalProperties" in node), path


def test_names_columns_and_subresources() -> None:
    crd = build_tradingengine_crd()
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == "tradingengines.hean.io"
    assert (names["kind"], names["plural"], names["singular"]) == (
        "TradingEngine",
        "tradingengines",
        "tradingengine",
    )
    assert names["shortNames"] == ["te"] and names["categories"] == ["hean"]
    assert crd["spec"]["scope"] == "Namespaced"
    version = _version()
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Mode", "Phase", "Risk", "Ready", "Equity", "PnL", "Age"]


def test_defaults_enums_bounds_and_rules_come_from_the_model() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert props["mode"]["enum"] == ["paper", "live"] and props["mode"]["default"] == "paper"
    assert props["exchange"]["properties"]["id"]["default"] == "binance"
    assert props["exchange"]["default"] == {}  # so nested defaults apply
    risk = props["risk"]["properties"]
    assert risk["maxOpenOrders"]["minimum"] == 1
    assert risk["maxOrderNotional"]["pattern"] == POSITIVE_PATTERN
    assert set(props["risk"]["required"]) == {
        "maxOrderNotional",
        "maxPositionNotional",
        "maxDailyLoss",
        "maxDrawdownPct",
    }
    assert props["strategy"]["properties"]["params"]["x-kubernetes-preserve-unknown-fields"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any("credentialsSecret" in r for r in rules)
    strategy_rules = [r["rule"] for r in props["strategy"]["x-kubernetes-validations"]]
    assert any("self.params.fast" in r for r in strategy_rules)
    # Every field of the model is in the schema, under its camelCase name.
    for name, field in TradingEngineSpec.model_fields.items():
        assert (field.alias or name) in props


def test_positive_pattern() -> None:
    for good in ["1", "0.01", "10.5", ".5", "00.5", "100.000"]:
        assert re.match(POSITIVE_PATTERN, good), good
    for bad in ["0", "0.0", "-1", "0.", "1e3", "", "abc"]:
        assert not re.match(POSITIVE_PATTERN, bad), bad


def test_rendered_yaml_is_one_document_per_crd() -> None:
    for name, text in render_crds().items():
        docs = list(yaml.safe_load_all(text))
        assert len(docs) == 1 and docs[0]["kind"] == "CustomResourceDefinition", name


def test_liveapproval_crd_names_columns_and_schema() -> None:
    crd = build_liveapproval_crd()
    assert crd["metadata"]["name"] == "liveapprovals.hean.io"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        "LiveApproval",
        "liveapprovals",
        ["la"],
        ["hean"],
    )
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Engine", "Valid", "Approvers", "Expires", "Age"]
    schema = version["schema"]["openAPIV3Schema"]
    spec = schema["properties"]["spec"]
    assert set(spec["required"]) == {
        "engineRef",
        "engineUid",
        "specHash",
        "notBefore",
        "expiresAt",
        "nonce",
    }
    signatures = spec["properties"]["signatures"]
    assert signatures["x-kubernetes-list-map-keys"] == ["keyId"]
    assert set(schema["properties"]["status"]["properties"]) == {
        "valid",
        "reason",
        "message",
        "keyIds",
        "lastEvaluated",
    }
    for path, node in _nodes(spec, "spec") + _nodes(schema["properties"]["status"], "status"):
        assert "type" in node, path
        assert not {"$ref", "anyOf", "oneOf", "allOf", "title"} & node.keys(), path


def test_a_signed_approval_fits_the_crd_schema() -> None:
    """What `hean approval sign` writes matches the CRD's patterns and bounds."""
    manifest = signed({"alice": Ed25519PrivateKey.generate()}, now=datetime.now(UTC))
    spec = build_liveapproval_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    props = spec["properties"]["spec"]["properties"]
    for field in ("specHash", "notBefore", "expiresAt"):
        assert re.fullmatch(props[field]["pattern"].strip("^$"), manifest["spec"][field]), field
    (signature,) = manifest["spec"]["signatures"]
    assert (
        len(signature["signature"])
        <= props["signatures"]["items"]["properties"]["signature"]["maxLength"]
    )
