"""Appearance-flow feature pyramid (PF-AFN AFWM / StyleFlow / SAL-VTON warping; ``docs/models.md`` 1.2, 2.4).

:class:`FeaturePyramid`: N encoder levels, each = DownSample (BN-PReLU-conv3x3 stride 2) + ``res`` pre-activation
residual blocks (BN-PReLU-conv, twice), channels ``chans`` (paper [64, 128, 256, 256, 256]); an FPN on top:
1x1 lateral convs to ``fpn_dim``, top-down nearest upsampling (to the exact finer size) and add, 3x3 smoothing.
Returns the N maps finest first: at 256x192 with N = 5 they are ``fpn_dim`` x 128x96, 64x48, 32x24, 16x12, 8x6.

:class:`SalStem`: SAL-VTON's input stem: conv3x3 on the image, concatenated with the 32-channel landmark map,
then BN-PReLU-conv3x3 to ``out`` channels (modelscope ``warping.py``: 3 -> 32, 64 -> 35).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class PreResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(c), nn.PReLU(c), nn.Conv2d(c, c, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(c), nn.PReLU(c), nn.Conv2d(c, c, 3, 1, 1, bias=False))

    def forward(self, x):
        return x + self.body(x)


class FeaturePyramid(nn.Module):
    """``forward(x: N x in_ch x H x W) -> [N x fpn_dim x H/2 x W/2, ..., N x fpn_dim x H/2**L x W/2**L]``."""

    def __init__(self, in_ch: int, chans: Sequence[int] = (64, 128, 256, 256, 256), fpn_dim: int = 256,
                 res: int = 2):
        super().__init__()
        self.enc = nn.ModuleList()
        c = in_ch
        for co in chans:
            self.enc.append(nn.Sequential(nn.BatchNorm2d(c), nn.PReLU(c), nn.Conv2d(c, co, 3, 2, 1, bias=False),
                                          *[PreResBlock(co) for _ in range(res)]))
            c = co
        self.lateral = nn.ModuleList(nn.Conv2d(co, fpn_dim, 1) for co in chans)
        self.smooth = nn.ModuleList(nn.Conv2d(fpn_dim, fpn_dim, 3, 1, 1) for _ in chans)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for e in self.enc:
            x = e(x)
            feats.append(x)
        out = [None] * len(feats)
        top = None
        for i in range(len(feats) - 1, -1, -1):
            lat = self.lateral[i](feats[i])
            if top is not None:
                lat = lat + F.interpolate(top, size=lat.shape[-2:], mode="nearest")
            top = lat
            out[i] = self.smooth[i](lat)
        return out


class SalStem(nn.Module):
    """``forward(image N x 3 x H x W, landmark map N x K x H x W) -> N x out x H x W``."""

    def __init__(self, img_ch: int = 32, num_points: int = 32, out: int = 35):
        super().__init__()
        self.img = nn.Conv2d(3, img_ch, 3, 1, 1)
        c = img_ch + num_points
        self.mix = nn.Sequential(nn.BatchNorm2d(c), nn.PReLU(c), nn.Conv2d(c, out, 3, 1, 1))
        self.out_channels = out

    def forward(self, image: torch.Tensor, lmap: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([self.img(image), lmap], 1))
