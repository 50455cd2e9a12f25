"""Metric benchmarks, every ratio measured in the same run on this machine.

1. Batched SSIM (``bench.metrics.ssim``) vs a scikit-image per-image loop (skimage "Wang" settings,
   RGB uint8), at 256x192 and 1024x768, one thread and all threads: ms per pair (wall and CPU),
   ratio, max |difference|; a last line says per size whether the target is met: >= 10x in wall time with
   all threads (the speed a user of this machine gets; needs an otherwise idle machine), values within 1e-4.
   The CPU-time ratios (robust to other load) are printed beside it: one thread is ~10x at 256x192, where
   OpenCV's separable filter (~0.9 ns per pixel per map, 4 maps) is ~2/3 of the time.
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


def _best_interleaved(fns, rounds: int):
    """Best (wall, CPU) seconds of each callable, measured in alternating rounds so that load from
    other processes hits every contender alike. CPU = ``time.process_time`` (all threads)."""
    best = [[float("inf"), float("inf")] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            best[i][0] = min(best[i][0], time.perf_counter() - t0)
            best[i][1] = min(best[i][1], time.process_time() - c0)
    return best


def bench_ssim(quick: bool) -> None:
    """Batched SSIM (``bench.metrics.ssim.ssim``, uint8 batches as read from files) vs the reference
    loop ``[skimage.metrics.structural_similarity(gt[i], pred[i], channel_axis=-1, data_range=255,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False) for i]`` on the same images.

    Like for like: skimage is single-threaded, so the first row per size runs ours with one thread
    (torch and OpenCV); the second with the process's default thread count. Timings are the best of
    interleaved rounds, as wall clock and as process CPU time (the CPU ratio is the robust one on a
    machine shared with other jobs, and the one the target is checked on, at every size and thread
    count)."""
    import cv2
    from skimage.metrics import structural_similarity

    from bench.metrics.ssim import ssim

    print("\n[1] SSIM: batched (OpenCV separable filter on CPU) vs scikit-image per-image loop "
          "(RGB uint8, Gaussian 11 taps / sigma 1.5, population covariance, data range 255, valid crop)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'size':>9} {'pairs':>5} {'thr':>3} {'skimage ms/pair':>15} {'ours ms/pair':>12} {'ratio':>6} "
          f"{'CPU: skimage':>12} {'ours':>6} {'ratio':>6} {'max |diff|':>10}")
    rng = np.random.default_rng(0)
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    verdicts = []
    for (h, w), n in (((256, 192), 32 if quick else 64), ((1024, 768), 2 if quick else 8)):
        gt = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
        pred = np.clip(gt.astype(np.int16) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)
        p = torch.from_numpy(pred).permute(0, 3, 1, 2).contiguous()
        g = torch.from_numpy(gt).permute(0, 3, 1, 2).contiguous()
        ref = np.asarray([structural_similarity(gt[i], pred[i], channel_axis=-1, data_range=255,
                                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                          for i in range(n)])

        def skimage_loop():
            for i in range(n):
                structural_similarity(gt[i], pred[i], channel_axis=-1, data_range=255, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False)

        cpu_ratios, wall_ratios, diffs = [], [], []
        for th in sorted({1, threads}):
            torch.set_num_threads(th)
            out = {"v": ssim(p, g)}  # warm: buffers and threads are reused across calls
            (sk_wall, sk_cpu), (our_wall, our_cpu) = _best_interleaved(
                [skimage_loop, lambda: out.__setitem__("v", ssim(p, g))], 4 if quick else 6)
            diff = float(np.abs(out["v"].numpy() - ref).max())
            cpu_ratios.append((th, sk_cpu / our_cpu))
            wall_ratios.append((th, sk_wall / our_wall))
            diffs.append(diff)
            print(f"{h:>4}x{w:<4} {n:>5} {th:>3} {sk_wall / n * 1e3:>15.2f} {our_wall / n * 1e3:>12.2f} "
                  f"{sk_wall / our_wall:>5.1f}x {sk_cpu / n * 1e3:>12.2f} {our_cpu / n * 1e3:>6.2f} "
                  f"{sk_cpu / our_cpu:>5.1f}x {diff:>10.1e}")
        torch.set_num_threads(threads)
        speed = wall_ratios[-1][1]  # all threads: what a user of this machine gets
        met = speed >= 10 and max(diffs) <= 1e-4
        verdicts.append(f"{h}x{w}: {speed:.1f}x wall ({wall_ratios[-1][0]} thr; CPU-time ratio "
                        + ", ".join(f"{r:.1f}x at {th} thr" for th, r in cpu_ratios)
                        + f"), max |diff| {max(diffs):.0e} -> {'met' if met else 'NOT met'}")
    cv2.setNumThreads(cv_threads)
    print("target: batched >= 10x the skimage loop in wall time on this machine's cores (needs an otherwise idle "
          "machine; the CPU-time ratios are load-robust) with equal values to 1e-4, per size: " + "; ".join(verdicts))


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
