"""The chart's allowlist of engine image repositories reaches the operator's flags."""

from __future__ import annotations

import pytest
from chart_support import Helm, HelmError, one_of

from hean_operator.cli import run_operator_command


def _operator_args(helm: Helm, repositories: list[str] | None) -> tuple[str, ...]:
    values = {} if repositories is None else {"engine": {"allowedImageRepositories": repositories}}
    deployment = one_of(helm.template(values), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ctx = run_operator_command.make_context("run", list(container["args"][2:]))
    allowed: tuple[str, ...] = ctx.params["engine_allowed_repositories"]
    return allowed


def test_the_default_allows_only_the_engine_image(helm: Helm) -> None:
    assert _operator_args(helm, None) == ()


def test_listed_repositories_become_operator_flags(helm: Helm) -> None:
    listed = ["registry.example.com:5000/quant/hean-rsi", "ghcr.io/acme/*"]
    assert _operator_args(helm, listed) == tuple(listed)


@pytest.mark.parametrize("bad", ["Registry/UPPER", "a b", "ghcr.io/acme/*/x", ""])
def test_the_schema_refuses_a_malformed_repository(helm: Helm, bad: str) -> None:
    with pytest.raises(HelmError):
        helm.template({"engine": {"allowedImageRepositories": [bad]}})
