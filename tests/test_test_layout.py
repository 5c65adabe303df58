"""Test modules are imported by their base name (pytest's default import mode puts
each folder on sys.path), so two files with one name break collection, or worse,
one support module silently shadows another. Every name but conftest.py is unique."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_and_support_module_name_is_unique() -> None:
    names = Counter(path.name for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)
    duplicated = {name: n for name, n in names.items() if n > 1 and name != "conftest.py"}
    assert not duplicated, f"rename one of each: {duplicated}"
