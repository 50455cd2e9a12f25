"""RAFT-style ConvGRU refinement as used by 3D-GCL's GACRM (Eq. 2, Fig. 3d; docs/models.md §1.4 and §4.2).

:class:`GACRMBlock` refines an offset field at one pyramid level: ``forward(theta, phi, offset)`` with target /
source features ``N x C x h x w`` and an initial offset ``N x 2 x h x w`` (pixels of this level, target ->
source) returns the refined offset after ``iterations`` updates (each: warp the source features with the
current offset, correlation features, motion encoder, separable ConvGRU, flow head -> delta, then a 5x5
smoothing filter applied as a residual; separate filters for the first and later iterations). The motion
encoder sees the offset divided by the level size, and every update keeps the sampling positions within 1 px
of the frame (:func:`bound`, straight-through), so unsupervised background offsets cannot run away.
Widths: ``hidden`` (paper 32) and ``motion`` (paper 64).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .gcl_corr import warp


class SepConvGRU(nn.Module):
    """A (1x5) then a (5x1) GRU pass: ``forward(h, x)`` with ``h`` ``N x hidden``, ``x`` ``N x input`` channels."""

    def __init__(self, hidden: int, inp: int):
        super().__init__()
        c = hidden + inp
        self.z1, self.r1, self.q1 = (nn.Conv2d(c, hidden, (1, 5), padding=(0, 2)) for _ in range(3))
        self.z2, self.r2, self.q2 = (nn.Conv2d(c, hidden, (5, 1), padding=(2, 0)) for _ in range(3))

    @staticmethod
    def _pass(h, x, z, r, q):
        hx = torch.cat([h, x], 1)
        zt, rt = torch.sigmoid(z(hx)), torch.sigmoid(r(hx))
        qt = torch.tanh(q(torch.cat([rt * h, x], 1)))
        return (1 - zt) * h + zt * qt

    def forward(self, h, x):
        h = self._pass(h, x, self.z1, self.r1, self.q1)
        return self._pass(h, x, self.z2, self.r2, self.q2)


class MotionEncoder(nn.Module):
    """Correlation branch (1x1, 3x3) and flow branch (7x7, 3x3), merged by a 3x3 conv to ``motion - 2``
    channels and concatenated with the flow: ``N x motion x h x w``."""

    def __init__(self, corr_ch: int, motion: int = 64):
        super().__init__()
        self.c1 = nn.Conv2d(corr_ch, motion, 1)
        self.c2 = nn.Conv2d(motion, motion, 3, padding=1)
        self.f1 = nn.Conv2d(2, motion, 7, padding=3)
        self.f2 = nn.Conv2d(motion, motion // 2, 3, padding=1)
        self.out = nn.Conv2d(motion + motion // 2, motion - 2, 3, padding=1)

    def forward(self, flow, corr):
        c = F.relu(self.c2(F.relu(self.c1(corr))))
        f = F.relu(self.f2(F.relu(self.f1(flow))))
        return torch.cat([F.relu(self.out(torch.cat([c, f], 1))), flow], 1)


class FlowHead(nn.Module):
    """3x3 hidden -> 2·hidden, ReLU, 3x3 -> 2 (k = 1 candidate, as in 3D-GCL's copy)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.a = nn.Conv2d(hidden, 2 * hidden, 3, padding=1)
        self.b = nn.Conv2d(2 * hidden, 2, 3, padding=1)
        nn.init.zeros_(self.b.weight)
        nn.init.zeros_(self.b.bias)

    def forward(self, h):
        return self.b(F.relu(self.a(h)))


class GACRMBlock(nn.Module):
    """Geometry-aware correspondence refinement at one level (see module docstring)."""

    def __init__(self, feat_ch: int, hidden: int = 32, motion: int = 64, iterations: int = 2):
        super().__init__()
        self.iterations = int(iterations)
        self.init_hidden = nn.Sequential(
            nn.Conv2d(2 * feat_ch, hidden, 3, padding=1), nn.InstanceNorm2d(hidden), nn.ReLU(True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.InstanceNorm2d(hidden), nn.ReLU(True))
        self.corr = nn.Sequential(
            nn.Conv2d(2 * feat_ch, hidden, 7, padding=3), nn.LeakyReLU(0.2, True),
            nn.Conv2d(hidden, hidden, 5, padding=2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(hidden, hidden, 3, padding=1))
        self.motion = MotionEncoder(hidden, motion)
        self.gru = SepConvGRU(hidden, motion)
        self.head = FlowHead(hidden)
        self.smooth = nn.ModuleList(nn.Sequential(nn.Conv2d(2, 32, 5, padding=2), nn.LeakyReLU(0.2, True),
                                                  nn.Conv2d(32, 2, 5, padding=2)) for _ in range(2))
        for s in self.smooth:
            nn.init.zeros_(s[2].weight)
            nn.init.zeros_(s[2].bias)

    def forward(self, theta, phi, offset):
        h = self.init_hidden(torch.cat([theta, phi], 1))
        scale = float(max(offset.shape[-2:]))
        for it in range(self.iterations):
            corr = self.corr(torch.cat([theta, warp(phi, offset)], 1))
            h = self.gru(h, self.motion(offset / scale, corr))
            offset = offset + self.head(h)
            offset = offset + self.smooth[min(it, 1)](offset)
            offset = bound(offset)
        return offset


def bound(offset: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Keep every sampling position ``p + offset`` within ``margin`` pixels of the image (straight-through: the
    gradient passes unchanged). Flows of pixels without supervision (background) cannot run away and feed
    huge values back into the recurrent update."""
    from .gcl_corr import base_grid

    h, w = offset.shape[-2:]
    g = base_grid(h, w, offset.device, offset.dtype)
    lo = torch.stack([torch.full_like(offset[:, 0], -margin), torch.full_like(offset[:, 1], -margin)], 1) - g
    hi = torch.stack([torch.full_like(offset[:, 0], w - 1 + margin), torch.full_like(offset[:, 1], h - 1 + margin)], 1) - g
    clamped = torch.maximum(torch.minimum(offset, hi), lo)
    return offset + (clamped - offset).detach()
