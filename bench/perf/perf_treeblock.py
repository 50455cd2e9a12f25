"""Tree-Block generators at the paper's size (256x192, widths 64, batch 8 -- issue 11): forward + backward time
per batch of the parsing U-Net G_P, the appearance generator G_A and the face generator G_F with Tree-Blocks,
against the same generators with standard ResNet blocks (the SRB-VTON / ``w/o Tree-Block`` baseline) measured
in the same run; prints the Tree-Block / ResNet ratio. CUDA when visible, else CPU. ``TB_PERF_BATCH`` overrides
the batch size (a CPU run at batch 8 takes minutes)."""

from __future__ import annotations

import os
import time

import torch


def _fwd_bwd(net: torch.nn.Module, x: torch.Tensor, device: torch.device, reps: int) -> float:
    def step():
        net.zero_grad(set_to_none=True)
        net(x).float().pow(2).mean().backward()

    step()  # warm-up (kernel selection)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    from bench.models.blocks.treeblock_nets import TreeResnetGenerator
    from bench.models.blocks.treeblock_parsing import ParsingNet

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = int(os.environ.get("TB_PERF_BATCH", "8"))
    reps = 5 if device.type == "cuda" else 1
    h, w = 256, 192
    g = torch.Generator().manual_seed(0)
    print(f"device {device}, batch {batch}, {h}x{w}, paper widths (ngf 64, 6 blocks); fwd+bwd seconds per batch")
    torch.manual_seed(0)
    t_p = _fwd_bwd(ParsingNet(36, 20, ngf=64, num_downs=6).to(device),
                   torch.randn(batch, 36, h, w, generator=g).to(device), device, reps)
    print(f"  G_P parsing U-Net (36 -> 20):          {t_p:8.3f} s")
    for name, cin, cout in (("G_A appearance (26 -> 4)", 26, 4), ("G_F face (6 -> 3)", 6, 3)):
        x = torch.randn(batch, cin, h, w, generator=g).to(device)
        times = {}
        for block in ("resnet", "tree"):
            torch.manual_seed(0)
            net = TreeResnetGenerator(cin, cout, ngf=64, n_blocks=6, block=block).to(device)
            times[block] = _fwd_bwd(net, x, device, reps)
        print(f"  {name:24s} ResNet blocks (baseline) {times['resnet']:8.3f} s | Tree-Blocks {times['tree']:8.3f} s"
              f" | ratio {times['tree'] / times['resnet']:.2f}x")


if __name__ == "__main__":
    main()
