"""CP-VTON training throughput at 256x192 on CPU (paper widths, batch 4) and the share of step time spent
waiting on data: raw files with 0 and 1 loader workers, and with the decoded / parse caches when they can be
built. Baseline = raw files, no worker, measured in the same run. On a GPU machine (CUDA visible) the same
runs use the GPU with AMP."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

STEPS = {"gmm": 8, "tom": 3}


def _run(home: Path, manifest: Path, workers: int, device: str, tag: str) -> list[dict]:
    from bench.harness.run import Request, run_bench

    over = [f"stages.gmm.steps={STEPS['gmm']}", f"stages.gmm.schedule.decay_after={STEPS['gmm']}",
            f"stages.tom.steps={STEPS['tom']}", f"stages.tom.schedule.decay_after={STEPS['tom']}",
            f"train.workers={workers}", "train.checkpoint_every=1000", "vgg.weights=random",
            "size=[256, 192]", "tom.num_downs=6"]  # the full profile trains VITON-HD at 1024x768
    os.environ["VTONDATA_HOME"] = str(home / tag)
    run_bench(Request(model="cpvton", dataset="viton-hd", profile="full", device=device, manifest=str(manifest),
                      overrides=over, until="train"), log=lambda s: None)
    (path,) = (home / tag).glob("runs/*/*/train_stats.json")
    return json.loads(path.read_text())


def _build_caches(manifest: Path) -> str:
    try:
        from vtondata.caches.commands import build_cmd

        for kind in ("decoded", "parse"):
            build_cmd(kind, None, manifest, None, None, False, False, [], None, "256x192", quiet=True)
        return "decoded + parse"
    except Exception as exc:  # caches not available in this checkout
        return f"unavailable ({type(exc).__name__}: {exc})"


def main() -> None:
    import torch

    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    device = "cuda" if torch.cuda.is_available() else "cpu"
    old_home = os.environ.get("VTONDATA_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_fixture("viton-hd", tmp / "data", n=24, size="256x192", seed=0)
        prepare("viton-hd", data, out=tmp / "prepared" / "viton-hd", quiet=True)
        manifest = tmp / "prepared" / "viton-hd" / "manifest"
        rows = [("raw files, 0 workers (baseline)", _run(tmp, manifest, 0, device, "raw0")),
                ("raw files, 1 worker", _run(tmp, manifest, 1, device, "raw1"))]
        t0 = time.perf_counter()
        caches = _build_caches(manifest)
        if not caches.startswith("unavailable"):
            from bench.harness.data import open_dataset

            ds = open_dataset("viton-hd", "train", "paired", ("person", "parse", "pose", "garment", "garment_mask"),
                              (256, 192), "cihp20", manifest)
            print(f"loader with caches: {ds!r}")
            rows.append((f"caches ({caches}, built in {time.perf_counter() - t0:.1f} s), 0 workers",
                         _run(tmp, manifest, 0, device, "cache0")))
        else:
            print(f"caches: {caches}")
    if old_home is None:
        os.environ.pop("VTONDATA_HOME", None)
    else:
        os.environ["VTONDATA_HOME"] = old_home
    base = {s["stage"]: s["samples_per_s"] for s in rows[0][1]}
    print(f"CP-VTON training at 256x192, paper widths, batch 4, device {device}, torch threads "
          f"{torch.get_num_threads()} (steps: GMM {STEPS['gmm']}, TOM {STEPS['tom']} incl. warm-up)")
    print(f"{'data source':58s} {'stage':5s} {'samples/s':>10s} {'data wait':>10s} {'vs baseline':>12s}")
    for name, stats in rows:
        for s in stats:
            print(f"{name:58s} {s['stage']:5s} {s['samples_per_s']:10.2f} {100 * s['data_wait_share']:9.1f}% "
                  f"{s['samples_per_s'] / base[s['stage']]:11.2f}x")


if __name__ == "__main__":
    main()
