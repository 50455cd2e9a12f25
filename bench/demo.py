"""``make demo``: the main job end to end on small synthetic data in the official layouts.

Steps (each prints what it did; a step whose feature is not installed says so and the demo goes on):
fixtures for the five datasets -> ``prepare`` each -> caches -> FiftyOne dataset (built, not launched)
-> smoke bench (CP-VTON) + leaderboard -> one smoke run of each paper's model (SAL-VTON, Tree-Block + Real data,
3D-GCL on HardPose, SPG-VTON, accessory try-on) and the papers' tables. Everything lives under ``--dir`` (default ``.demo/``), with
``VTONDATA_HOME=<dir>/home`` so the user's own data home is never touched.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

from rich.console import Console

con = Console()

#: dataset -> (fixture size HxW, number of persons / triplets / tuples, layout or None for the official default).
#: MPV: 48 triplets leave 12 for test, enough for IS's 10 splits; DeepFashion in 3D-GCL's layout (parsing + poses).
DEMO_DATASETS = {
    "viton-hd": ("256x192", 24, None),
    "viton": ("256x192", 16, None),
    "mpv": ("256x192", 48, None),
    "deepfashion": ("256x176", 16, "3dgcl"),
    "strat": ("224x224", 12, None),
}

STEPS: list[tuple[str, Callable[[Path], None]]] = []


def step(name: str):
    def deco(fn):
        STEPS.append((name, fn))
        return fn
    return deco


@step("fixtures + prepare")
def _prepare(d: Path) -> None:
    from vtondata.fixtures import WRITERS, make_fixture
    from vtondata.prepare import prepare
    from vtondata.report import print_prepare_result
    from vtondata.errors import UnknownNameError

    for ds, (size, n, layout) in DEMO_DATASETS.items():
        if ds not in WRITERS:
            continue
        root = d / "data" / ds
        try:
            if not root.exists():
                make_fixture(ds, root, n=n, size=size, seed=0, layout=layout)
        except UnknownNameError as exc:
            con.print(f"[yellow]skip {ds}[/]: {exc}")
            continue
        res = prepare(ds, root, quiet=True)
        print_prepare_result(res)


@step("caches")
def _caches(d: Path) -> None:
    """Build every cache kind of every prepared demo dataset (kinds a dataset lacks inputs for are skipped)."""
    from vtondata.caches import KINDS
    from vtondata.caches.store import build
    from vtondata.errors import VtonDataError
    from vtondata.manifest import open_manifest

    # the fixtures draw VITON-HD DensePose pictures with their own colour table
    params = {"densepose": {"cmap": "vtondata-fixture"}, "smpl-flow": {"cmap": "vtondata-fixture"}}
    for ds in DEMO_DATASETS:
        try:
            m = open_manifest(ds)
        except VtonDataError:
            continue
        for kind in sorted(KINDS):
            try:
                r = build(m, kind, params.get(kind, {}), quiet=True)
            except VtonDataError as exc:
                con.print(f"[yellow]{ds} {kind}[/]: {exc}")
                continue
            if r.skipped:
                con.print(f"[dim]{ds} {kind}: skipped ({r.skipped})[/]")
            else:
                con.print(f"{ds} {kind}: {r.keys} keys, {r.rate:.0f}/s, {r.fingerprint}"
                          + "".join(f"\n  {n}" for n in r.notes))


@step("browse (build only)")
def _browse(d: Path) -> None:
    from vtondata.errors import VtonDataError

    try:
        from annotate.browse import build
    except ImportError as exc:
        con.print(f"[yellow]skip[/]: FiftyOne browsing not installed ({exc})")
        return
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(d / "fiftyone-db"))
    for ds in DEMO_DATASETS:
        if not (d / "home" / ds / "manifest" / "meta.json").exists():
            continue
        try:
            con.print(build(ds, quiet=True).summary())
        except VtonDataError as exc:
            con.print(f"[yellow]skip {ds}[/]: {exc}")
    con.print("open one with `vtondata browse <dataset>` (App on http://127.0.0.1:5151)")


@step("smoke bench + leaderboard")
def _bench(d: Path) -> None:
    from bench.harness.run import Request, run_bench
    from bench.leaderboard import show

    # results of the demo stay in the demo directory (the repository's leaderboards/results holds real runs)
    os.environ["VTONDATA_RESULTS"] = str(d / "leaderboards" / "results")
    run_bench(Request(model="cpvton", dataset="viton-hd", split="test", profile="smoke", device="cpu"),
              log=con.print)
    show("sal_vton_table1_vitonhd", "md", d / "leaderboard_sal_vton_table1.png", echo=print)
    con.print("smoke values are flagged not comparable (generated data, random weights, smoke schedule); "
              "see README 'Benchmark harness' to reproduce a table on GPUs")

#: one smoke run of each paper's own model (model, dataset, split), then the papers' main tables
PAPER_RUNS = (
    ("salvton", "viton", "test"),
    ("treeblock", "mpv", "test"),
    ("real", "mpv", "test"),  # the "Real data" rows: the ground-truth images scored like outputs
    ("3dgcl", "deepfashion", "hardpose"),
    ("spgvton", "mpv", "test"),
    ("accessory", "strat", "test"),
)
PAPER_TABLES = ("sal_vton_table2_viton", "tree_block_table1_mpv", "3d_gcl_table2_tryon",
                "spg_vton_table4_ablation_mpv", "accessory_table1_strat")


@step("paper models (smoke)")
def _papers(d: Path) -> None:
    """Each paper's model, default variant, smoke profile, on the demo data; the papers' tables afterwards."""
    from annotate.landmarks.commands import convert
    from bench.harness.run import Request, run_bench
    from bench.leaderboard import show
    from vtondata.errors import VtonDataError

    os.environ["VTONDATA_RESULTS"] = str(d / "leaderboards" / "results")
    # SAL-VTON learns garment landmarks: join the fixture's SAL-HG-style file to the VITON manifest
    lm = d / "data" / "viton" / ".vtondata-fixture" / "landmarks.csv"
    if lm.exists():
        convert(lm, None, dataset="viton", out=d / "landmarks" / "viton")
    for model, dataset, split in PAPER_RUNS:
        t0 = time.perf_counter()
        try:
            run_bench(Request(model=model, dataset=dataset, split=split, profile="smoke", device="cpu"),
                      log=lambda s: None)
        except VtonDataError as exc:
            con.print(f"[yellow]{model} on {dataset}-{split}[/]: {exc}")
            continue
        con.print(f"[bold]{model}[/] on {dataset}-{split}: {time.perf_counter() - t0:.0f} s")
    for table in PAPER_TABLES:
        show(table, "md", None, echo=print)


def run(d: Path) -> None:
    d = d.resolve()
    d.mkdir(parents=True, exist_ok=True)
    os.environ["VTONDATA_HOME"] = str(d / "home")
    t_all = time.perf_counter()
    for name, fn in STEPS:
        con.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        fn(d)
        con.print(f"[dim]{name}: {time.perf_counter() - t0:.1f} s[/]")
    con.rule(f"[bold green]demo finished in {time.perf_counter() - t_all:.1f} s[/]")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", type=Path, default=Path(".demo"))
    args = ap.parse_args(argv)
    run(args.dir)


if __name__ == "__main__":
    main()
