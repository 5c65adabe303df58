"""Scenario fixtures: `scenario` runs each test on the sandbox and (when present) kind.

The helpers live in scenario_support.py (a uniquely named module: every test
folder's conftest.py is importable as `conftest`, so tests never import it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from scenario_support import (
    Scenario,
    kind_cluster_ready,
    make_kind_scenario,
    make_sandbox_scenario,
    stop_recording,
)


@pytest.fixture(params=["sandbox", "kind"])
async def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Scenario]:
    if request.param == "kind":
        reason = kind_cluster_ready()
        if reason is not None:
            pytest.skip(f"kind e2e: {reason}")
        current, recorder = await make_kind_scenario()
    else:
        current, recorder = await make_sandbox_scenario(tmp_path)
    try:
        yield current
    finally:
        await stop_recording(recorder)
        if current.box is not None:
            await current.box.stop()
        else:
            await current.kubectl(
                "delete",
                "namespace",
                current.namespace,
                "--wait=false",
                namespaced=False,
                check=False,
            )
