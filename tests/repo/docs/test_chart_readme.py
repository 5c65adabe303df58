"""charts/hean/README.md's values table is generated from values.yaml and
values.schema.json (`hean chart readme`) and committed up to date."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from engine_support import REPO_ROOT
from hean_operator.chart_docs import (
    BEGIN,
    END,
    ChartDocsError,
    readme_drifted,
    render_readme,
    value_comments,
    values_table,
)
from hean_operator.cli import chart

CHART = REPO_ROOT / "charts" / "hean"

VALUES = """\
# A plain comment is no description.
image:
  # -- The repository.
  repository: example/app
  tag: ""
# -- Labels of everything;
# a second line continues it.
labels:
  team: a
nested:
  deeper:
    # -- A number.
    count: 3
peers:
  - name: one
    # -- inside a list: not a key of the values
    port: 1
# -- Dropped by the blank line below.

undocumented: x
"""
SCHEMA = {
    "type": "object",
    "properties": {
        "image": {
            "type": "object",
            "properties": {"tag": {"type": "string", "description": "The tag."}},
        },
        "peers": {"type": "array", "description": "Peers."},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "nested": {
            "type": "object",
            "properties": {
                "deeper": {
                    "type": "object",
                    "properties": {"count": {"anyOf": [{"type": "integer"}, {"type": "string"}]}},
                }
            },
        },
        "undocumented": {"type": "string"},
    },
}


def test_comments_are_read_by_key_path() -> None:
    assert value_comments(VALUES) == {
        ("image", "repository"): "The repository.",
        ("labels",): "Labels of everything; a second line continues it.",
        ("nested", "deeper", "count"): "A number.",
    }


def test_missing_descriptions_are_an_error_naming_the_key() -> None:
    with pytest.raises(ChartDocsError, match=r"for: undocumented$"):
        values_table(VALUES, SCHEMA)


def test_rows_have_key_type_default_and_description() -> None:
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"]}}
    schema["properties"]["undocumented"] = {"type": "string", "description": "Now it is | piped."}
    rows = values_table(VALUES, schema).splitlines()
    assert rows[:2] == ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    assert rows[2:] == [
        # a nested mapping without a `# --` comment: one row per key
        '| `image.repository` | string | `"example/app"` | The repository. |',
        '| `image.tag` | string | `""` | The tag. |',  # the schema's description
        # a commented mapping: one row, its default as JSON
        '| `labels` | object | `{"team": "a"}` | Labels of everything; a second line '
        "continues it. |",
        "| `nested.deeper.count` | integer or string | `3` | A number. |",
        # a list: one row
        '| `peers` | array | `[{"name": "one", "port": 1}]` | Peers. |',
        '| `undocumented` | string | `"x"` | Now it is \\| piped. |',
    ]


def test_the_table_goes_between_the_markers_and_the_prose_stays() -> None:
    readme = f"# Title\n\nProse.\n\n{BEGIN}\nold table\n{END}\n\nMore prose.\n"
    assert render_readme(readme, "| new |\n") == (
        f"# Title\n\nProse.\n\n{BEGIN}\n| new |\n{END}\n\nMore prose.\n"
    )
    with pytest.raises(ChartDocsError, match="markers"):
        render_readme("# no markers\n", "| new |\n")


def test_every_chart_value_is_in_the_committed_readme() -> None:
    assert not readme_drifted(CHART, CHART / "README.md"), (
        "charts/hean/README.md is stale: run `make chart-docs`"
    )
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for key in values:
        assert f"| `{key}" in readme, key


def test_check_fails_on_a_stale_readme_and_write_fixes_it(tmp_path: Path) -> None:
    chart_dir = tmp_path / "hean"
    shutil.copytree(CHART, chart_dir, ignore=shutil.ignore_patterns("templates", "crds"))
    values = chart_dir / "values.yaml"
    values.write_text(values.read_text().replace("pollInterval: 10", "pollInterval: 15"))
    args = ["readme", "--chart", str(chart_dir)]
    runner = CliRunner()

    stale = runner.invoke(chart, [*args, "--check"])
    assert stale.exit_code == 1
    assert "README.md is stale" in stale.output
    assert "hean chart readme" in stale.output

    assert runner.invoke(chart, args).exit_code == 0
    assert "| `pollInterval` | number | `15` |" in (chart_dir / "README.md").read_text()
    fresh = runner.invoke(chart, [*args, "--check"])
    assert fresh.exit_code == 0, fresh.output


def test_an_undocumented_value_fails_with_its_key(tmp_path: Path) -> None:
    chart_dir = tmp_path / "hean"
    shutil.copytree(CHART, chart_dir, ignore=shutil.ignore_patterns("templates", "crds"))
    values = chart_dir / "values.yaml"
    values.write_text(values.read_text() + "extra:\n  knob: 1\n")
    result = CliRunner().invoke(chart, ["readme", "--chart", str(chart_dir), "--check"])
    assert result.exit_code == 1
    assert "extra.knob" in result.output
