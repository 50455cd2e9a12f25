"""Accessory model (seed 004) speed: (1) warping + compositing a batch of 32 at 224x224 in one batched call
versus a per-sample loop (baseline, same run); (2) training samples/s of the full network (paper widths, ResNet-18
random init, SM + DAF + wAW) at 224x224 -- on CPU with batch 4 (a few steps), on a GPU when CUDA is visible with
batch 32 (the paper's)."""

from __future__ import annotations

import os
import time

import torch


def _time(fn, reps: int, device: torch.device) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    from bench.models.blocks import acc_geometry as G
    from bench.models.blocks.acc_losses import gaussian_heatmaps, heatmap_loss
    from bench.models.blocks.acc_nets import KeypointNet

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator().manual_seed(0)
    n, h, w = 32, 224, 224
    fg = (torch.rand(n, 3, h, w, generator=g) * 2 - 1).to(device)
    mask = (torch.rand(n, 1, h, w, generator=g) > 0.5).float().to(device)
    bg = (torch.rand(n, 3, h, w, generator=g) * 2 - 1).to(device)
    src = torch.tensor([[40.0, 60], [180, 60], [180, 120], [40, 120]]).expand(n, 4, 2).contiguous()
    dst = (src + torch.rand(n, 4, 2, generator=g) * 20 - 10).to(device)
    src = src.to(device)

    def batched():
        G.composite(fg, mask, bg, G.dlt_homography(src, dst))

    def loop():
        for i in range(n):
            G.composite(fg[i:i + 1], mask[i:i + 1], bg[i:i + 1], G.dlt_homography(src[i:i + 1], dst[i:i + 1]))

    reps = 5 if device.type == "cuda" else 2
    t_loop, t_batch = _time(loop, reps, device), _time(batched, reps, device)
    print(f"device {device}: DLT + warp + composite of {n} x {h}x{w}: per-sample loop (baseline) {t_loop * 1e3:.1f} ms, "
          f"batched {t_batch * 1e3:.1f} ms, speed-up {t_loop / t_batch:.2f}x")

    batch = int(os.environ.get("ACC_PERF_BATCH", "32" if device.type == "cuda" else "4"))
    steps = 5 if device.type == "cuda" else 2
    torch.manual_seed(0)
    net = KeypointNet(4, 12, use_sm=True, fg_mode="daf", weights="random", spectral_norm=True).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4, weight_decay=1e-5)
    b_bg, b_fg, b_m = bg[:batch], fg[:batch], mask[:batch]
    target = gaussian_heatmaps(dst[:batch], (h, w), 20.0)
    parse = torch.randint(0, 12, (batch, h, w), generator=g).to(device)

    def step():
        hm, sem = net(b_bg, b_fg, b_m)
        loss = heatmap_loss(hm, target, "awing", 10.0) + 0.1 * torch.nn.functional.cross_entropy(sem, parse)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = _time(step, steps, device)
    print(f"training (SM + DAF + wAW, paper widths, {h}x{w}, batch {batch}): {batch / t:.2f} samples/s "
          f"({t:.2f} s per step)")


if __name__ == "__main__":
    main()
