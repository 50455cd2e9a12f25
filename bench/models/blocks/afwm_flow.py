"""Appearance-flow FPN warper (PF-AFN's AFWM, docs/models.md §1.2), in the pixel-offset convention of
:mod:`bench.models.blocks.gcl_corr` (``f[:, :, p] = q - p``, target pixel -> source pixel, this level's pixels).

* :class:`FPNEncoder`: ``levels`` stages, each = BN-ReLU-conv stride 2 + two pre-activation residual blocks
  (channels ``chans``), then a feature pyramid (lateral 1x1 to ``fpn`` channels, top-down sum, 3x3 smoothing).
  ``N x C x H x W`` -> list coarse to fine, level ``i`` at ``H / 2^(levels - i)``.
* :class:`AFWMWarper`: coarse to fine over the pyramids of the source (garment branch) and target (condition
  branch): warp the source features with the current flow, local correlation over a ``(2r+1)^2`` window (r = 3,
  49 channels) -> conv stack -> residual flow, composed; then a refinement residual from
  ``cat(warped source, target)``; the flow is upsampled x2 (vectors x2) to the next level. Returns every level's
  flow (coarse first).
* :func:`second_order_smoothness`: PF-AFN's generalised Charbonnier ``((Δ²f)² + ε²)^0.45`` over the four
  directional second differences; :func:`tv`: mean absolute first differences.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gcl_corr import resize_flow, warp


class PreResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(True), nn.Conv2d(ch, ch, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(ch), nn.ReLU(True), nn.Conv2d(ch, ch, 3, 1, 1, bias=False))

    def forward(self, x):
        return x + self.body(x)


class FPNEncoder(nn.Module):
    def __init__(self, in_ch: int, chans=(64, 128, 256, 256, 256), fpn: int = 256):
        super().__init__()
        self.stages = nn.ModuleList()
        c = in_ch
        for co in chans:
            self.stages.append(nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(True), nn.Conv2d(c, co, 3, 2, 1, bias=False),
                                             PreResBlock(co), PreResBlock(co)))
            c = co
        self.lateral = nn.ModuleList(nn.Conv2d(co, fpn, 1) for co in chans)
        self.smooth = nn.ModuleList(nn.Conv2d(fpn, fpn, 3, 1, 1) for _ in chans)

    def forward(self, x):
        feats = []
        for s in self.stages:
            x = s(x)
            feats.append(x)
        out, top = [], None
        for i in range(len(feats) - 1, -1, -1):
            lat = self.lateral[i](feats[i])
            top = lat if top is None else lat + F.interpolate(top, size=lat.shape[-2:], mode="nearest")
            out.append(self.smooth[i](top))
        return out  # coarse to fine


def local_correlation(t: torch.Tensor, s: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """``N x (2r+1)^2 x h x w``: mean over channels of ``t(p) · s(p + d)`` for every displacement ``d``."""
    h, w = t.shape[-2:]
    sp = F.pad(s, (radius, radius, radius, radius))
    out = [(t * sp[:, :, dy:dy + h, dx:dx + w]).mean(1, keepdim=True)
           for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)]
    return F.leaky_relu(torch.cat(out, 1), 0.1)


def compose(prev: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Offset of ``warp(warp(x, prev), delta)``: ``delta(p) + prev(p + delta(p))``."""
    return delta + warp(prev, delta)


def _stack(cin: int, widths=(128, 64, 32)) -> nn.Sequential:
    layers, c = [], cin
    for w in widths:
        layers += [nn.Conv2d(c, w, 3, 1, 1), nn.LeakyReLU(0.1, True)]
        c = w
    last = nn.Conv2d(c, 2, 3, 1, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class AFWMWarper(nn.Module):
    def __init__(self, src_ch: int, tgt_ch: int, chans=(64, 128, 256, 256, 256), fpn: int = 256,
                 head=(128, 64, 32), radius: int = 3):
        super().__init__()
        self.radius = int(radius)
        self.enc_src = FPNEncoder(src_ch, chans, fpn)
        self.enc_tgt = FPNEncoder(tgt_ch, chans, fpn)
        n = len(chans)
        self.corr_heads = nn.ModuleList(_stack((2 * radius + 1) ** 2, head) for _ in range(n))
        self.refine_heads = nn.ModuleList(_stack(2 * fpn, head) for _ in range(n))

    def forward(self, src, tgt) -> list[torch.Tensor]:
        ps, pt = self.enc_src(src), self.enc_tgt(tgt)
        flow = None
        flows = []
        for i, (s, t) in enumerate(zip(ps, pt)):
            if flow is None:
                flow = s.new_zeros(s.shape[0], 2, *s.shape[-2:])
            else:
                flow = resize_flow(flow, s.shape[-2:])
            ws = warp(s, flow)
            flow = compose(flow, self.corr_heads[i](local_correlation(t, ws, self.radius)))
            ws = warp(s, flow)
            flow = compose(flow, self.refine_heads[i](torch.cat([ws, t], 1)))
            flows.append(flow)
        return flows


def second_order_smoothness(flow: torch.Tensor, eps: float = 1e-3, q: float = 0.45) -> torch.Tensor:
    """Generalised Charbonnier of the second differences (x, y and the two diagonals), normalised by the level
    size so the term is comparable across levels (flows are in this level's pixels)."""
    f = flow / float(max(flow.shape[-2:]))
    c = f[:, :, 1:-1, 1:-1]
    d = [f[:, :, 1:-1, :-2] + f[:, :, 1:-1, 2:] - 2 * c, f[:, :, :-2, 1:-1] + f[:, :, 2:, 1:-1] - 2 * c,
         f[:, :, :-2, :-2] + f[:, :, 2:, 2:] - 2 * c, f[:, :, :-2, 2:] + f[:, :, 2:, :-2] - 2 * c]
    return sum(((x ** 2 + eps ** 2) ** q).mean() for x in d)


def tv(flow: torch.Tensor) -> torch.Tensor:
    f = flow / float(max(flow.shape[-2:]))
    return (f[:, :, 1:] - f[:, :, :-1]).abs().mean() + (f[:, :, :, 1:] - f[:, :, :, :-1]).abs().mean()
