"""Installing strategy packages into throwaway directories, for the plugin tests.

The engine finds a strategy through its distribution's entry points, which
`importlib.metadata` reads from the `*.dist-info` directories on `sys.path`.
`install_project` installs a package directory into a target as pip's
`install --target` lays it out (the import package plus a dist-info holding
METADATA and entry_points.txt), read from the project's own pyproject.toml,
without building a wheel: setuptools' wheel build needs the network here (its
build isolation downloads setuptools), and tests must not. `write_package`
makes a tiny package from source text, for the error cases.

Put the target on `sys.path` (monkeypatch.syspath_prepend) or on PYTHONPATH of
a subprocess; never into the shared virtual environment.
"""

from __future__ import annotations

import re
import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

from engine_support import EXAMPLES_DIR

RSI_EXAMPLE = EXAMPLES_DIR / "strategies" / "hean-rsi"


def _dist_info(
    target: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]
) -> None:
    folder = target / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines: list[str] = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in entries.items())
        lines.append("")
    (folder / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")


def install_project(project: Path, target: Path) -> Path:
    """Install the project at `project` (setuptools, explicit `packages`) into `target`."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    meta = pyproject["project"]
    for package in pyproject["tool"]["setuptools"]["packages"]:
        shutil.copytree(
            project / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    _dist_info(target, meta["name"], meta["version"], meta.get("entry-points", {}))
    return target


def write_package(
    target: Path, module: str, source: str, entry_points: dict[str, str], *, dist: str = ""
) -> Path:
    """A one-module distribution in `target` whose `hean.strategies` are `entry_points`."""
    target.mkdir(parents=True, exist_ok=True)
    (target / f"{module}.py").write_text(source, encoding="utf-8")
    _dist_info(target, dist or module.replace("_", "-"), "0.1", {"hean.strategies": entry_points})
    return target


def venv_with_project(project: Path, root: Path) -> Path:
    """A virtual environment as an image derived from the engine image is: HEAN's
    environment plus the project. hean and its dependencies come from the
    environment running the tests (a .pth file, like an image's base layers); the
    project is installed into the venv's own site-packages."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [packages] = venv.glob("lib/python*/site-packages")
    # `import` lines of a .pth run at start-up: addsitedir also reads the base's own
    # .pth files, so an editable install of hean (a finder hook) is found too.
    lines = [f"import site; site.addsitedir({path!r})" for path in site.getsitepackages()]
    (packages / "hean-base.pth").write_text("\n".join(lines) + "\n")
    install_project(project, packages)
    return venv
