"""Test modules are imported by their base name (pytest's default import mode puts
each folder on sys.path), so two files with one name break collection, or worse,
one support module silently shadows another. Every name but conftest.py is unique."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_and_support_module_name_is_unique() -> None:
    names = Counter(path.name for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)
    duplicated = {name: n for name, n in names.items() if n > 1 and name != "conftest.py"}
    assert not duplicated, f"rename one of each: {duplicated}"


# The layout: a unit-test folder per package, then what runs processes or a
# cluster, then the end-to-end scenarios, then checks of the repository's files.
LAYOUT = {
    "contract": "unit tests of hean_contract (the spec, the report, the registry)",
    "engine": "unit tests of hean_engine",
    "operator": "unit tests of hean_operator (no cluster, except the CRD admission checks)",
    "sim": "tests of the exchange simulator (hean_sim)",
    "desk": "unit tests of hean_desk (kubectl hean, the console)",
    "integration": "engine processes, live sessions, the sandbox's node, the real control plane",
    "scenarios": "end to end: the operator in the sandbox (and kind, when present)",
    "repo": "the chart, the Tiltfile, the docs, the images, the Makefile, the import graph, "
    "the benchmarks' parsers",
}


def test_tests_follow_the_layout() -> None:
    # Caches (__pycache__, .mypy_cache from a run inside tests/) are not folders of the layout.
    folders = {
        p.name
        for p in TESTS.iterdir()
        if p.is_dir() and p.name != "__pycache__" and not p.name.startswith(".")
    }
    assert folders == set(LAYOUT), f"tests/ holds {sorted(folders)}; see LAYOUT"
    loose = sorted(p.name for p in TESTS.glob("test_*.py"))
    assert not loose, f"test modules belong in a folder of LAYOUT: {loose}"
