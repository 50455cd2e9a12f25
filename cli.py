"""vtondata command line: a thin Typer layer.

Every command parses its arguments and calls exactly one function of the packages
(`vtondata`, `annotate`, `bench`). Imports are done inside the commands so that
`vtondata --help` stays fast. Errors of our own types (`vtondata.errors.VtonDataError`)
are printed as one clear message with the file, line and fix, and exit with code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    name="vtondata",
    help="Ingest, validate, cache, browse and benchmark virtual try-on datasets and models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
fixtures_app = typer.Typer(help="Generate synthetic datasets in the official layouts.", no_args_is_help=True)
app.add_typer(fixtures_app, name="fixtures")


def _run(fn, *args, **kwargs):
    """Call a package function; turn our typed errors into a clean message and exit code 2."""
    from vtondata.errors import VtonDataError

    try:
        return fn(*args, **kwargs)
    except VtonDataError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=exc.exit_code)


# --------------------------------------------------------------------------- data layer


@app.command()
def prepare(
    dataset: str = typer.Argument(..., help="viton | viton-hd | mpv | deepfashion | strat"),
    root: Path = typer.Option(..., "--root", help="Dataset root exactly as distributed (never modified)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Manifest directory (default $VTONDATA_HOME/<dataset>)."),
    layout: Optional[str] = typer.Option(None, "--layout", help="Force a layout variant instead of detecting it."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the input fingerprint is unchanged."),
    deep: bool = typer.Option(False, "--deep", help="Decode every image (default: headers, masks and parses)."),
    lenient: bool = typer.Option(False, "--lenient/--strict", help="--lenient drops bad rows and writes a report."),
    workers: int = typer.Option(0, "--workers", help="I/O threads (0 = automatic)."),
):
    """Read an official dataset layout, validate it and write the canonical Parquet manifest.

    Examples:
      vtondata prepare viton-hd --root ~/data/zalando-hd-resized
      vtondata prepare mpv --root ~/data/MPV --lenient
    """
    from vtondata.prepare import prepare as _prepare

    result = _run(_prepare, dataset, root, out=out, layout=layout, force=force, deep=deep,
                  strict=not lenient, workers=workers)
    from vtondata.report import print_prepare_result

    print_prepare_result(result)


@app.command()
def validate(
    dataset: str = typer.Argument(..., help="viton | viton-hd | mpv | deepfashion | strat"),
    root: Path = typer.Option(..., "--root", help="Dataset root exactly as distributed."),
    layout: Optional[str] = typer.Option(None, "--layout"),
    deep: bool = typer.Option(False, "--deep", help="Decode every image."),
    lenient: bool = typer.Option(False, "--lenient/--strict", help="--strict (default) exits non-zero on a fail."),
    workers: int = typer.Option(0, "--workers"),
):
    """The doctor: good / warn / fail checks of a dataset root, then a summary (writes nothing).

    Example:
      vtondata validate viton-hd --root ~/data/zalando-hd-resized --deep
    """
    from vtondata.prepare import validate_root

    report = _run(validate_root, dataset, root, layout=layout, deep=deep, workers=workers)
    from vtondata.report import print_findings

    print_findings(report)
    if report.n_fail and not lenient:
        raise typer.Exit(code=1)


@app.command("info")
def info(
    dataset: Optional[str] = typer.Argument(None, help="Prepared dataset name (or use --manifest)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Explicit manifest directory."),
):
    """Show what a prepared manifest holds (counts per table, split, role and setting).

    Example:
      vtondata info viton-hd
    """
    from vtondata.manifest import open_manifest
    from vtondata.report import print_manifest_info

    m = _run(open_manifest, dataset, manifest)
    print_manifest_info(m)


@fixtures_app.command("make")
def fixtures_make(
    dataset: str = typer.Argument(..., help="viton | viton-hd | mpv | deepfashion | strat"),
    out: Path = typer.Argument(..., help="Directory to write the official layout into."),
    n: int = typer.Option(8, "--n", help="Number of persons (pairs / triplets / tuples)."),
    size: str = typer.Option("", "--size", help="HxW, e.g. 256x192 (default: the dataset's native size)."),
    seed: int = typer.Option(0, "--seed"),
    layout: Optional[str] = typer.Option(None, "--layout", help="Layout variant to write."),
):
    """Generate a small synthetic dataset in the exact official layout.

    Example:
      vtondata fixtures make viton-hd /tmp/vitonhd --n 16 --size 256x192
    """
    from vtondata.fixtures import make_fixture

    path = _run(make_fixture, dataset, out, n=n, size=size or None, seed=seed, layout=layout)
    typer.echo(f"wrote {dataset} fixture to {path}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
