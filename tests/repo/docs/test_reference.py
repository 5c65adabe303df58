"""docs/reference/tradingengine.md is generated from the CRD and committed up to date."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from engine_support import REPO_ROOT
from hean_engine.cli import main
from hean_operator.crds.reference import REFERENCE_FILE, reference_drifted, render_reference
from hean_operator.crds.tradingengine import build_tradingengine_crd

REFERENCE_DIR = REPO_ROOT / "docs" / "reference"


def _nodes(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _nodes(child, f"{path}.{name}")
    if "items" in node:
        found += _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _nodes(node["additionalProperties"], f"{path}.<key>")
    return found


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_tradingengine_crd()["spec"]["versions"][0]["schema"]
    return schema["openAPIV3Schema"]


def test_committed_reference_matches_the_crd() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["crds", "reference", "--out", str(REFERENCE_DIR), "--check"])
    assert result.exit_code == 0, (
        f"{result.output}\nrun `hean crds reference --out docs/reference` and commit the result"
    )


def test_check_exits_1_on_drift_and_generate_fixes_it(tmp_path: Path) -> None:
    runner = CliRunner()
    check = ["crds", "reference", "--out", str(tmp_path), "--check"]
    missing = runner.invoke(main, check)
    assert missing.exit_code == 1
    assert "drifted" in missing.output
    written = runner.invoke(main, ["crds", "reference", "--out", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert runner.invoke(main, check).exit_code == 0
    path = tmp_path / REFERENCE_FILE
    path.write_text(path.read_text().replace("Largest notional", "Biggest notional"))
    assert reference_drifted(tmp_path)
    assert runner.invoke(main, check).exit_code == 1


def test_every_field_of_the_crd_has_one_row_with_its_description() -> None:
    text = render_reference()
    schema = _schema()
    for root in ("spec", "status"):
        section = text.split(f"\n## {root}\n", 1)[1].split("\n## ", 1)[0]
        lines = section.splitlines()
        for path, node in _nodes(schema["properties"][root], root):
            rows = [line for line in lines if line.startswith(f"| `{path}` |")]
            assert len(rows) == 1, f"{path}: {len(rows)} rows"
            description = " ".join(str(node.get("description", "")).split())
            assert description.replace("|", "\\|") in rows[0], path


def test_rows_carry_type_default_constraints_and_required() -> None:
    text = render_reference()
    rows = {
        m.group(1): [cell.strip() for cell in m.group(2).split(" | ")]
        for m in re.finditer(r"^\| `([^`]+)` \| (.*) \|$", text, re.MULTILINE)
    }
    kind, default, constraints, required, _ = rows["spec.mode"]
    assert (kind, default, required) == ("string", '`"paper"`', "")
    assert constraints == "one of `paper`, `live`"
    kind, default, constraints, required, _ = rows["spec.risk.maxOpenOrders"]
    assert (kind, default, constraints) == ("integer", "`4`", "≥ 1; ≤ 1000")
    assert rows["spec.market.symbol"][3] == "yes"
    assert rows["spec.risk.maxDailyLoss"][0] == "int-or-string"
    assert rows["spec.exchange.id"][2] == "length 1–64"
    assert "pattern" in rows["spec.exchange.credentialsSecret"][2]
    assert rows["status.conditions"][0] == "array of object"
    assert rows["status.conditions[].lastTransitionTime"][2] == "format date-time"
    assert rows["spec.paper.startingBalances"][0] == "map of int-or-string"
    # \| inside a cell keeps regular expressions with alternatives in one column
    assert r"0?\.\d*[1-9]\d*)$" in rows["spec.risk.maxOrderNotional"][2]


def test_printer_columns_and_cel_rules_are_listed() -> None:
    text = render_reference()
    version = build_tradingengine_crd()["spec"]["versions"][0]
    for column in version["additionalPrinterColumns"]:
        assert f"| {column['name']} | {column['type']} | `{column['jsonPath']}` |" in text
    spec = _schema()["properties"]["spec"]
    rules = (
        spec["x-kubernetes-validations"]
        + spec["properties"]["strategy"]["x-kubernetes-validations"]
    )
    for rule in rules:
        assert rule["message"] in text
        assert rule["rule"].replace("|", "\\|") in text


def test_strategy_parameters_are_listed_with_plain_decimal_defaults() -> None:
    text = render_reference()
    assert "### `ema_cross`" in text
    assert "### `market_maker`" in text
    assert '| `params.tickSize` | int-or-string | `"0.00000001"` |' in text
