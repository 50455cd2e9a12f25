"""Style-based global appearance flow (StyleFlow, He et al. CVPR 2022; docs/models.md section 1.2), in the
pixel-offset convention of :mod:`bench.models.blocks.gcl_corr` (``f[:, :, p] = q - p``: target pixel -> source
pixel, in this level's pixels).

* :class:`ModulatedConv`: StyleGAN2 weight modulation / demodulation, computed as ``conv(x * s, W) * d`` (the
  per-sample weights are never materialised): ``s = A(style)`` per input channel (affine init bias 1, ASSUMED
  StyleGAN2 convention), ``d[o] = rsqrt(sum_{i,k} (W[o,i,k] s_i)^2 + 1e-8)``; equalised learning rate
  (``W ~ N(0, 1)`` scaled by ``sqrt(2 / fan_in)`` at run time). ``N x C_in x h x w`` + ``N x S`` -> ``N x C_out x h x w``.
* :class:`StyleFlowHead`: per level, two modulated 3x3 convs on the (pre-warped) garment features
  ``fpn -> corr -> corr`` (LeakyReLU 0.2, gain sqrt 2; ``corr`` = 49 as the reference's correlation width),
  then ``corr -> hidden -> 2`` (the last conv without activation): a residual flow.
* :class:`StyleFlowWarper`: two FPN pyramids (:class:`~bench.models.blocks.afwm_flow.FPNEncoder`, garment and
  condition) -> global style vector ``cat(conv_g(g_coarsest), conv_c(c_coarsest))`` (each a conv whose kernel
  covers the whole coarsest level, ``style_dim`` channels, LeakyReLU 0.1), ``N x 2*style_dim``. Coarse to fine:
  warp the garment features with the upsampled flow (detached, as the reference), the style head predicts a
  residual flow, composed; local refinement: a plain conv stack on ``cat(warped garment features, condition
  features)`` predicts a second residual (:func:`~bench.models.blocks.afwm_flow.compose`). Returns
  ``(flows, deltas)``: every level's flow at the level size (coarse first; level ``i`` of ``L`` at
  ``H / 2^(L - i)``) and the ``2 L`` residuals (for the TV term). ``style=`` replaces the computed vector.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .afwm_flow import FPNEncoder, _stack, compose
from .gcl_corr import resize_flow, warp

GAIN = math.sqrt(2.0)


class ModulatedConv(nn.Module):
    def __init__(self, cin: int, cout: int, style_dim: int, k: int = 3, demod: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.affine = nn.Linear(style_dim, cin)
        nn.init.normal_(self.affine.weight, std=1.0 / math.sqrt(style_dim))
        nn.init.ones_(self.affine.bias)
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.demod, self.pad = bool(demod), k // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.affine(style)                                    # N x C_in
        w = self.weight * self.scale
        out = F.conv2d(x * s[:, :, None, None], w, padding=self.pad)
        if self.demod:
            d = torch.rsqrt((w.pow(2).sum((2, 3))[None] * s.pow(2)[:, None]).sum(2) + 1e-8)  # N x C_out
            out = out * d[:, :, None, None]
        return out + self.bias[None, :, None, None]


class StyleFlowHead(nn.Module):
    def __init__(self, fpn: int, style_dim: int, corr: int = 49, hidden: int = 128):
        super().__init__()
        self.convs = nn.ModuleList([ModulatedConv(fpn, corr, style_dim), ModulatedConv(corr, corr, style_dim),
                                    ModulatedConv(corr, hidden, style_dim), ModulatedConv(hidden, 2, style_dim)])

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(x, style)
            if i < len(self.convs) - 1:
                x = F.leaky_relu(x, 0.2) * GAIN
        return x


class StyleFlowWarper(nn.Module):
    def __init__(self, src_ch: int, tgt_ch: int, size: Sequence[int], chans=(64, 128, 256, 256, 256),
                 fpn: int = 256, style_dim: int = 128, corr: int = 49, hidden: int = 128, head=(128, 64, 32)):
        super().__init__()
        n = len(chans)
        h, w = int(size[0]), int(size[1])
        if h % 2 ** n or w % 2 ** n:
            raise ValueError(f"StyleFlowWarper with {n} levels needs H, W divisible by {2 ** n}, got {h}x{w}")
        kernel = (h // 2 ** n, w // 2 ** n)  # the whole coarsest level (8 x 6 at 256 x 192)
        self.enc_src = FPNEncoder(src_ch, chans, fpn)
        self.enc_tgt = FPNEncoder(tgt_ch, chans, fpn)
        self.style_src = nn.Sequential(nn.Conv2d(fpn, style_dim, kernel), nn.LeakyReLU(0.1))
        self.style_tgt = nn.Sequential(nn.Conv2d(fpn, style_dim, kernel), nn.LeakyReLU(0.1))
        self.style_dim = 2 * style_dim
        self.style_heads = nn.ModuleList(StyleFlowHead(fpn, 2 * style_dim, corr, hidden) for _ in range(n))
        self.refine_heads = nn.ModuleList(_stack(2 * fpn, head) for _ in range(n))

    def style_vector(self, ps: Sequence[torch.Tensor], pt: Sequence[torch.Tensor]) -> torch.Tensor:
        """``N x 2*style_dim`` from the coarsest garment and condition features."""
        return torch.cat([self.style_src(ps[0]).flatten(1), self.style_tgt(pt[0]).flatten(1)], 1)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, style: Optional[torch.Tensor] = None):
        ps, pt = self.enc_src(src), self.enc_tgt(tgt)
        if style is None:
            style = self.style_vector(ps, pt)
        flow = None
        flows, deltas = [], []
        for i, (s, t) in enumerate(zip(ps, pt)):
            if flow is None:
                flow = s.new_zeros(s.shape[0], 2, *s.shape[-2:])
                ws = s
            else:
                flow = resize_flow(flow, s.shape[-2:])
                ws = warp(s, flow.detach())
            d = self.style_heads[i](ws, style)
            flow = compose(flow, d)
            r = self.refine_heads[i](torch.cat([warp(s, flow), t], 1))
            flow = compose(flow, r)
            flows.append(flow)
            deltas += [d, r]
        return flows, deltas
