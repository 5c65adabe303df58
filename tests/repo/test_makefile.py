"""The Makefile: every target dry-runs (`make -n`), `make` lists them, and the
install/test/demo commands are the README's quick-start commands.

Nothing is executed but `make -n` and `make help` (which only runs awk).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = REPO_ROOT / "Makefile"
TARGETS = (
    "help",
    "install",
    "test",
    "lint",
    "crds",
    "chart",
    "chart-docs",
    "demo",
    "images",
    "kind-up",
    "kind-install",
    "kind-down",
)
# Tools the cluster targets need on PATH (the Makefile's header says so).
PREREQUISITES = {"docker", "kind", "kubectl", "helm", "tilt"}

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def dry_run(target: str) -> list[str]:
    """The commands `make -n` prints, continuation lines joined."""
    text = make("-n", target).replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def readme_commands() -> list[str]:
    """The lines of README.md's first bash block."""
    readme = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert match, "README.md has no bash block"
    return [line.strip() for line in match.group(1).splitlines() if line.strip()]


def test_makefile_declares_every_target_with_a_description() -> None:
    text = MAKEFILE.read_text()
    described = dict(re.findall(r"^([a-z][a-z0-9-]*):[^\n#]*## (.+)$", text, re.M))
    assert set(TARGETS) <= set(described)
    assert re.search(r"^\.DEFAULT_GOAL := help$", text, re.M)
    phony = re.search(r"^\.PHONY: (.+)$", text, re.M)
    assert phony
    assert set(TARGETS) <= set(phony.group(1).split())
    for tool in PREREQUISITES:
        assert tool in text.split("\n\n", 1)[0], f"the header should name {tool}"


@needs_make
def test_default_target_lists_every_target() -> None:
    rows = [line.split(None, 1) for line in make().splitlines() if line.strip()]
    listed = {row[0]: row[1] if len(row) > 1 else "" for row in rows}
    assert set(listed) == set(TARGETS)
    assert all(description.strip() for description in listed.values())


@needs_make
@pytest.mark.parametrize("target", TARGETS)
def test_target_dry_runs(target: str) -> None:
    assert dry_run(target)


@needs_make
def test_install_test_and_demo_are_the_readme_commands() -> None:
    first, second = readme_commands()[:2]
    venv, pip, sandbox = first.split(" && ")
    assert dry_run("install") == [f"{venv} && {pip}"]
    assert dry_run("demo") == [sandbox]
    assert dry_run("test") == [second]


@needs_make
def test_commands_exist_and_paths_point_into_the_repo() -> None:
    venv_bin = REPO_ROOT / ".venv" / "bin"
    for target in TARGETS:
        if target == "help":
            continue
        for command in dry_run(target):
            for part in re.split(r"&&|\|\|", command):
                words = shlex.split(part)
                if not words:
                    continue
                program = words[0]
                if program.startswith(".venv/bin/"):
                    assert (venv_bin / program.removeprefix(".venv/bin/")).exists(), program
                else:
                    assert program in PREREQUISITES | {"python3", "cp"}, program
                for word in words[1:]:
                    for prefix in ("docker/", "charts/", "examples/", "tests/"):
                        if word.startswith(prefix):
                            assert (REPO_ROOT / word).exists(), f"{target}: {word}"


@needs_make
def test_crds_target_regenerates_into_the_chart() -> None:
    commands = dry_run("crds")
    assert commands[0] == ".venv/bin/hean crds generate --out crds"
    assert commands[1] == "cp crds/*.yaml charts/hean/crds/"
    assert (REPO_ROOT / "charts/hean/crds").is_dir()


@needs_make
def test_chart_docs_target_regenerates_the_chart_readme() -> None:
    assert dry_run("chart-docs") == [
        ".venv/bin/hean chart readme --chart charts/hean --out charts/hean/README.md"
    ]


@needs_make
def test_images_and_kind_install_use_the_chart_s_image_values() -> None:
    builds = [shlex.split(c) for c in dry_run("images")]
    tags = {words[words.index("-f") + 1]: words[words.index("-t") + 1] for words in builds}
    assert tags == {
        "docker/operator.Dockerfile": "hean-operator:dev",
        "docker/engine.Dockerfile": "hean-engine:dev",
    }
    assert all(words[-1] == "." for words in builds)  # the repo root as context
    # The same refs as the Tiltfile builds.
    tiltfile = (REPO_ROOT / "Tiltfile").read_text()
    assert "OPERATOR_IMAGE = 'hean-operator'" in tiltfile
    assert "ENGINE_IMAGE = 'hean-engine'" in tiltfile
    (helm,) = [c for c in dry_run("kind-install") if c.startswith("helm ")]
    sets = dict(s.split("=", 1) for s in re.findall(r"--set (\S+)", helm))
    values = yaml.safe_load((REPO_ROOT / "charts/hean/values.yaml").read_text())
    for key in sets:
        node = values
        for part in key.split("."):
            assert part in node, f"{key} is not a chart value"
            node = node[part]
    assert f"{sets['image.repository']}:{sets['image.tag']}" == "hean-operator:dev"
    assert f"{sets['engine.image.repository']}:{sets['engine.image.tag']}" == "hean-engine:dev"
