"""The operator's command groups for the `hean` command line (registered as entry points)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from hean_operator.chart_docs import ChartDocsError, readme_drifted, write_readme
from hean_operator.crds import drifted_crds, write_crds
from hean_operator.crds.reference import REFERENCE_FILES, drifted_references, write_reference


@click.group()
def crds() -> None:
    """Generate the CustomResourceDefinitions from the typed models."""


@crds.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("crds"),
    show_default=True,
    help="Directory to write the CRD YAML files into.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files drifted.")
def generate(out: Path, check: bool) -> None:
    """Write (or --check) the CRD YAML files."""
    if check:
        drifted = drifted_crds(out)
        if drifted:
            click.echo(
                f"error: {', '.join(drifted)} in {out} drifted from the models; "
                f"run `hean crds generate --out {out}`",
                err=True,
            )
            sys.exit(1)
        click.echo(f"{out}: up to date")
        return
    for path in write_crds(out):
        click.echo(f"wrote {path}")


@crds.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("docs/reference"),
    show_default=True,
    help=f"Directory to write {' and '.join(REFERENCE_FILES)} into.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file drifted.")
def reference(out: Path, check: bool) -> None:
    """Write (or --check) the CRD references (Markdown) generated from the CRDs."""
    if check:
        drifted = drifted_references(out)
        if drifted:
            click.echo(
                f"error: {', '.join(str(out / name) for name in drifted)} drifted from the "
                f"CRDs; run `hean crds reference --out {out}`",
                err=True,
            )
            sys.exit(1)
        click.echo(f"{', '.join(str(out / name) for name in REFERENCE_FILES)}: up to date")
        return
    for path in write_reference(out):
        click.echo(f"wrote {path}")


@click.group()
def chart() -> None:
    """Generate the Helm chart's documentation from its values."""


@chart.command()
@click.option(
    "--chart",
    "chart_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=Path("charts/hean"),
    show_default=True,
    help="The chart (its values.yaml and values.schema.json).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The README whose values table to write (default: the chart's README.md).",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the table is stale.")
def readme(chart_dir: Path, out: Path | None, check: bool) -> None:
    """Write (or --check) the values table in the chart's README."""
    out = out if out is not None else chart_dir / "README.md"
    try:
        if check:
            if readme_drifted(chart_dir, out):
                click.echo(
                    f"error: the values table in {out} is stale (values.yaml or "
                    f"values.schema.json changed); run `hean chart readme --chart {chart_dir} "
                    f"--out {out}`",
                    err=True,
                )
                sys.exit(1)
            click.echo(f"{out}: up to date")
            return
        write_readme(chart_dir, out)
    except (ChartDocsError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"wrote {out}")


@click.group(name="operator")
def operator_group() -> None:
    """Run the HEAN Kubernetes operator."""


@operator_group.command(name="run")
@click.option(
    "--namespace",
    "-n",
    "namespaces",
    multiple=True,
    help="Watch only this namespace (repeatable). Default: cluster-wide.",
)
@click.option("--poll-interval", default=10.0, show_default=True, help="Seconds between polls.")
@click.option("--engine-image", default=None, help="Container image of engine pods.")
@click.option(
    "--engine-command",
    default="hean",
    show_default=True,
    help="The engine image's entry point (the sandbox runs it as a local command).",
)
@click.option(
    "--engine-pull-policy",
    type=click.Choice(["Always", "IfNotPresent", "Never"]),
    default="IfNotPresent",
    show_default=True,
    help="imagePullPolicy of engine pods.",
)
@click.option(
    "--engine-requests",
    default="cpu=100m,memory=128Mi",
    show_default=True,
    callback=lambda ctx, param, value: _resources(param.name, value),
    help="Resource requests of engine pods, as name=quantity pairs.",
)
@click.option(
    "--engine-limits",
    default="memory=512Mi",
    show_default=True,
    callback=lambda ctx, param, value: _resources(param.name, value),
    help="Resource limits of engine pods (empty: none).",
)
@click.option(
    "--engine-allowed-repository",
    "engine_allowed_repositories",
    multiple=True,
    help="An image repository a TradingEngine's spec.image may name, besides the engine "
    "image's own; `REGISTRY/PATH/*` allows every repository below PATH. Repeatable.",
)
@click.option(
    "--metrics-port", default=8000, show_default=True, type=int, help="0 disables /metrics."
)
@click.option(
    "--liveness-port",
    default=8081,
    show_default=True,
    type=int,
    help="kopf's /healthz; 0 disables it.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default="json",
    show_default=True,
    help="JSON lines (with the resource's namespace/name) or human-readable text.",
)
@click.option(
    "--trust-configmap",
    default=None,
    envvar="HEAN_TRUST_CONFIGMAP",
    help="The ConfigMap with the LiveApproval trust policy (`<keyId>.pub` files and "
    "policy.yaml). Without it no key is trusted and no live engine starts.",
)
@click.option(
    "--trust-namespace",
    default=None,
    envvar="HEAN_TRUST_NAMESPACE",
    help="Namespace of the trust ConfigMap: the operator's own (default: the pod's "
    "namespace in a cluster, else `default`).",
)
@click.option("--verbose", is_flag=True, help="Debug logging.")
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="KUBECONFIG",
    help="Kubeconfig to use outside a cluster (default: in-cluster, then ~/.kube/config).",
)
def run_operator_command(
    namespaces: tuple[str, ...],
    poll_interval: float,
    engine_image: str | None,
    engine_command: str,
    engine_pull_policy: str,
    engine_requests: dict[str, str],
    engine_limits: dict[str, str],
    engine_allowed_repositories: tuple[str, ...],
    metrics_port: int,
    liveness_port: int,
    log_format: str,
    trust_configmap: str | None,
    trust_namespace: str | None,
    verbose: bool,
    kubeconfig: Path | None,
) -> None:
    """Run the operator until SIGINT/SIGTERM."""
    import asyncio
    import dataclasses

    try:
        from hean_operator.main import run_operator
    except ImportError as exc:  # an engine-only install (`pip install hean`)
        raise click.ClickException(
            f"the operator needs its dependencies: pip install 'hean[operator]' ({exc.name} is "
            "missing)"
        ) from None
    from hean_operator.builders.pod import EngineImage
    from hean_operator.settings import OperatorSettings

    image = EngineImage(
        command=(engine_command,),
        pull_policy=engine_pull_policy,
        requests=engine_requests,
        limits=engine_limits,
        allowed_repositories=engine_allowed_repositories,
    )
    if engine_image:
        image = dataclasses.replace(image, image=engine_image)
    # Where the servers listen: all addresses, as in a pod's own network namespace,
    # unless HEAN_HOST names one (the sandbox's node gives each pod a loopback IP
    # of its own, which is how pods share one machine's ports there).
    host = os.environ.get("HEAN_HOST") or "0.0.0.0"  # noqa: S104
    settings = OperatorSettings(
        namespaces=namespaces,
        poll_interval=poll_interval,
        metrics_host=host,
        metrics_port=metrics_port or None,
        liveness_endpoint=f"http://{host}:{liveness_port}/healthz" if liveness_port else None,
        image=image,
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        log_format=log_format,
        verbose=verbose,
        trust_configmap=trust_configmap or None,
        trust_namespace=trust_namespace or _own_namespace(),
    )
    freeze_startup_heap()
    asyncio.run(run_operator(settings))


def freeze_startup_heap() -> None:
    """Exempt what the operator has loaded so far from the cyclic garbage collector.

    The imports (kopf, the kubernetes client, pydantic's schemas) are most of the
    process's objects and live as long as it does; every full collection would
    scan them again. Frozen, a full collection scans only what came after: at 300
    engines created at once, the full collections' CPU time fell from 1.10 s to
    0.51 s (docs/benchmarks.md). Only for the operator's own process: a test that
    runs `run_operator` in-process keeps its collector as it is.
    """
    import gc

    gc.collect()  # no garbage of the start-up kept alive for good
    gc.freeze()


SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _own_namespace() -> str:
    """The namespace the operator's pod runs in (its service account says), else `default`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def _resources(option: str | None, text: str) -> dict[str, str]:
    """`cpu=100m,memory=128Mi` -> {"cpu": "100m", "memory": "128Mi"}."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, quantity = item.partition("=")
        if not sep or not name.strip() or not quantity.strip():
            raise click.BadParameter(
                f"expected name=quantity pairs such as cpu=100m,memory=128Mi, got {item!r}",
                param_hint=f"--{(option or '').replace('_', '-')}",
            )
        out[name.strip()] = quantity.strip()
    return out
