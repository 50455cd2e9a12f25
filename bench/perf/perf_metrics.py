"""Metric benchmarks, every ratio measured in the same run on this machine.

1. Batched SSIM (``bench.metrics.ssim``) vs a scikit-image per-image loop (skimage "Wang" settings,
   RGB), at 1024x768 and 256x192: ms per pair, ratio, max |difference| (target >= 10x, <= 1e-4).
2. Frechet distance from 2048-d statistics: ours (float64 symmetric eigendecompositions) vs
   pytorch-fid's ``calculate_frechet_distance`` (``scipy.linalg.sqrtm``) (target >= 5x, < 1e-6).
3. FID feature extraction images/s through the pytorch-fid Inception with RANDOM-INIT weights
   (timing only; the numbers it produces are not comparable), and LPIPS-alex pairs/s; on CUDA too
   when a GPU is present.
4. Memory while scoring many image pairs from folders (``bench.score``, PSNR + SSIM + LPIPS with a
   random trunk): resident memory after the first 10% and at the end must stay flat; plus FID
   running statistics fed 10,000 feature rows.

``VTONDATA_PERF_QUICK=1`` shrinks every size (smoke run); ``VTONDATA_PERF_N`` sets the number of
pairs of step 4 (default 10,000).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_ssim(quick: bool) -> None:
    from skimage.metrics import structural_similarity

    from bench.metrics.ssim import ssim

    print("\n[1] SSIM: batched torch vs scikit-image per-image loop (RGB, Gaussian 11 / sigma 1.5, population cov)")
    print(f"{'size':>10} {'pairs':>6} {'threads':>7} {'skimage ms/pair':>16} {'ours ms/pair':>13} {'ratio':>7} "
          f"{'max |diff|':>11}")
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    for (h, w), n in (((1024, 768), 4 if quick else 8), ((256, 192), 16 if quick else 64)):
        gt = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        pred = np.clip(gt.astype(np.int16) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
        p = torch.from_numpy(pred).permute(0, 3, 1, 2).contiguous()
        g = torch.from_numpy(gt).permute(0, 3, 1, 2).contiguous()
        ref = []
        t_sk = _best(lambda: ref.__setitem__(slice(None), [structural_similarity(
            gt[i], pred[i], channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False) for i in range(n)]), 2)
        # skimage is single-threaded: ours with 1 thread is the like-for-like ratio; on a CPU shared with
        # other jobs, torch's multi-threaded kernels can be far slower than with one thread
        for th in sorted({1, threads}):
            torch.set_num_threads(th)
            out = {}
            t_ours = _best(lambda: out.__setitem__("v", ssim(p, g)))
            diff = float(np.abs(out["v"].numpy() - np.asarray(ref)).max())
            print(f"{h}x{w:>5} {n:>6} {th:>7} {t_sk / n * 1e3:>16.1f} {t_ours / n * 1e3:>13.1f} {t_sk / t_ours:>6.1f}x "
                  f"{diff:>11.1e}")
        torch.set_num_threads(threads)
    print("target >= 10x with equal values to 1e-4")


def bench_frechet(quick: bool) -> None:
    from pytorch_fid.fid_score import calculate_frechet_distance

    from bench.metrics.fid import frechet_distance

    d = 512 if quick else 2048
    n = d + 500
    print(f"\n[2] Frechet distance, {d}-d statistics from {n} samples: ours vs pytorch-fid (scipy sqrtm)")
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(n, 64)), rng.normal(size=(n, 64))
    w = rng.normal(size=(64, d))
    f1 = np.maximum(z1 @ w / 8 + 0.1 * rng.normal(size=(n, d)), 0)
    f2 = np.maximum(z2 @ w / 8 * 1.05 + 0.1 * rng.normal(size=(n, d)), 0)
    mu1, s1, mu2, s2 = f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)
    box = {}
    t_ref = _best(lambda: box.__setitem__("ref", calculate_frechet_distance(mu1, s1, mu2, s2)), 1)
    t_ours = _best(lambda: box.__setitem__("ours", frechet_distance(mu1, s1, mu2, s2)), 2)
    print(f"pytorch-fid {t_ref:.2f} s, ours {t_ours:.2f} s, ratio {t_ref / t_ours:.1f}x, "
          f"|difference| {abs(box['ref'] - box['ours']):.1e} (FID {box['ours']:.4f}); target >= 5x, < 1e-6")


def bench_throughput(quick: bool) -> None:
    from bench.metrics.inception import InceptionExtractor
    from bench.metrics.lpips import LPIPSNet

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("\n[3] throughput (RANDOM-INIT weights: timing only, values not comparable)")
    for dev in devices:
        ext = InceptionExtractor(random_weights=True).to(dev)
        lp = LPIPSNet("alex", random_weights=True).to(dev)
        for h, w in ((256, 192), (1024, 768)):
            bs = 8 if dev == "cpu" else 64
            reps = 1 if (dev == "cpu" and quick) else 2
            x = torch.randint(0, 256, (bs, 3, h, w), dtype=torch.uint8, device=dev)
            ext(x[:2])
            if dev == "cuda":
                torch.cuda.synchronize()
            t = _best(lambda: (ext(x), torch.cuda.synchronize() if dev == "cuda" else None), reps)
            y = x.float() / 127.5 - 1
            lp(y[:2], y[:2])
            t_lp = _best(lambda: (lp(y, y.flip(0)), torch.cuda.synchronize() if dev == "cuda" else None), reps)
            print(f"{dev:>5} {h}x{w}: FID Inception {bs / t:7.1f} images/s, LPIPS-alex {bs / t_lp:7.1f} pairs/s "
                  f"(batch {bs})")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2 ** 20


def bench_memory(quick: bool) -> None:
    from PIL import Image

    from bench.metrics.fid import FID
    from bench.score import score_folders

    n = int(os.environ.get("VTONDATA_PERF_N", 1000 if quick else 10000))
    print(f"\n[4] memory while scoring {n} pairs streamed from folders (64x48 PNG, psnr + ssim + lpips random trunk)")
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as tmp:
        pred, gt = Path(tmp) / "pred", Path(tmp) / "gt"
        pred.mkdir()
        gt.mkdir()
        base = rng.integers(0, 256, (16, 64, 48, 3), dtype=np.uint8)
        for i in range(n):
            a = base[i % 16]
            Image.fromarray(a).save(gt / f"{i:05d}.png", compress_level=1)
            Image.fromarray(np.roll(a, 1 + i % 3, axis=1)).save(pred / f"{i:05d}.png", compress_level=1)
        samples = []
        done = threading.Event()

        def sample():
            while not done.is_set():
                samples.append((time.perf_counter(), _rss_mb()))
                time.sleep(0.2)

        th = threading.Thread(target=sample, daemon=True)
        t0 = time.perf_counter()
        th.start()
        rec = score_folders(pred, gt, "pytorch-fid", ["psnr", "ssim", "lpips"], random_weights=True,
                            batch_size=64, progress=False)
        done.set()
        th.join()
        dt = time.perf_counter() - t0
    cut = samples[max(1, len(samples) // 10)][1] if len(samples) > 2 else samples[0][1]
    peak = max(m for _, m in samples)
    print(f"{n} pairs in {dt:.1f} s ({n / dt:.0f} pairs/s); RSS after 10%: {cut:.0f} MiB, peak: {peak:.0f} MiB, "
          f"end: {samples[-1][1]:.0f} MiB, growth after 10%: {peak - cut:+.0f} MiB "
          f"(comparable: {rec['comparable']}; ssim {rec['metrics']['ssim']['value']:.4f})")
    fid = FID(random_weights=True)
    fid.update_features(pred=torch.rand(500, 2048), target=torch.rand(500, 2048))  # allocates the fixed state
    before = _rss_mb()
    for _ in range(n // 500 - 1):
        fid.update_features(pred=torch.rand(500, 2048), target=torch.rand(500, 2048))
    print(f"FID running statistics, {n} x 2048 feature rows per set: RSS after the first 500 rows {before:.0f} MiB, "
          f"after all {_rss_mb():.0f} MiB (state is fixed: 2 x (2048 + 2048^2) float64); "
          "KID / IS keep 8 KiB per image by design")


def main() -> None:
    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    quick = os.environ.get("VTONDATA_PERF_QUICK") == "1"
    print(f"torch threads: {torch.get_num_threads()}, CUDA: {torch.cuda.is_available()}")
    bench_ssim(quick)
    bench_frechet(quick)
    bench_throughput(quick)
    bench_memory(quick)


if __name__ == "__main__":
    main()
