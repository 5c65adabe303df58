"""`hean sandbox`: a real Kubernetes control plane on one machine, with HEAN in it."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from hean_sandbox.controlplane.build import Binaries, BuildError, ensure_binaries
from hean_sandbox.up import ExchangeSimOptions, Sandbox, SandboxError, SandboxOptions


@click.group()
def sandbox() -> None:
    """Kubernetes built from source (etcd, kube-apiserver, controller manager, scheduler),
    a node that runs pods as local processes, and HEAN installed with helm."""


@sandbox.command()
@click.option(
    "--bin-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".hean/bin"),
    show_default=True,
    help="Where to link kubectl and helm for the shell.",
)
def build(bin_dir: Path) -> None:
    """Build (once) the control plane's binaries, kubectl and helm from the pinned Go modules."""
    binaries = _binaries()
    _link_clients(binaries.kubectl, binaries.helm, bin_dir)
    _say(f"binaries: {binaries.directory}")
    _say(f"kubectl and helm: {bin_dir}/")


@sandbox.command()
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path(".hean/kubeconfig"),
    show_default=True,
    help="Where to write the admin kubeconfig that kubectl and helm use.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".hean/sandbox"),
    show_default=True,
    help="The cluster's certificates and logs, and the pods' directories (volumes, logs).",
)
@click.option(
    "--bin-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".hean/bin"),
    show_default=True,
    help="Where to link the kubectl and helm built with the cluster.",
)
@click.option(
    "--fake-pods", is_flag=True, help="Report engine pods Ready without running them (KWOK)."
)
@click.option(
    "--no-operator", is_flag=True, help="Do not install the chart (cluster and node only)."
)
@click.option(
    "--poll-interval", default=5.0, show_default=True, help="The operator's engine poll interval."
)
@click.option(
    "--exchange-data",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Also run the exchange simulator replaying this market data file.",
)
@click.option("--exchange-port", default=9100, show_default=True, help="Exchange simulator port.")
@click.option(
    "--exchange-speed",
    default=60.0,
    show_default=True,
    help="Exchange simulator: data seconds per wall second.",
)
@click.option(
    "--image-venv",
    "image_venvs",
    multiple=True,
    callback=lambda ctx, param, value: _image_venvs(value),
    metavar="IMAGE=VENV",
    help="Run engine pods of IMAGE (a reference, or a repository for any tag) with the "
    "Python of the virtual environment VENV, where hean and a strategy package are "
    "installed; the repository is allowed in spec.image (repeatable).",
)
@click.option(
    "--apply",
    "manifests",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="kubectl apply -f these once the sandbox is up (repeatable).",
)
def up(
    kubeconfig: Path,
    workdir: Path,
    bin_dir: Path,
    fake_pods: bool,
    no_operator: bool,
    poll_interval: float,
    exchange_data: Path | None,
    exchange_port: int,
    exchange_speed: float,
    image_venvs: dict[str, Path],
    manifests: tuple[Path, ...],
) -> None:
    """Run the sandbox in the foreground until SIGINT/SIGTERM; stopping it stops every
    process it started (control plane, node, pods, simulator)."""
    _binaries()  # build first, with progress, before anything starts
    options = SandboxOptions(
        kubeconfig=kubeconfig.absolute(),
        workdir=workdir.absolute(),
        fake_pods=fake_pods,
        operator=not no_operator,
        namespace="default",
        operator_namespace="hean-system",
        release="hean",
        poll_interval=poll_interval,
        exchange_sim=(
            ExchangeSimOptions(data=exchange_data, port=exchange_port, speed=exchange_speed)
            if exchange_data is not None
            else None
        ),
        image_venvs=image_venvs,
        say=_say,
    )
    try:
        asyncio.run(_up(options, manifests, bin_dir))
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from None


def _binaries() -> Binaries:
    try:
        return ensure_binaries(_say)
    except BuildError as exc:
        raise click.ClickException(str(exc)) from None


def _link_clients(kubectl: Path, helm: Path, bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for source in (kubectl, helm):
        link = bin_dir / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)


async def _up(options: SandboxOptions, manifests: tuple[Path, ...], bin_dir: Path) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    box = Sandbox(options)
    try:
        await box.start()
        cp = box.control_plane
        assert cp is not None and box.binaries is not None
        _link_clients(box.binaries.kubectl, box.binaries.helm, bin_dir)
        kc = _relative(options.kubeconfig)
        kubectl = _relative(bin_dir / "kubectl")
        _say(f"API server:         {cp.url} (kube-apiserver {box.binaries.pins.kubernetes})")
        _say(f"kubeconfig:         {kc}")
        _say(f"node:               {box.node_name}")
        if box.exchange is not None:
            _say(f"exchange simulator: {box.exchange.url}")
        if options.operator:
            release, namespace = options.release, options.operator_namespace
            _say(f"operator:           helm release {release!r} in {namespace}")
        for manifest in manifests:
            _, out, _ = await box.kubectl("apply", "-f", str(manifest))
            _say(out.rstrip())
        _say("")
        _say(f"try:  {kubectl} --kubeconfig {kc} get tradingengines")
        _say("stop: Ctrl-C")
        await stop.wait()
    finally:
        _say("stopping the sandbox")
        await box.stop()


def _relative(path: Path) -> str:
    """The path as a user in the current directory would type it."""
    return (
        str(path.absolute().relative_to(Path.cwd()))
        if path.is_relative_to(Path.cwd())
        else str(path)
    )


def _say(text: str) -> None:
    click.echo(text)
    sys.stdout.flush()


def _image_venvs(pairs: tuple[str, ...]) -> dict[str, Path]:
    """`IMAGE=VENV` pairs; a bad pair is a usage error naming it."""
    venvs: dict[str, Path] = {}
    for pair in pairs:
        image, sep, venv = pair.partition("=")
        if not sep or not image or not venv:
            raise click.BadParameter(f"{pair!r}: expected IMAGE=VENV", param_hint="--image-venv")
        python = Path(venv) / "bin" / "python"
        if not python.exists():
            raise click.BadParameter(
                f"{pair!r}: {python} does not exist (VENV must be a virtual environment)",
                param_hint="--image-venv",
            )
        venvs[image] = Path(venv).absolute()
    return venvs
