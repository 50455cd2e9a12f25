"""SAL-VTON speed on CPU (and the GPU when one is present).

1. Forward + backward time per batch of 8 at 256x192 for each training stage with the paper's widths
   (HRNet-W48 cascade, FPN 64-256 + global/local flow, LASNL generator ngf 64 + multiscale D), random
   inputs and random landmarks, VGG random-init (speed only). On CUDA also samples/s per stage.
2. The local-flow core (``LocalFlow.core``: crop 32 patch pairs per sample, correlation, correlation-weighted
   garment positions, resampling onto the person windows, garment sampling, Eq. 4 blend), forward + backward,
   batched over all patches of all samples, against ``LocalFlow.core_loop`` (the same math, one (sample,
   landmark) patch per Python iteration), same inputs, same run; outputs and gradients compared. Target:
   >= 5x for the default ``impl="crop"`` (12 x 9 cells per patch) at 64x48, 128x96 and 256x192, batch 8, on one
   thread. Correlation features and attention logits enter at 1/2 resolution, as ``LocalFlow.forward`` makes
   them; the work both versions share (their gradients, the full-size garment and output images) bounds the
   ratio at 256x192.
   ``impl="softbox"`` (ModelScope's full-resolution soft-box windows, 1989^2 = 4M correlation entries per patch
   at 256x192) is timed batched for reference: it is bound by that arithmetic, batched or not.

``VTONDATA_PERF_QUICK=1``: batch 2 for the stage timings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F


def _batch(n, h, w, k=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, k, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    return {"person": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
            "garment": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
            "garment_mask": torch.ones(n, 1, h, w),
            "xy": xy, "attr": torch.full((n, k), 2, dtype=torch.long)}


def stage_times(n: int, device: torch.device) -> None:
    from bench.harness import registry as reg
    from bench.models.blocks.vgg import VGGLoss

    cfg = reg.resolve_config("salvton", "full", "viton", "full", ["vgg.weights=random"])
    model = reg.get_model("salvton")(cfg)
    torch.manual_seed(0)
    nets = {k: v.to(device).train() for k, v in model.build().items()}
    model.vgg = VGGLoss(weights="random").to(device)
    h, w = model.size
    b = {k: v.to(device) for k, v in _batch(n, h, w).items()}
    lm = {"xy_g": b["xy"], "attr_g": torch.ones_like(b["attr"]), "xy_p": b["xy"] + 3, "attr_p": b["attr"]}

    def landmark():
        hg, ag = nets["lm_garment"](b["garment"])
        hp, ap = nets["lm_person"](torch.cat([b["person"], b["garment"], F.interpolate(torch.sigmoid(hg), size=(h, w))], 1))
        return hg.mean() + hp.mean() + ag.mean() + ap.mean()

    def warp():
        out = model.warp(nets, b["garment"], b["person"], lm)["low"]
        return out["W_f"].mean() + out["W_l"].mean() + model.vgg(out["W_f"], b["person"])

    def gen():
        with torch.no_grad():
            warps = model.warp(nets, b["garment"], b["person"], lm)
        fake = model.generate(nets, b["person"], warps, lm)
        cond = model.code_maps(lm["xy_p"], lm["attr_p"], "person", (h, w))
        return nets["disc"](torch.cat([cond, fake], 1))[0][-1].mean() + model.vgg(fake, b["person"])

    print(f"stage forward+backward, batch {n} at {h}x{w}, paper widths, {device}")
    for name, fn in (("landmark", landmark), ("warp", warp), ("gen", gen)):
        fn().backward()  # warm-up
        reps = 2
        t0 = time.perf_counter()
        for _ in range(reps):
            fn().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / reps
        print(f"  {name:9s} {dt:8.3f} s / batch   {n / dt:8.2f} samples/s")


def _patches_loop(lf, fp, fg, xy_g, xy_p, cp, sizes):
    """``LocalFlow.window_coords`` one (sample, landmark) patch per Python iteration, results stacked."""
    n, k = xy_g.shape[:2]
    fps, fgs, coords, members = fp.unbind(0), fg.unbind(0), [], []
    for a in range(n):
        for j in range(k):
            c, m = lf.window_coords(fps[a][None], fgs[a][None], xy_g[a:a + 1, j:j + 1], xy_p[a:a + 1, j:j + 1],
                                    cp[a:a + 1, j:j + 1], None if sizes is None else sizes[a:a + 1, j:j + 1],
                                    separable=False)
            coords.append(c[0, 0])
            members.append(m[0, 0])
    return torch.stack(coords).view(n, k, -1, 2), torch.stack(members).view(n, k, -1)


def local_flow_speed(h: int = 256, w: int = 192, impl: str = "crop", n: int = 8, loop: bool = True,
                     reps: int = 3, patch_res: int = 12, tag: str = "") -> None:
    """Forward + backward, batched over all N x 32 patches against the same math one patch per Python iteration,
    same inputs, same run, outputs and input gradients compared, on one thread (small per-patch ops are not
    slowed by thread wake-ups, which would flatter the batched version), timed in process CPU seconds (user +
    system: page faults count); after a warm-up, ``reps`` rounds alternate two batched runs and one loop run and
    each contender's fastest run counts (a slow spell of a shared machine hits both):

    * ``patches``: :meth:`LocalFlow.window_coords` (crop both patches, correlate, correlation-weighted garment
      positions, resample onto the person window) against a loop of it;
    * ``core``: :meth:`LocalFlow.core` (``patches`` + attention logits at the windows + garment sampling +
      Eq. 4 blend + the half-resolution attention output) against :meth:`LocalFlow.core_loop` (per-patch slice pasting).

    Each side gets the correlation features in the layout it runs fastest on (same values): channels-last for
    the batched version (as :meth:`LocalFlow.features` makes them), contiguous NCHW for the loops (their
    per-patch full-image ``grid_sample`` backward is slower on channels-last). The loops resample cell positions
    with ``grid_sample`` (``window_coords(separable=False)``: fewer ops per call than the batched matmul form).

    Both pay the same dense work, which no batching removes and which bounds the ratio at 256x192: the
    gradients of the N x 16 x H/2 x W/2 features and of the N x 32 x H/2 x W/2 attention logits, the
    N x 3 x H x W garment / output images and glibc's page faults on them (``tag``)."""
    from bench.models.blocks.sal_flow import LocalFlow

    k, c = 32, 16
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    lf = LocalFlow((h, w), k, 256, 3, 32, c, chunk=32, impl=impl, patch_res=patch_res)
    b = _batch(n, h, w)
    xy_g, xy_p, valid = b["xy"], (b["xy"] + 4).clamp(0, w - 1), torch.ones(n, k, dtype=torch.bool)
    # a smooth garment: on per-pixel noise the garment-sampling gradient jumps at every pixel edge, so the two
    # versions' last-bit differences in sampling positions flip a few gradients and hide real disagreements
    garment = F.interpolate(torch.rand(n, 3, h // 16, w // 16) * 2 - 1, size=(h, w), mode="bicubic",
                            align_corners=False)
    cp = torch.round(xy_p)
    h2, w2 = h // 2, w // 2                           # features and attention logits at the finest pyramid level
    leaves = {"fp": torch.randn(n, c, h2, w2), "fg": torch.randn(n, c, h2, w2),
              "sizes": torch.rand(n, k, 4) * torch.tensor([w / 5, h / 5, w / 5, h / 5]),
              "logit_l": torch.randn(n, k, h2, w2)}
    slow_lv = [t.requires_grad_(True) for t in leaves.values()]
    fast_lv = [t.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
               for t in slow_lv[:2]] + slow_lv[2:]                                       # fp, fg channels-last

    def core(fn, lv):
        out = fn(*lv[:2], xy_g, xy_p, valid, garment, *lv[2:])
        return out["warped"].detach(), torch.autograd.grad(out["warped"].square().sum() + out["att"].sum(), lv)

    def patches(fn, lv):
        coords, member = fn(*lv[:2], xy_g, xy_p, cp, lv[2])
        return coords.detach(), torch.autograd.grad(coords.sum() + member.sum(), lv[:3])

    def clock(fn, arg, lv):  # CPU time of this process (one thread): robust to other load on a shared machine
        t0 = time.process_time()
        res = fn(arg, lv)
        return time.process_time() - t0, res

    try:
        for name, fn, fast_fn, slow_fn in (("patches", patches, lf.window_coords, lambda *a: _patches_loop(lf, *a)),
                                           ("core", core, lf.core, lf.core_loop)):
            # warm-up, then rounds alternating the contenders (2 batched runs per loop run), fastest run of each:
            # a slow spell of the machine hits both
            fn(fast_fn, fast_lv)
            if loop:
                fn(slow_fn, slow_lv)
            t_fast = t_slow = float("inf")
            for _ in range(reps):
                for _ in range(2):
                    t, (fast, g_fast) = clock(fn, fast_fn, fast_lv)
                    t_fast = min(t_fast, t)
                if loop:
                    t, (slow, g_slow) = clock(fn, slow_fn, slow_lv)
                    t_slow = min(t_slow, t)
            line = (f"local flow [{impl}, {name:7s}] fwd+bwd, batch {n} x {k} patches at {h}x{w}{tag}: batched "
                    f"{1e3 * t_fast:7.1f} ms")
            if name == "core":
                assert float((fast != 1).float().mean()) > 0.1, "degenerate benchmark: W_l is blank"
            if loop:
                err = max(float((x - y).abs().max() / y.abs().max().clamp(min=1e-12))
                          for x, y in zip((fast,) + g_fast, (slow,) + g_slow))
                line += (f", per-landmark loop {1e3 * t_slow:7.1f} ms, ratio {t_slow / t_fast:5.1f}x (target >= 5x), "
                         f"max rel |diff| outputs+grads {err:.1e}")
            print(line, flush=True)
    finally:
        torch.set_num_threads(threads)


def reuse_freed_memory() -> None:
    """Keep freed memory in this process (glibc ``mallopt``: no ``mmap`` per large buffer, no trimming), as the
    allocators PyTorch's CPU tuning guide recommends (jemalloc, tcmalloc) do; a no-op off glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD


def local_flow_all(reuse: bool) -> None:
    """The crop comparison at the three sizes (and softbox with glibc's default allocator) in this process."""
    if reuse:
        reuse_freed_memory()
    tag = ", malloc reuse" if reuse else ", malloc default"
    for hw in ((64, 48), (128, 96), (256, 192)):
        local_flow_speed(*hw, impl="crop", tag=tag)
    if not reuse:
        local_flow_speed(64, 48, impl="softbox", tag=tag)
        # its autograd graph holds 4M floats per patch
        local_flow_speed(256, 192, impl="softbox", n=1, loop=False, reps=1, tag=tag)


def main() -> None:
    quick = os.environ.get("VTONDATA_PERF_QUICK") == "1"
    # each allocator setting in a fresh process: glibc's default returns every freed buffer over its mmap
    # threshold (<= 32 MB) to the kernel, so the 25-50 MB full-resolution buffers both versions allocate per
    # step page-fault anew each time; with reuse both versions keep their memory
    for reuse in (False, True):
        subprocess.run([sys.executable, "-c", f"from bench.perf.perf_salvton import local_flow_all; "
                        f"local_flow_all({reuse})"], check=True)
    stage_times(2 if quick else 8, torch.device("cpu"))
    if torch.cuda.is_available():
        stage_times(8, torch.device("cuda"))


if __name__ == "__main__":
    main()
