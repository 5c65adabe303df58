"""The operator's command groups for the `hean` command line (registered as entry points)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hean_operator.crds import drifted_crds, write_crds


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
