"""`hean sandbox`: run HEAN on one machine without Kubernetes or Docker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import click

from hean_sandbox.up import ExchangeSimOptions, Sandbox, SandboxOptions


@click.group()
def sandbox() -> None:
    """A local Kubernetes stand-in (API emulator, pod runner) with the operator in it."""


@sandbox.command()
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path(".hean/kubeconfig"),
    show_default=True,
    help="Where to write the kubeconfig that kubectl and clients use.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".hean/sandbox"),
    show_default=True,
    help="Pod directories (volumes, logs) and the operator's log.",
)
@click.option("--port", default=0, show_default=True, help="API server port (0: any free one).")
@click.option("--fake-pods", is_flag=True, help="Report pods Ready without running them (KWOK).")
@click.option("--no-operator", is_flag=True, help="Start only the API server and pod runner.")
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
    "--apply",
    "manifests",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="kubectl apply -f these once the sandbox is up (repeatable).",
)
def up(
    kubeconfig: Path,
    workdir: Path,
    port: int,
    fake_pods: bool,
    no_operator: bool,
    poll_interval: float,
    exchange_data: Path | None,
    exchange_port: int,
    exchange_speed: float,
    manifests: tuple[Path, ...],
) -> None:
    """Run the sandbox in the foreground until SIGINT/SIGTERM."""
    options = SandboxOptions(
        kubeconfig=kubeconfig.absolute(),
        workdir=workdir.absolute(),
        port=port,
        fake_pods=fake_pods,
        operator=not no_operator,
        operator_args=("--poll-interval", str(poll_interval)),
        exchange_sim=(
            ExchangeSimOptions(data=exchange_data, port=exchange_port, speed=exchange_speed)
            if exchange_data is not None
            else None
        ),
    )
    asyncio.run(_up(options, manifests))


async def _up(options: SandboxOptions, manifests: tuple[Path, ...]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    box = Sandbox(options)
    await box.start()
    try:
        kc = options.kubeconfig
        _say(f"sandbox API server: {box.apiserver.url}")
        _say(f"kubeconfig:         {kc}")
        if box.exchange is not None:
            _say(f"exchange simulator: {box.exchange.url}")
        if options.operator:
            _say(f"operator log:       {box.operator_log_path}")
        for manifest in manifests:
            await _kubectl(kc, "apply", "-f", str(manifest))
        _say("")
        _say(f"try:  kubectl --kubeconfig {kc} get tradingengines")
        _say("stop: Ctrl-C")
        await stop.wait()
    finally:
        _say("stopping the sandbox")
        await box.stop()


async def _kubectl(kubeconfig: Path, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "kubectl",
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    _say(out.decode().rstrip())
    if process.returncode != 0:
        raise click.ClickException(f"kubectl {' '.join(args)} failed")


def _say(text: str) -> None:
    click.echo(text)
    sys.stdout.flush()
