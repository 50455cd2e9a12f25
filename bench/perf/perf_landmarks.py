"""Landmark conversion throughput and heatmap rendering speed.

1. Conversion of 30,000 annotated images, both sides (60,000 records, 1.92 M landmark rows): read +
   every check against a 60,000-image catalog + canonical normalisation, in records/s per input format
   (DeepFashion2-style JSON, one file per image, is timed on a tenth of the images to keep the disk use small).
2. Gaussian heatmaps for a batch of 64 x 32 points at 256x192 (stride 1, sigma 2) on CPU: the vectorised
   torch renderer (fresh output, and a reused ``out=`` buffer) against a naive per-point Python loop in
   the same run. Target: at least 10x. The output is 400 MB, so the vectorised time is bound by memory
   writes (and by page faults when the tensor is freshly allocated).

``VTONDATA_PERF_QUICK=1`` uses 3,000 images.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _convert(src: Path, catalog: pd.DataFrame) -> tuple:
    from annotate.landmarks.checks import apply_policy, check_landmarks
    from annotate.landmarks.readers import detect_format, read_landmarks
    from annotate.landmarks.table import normalise

    t0 = time.perf_counter()
    fmt = detect_format(src)
    raw = read_landmarks(src, fmt)
    t_read = time.perf_counter() - t0
    table, findings = apply_policy(check_landmarks(raw, catalog=catalog), strict=True)
    table = normalise(table)
    dt = time.perf_counter() - t0
    n_rec = table.groupby(["image", "side"]).ngroups
    return fmt, n_rec, dt, t_read, sum(f.severity == "error" for f in findings)


def conversion(n_images: int) -> None:
    from annotate.landmarks import synth
    from annotate.landmarks.io import write_parquet

    table = synth.make_table(n_images, seed=0)
    recs = table[["image", "side"]].drop_duplicates()
    catalog = pd.DataFrame({"image": recs["image"], "role": recs["side"], "width": 192.0, "height": 256.0,
                            "asset_id": recs["image"].str.replace(".jpg", "", regex=False)})
    small = table[table["image"].str.extract(r"(\d+)_", expand=False).astype(int) < max(2, n_images // 10)]
    print(f"{'format':>13} {'images':>7} {'records':>8} {'read s':>7} {'total s':>8} {'records/s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = [("coco", synth.write_as(table, "coco", tmp / "lm.json")),
                   ("flat-csv", synth.write_as(table, "flat-csv", tmp / "lm.csv")),
                   ("canonical", write_parquet(tmp / "lm.parquet", table[["image", "side", "point", "x", "y", "attribute", "scheme"]])),
                   ("deepfashion2", synth.write_as(small, "deepfashion2", tmp / "df2"))]
        for name, src in sources:
            fmt, n_rec, dt, t_read, n_err = _convert(src, catalog)
            assert fmt == name and n_err == 0
            print(f"{name:>13} {n_rec // 2:>7} {n_rec:>8} {t_read:>7.2f} {dt:>8.2f} {n_rec / dt:>10,.0f}")


def heatmaps(repeats: int = 3) -> None:
    from annotate.landmarks.render import gaussian_heatmaps, gaussian_heatmaps_loop

    torch.set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    xy = rng.uniform([0, 0], [192, 256], (64, 32, 2))
    valid = rng.random((64, 32)) > 0.1
    kw = dict(size=(256, 192), sigma=2.0)
    buf = torch.empty(64, 32, 256, 192)
    loop_buf = np.empty((64, 32, 256, 192), np.float32)
    gaussian_heatmaps(xy, valid, out=buf, **kw)                       # warm-up, touches the buffer's pages
    loop_buf.fill(0)
    t_fresh = min(_timeit(lambda: gaussian_heatmaps(xy, valid, **kw)) for _ in range(repeats))
    t_reuse = min(_timeit(lambda: gaussian_heatmaps(xy, valid, out=buf, **kw)) for _ in range(repeats))
    t_loop = _timeit(lambda: loop_buf.__setitem__(Ellipsis, gaussian_heatmaps_loop(xy, valid, **kw)))
    np.testing.assert_allclose(buf.numpy(), loop_buf, atol=1e-5)
    print("heatmaps, 64 x 32 points at 256x192 (N x K x H x W = 64 x 32 x 256 x 192 float32, 400 MB), sigma 2:")
    print(f"  naive per-point Python loop:       {1000 * t_loop:8.1f} ms/batch")
    print(f"  vectorised, fresh output tensor:   {1000 * t_fresh:8.1f} ms/batch   ratio {t_loop / t_fresh:5.1f}x")
    print(f"  vectorised, reused output (out=):  {1000 * t_reuse:8.1f} ms/batch   ratio {t_loop / t_reuse:5.1f}x"
          f"   target >= 10x: {'met' if t_loop / t_reuse >= 10 else 'NOT met'}")


def _timeit(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    quick = os.environ.get("VTONDATA_PERF_QUICK") == "1"
    heatmaps()                                   # first, before the conversion data fills the memory
    conversion(3000 if quick else 30000)


if __name__ == "__main__":
    main()
