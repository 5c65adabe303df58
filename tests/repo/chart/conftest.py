"""Fixtures of the Helm chart tests: a helm binary and rendered manifests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chart_support import MONITORING_API, SCENARIOS, Helm, find_helm


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    found = find_helm()
    if found is None:
        pytest.fail(
            "no helm binary: the one built from cluster/ cannot be built here "
            "(`hean sandbox build` says why; it needs Go); or set HEAN_HELM to a helm v4",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="session")
def helm(helm_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> Callable[[str], list[dict[str, Any]]]:
    """Scenario name -> its rendered objects (each scenario rendered once)."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def get(name: str) -> list[dict[str, Any]]:
        if name not in cache:
            scenario = SCENARIOS[name]
            apis = [MONITORING_API] if scenario.monitoring_api else []
            cache[name] = helm.template(scenario.values, api_versions=apis)
        return cache[name]

    return get
