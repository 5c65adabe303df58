"""The strategy written out in docs/strategies.md runs, registered as the docs say.

The first Python block of the page is taken as it is, installed as a package
whose entry point is the toml block's (`every_n`), and run by the engine: so
the example a reader copies is a working strategy.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from engine_support import REPO_ROOT, candle, spec_dict
from hean_contract.spec import EngineIdentity, parse_spec
from hean_engine.app.assembly import build_simulated_engine
from strategy_support import write_package

PAGE = REPO_ROOT / "docs" / "strategies.md"


def _block(language: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    match = re.search(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    assert match is not None, f"no {language} block in {PAGE}"
    return match.group(1)


@pytest.fixture
def documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    entry = tomllib.loads(_block("toml"))["project"]["entry-points"]["hean.strategies"]
    [(name, target)] = entry.items()
    module, _, attr = target.partition(":")
    package, _, leaf = module.rpartition(".")
    site = tmp_path / "site"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("", encoding="utf-8")
    (site / package / f"{leaf}.py").write_text(_block("python"), encoding="utf-8")
    # The distribution that declares the entry point (a one-module dist of its own).
    write_package(site, "docs_example_dist", "", {name: f"{module}:{attr}"})
    monkeypatch.syspath_prepend(str(site))
    yield name
    for loaded in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        sys.modules.pop(loaded, None)


def test_the_documented_strategy_runs_by_its_entry_point_name(documented: str) -> None:
    spec = spec_dict()
    spec["strategy"] = {"name": documented, "params": {"every": 2, "quantity": "0.5"}}
    engine = build_simulated_engine(EngineIdentity(), parse_spec(spec))
    for minute in range(9):
        engine.kernel.on_candle(candle(minute, 100.0 + minute))
    fills = engine.kernel.fills
    # Every second candle it buys when flat and sells when holding; a market order
    # fills at the next candle's open.
    assert [(f.side.value, f.quantity, f.price) for f in fills] == [
        ("buy", Decimal("0.5"), Decimal(102)),
        ("sell", Decimal("0.5"), Decimal(104)),
        ("buy", Decimal("0.5"), Decimal(106)),
        ("sell", Decimal("0.5"), Decimal(108)),
    ]
