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


# --------------------------------------------------------------------------- landmarks (annotate)

landmarks_app = typer.Typer(help="SAL-HG garment/person landmarks: convert, export, evaluate, draw.",
                            no_args_is_help=True)
app.add_typer(landmarks_app, name="landmarks")


@landmarks_app.command("convert")
def landmarks_convert(
    src: Path = typer.Argument(..., help="Landmark file or folder (COCO, DeepFashion2 JSON, CSV, CVAT, In-shop)."),
    fmt: Optional[str] = typer.Option(None, "--from", help="coco | deepfashion2 | flat-csv | canonical | cvat | inshop (default: detect)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Prepared dataset to join (e.g. viton-hd)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Explicit manifest directory instead of --dataset."),
    root: Optional[Path] = typer.Option(None, "--root", help="Check against the images under this root (no manifest)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write landmarks.parquet (+ findings) here."),
    scheme: Optional[str] = typer.Option(None, "--scheme", help="Landmark scheme when the file does not say (sal32)."),
    lenient: bool = typer.Option(False, "--lenient/--strict", help="--lenient drops bad records instead of failing."),
    no_manifest: bool = typer.Option(False, "--no-manifest", help="Do not write the manifest's landmarks table."),
):
    """Read landmarks in any supported format, check them and store the canonical table.

    Examples:
      vtondata landmarks convert --from coco sal_hg_viton_hd.json --dataset viton-hd --out runs/lm
      vtondata landmarks convert annos/ --root ~/data/zalando-hd-resized --out runs/lm --lenient
    """
    from annotate.landmarks.commands import convert
    from annotate.landmarks.report import print_convert_result

    r = _run(convert, src, fmt, dataset=dataset, manifest_dir=manifest, root=root, out=out,
             strict=not lenient, scheme=scheme, write_manifest=not no_manifest)
    print_convert_result(r)


@landmarks_app.command("export")
def landmarks_export(
    src: Optional[Path] = typer.Argument(None, help="Landmark source (default: the manifest's landmarks table)."),
    to: str = typer.Option(..., "--to", help="coco | cvat | labelstudio | canonical"),
    out: Path = typer.Option(..., "--out", help="Output file (.json / .parquet / .csv) or folder."),
    fmt: Optional[str] = typer.Option(None, "--from", help="Input format (default: detect)."),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
    root: Optional[Path] = typer.Option(None, "--root"),
    image_prefix: Optional[str] = typer.Option(None, "--image-prefix", help="Label Studio: prefix of data.image."),
):
    """Export landmarks for pycocotools, CVAT (for images 1.1) or Label Studio.

    Examples:
      vtondata landmarks export --dataset viton-hd --to coco --out runs/lm/gt_coco.json
      vtondata landmarks export runs/lm/landmarks.parquet --to cvat --out runs/lm/cvat
    """
    from annotate.landmarks.commands import export
    from annotate.landmarks.report import print_paths

    print_paths(_run(export, src, to, out, fmt=fmt, dataset=dataset, manifest_dir=manifest, root=root,
                     image_prefix=image_prefix))


@landmarks_app.command("eval")
def landmarks_eval(
    gt: Path = typer.Option(..., "--gt", help="Ground-truth landmarks (any supported format)."),
    pred: Path = typer.Option(..., "--pred", help="Predictions (any format, or a COCO results list)."),
    gt_fmt: Optional[str] = typer.Option(None, "--gt-from"),
    pred_fmt: Optional[str] = typer.Option(None, "--pred-from"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the metrics as JSON."),
):
    """PCK@0.05/0.1 (bbox diagonal), NME, OKS AP (pycocotools, our sigmas) and attribute accuracy.

    Example:
      vtondata landmarks eval --gt runs/lm/gt_coco.json --pred runs/stage1/pred_coco.json
    """
    from annotate.landmarks.commands import evaluate
    from annotate.landmarks.report import print_eval_report

    print_eval_report(_run(evaluate, gt, pred, gt_format=gt_fmt, pred_format=pred_fmt, out_json=json_out))


@landmarks_app.command("draw")
def landmarks_draw(
    src: Path = typer.Argument(..., help="Landmark source (any supported format)."),
    garment: str = typer.Option(..., "--garment", help="Garment image name or path."),
    out: Path = typer.Option(..., "--out", help="PNG to write."),
    person: Optional[str] = typer.Option(None, "--person", help="Person image (default: its pair by name)."),
    fmt: Optional[str] = typer.Option(None, "--from"),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset root to draw on the real images."),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
):
    """Draw garment and person landmarks side by side with the pair lines.

    Example:
      vtondata landmarks draw runs/lm/landmarks.parquet --garment 00891_00.jpg --root ~/data/zalando-hd-resized --out pair.png
    """
    from annotate.landmarks.commands import draw

    path = _run(draw, src, garment, out, person=person, fmt=fmt, root=root, dataset=dataset, manifest_dir=manifest)
    typer.echo(f"wrote {path}")


# --------------------------------------------------------------------------- metrics (bench)

weights_app = typer.Typer(help="Pretrained weights: metrics (FID/KID/IS Inception, LPIPS), model backbones.",
                          no_args_is_help=True)
app.add_typer(weights_app, name="weights")


@app.command("score")
def score(
    pred: Path = typer.Option(..., "--pred", help="Folder of generated images."),
    gt: Path = typer.Option(..., "--gt", help="Folder of ground-truth (paired) or real (unpaired) images."),
    preset: str = typer.Option("pytorch-fid", "--preset", help="pytorch-fid | hr-viton | clean | path/to/preset.json"),
    metrics: Optional[List[str]] = typer.Option(None, "--metrics", help="Metric names (repeat or comma-separate); default: the preset's."),
    random_weights: bool = typer.Option(False, "--random-weights", help="Random network weights (tests only): results marked not comparable."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Explicit weights file for the network (hash-checked)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:1"),
    batch_size: int = typer.Option(16, "--batch-size"),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Folder of masks matched by name (mask_ssim, mask_is, lssim)."),
    mask_labels: Optional[str] = typer.Option(None, "--mask-labels", help="Comma-separated parsing labels selected from --mask label maps."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the score record as JSON."),
):
    """Score two folders of images (matched by file name) with a protocol preset.

    Examples:
      vtondata score --pred runs/hrviton/paired --gt ~/data/zalando-hd-resized/test/image --preset hr-viton
      vtondata score --pred out/unpaired --gt test/image --metrics fid,kid --out runs/x/fid.json
    """
    from bench.score import run_score

    names = [m for item in (metrics or []) for m in item.split(",") if m] or None
    labels = [int(x) for x in mask_labels.split(",")] if mask_labels else None
    _run(run_score, pred, gt, preset, names, random_weights=random_weights, weights=weights, device=device,
         batch_size=batch_size, mask_dir=mask, mask_labels=labels, out=out)


@weights_app.command("status")
def weights_status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """List the weights files (metrics, backbones): present / missing / hash mismatch, where they go and come from.

    Example:
      vtondata weights status
    """
    from bench.weights import print_status

    _run(print_status, as_json=as_json)


@weights_app.command("fetch")
def weights_fetch(
    names: Optional[List[str]] = typer.Argument(None, help="Weights keys (default: all), see `vtondata weights status`."),
):
    """Download missing weights through the reference packages (needs network; run on a connected machine).

    Example:
      vtondata weights fetch fid-inception alexnet
    """
    from bench.weights import fetch

    _run(fetch, names or None)


# --------------------------------------------------------------------------- caches

cache_app = typer.Typer(help="Conditioning caches: parse, densepose, smpl-flow, agnostic, pose-maps, landmark-maps, "
                             "decoded.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("build")
def cache_build(
    kind: str = typer.Option(..., "--kind", help="decoded | parse | densepose | smpl-flow | agnostic | pose-maps | "
                                                 "landmark-maps | all"),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Prepared dataset name."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Explicit manifest directory."),
    split: Optional[str] = typer.Option(None, "--split", help="Only this split."),
    shard: Optional[str] = typer.Option(None, "--shard", help="i/n (0-based); default RANK/WORLD_SIZE under torchrun."),
    force: bool = typer.Option(False, "--force", help="Rebuild this shard's chunks even when complete."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be built; write nothing."),
    param: List[str] = typer.Option([], "--param", help="Producer parameter key=value (repeatable)."),
    plugin: Optional[str] = typer.Option(None, "--plugin", help="External parser / DensePose: module:attr, entry "
                                                                "point name, or cmd:TEMPLATE."),
    size: Optional[str] = typer.Option(None, "--size", help="HxW to store arrays at (default native)."),
):
    """Build (or resume) a fingerprinted cache; datasets lacking the needed files are skipped with a message.

    Examples:
      vtondata cache build --kind pose-maps --dataset viton-hd --param radius=4
      torchrun --nproc-per-node 4 --no-python vtondata cache build --kind agnostic --dataset viton-hd
      vtondata cache build --kind parse --dataset viton-hd --plugin my_schp:make --param label_space=lip20
    """
    from vtondata.caches.commands import build_cmd

    _run(build_cmd, kind, dataset, manifest, split, shard, force, dry_run, param, plugin, size)


@cache_app.command("status")
def cache_status(
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
):
    """List the caches of a dataset: kind, fingerprint, producer, parameters, progress, size."""
    from vtondata.caches.commands import status_cmd

    _run(status_cmd, dataset, manifest)


@cache_app.command("gc")
def cache_gc(
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
    dry_run: bool = typer.Option(False, "--dry-run"),
):
    """Delete caches that are not current (superseded parameters or inputs) and leftover temporary files."""
    from vtondata.caches.commands import gc_cmd

    _run(gc_cmd, dataset, manifest, dry_run)


@cache_app.command("finalize")
def cache_finalize(
    kind: str = typer.Option(..., "--kind"),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
    fingerprint: Optional[str] = typer.Option(None, "--fingerprint", help="Default: the current one."),
):
    """Merge the shards' chunk records into the cache index (builds do this themselves when they finish)."""
    from vtondata.caches.commands import finalize_cmd

    _run(finalize_cmd, kind, dataset, manifest, fingerprint)


# --------------------------------------------------------------------------- browse and review (annotate)


@app.command("browse")
def browse_cmd(
    dataset: str = typer.Argument(..., help="Prepared dataset name (viton | viton-hd | mpv | deepfashion | strat)."),
    split: Optional[str] = typer.Option(None, "--split", help="Only this split (built and shown)."),
    port: int = typer.Option(5151, "--port", help="App port."),
    address: str = typer.Option("127.0.0.1", "--address", help="Bind address; 0.0.0.0 exposes the App to the network."),
    no_launch: bool = typer.Option(False, "--no-launch", help="Build / update the FiftyOne dataset only."),
    name: Optional[str] = typer.Option(None, "--name", help="FiftyOne dataset name (default vtondata-<dataset>)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Explicit manifest directory."),
):
    """Build (incrementally) the grouped FiftyOne dataset of a prepared manifest and open the App.

    Examples:
      vtondata browse mpv                      # http://127.0.0.1:5151/datasets/vtondata-mpv
      vtondata browse viton-hd --split test --port 5152
      vtondata browse mpv --no-launch          # build only
    """
    from annotate.browse import browse as _browse

    _run(_browse, dataset, manifest_dir=manifest, split=split, name=name, port=port, address=address,
         launch_app=not no_launch, echo=typer.echo)


review_app = typer.Typer(help="Noise review of triplets (MPV) and of generated results in FiftyOne.",
                         no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("score")
def review_score(
    dataset: str = typer.Argument(..., help="Prepared dataset (mpv, or any pair dataset)."),
    split: Optional[str] = typer.Option(None, "--split"),
    workers: int = typer.Option(0, "--workers", help="Loader processes (0 = automatic)."),
    no_push: bool = typer.Option(False, "--no-push", help="Only write <out>/review/noise_scores.parquet."),
    name: Optional[str] = typer.Option(None, "--name", help="FiftyOne dataset name."),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
):
    """Rank every triplet by its noise signals (one field each) and push them into FiftyOne.

    Example:
      vtondata review score mpv
    """
    from annotate.review import score

    res = _run(score, dataset, manifest, split=split, workers=workers, push=not no_push, name=name)
    typer.echo(f"scored {res.scored} tuples in {res.seconds:.1f} s ({res.per_s:.0f}/s) -> {res.path}")
    if res.name:
        typer.echo(f"FiftyOne {res.name}: {res.pushed} samples updated; saved view 'noise candidates'")


@review_app.command("export")
def review_export(
    dataset: str = typer.Argument(...),
    out: Optional[Path] = typer.Option(None, "--out", help="CSV or Parquet file (default <out>/review/decisions.csv)."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Name recorded with new decisions (default $USER)."),
    name: Optional[str] = typer.Option(None, "--name"),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
):
    """Write the App's noisy / clean tags to a decisions file, merged with its earlier decisions.

    Example:
      vtondata review export mpv --out decisions.csv --reviewer ana
    """
    from annotate.review import export

    res = _run(export, dataset, out, manifest_dir=manifest, name=name, reviewer=reviewer)
    typer.echo(f"{res.path}: {res.total} decisions ({res.new_or_changed} new or changed, {res.from_app} in the App)")


@review_app.command("import")
def review_import(
    dataset: str = typer.Argument(...),
    path: Optional[Path] = typer.Argument(None, help="Decisions file (default <out>/review/decisions.csv)."),
    name: Optional[str] = typer.Option(None, "--name"),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
):
    """Restore exported decisions into a (rebuilt) FiftyOne dataset as tags and fields.

    Example:
      vtondata review import mpv decisions.csv
    """
    from annotate.review import import_

    res = _run(import_, dataset, path, manifest_dir=manifest, name=name)
    typer.echo(f"restored {res.applied} decisions" + (f"; {len(res.unknown)} tuples not in the dataset" if res.unknown else ""))


@review_app.command("splits")
def review_splits(
    dataset: str = typer.Argument(...),
    decisions: Optional[Path] = typer.Option(None, "--decisions", help="Decisions file (default <out>/review/decisions.csv)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Also drop unreviewed tuples with noise_score >= T."),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
):
    """Write <out>/splits/train-clean.parquet and train-noisy.parquet (bench: --split train-clean).

    Example:
      vtondata review splits mpv --threshold 0.5
    """
    from annotate.review import splits

    res = _run(splits, dataset, manifest_dir=manifest, decisions=decisions, threshold=threshold)
    for k, p in res.paths.items():
        typer.echo(f"{k}: {res.counts[k]} tuples -> {p}")


@review_app.command("results")
def review_results(
    dataset: str = typer.Argument(...),
    run_dir: Path = typer.Argument(..., help="Folder of generated images (named by tuple id or person name)."),
    split: Optional[str] = typer.Option(None, "--split"),
    name: Optional[str] = typer.Option(None, "--name", help="FiftyOne dataset (default vtondata-<dataset>-results-<folder>)."),
    launch: bool = typer.Option(False, "--launch", help="Open the App on it afterwards."),
    port: int = typer.Option(5151, "--port"),
    address: str = typer.Option("127.0.0.1", "--address"),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
):
    """Load generated images as groups with their inputs and ground truth; saved view 'worst first' (L1).

    Example:
      vtondata review results viton-hd runs/cp_vton-full_.../images --split test --launch
    """
    from annotate.review import results

    res = _run(results, dataset, run_dir, manifest_dir=manifest, name=name, split=split, launch_app=launch,
               port=port, address=address, echo=typer.echo)
    typer.echo(f"{res.name}: {res.groups} groups ({res.matched} outputs matched, {res.unmatched} not)")


@review_app.command("inject")
def review_inject(
    src: Path = typer.Argument(..., help="A generated triplet dataset (vtondata fixtures make mpv ...)."),
    dst: Path = typer.Argument(..., help="Where to write the noisy copy."),
    per_kind: int = typer.Option(2, "--per-kind"),
    severity: float = typer.Option(1.0, "--severity", help="0-1: how visible the injected noise is."),
    nuisance: float = typer.Option(1.0, "--nuisance", help="0-1: harmless photometric variation on every image."),
    seed: int = typer.Option(0, "--seed"),
):
    """Copy a generated MPV fixture and inject noise of each kind (truth in .vtondata-fixture/noise.json).

    Example:
      vtondata review inject /tmp/mpv /tmp/mpv-noisy --per-kind 4
    """
    from annotate.noise_fixtures import inject

    rec = _run(inject, src, dst, per_kind=per_kind, severity=severity, nuisance=nuisance, seed=seed)
    typer.echo(f"{len(rec['triplets'])} of {rec['n_triplets']} triplets noisy -> {dst}")


@review_app.command("evaluate")
def review_evaluate(
    dataset: str = typer.Argument(...),
    truth: Optional[Path] = typer.Option(None, "--truth", help="noise.json (default <root>/.vtondata-fixture/noise.json)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
):
    """Precision at k and recall of the noise ranking against injected noise.

    Example:
      vtondata review evaluate mpv
    """
    from annotate.review import evaluate_prepared

    ev = _run(evaluate_prepared, dataset, manifest_dir=manifest, truth=truth)
    typer.echo(f"precision@{ev['k']} {ev['precision_at_k']:.3f}  recall@{ev['k']} {ev['recall_at_k']:.3f}  "
               f"AP {ev['average_precision']:.3f}  ({ev['n_noisy']} noisy of {ev['n']})")
    for kind, v in ev["kinds"].items():
        typer.echo(f"  {kind:15s} n={v['n']:3d} recall@k {v['recall_at_k']:.2f}  own signal {v['signal_recall_at_k']:.2f}"
                   f"  kind accuracy {v['kind_accuracy']:.2f}")


# --------------------------------------------------------------------------- derived splits

splits_app = typer.Typer(help="Derived evaluation splits (<out>/splits/<name>.parquet): hardpose, spg-deepfashion.",
                         no_args_is_help=True)
app.add_typer(splits_app, name="splits")


@splits_app.command("make")
def splits_make(
    name: str = typer.Argument(..., help="Split to derive: hardpose | spg-deepfashion."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Prepared dataset (deepfashion or mpv)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest"),
    split_file: Optional[Path] = typer.Option(None, "--split-file",
                                              help="An official pair list (tuple ids or 'source,target' names)."),
    garments: str = typer.Option("mpv", "--garments", help="spg-deepfashion: prepared dataset of the in-shop clothes."),
    seed: int = typer.Option(0, "--seed", help="spg-deepfashion: seed of the pair subset and garment assignment."),
):
    """Write <out>/splits/hardpose.parquet: 3D-GCL's HardPose stand-in (vtondata.splits_hardpose), or
    spg-deepfashion.parquet: SPG-VTON's DeepFashion test pairs with MPV test clothes (vtondata.splits_spg).

    Examples:
      vtondata splits make hardpose --dataset deepfashion
      vtondata splits make spg-deepfashion --dataset deepfashion --garments mpv --seed 0
    """
    from vtondata import splits_spg
    from vtondata.splits_hardpose import SPLIT, make

    if name == splits_spg.SPLIT:
        res = _run(splits_spg.make, dataset, manifest_dir=manifest, garments=garments, seed=seed)
        typer.echo(f"{name}: {res.n_selected} of {res.n_test_pairs} test pairs, {res.n_garments} {garments} test "
                   f"garments (seed {seed}) -> {res.path}")
        return
    if name != SPLIT:
        typer.secho(f"error: unknown derived split {name!r} (fix: use {SPLIT} or {splits_spg.SPLIT})",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    res = _run(make, dataset, manifest_dir=manifest, split_file=split_file)
    typer.echo(f"{SPLIT}: {res.n_selected} of {res.n_test_pairs} test pairs -> {res.path}")
    if res.report:
        r = res.report
        typer.echo(f"  hardness quantiles: " + ", ".join(f"{k}={v:.3f}" for k, v in r["quantiles"].items())
                   + f"; quota {r['quota']}; views selected: {r['views_selected']}")


# --------------------------------------------------------------------------- bench + leaderboard

bench_app = typer.Typer(help="Train, infer, score and record a model on a dataset split, or a whole paper table.",
                        invoke_without_command=True)
app.add_typer(bench_app, name="bench")
leaderboard_app = typer.Typer(help="Papers' reported numbers next to ours.", no_args_is_help=True)
app.add_typer(leaderboard_app, name="leaderboard")


@bench_app.callback()
def bench(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, "--model", help="Model name (see `vtondata bench list`)."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Variant as printed in the paper's table."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Default: the model's paper dataset (each dataset a split spans)."),
    split: str = typer.Option("test", "--split", help="Evaluation split (test, hardpose, ...)."),
    setting: Optional[str] = typer.Option(None, "--setting", help="paired | unpaired | multi-pose (default: every setting the tables need)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="smoke | full (default: full on CUDA, smoke on CPU)."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint of the same run."),
    gpus: int = typer.Option(1, "--gpus", help="Processes to launch with torchrun (one per GPU; CPU processes with --device cpu)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | cuda:N (default: CUDA when present)."),
    table: Optional[str] = typer.Option(None, "--table", help="Run every fillable cell of this table instead."),
    force: bool = typer.Option(False, "--force", help="With --table: redo cells already recorded."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="Explicit manifest directory of the dataset."),
    overrides: List[str] = typer.Option([], "--set", help="Config override key.sub=value (repeatable)."),
    until: str = typer.Option("record", "--until", help="Last stage: train | infer | score | record."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Run every seed (1-10 or 1,2,3): mean ± std per metric."),
    compare: Optional[str] = typer.Option(None, "--compare", help="With --seeds: Welch's t-test against model[:variant]."),
):
    """Stages train -> infer -> score -> record; prints where the record went.

    Examples:
      vtondata bench --model cpvton --dataset viton-hd --split test --profile smoke
      vtondata bench --model cpvton --dataset viton-hd --profile full --gpus 4
      vtondata bench --table sal_vton_table1_vitonhd
      vtondata bench --model accessory --seeds 1-10 --compare "accessory:Ours(w/o sm)" --setting hat
      vtondata bench list
    """
    if ctx.invoked_subcommand is not None:
        return
    from bench.harness.registry import get_table
    from bench.harness.run import Request, launch_or_run, run_table

    if table and "significance" in _run(get_table, table):
        from bench.significance import run_table as run_significance_table

        _run(run_significance_table, table, profile=profile, device=device, overrides=list(overrides))
        return
    if model and (seeds or compare):  # the significance test (also `vtondata bench significance`)
        from bench.significance import parse_seeds, run as run_significance

        _run(run_significance, model, variant, compare, dataset, setting, parse_seeds(seeds or "1-10"), split,
             profile, device, list(overrides))
        return
    if table:
        _run(run_table, table, force=force, profile=profile, seed=seed, device=device, gpus=gpus,
             overrides=list(overrides), resume=resume)
        return
    if not model:
        typer.echo(ctx.get_help())
        raise typer.Exit(code=2)
    req = Request(model=model, variant=variant, dataset=dataset, split=split, setting=setting, profile=profile,
                  seed=seed, resume=resume, device=device, manifest=str(manifest) if manifest else None,
                  overrides=list(overrides), until=until)
    _run(launch_or_run, req, gpus)


@bench_app.command("list")
def bench_list():
    """Models, variants, tables and which cells each can fill."""
    from bench.harness.listing import print_catalog

    _run(print_catalog)


@bench_app.command("edit-landmarks")
def bench_edit_landmarks(
    edits: Path = typer.Option(..., "--edits", help="JSON: tuple key and the moved / re-attributed landmarks."),
    out: Path = typer.Option(..., "--out", help="PNG to write (person | garment | try-on | edited try-on)."),
    model: str = typer.Option("salvton", "--model"),
    variant: Optional[str] = typer.Option(None, "--variant"),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    split: str = typer.Option("test", "--split"),
    setting: str = typer.Option("paired", "--setting"),
    profile: Optional[str] = typer.Option(None, "--profile"),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device"),
    overrides: List[str] = typer.Option([], "--set", help="Config override key.sub=value (repeatable)."),
):
    """Re-render a trained SAL-VTON run's result from edited landmarks (SAL-VTON Fig. 10).

    Example:
      vtondata bench edit-landmarks --dataset viton --profile smoke --edits moves.json --out edit.png
    """
    from bench.models.salvton_edit import edit_landmarks

    path = _run(edit_landmarks, model, edits, out, variant=variant, dataset=dataset, split=split, setting=setting,
                profile=profile, seed=seed, device=device, overrides=list(overrides))
    typer.echo(f"wrote {path} and {path.with_suffix('.json')}")


@bench_app.command("significance")
def bench_significance(
    model: str = typer.Option(..., "--model", help="First method (model name)."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Its variant (default: the model's default)."),
    compare: str = typer.Option(..., "--compare", help="Second method: model or model:variant."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Default: the model's paper dataset."),
    setting: Optional[str] = typer.Option(None, "--setting", help="Setting (STRAT: the sub-dataset, e.g. hat; default: each recorded)."),
    seeds: str = typer.Option("1-10", "--seeds", help="Seeds, e.g. 1-10 or 1,2,3."),
    split: str = typer.Option("test", "--split"),
    profile: Optional[str] = typer.Option(None, "--profile", help="smoke | full."),
    device: Optional[str] = typer.Option(None, "--device"),
    overrides: List[str] = typer.Option([], "--set", help="Config override for both methods (repeatable)."),
):
    """Run both methods for every seed, then mean +- std and Welch's t-test per metric (accessory Supp. 3);
    the same as `vtondata bench --model M --seeds S --compare M2`.

    Example:
      vtondata bench significance --model accessory --variant Ours --compare accessory:row1 --dataset strat --setting hat --seeds 1-10
    """
    from bench.significance import parse_seeds, run

    _run(run, model, variant, compare, dataset, setting, parse_seeds(seeds), split, profile, device, list(overrides))


@bench_app.command("sweep")
def bench_sweep(
    param: str = typer.Argument(..., help="lambda | g | gamma"),
    values: str = typer.Argument(..., help="Comma-separated values, e.g. 0.001,0.01,0.1,1,10."),
    subset: str = typer.Option("hat", "--subset", help="STRAT sub-dataset (the paper sweeps hat)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="smoke | full."),
    device: Optional[str] = typer.Option(None, "--device"),
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG (JSON beside it); default $VTONDATA_RESULTS/sweeps/."),
    overrides: List[str] = typer.Option([], "--set", help="Further config override for every point (repeatable)."),
):
    """Accessory model's supplementary sweep (Supp. Fig. 1): one bench run of `Ours` per value, then LSSIM / IoU /
    Disp against the value as a PNG + JSON.

    Example:
      vtondata bench sweep lambda 0.001,0.01,0.1,1,10 --profile smoke --device cpu
    """
    from bench.acc_sweep import parse_values, sweep

    _run(sweep, param, _run(parse_values, values), subset, profile, device, seed, out, list(overrides))


@leaderboard_app.command("show")
def leaderboard_show(
    table: Optional[str] = typer.Option(None, "--table", help="Table id (default: every table with results)."),
    fmt: str = typer.Option("md", "--format", help="md | csv"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw reported vs ours into this PNG."),
):
    """Reported vs ours vs delta per cell, with flags (smoke, generated, random-weights are not comparable).

    Example:
      vtondata leaderboard show --table sal_vton_table1_vitonhd --plot sal_t1.png
    """
    from bench.leaderboard import show

    _run(show, table, fmt, plot, echo=typer.echo)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
