"""`spec.image`: the allowlist of image repositories, the pod it gives, the hashes it enters,
and how the operator shows an engine that refused its spec at start-up."""

from __future__ import annotations

from typing import Any

import pytest
from operator_fakes import report

from hean_contract.errors import ConfigError
from hean_contract.spec import TradingEngineSpec, parse_spec
from hean_contract.status import ConditionType, Phase
from hean_engine.approval.payload import TRADING_FIELDS, canonical_json, spec_hash
from hean_operator.builders.common import EngineRef
from hean_operator.builders.config import spec_revision
from hean_operator.builders.images import check_engine_image, engine_image_ref, image_repository
from hean_operator.builders.pod import EngineImage, build_pod
from hean_operator.engines.pods import PodView, refused_message
from hean_operator.status.derive import Observation, derive_conditions, derive_phase

ENGINE = EngineRef(name="rsi", namespace="trading", uid="uid-1", generation=2)
OWN = "ghcr.io/hean-io/hean-engine"
SETTINGS = EngineImage(
    image=f"{OWN}:0.1.0",
    allowed_repositories=("registry.example.com:5000/quant/hean-rsi", "ghcr.io/acme/*"),
)
DIGEST = "@sha256:" + "a" * 64


def _spec(**overrides: Any) -> TradingEngineSpec:
    spec: dict[str, Any] = {
        "market": {"symbol": "BTC/USDT"},
        "strategy": {"name": "rsi_mean_reversion", "params": {"quantity": "0.01"}},
        "risk": {
            "maxOrderNotional": "1000",
            "maxPositionNotional": "5000",
            "maxDailyLoss": "500",
            "maxDrawdownPct": "20",
        },
    }
    spec.update(overrides)
    return parse_spec(spec)


@pytest.mark.parametrize(
    ("ref", "repository"),
    [
        ("ghcr.io/hean-io/hean-engine:0.1.0", "ghcr.io/hean-io/hean-engine"),
        ("registry.example.com:5000/quant/hean-rsi", "registry.example.com:5000/quant/hean-rsi"),
        (
            "registry.example.com:5000/quant/hean-rsi:1.2" + DIGEST,
            "registry.example.com:5000/quant/hean-rsi",
        ),
        ("hean-engine" + DIGEST, "hean-engine"),
    ],
)
def test_the_repository_of_a_reference(ref: str, repository: str) -> None:
    assert image_repository(ref) == repository


@pytest.mark.parametrize(
    "image",
    [
        None,
        f"{OWN}:0.2.0",  # the engine image's own repository is always allowed
        f"{OWN}{DIGEST}",
        "registry.example.com:5000/quant/hean-rsi:1.2",
        "ghcr.io/acme/strategies/rsi:3",  # below an allowed path
    ],
)
def test_allowed_images(image: str | None) -> None:
    spec = _spec(image=image) if image else _spec()
    check_engine_image(spec, SETTINGS)
    assert engine_image_ref(spec, SETTINGS) == (image or SETTINGS.image)


@pytest.mark.parametrize(
    "image",
    [
        "ghcr.io/hean-io/hean-engine-fork:0.1.0",
        "docker.io/library/python:3.11",
        "registry.example.com:5000/quant/hean-rsi-other:1",
        "ghcr.io/acmecorp/rsi:1",  # a sibling of the allowed path, not below it
        "registry.example.com/quant/hean-rsi:1.2",  # another port is another registry
    ],
)
def test_other_repositories_are_refused_naming_the_field(image: str) -> None:
    spec = _spec(image=image)
    with pytest.raises(ConfigError) as refused:
        check_engine_image(spec, SETTINGS)
    [problem] = refused.value.problems
    assert problem.startswith(f"spec.image: the repository {image_repository(image)!r} is not")
    assert f"(allowed: {OWN}, registry.example.com:5000/quant/hean-rsi, ghcr.io/acme/*)" in problem
    assert problem.endswith("Helm value engine.allowedImageRepositories")
    # The builder refuses too, whoever calls it.
    with pytest.raises(ConfigError):
        build_pod(ENGINE, spec, SETTINGS)


def test_by_default_only_the_engine_image_is_allowed() -> None:
    with pytest.raises(ConfigError, match=r"\(allowed: ghcr.io/hean-io/hean-engine\)"):
        check_engine_image(_spec(image="ghcr.io/acme/rsi:1"), EngineImage())


@pytest.mark.parametrize("image", ["UPPER/case", "a b", "repo:tag:tag", "-lead/x", ""])
def test_a_malformed_image_is_refused_by_the_spec(image: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _spec(image=image)
    assert refused.value.problems[0].startswith("spec.image: ")


def test_the_pod_runs_the_spec_image_and_reports_its_refusal() -> None:
    image = "registry.example.com:5000/quant/hean-rsi:1.2"
    (container,) = build_pod(ENGINE, _spec(image=image), SETTINGS)["spec"]["containers"]
    assert container["image"] == image
    assert container["imagePullPolicy"] == SETTINGS.pull_policy
    assert {"name": "HEAN_TERMINATION_MESSAGE_PATH", "value": "/dev/termination-log"} in (
        container["env"]
    )
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    (default,) = build_pod(ENGINE, _spec(), SETTINGS)["spec"]["containers"]
    assert default["image"] == SETTINGS.image


def test_an_absent_image_changes_neither_revision_nor_approval_hash() -> None:
    spec = _spec()
    # What the revision and the approval hash were before `image` existed.
    before = spec.model_dump(mode="json", by_alias=True, exclude={"paused", "halt", "image"})
    import hashlib
    import json

    old_revision = hashlib.sha256(
        json.dumps(before, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:16]
    assert spec_revision(spec) == old_revision
    document = {key: before[key] for key in TRADING_FIELDS}
    assert spec_hash(spec) == hashlib.sha256(canonical_json(document)).hexdigest()
    # An image is code that trades: it changes both.
    with_image = _spec(image=f"{OWN}:0.2.0")
    assert spec_revision(with_image) != spec_revision(spec)
    assert spec_hash(with_image) != spec_hash(spec)


# -- an engine that refused its spec at start-up ------------------------------------

REASON = "invalid configuration:\n  spec.strategy.params.period: Input should be >= 2"


def _pod(state: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"state": state, "restartCount": 1}
    if last is not None:
        status["lastState"] = last
    return {"status": {"phase": "Running", "containerStatuses": [status]}}


def test_the_refusal_is_read_from_the_last_termination() -> None:
    refused = {"terminated": {"exitCode": 2, "message": REASON + "\n"}}
    waiting = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert refused_message(_pod(waiting, refused)) == REASON
    assert refused_message(_pod(refused)) == REASON
    assert refused_message(_pod({"terminated": {"exitCode": 2}})).startswith(
        "the engine exited with status 2"
    )
    # Other exits are crashes, not refusals.
    assert refused_message(_pod(waiting, {"terminated": {"exitCode": 1, "message": "x"}})) == ""
    assert refused_message(_pod({"running": {}})) == ""
    assert refused_message(None) == ""


def test_a_refusing_engine_is_failed_with_spec_valid_false() -> None:
    pod = PodView(exists=True, phase="Running", restarts=1, refused=REASON)
    obs = Observation(generation=2, pod=pod)
    phase, message = derive_phase(obs)
    assert phase is Phase.FAILED
    assert message == f"the engine refused its spec: {REASON}"
    conditions = {c.type: c for c in derive_conditions(obs, "2026-01-01T00:00:00Z")}
    valid = conditions[ConditionType.SPEC_VALID]
    assert (valid.status.value, valid.reason, valid.message) == ("False", "RefusedByEngine", REASON)
    # Once the engine runs (a fixed image), the old termination no longer counts.
    ready = PodView(exists=True, phase="Running", ready=True, refused=REASON)
    healthy = Observation(generation=2, pod=ready, engine=report(risk_state="ACTIVE"))
    assert derive_phase(healthy)[0] is Phase.RUNNING
    conditions = {c.type: c for c in derive_conditions(healthy, "2026-01-01T00:00:00Z")}
    assert conditions[ConditionType.SPEC_VALID].reason == "Valid"
