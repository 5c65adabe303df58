"""The Tiltfile, evaluated with starlark-pyo3 against recorded stubs of Tilt's API.

Nothing is built or deployed (no Docker, no cluster): the stubs record what
the Tiltfile asks Tilt for (tests/repo/tilt/tilt_stubs.py), `helm()` renders the
chart with the helm binary the chart tests use, and the checks below compare
the result with the Dockerfiles, the chart and the operator's code.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import starlark
import yaml
from tilt_stubs import (
    API,
    Blob,
    FallBackOn,
    Run,
    Sync,
    TiltfileError,
    TiltRun,
    evaluate_tiltfile,
    image_name,
)

from hean_operator.builders.common import CONTROL_PORT, EngineRef, labels

REPO_ROOT = Path(__file__).resolve().parents[3]
TILTFILE = REPO_ROOT / "Tiltfile"
ENGINE_DOCKERFILE = REPO_ROOT / "docker" / "engine.Dockerfile"
OPERATOR_DOCKERFILE = REPO_ROOT / "docker" / "operator.Dockerfile"
CHART_SUPPORT = REPO_ROOT / "tests" / "repo" / "chart" / "chart_support.py"
CONTEXT = "kind-hean"


def _chart_support() -> ModuleType:
    name = "hean_tilt_chart_support"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, CHART_SUPPORT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def helm_setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, str]]:
    support = _chart_support()
    binary = support.find_helm()
    if binary is None:
        pytest.fail("no helm binary: `hean sandbox build` builds it from cluster/ (needs Go)")
    helm = support.Helm(binary, tmp_path_factory.mktemp("tilt-helm-home"))
    return binary, helm.env


def _evaluate(
    helm_setup: tuple[Path, dict[str, str]], context: str = CONTEXT, source: str | None = None
) -> TiltRun:
    binary, env = helm_setup
    return evaluate_tiltfile(
        TILTFILE, context=context, helm_binary=binary, helm_env=env, source=source
    )


@pytest.fixture(scope="module")
def tilt(helm_setup: tuple[Path, dict[str, str]]) -> TiltRun:
    return _evaluate(helm_setup)


# -- what the Dockerfiles say -------------------------------------------------------


def _dockerfile_env(path: Path, key: str) -> str:
    match = re.search(rf"^\s*{key}=(\S+?)\s*\\?$", path.read_text(), re.M)
    assert match, f"{path.name}: no ENV {key}"
    return match.group(1)


def _site_packages(path: Path) -> str:
    """The site-packages that the image's venv installs hean into."""
    venv = _dockerfile_env(path, "VIRTUAL_ENV")
    runtime_from = re.findall(
        r"^FROM\s+python:(\d+)\.(\d+)\.\S*\s+AS\s+runtime$", path.read_text(), re.M
    )
    assert len(runtime_from) == 1, f"{path.name}: one python:X.Y runtime stage expected"
    major, minor = runtime_from[0]
    return f"{venv}/lib/python{major}.{minor}/site-packages"


def _runtime_user(path: Path) -> str:
    users = re.findall(r"^USER\s+(\d+)(?::\d+)?\s*$", path.read_text(), re.M)
    assert users, f"{path.name}: no numeric USER"
    return str(users[-1])


def _wheel_packages() -> dict[str, str]:
    """Source directory (relative) -> top-level package, from pyproject's packages.find."""
    find = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]
    out = {}
    for where in find["where"]:
        for package in sorted((REPO_ROOT / where).iterdir()):
            if (package / "__init__.py").is_file():
                out[f"{where}/{package.name}"] = package.name
    return out


def _operator_container(run: TiltRun) -> dict[str, Any]:
    deployment = run.find("Deployment", "hean")
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = [c for c in containers if c["name"] == "operator"]
    return container


def _supervisor_script(run: TiltRun) -> str:
    contents = run.image("hean-operator").contents
    entrypoint = run.image("hean-operator").kwargs["entrypoint"][0]
    match = re.search(
        rf"^COPY [^\n]*<<'EOF' {re.escape(entrypoint)}\n(.*?)^EOF$", contents, re.M | re.S
    )
    assert match, "the dev stage writes the supervisor with a COPY heredoc"
    return match.group(1)


# -- images ------------------------------------------------------------------------------


def test_builds_both_images_from_the_dockerfiles_with_the_repo_root_as_context(
    tilt: TiltRun,
) -> None:
    assert sorted(i.ref for i in tilt.images) == ["hean-engine", "hean-operator"]
    for image in tilt.images:
        assert image.context == REPO_ROOT
        assert image.kwargs.get("build_args") is None
    engine = tilt.image("hean-engine")
    assert engine.dockerfile == ENGINE_DOCKERFILE
    assert engine.dockerfile_contents is None
    # The operator image is docker/operator.Dockerfile, unchanged, plus a dev stage
    # built on its `runtime` stage.
    operator = tilt.image("hean-operator")
    assert operator.dockerfile_contents is not None
    released = OPERATOR_DOCKERFILE.read_text()
    assert operator.dockerfile_contents.startswith(released)
    dev_stage = operator.dockerfile_contents[len(released) :]
    target = operator.kwargs["target"]
    assert re.search(rf"^FROM runtime AS {target}$", dev_stage, re.M)
    assert re.search(r"^FROM\s+\S+\s+AS runtime$", released, re.M)
    assert dev_stage.count("FROM ") == 1
    # ...and it ends as the runtime user again.
    assert _runtime_user(OPERATOR_DOCKERFILE) == "10001"
    assert re.findall(r"^USER\s+(\S+)\s*$", dev_stage, re.M)[-1] == "10001:10001"


def test_every_built_image_is_deployed_and_refs_match_the_chart(tilt: TiltRun) -> None:
    resources = tilt.resources
    assert resources["hean"].images == {"hean-operator", "hean-engine"}
    (helm_call,) = tilt.helm_calls
    assert helm_call["chart"] == "charts/hean"
    assert helm_call["name"] == "hean"
    assert helm_call["namespace"] == "hean-system"
    sets = dict(s.split("=", 1) for s in helm_call["set"])
    assert sets["image.repository"] == "hean-operator"
    assert sets["engine.image.repository"] == "hean-engine"
    container = _operator_container(tilt)
    assert image_name(container["image"]) == "hean-operator"
    assert container["image"] == f"hean-operator:{sets['image.tag']}"


def test_engine_pods_get_the_dev_engine_image_through_an_env_var(tilt: TiltRun) -> None:
    # Tilt rewrites image refs in env values (match_in_env_vars), not inside
    # args: the operator's --engine-image takes the ref from HEAN_ENGINE_IMAGE.
    assert tilt.image("hean-engine").kwargs["match_in_env_vars"] is True
    container = _operator_container(tilt)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert image_name(env["HEAN_ENGINE_IMAGE"]) == "hean-engine"
    engine_args = [a for a in container["args"] if a.startswith("--engine-image")]
    assert engine_args == ["--engine-image=$(HEAN_ENGINE_IMAGE)"]
    # Kubernetes expands $(VAR) in args from the container's env: the operator
    # sees what the chart rendered for engine.image.
    expanded = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], engine_args[0])
    sets = dict(s.split("=", 1) for s in tilt.helm_calls[0]["set"])
    assert expanded == f"--engine-image=hean-engine:{sets['engine.image.tag']}"
    # The rest of the chart's arguments are untouched.
    others = [a for a in container["args"] if not a.startswith("--engine-image")]
    assert others[:2] == ["operator", "run"]
    assert "--metrics-port=8000" in others
    assert "--liveness-port=8081" in others


def test_installs_the_chart_with_its_crd_and_namespace_in_one_resource(tilt: TiltRun) -> None:
    hean = tilt.resources["hean"]
    kinds = {(o.kind, o.name) for o in hean.objects}
    assert ("Deployment", "hean") in kinds
    assert ("Service", "hean") in kinds  # grouped by Tilt through its selector
    assert ("Namespace", "hean-system") in kinds
    assert ("CustomResourceDefinition", "tradingengines.hean.io") in kinds
    assert ("ServiceAccount", "hean") in kinds
    # helm test pods are not deployed
    assert not [
        o for o in tilt.objects if "helm.sh/hook" in (o.obj["metadata"].get("annotations") or {})
    ]
    assert not [o for o in tilt.objects if o.kind == "Pod"]
    # The CRD is the chart's copy, unchanged.
    crd = tilt.find("CustomResourceDefinition", "tradingengines.hean.io")
    shipped = yaml.safe_load(
        (REPO_ROOT / "charts/hean/crds/tradingengines.hean.io.yaml").read_text()
    )
    assert crd["spec"] == shipped["spec"]


def test_applies_the_paper_engine_example_only(tilt: TiltRun) -> None:
    assert "examples/paper-engine.yaml" in tilt.yaml_sources
    assert not [s for s in tilt.yaml_sources if "sandbox" in s or "replay" in s]
    engines = [o for o in tilt.objects if o.kind == "TradingEngine"]
    assert [(o.name, o.source) for o in engines] == [("btc-paper", "examples/paper-engine.yaml")]
    # The TradingEngine is a Tilt workload (its pod is found through its
    # ownerReference), deployed after the operator and its CRD.
    (kind,) = tilt.kinds
    assert kind["kind"] == "TradingEngine"
    crd = tilt.find("CustomResourceDefinition", "tradingengines.hean.io")
    versions = [f"{crd['spec']['group']}/{v['name']}" for v in crd["spec"]["versions"]]
    assert engines[0].obj["apiVersion"] in versions
    assert re.fullmatch(kind["api_version"], engines[0].obj["apiVersion"])
    btc = tilt.resources["btc-paper"]
    assert [o.kind for o in btc.objects] == ["TradingEngine"]
    assert btc.resource_deps == ["hean"]


def test_forwards_operator_metrics_liveness_and_the_engine_port(tilt: TiltRun) -> None:
    forwards = tilt.all_port_forwards()
    assert sorted(forwards) == [8000, 8080, 8081]
    assert {port: name for port, (name, _) in forwards.items()} == {
        8000: "hean",
        8081: "hean",
        8080: "btc-paper",
    }
    # Container ports exist: the chart's operator ports, the engine's control port.
    container_ports = {p["containerPort"] for p in _operator_container(tilt)["ports"]}
    for port in (8000, 8081):
        assert forwards[port][1].container_port in container_ports
    assert forwards[8080][1].container_port == CONTROL_PORT == 8080


def test_live_update_syncs_sources_into_the_installed_site_packages(tilt: TiltRun) -> None:
    operator = tilt.image("hean-operator")
    site = _site_packages(OPERATOR_DOCKERFILE)
    assert site == "/opt/hean/lib/python3.11/site-packages"
    steps = operator.live_update
    assert isinstance(steps[0], FallBackOn)
    assert REPO_ROOT / "pyproject.toml" in steps[0].files
    synced = {s.local_path.relative_to(REPO_ROOT).as_posix(): s.remote_path for s in operator.syncs}
    expected = {source: f"{site}/{package}" for source, package in _wheel_packages().items()}
    assert synced == expected
    assert synced["engine/hean_engine"] == f"{site}/hean_engine"
    assert synced["operator/hean_operator"] == f"{site}/hean_operator"
    # The dev stage hands exactly those directories to the runtime user...
    dev_stage = operator.contents[len(OPERATOR_DOCKERFILE.read_text()) :]
    (chown,) = re.findall(r"^RUN chown -R (\S+) (.+)$", dev_stage, re.M)
    user = _runtime_user(OPERATOR_DOCKERFILE)
    assert chown[0] == f"{user}:{user}"
    assert sorted(chown[1].split()) == sorted(expected.values())
    # ...and the operator container may write its root filesystem (dev only).
    assert _operator_container(tilt)["securityContext"]["readOnlyRootFilesystem"] is False
    # The engine image has no live update (engine pods are the operator's).
    assert tilt.image("hean-engine").live_update == []


def test_live_update_restarts_the_operator_process_through_the_supervisor(tilt: TiltRun) -> None:
    operator = tilt.image("hean-operator")
    (run_step,) = operator.runs
    assert isinstance(run_step, Run)
    assert isinstance(run_step.cmd, str)
    restart_file = re.fullmatch(r"date \+%s%N > (/tmp/\S+)", run_step.cmd)
    assert restart_file, run_step.cmd
    script = _supervisor_script(tilt)
    assert f'restart_file="${{HEAN_DEV_RESTART_FILE:-{restart_file.group(1)}}}"' in script
    # /tmp is the pod's writable emptyDir
    deployment = tilt.find("Deployment", "hean")
    mounts = {m["mountPath"] for m in _operator_container(tilt)["volumeMounts"]}
    assert "/tmp" in mounts
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in deployment["spec"]["template"][
        "spec"
    ]["volumes"]
    # The supervisor replaces the chart's `command: [hean]`; the args stay.
    assert operator.kwargs["entrypoint"] == [operator.kwargs["entrypoint"][0]]
    assert operator.kwargs["entrypoint"][0].startswith("/opt/hean/bin/")
    assert _operator_container(tilt)["command"] == ["hean"]


def _write_fake_hean(bin_dir: Path, log: Path, body: str) -> None:
    bin_dir.mkdir()
    hean = bin_dir / "hean"
    hean.write_text(f'#!/bin/sh\necho "start $*" >> "{log}"\n{body}\n')
    hean.chmod(0o755)


def _wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_supervisor_restarts_hean_when_the_restart_file_changes(
    tilt: TiltRun, tmp_path: Path
) -> None:
    script = tmp_path / "hean-tilt-dev"
    script.write_text(_supervisor_script(tilt))
    script.chmod(0o755)
    log = tmp_path / "log"
    log.touch()
    _write_fake_hean(
        tmp_path / "bin",
        log,
        "trap 'echo stop >> \"" + str(log) + "\"; exit 0' TERM\nwhile :; do sleep 0.05; done",
    )
    restart = tmp_path / "restart"
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "HEAN_DEV_RESTART_FILE": str(restart),
        "HEAN_DEV_POLL_SECONDS": "0.05",
    }
    proc = subprocess.Popen(["/bin/sh", str(script), "operator", "run", "--x=1"], env=env)
    try:
        _wait_for(lambda: log.read_text().count("start") == 1)
        restart.write_text("1\n")  # what the live update's run() step does
        _wait_for(lambda: log.read_text().count("start") == 2)
        assert log.read_text().splitlines()[:3] == [
            "start operator run --x=1",
            "stop",
            "start operator run --x=1",
        ]
        time.sleep(0.2)  # no further restart without a further change
        assert log.read_text().count("start") == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
        assert log.read_text().count("stop") == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_supervisor_exits_with_hean_s_status(tilt: TiltRun, tmp_path: Path) -> None:
    script = tmp_path / "hean-tilt-dev"
    script.write_text(_supervisor_script(tilt))
    log = tmp_path / "log"
    _write_fake_hean(tmp_path / "bin", log, "exit 3")
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "HEAN_DEV_RESTART_FILE": str(tmp_path / "restart"),
        "HEAN_DEV_POLL_SECONDS": "0.05",
    }
    done = subprocess.run(["/bin/sh", str(script)], env=env, timeout=5, check=False)
    assert done.returncode == 3
    assert log.read_text().count("start") == 1


def test_restart_engines_button_matches_the_operator_s_pod_labels(tilt: TiltRun) -> None:
    options = tilt.local_resources["restart-engines"]
    assert options["trigger_mode"] == "TRIGGER_MODE_MANUAL"
    assert options["auto_init"] is False
    assert options["resource_deps"] == ["hean"]
    cmd = options["cmd"]
    assert cmd.startswith(f"kubectl --context {CONTEXT} delete pods --all-namespaces -l ")
    selector = cmd.split(" -l ", 1)[1].split()[0]
    pod_labels = labels(EngineRef("btc-paper", "default", "uid", 1), "engine")
    wanted = dict(pair.split("=") for pair in selector.split(","))
    assert wanted.items() <= pod_labels.items()


# -- contexts -----------------------------------------------------------------------------


@pytest.mark.parametrize("context", ["kind-hean", "kind-other"])
def test_allows_kind_contexts(helm_setup: tuple[Path, dict[str, str]], context: str) -> None:
    run = _evaluate(helm_setup, context=context)
    assert run.allowed_contexts == [context]


@pytest.mark.parametrize(
    "context", ["docker-desktop", "minikube", "gke_prod_europe-west1_trading", "kind"]
)
def test_refuses_other_contexts(helm_setup: tuple[Path, dict[str, str]], context: str) -> None:
    with pytest.raises(starlark.StarlarkError, match="kind cluster only"):
        _evaluate(helm_setup, context=context)


# -- the stubs are strict -------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            "docker_build(\n        OPERATOR_IMAGE",
            "docker_buidl(\n        OPERATOR_IMAGE",
            "not found",
        ),
        ("match_in_env_vars=True", "match_in_env_var=True", "unexpected keyword"),
        ("port_forward(8081, 8081, name=", "port_forward(8081, 8081, nam=", "unexpected keyword"),
        ("labels=['operator'],", "label=['operator'],", "unexpected keyword"),
        (
            "if obj['kind'] not in ('Deployment', 'Service')",
            "if obj['kind'] != 'Deployment'",
            "remaining YAML",
        ),
        (
            "resource_deps=[RELEASE],  # the",
            "resource_deps=['operator'],  # the",
            "unknown resource_deps",
        ),
        ("sync(source, SITE", "sync('docker/' + source, SITE", "does not exist"),
        ("target='tilt-dev',", "target='dev',", "no stage named"),
        ("match_in_env_vars=True,", "", "Image not used"),
    ],
)
def test_stubs_catch_mistakes(
    helm_setup: tuple[Path, dict[str, str]], old: str, new: str, error: str
) -> None:
    source = TILTFILE.read_text()
    assert source.count(old) == 1, old
    with pytest.raises((starlark.StarlarkError, TiltfileError), match=error):
        _evaluate(helm_setup, source=source.replace(old, new))


def test_live_update_step_order_is_checked(helm_setup: tuple[Path, dict[str, str]]) -> None:
    source = TILTFILE.read_text().replace(
        "fall_back_on(['pyproject.toml']),\n        ] + [",
        "run('true'),\n        ] + [",
    )
    with pytest.raises(starlark.StarlarkError, match="fall_back_on steps come first"):
        _evaluate(helm_setup, source=source)


def test_api_table_covers_what_the_tiltfile_calls(tilt: TiltRun) -> None:
    called = {name for name, _ in tilt.calls}
    assert called <= set(API)
    assert {
        "docker_build",
        "helm",
        "k8s_yaml",
        "k8s_resource",
        "k8s_kind",
        "local_resource",
        "allow_k8s_contexts",
        "sync",
        "run",
        "fall_back_on",
        "port_forward",
    } <= called
    assert isinstance(Blob("x", "y"), Blob)
    assert isinstance(tilt.image("hean-operator").syncs[0], Sync)
