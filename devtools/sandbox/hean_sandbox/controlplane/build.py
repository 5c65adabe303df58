"""Build the control plane's binaries from the Go modules pinned in `cluster/`.

`cluster/kubernetes/go.mod` pins k8s.io/kubernetes (kube-apiserver,
kube-controller-manager, kube-scheduler, kubectl) and helm.sh/helm/v4, whose
k8s.io modules are the same release; `cluster/etcd/go.mod` pins etcd's server
(its own module: etcd 3.6's server does not build against the 3.7 client
libraries that Kubernetes requires). `go build` fetches nothing but Go modules
(through the Go module proxy) and no prebuilt binary is downloaded.

The binaries are built once into `~/.cache/hean/controlplane/<key>/bin/`, where
the key is a hash of the four go.mod/go.sum files, the Go version and the
platform: the same pins on the same toolchain reuse them; any change of pin
builds a new set beside the old. A build holds a file lock, so two processes
(a sandbox and a test run) never build the same set at once, and it appears in
the cache only when complete (built into a temporary directory, then renamed).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "helm",
)

# The Go module that builds each binary: (module folder under cluster/, package).
PACKAGES: dict[str, tuple[str, str]] = {
    "etcd": ("etcd", "go.etcd.io/etcd/server/v3"),
    "kube-apiserver": ("kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver"),
    "kube-controller-manager": ("kubernetes", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    "kube-scheduler": ("kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler"),
    "kubectl": ("kubernetes", "k8s.io/kubernetes/cmd/kubectl"),
    "helm": ("kubernetes", "helm.sh/helm/v4/cmd/helm"),
}

Say = Callable[[str], None]


class BuildError(RuntimeError):
    """The control plane cannot be built here (no Go, no cluster/ folder, a failed build)."""


@dataclass(frozen=True)
class Pins:
    kubernetes: str  # e.g. v1.37.2
    helm: str
    etcd: str


@dataclass(frozen=True)
class Binaries:
    directory: Path
    pins: Pins

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def kubectl(self) -> Path:
        return self.path("kubectl")

    @property
    def helm(self) -> Path:
        return self.path("helm")


def cluster_dir() -> Path:
    """The repository's `cluster/` folder ($HEAN_CLUSTER_DIR overrides)."""
    override = os.environ.get("HEAN_CLUSTER_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[4] / "cluster"


def cache_root() -> Path:
    override = os.environ.get("HEAN_CONTROLPLANE_CACHE")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hean" / "controlplane"


def _require(module: str, go_mod: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod, re.MULTILINE)
    if match is None:
        raise BuildError(f"cluster/: no pin of {module} in go.mod")
    return match.group(1)


def read_pins(source: Path | None = None) -> Pins:
    source = source or cluster_dir()
    kube = (source / "kubernetes" / "go.mod").read_text()
    etcd = (source / "etcd" / "go.mod").read_text()
    return Pins(
        kubernetes=_require("k8s.io/kubernetes", kube),
        helm=_require("helm.sh/helm/v4", kube),
        etcd=_require("go.etcd.io/etcd/server/v3", etcd),
    )


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the Go toolchain is not on PATH: the sandbox builds Kubernetes from source "
            "(Go 1.26 or newer, https://go.dev/doc/install)"
        )
    return go


def _go_version(go: str) -> str:
    return (
        subprocess.run(  # noqa: S603 - the go found on PATH, fixed arguments
            [go, "env", "GOVERSION", "GOOS", "GOARCH"], capture_output=True, text=True, check=True
        )
        .stdout.replace("\n", " ")
        .strip()
    )


def cache_key(source: Path | None = None, go: str | None = None) -> str:
    source = source or cluster_dir()
    digest = hashlib.sha256()
    for module in ("kubernetes", "etcd"):
        for name in ("go.mod", "go.sum"):
            path = source / module / name
            if not path.is_file():
                raise BuildError(f"missing {path}: the control plane's Go modules are not here")
            digest.update(f"{module}/{name}\0".encode())
            digest.update(path.read_bytes())
    digest.update(_go_version(go or _go()).encode())
    digest.update(b"ldflags-v1")
    return digest.hexdigest()[:16]


def _ldflags(name: str, pins: Pins) -> str:
    """Version stamps that Kubernetes' own build (hack/lib/version.sh) sets, so that
    `kubectl version` reports the pinned release rather than v0.0.0-master."""
    if name == "helm":
        return f"-s -w -X helm.sh/helm/v4/internal/version.version={pins.helm}"
    if name == "etcd":
        return "-s -w"
    version = pins.kubernetes
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in stamps.items()]
    return " ".join(flags)


def find_binaries() -> Binaries | None:
    """The built set for the current pins, or None when it has not been built."""
    try:
        directory = cache_root() / cache_key() / "bin"
        pins = read_pins()
    except BuildError:
        return None
    if all((directory / name).is_file() for name in BINARIES):
        return Binaries(directory, pins)
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_binaries(say: Say = print) -> Binaries:
    """Build (once) and return the control plane's binaries for the pinned modules."""
    go = _go()
    source = cluster_dir()
    key = cache_key(source, go)
    pins = read_pins(source)
    home = cache_root() / key
    directory = home / "bin"
    if all((directory / name).is_file() for name in BINARIES):
        return Binaries(directory, pins)
    with _locked(cache_root() / f"{key}.lock"):
        if all((directory / name).is_file() for name in BINARIES):  # built while we waited
            return Binaries(directory, pins)
        say(
            f"building the control plane from Go modules (Kubernetes {pins.kubernetes}, "
            f"etcd {pins.etcd}, helm {pins.helm}) into {home}; the first build takes minutes"
        )
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="bin.", dir=home))
        started = time.monotonic()
        timings: dict[str, float] = {}
        for index, name in enumerate(BINARIES, 1):
            module, package = PACKAGES[name]
            say(f"  [{index}/{len(BINARIES)}] go build {package}")
            began = time.monotonic()
            result = subprocess.run(  # noqa: S603 - go build of a pinned package
                [
                    go,
                    "build",
                    "-trimpath",
                    "-ldflags",
                    _ldflags(name, pins),
                    "-o",
                    str(staging / name),
                    package,
                ],
                cwd=source / module,
                capture_output=True,
                text=True,
                # readonly: the pins are exactly go.sum; no VCS stamp: the build must not
                # depend on the checkout (a tarball, a shallow clone) around cluster/.
                env={**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false"},
                check=False,
            )
            if result.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                raise BuildError(f"go build {package} failed:\n{result.stderr[-4000:]}")
            timings[name] = round(time.monotonic() - began, 1)
            say(f"        {name}: {timings[name]:.1f} s")
        total = time.monotonic() - started
        (staging / "build.json").write_text(
            json.dumps(
                {
                    "pins": pins.__dict__,
                    "go": _go_version(go),
                    "seconds": timings,
                    "total_seconds": round(total, 1),
                    "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                indent=2,
            )
        )
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
        size = sum(path.stat().st_size for path in directory.iterdir()) / 2**20
        say(f"control plane built in {total:.0f} s ({size:.0f} MiB in {directory})")
        return Binaries(directory, pins)
