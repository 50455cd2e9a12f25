"""SAL-VTON stage 3: the LASNL try-on generator and its discriminator (``docs/models.md`` 2.5; seed 000 §3.3).

:class:`LandmarkNorm` (Eqs. 10-12): parameter-free instance normalisation (the paper's per-sample, per-channel
mean and std; modelscope uses affine-free BatchNorm -- DECIDED: follow the paper), ``L_s = ReLU(conv3x3(L))``
(``C_com``), ``gamma, beta = conv3x3(L_s)``, output ``x_hat * (1 + gamma) + beta`` (SPADE form; the paper prints
``gamma * x_hat + beta``, the code adds 1). The landmark map is resized (nearest) to the feature size.

:class:`LASNLGenerator`: encoder of ``levels`` stride-2 levels (conv3x3 s2, BN on the middle levels, PReLU,
``res`` residual blocks), channels ``ngf * [1, 2, 4, 8, 8]``; decoder of ``levels`` levels (nearest upsampling
to the skip's size, conv3x3, BN, PReLU, ``res`` residual blocks) with skip concatenation, and after every
decoder level a LASNL residual block (two [LandmarkNorm -> LeakyReLU(0.2) -> conv3x3] + identity) -- or, with
``lasnl=False`` (Table 3 "w/o LASNL"), a plain residual block with BatchNorm and no landmark input. Head: PReLU,
conv3x3 to 3, tanh. ``forward(x: N x in_ch x H x W, lmap: N x K x H x W or None) -> N x 3 x H x W`` in [-1, 1].

:class:`MultiscaleDiscriminator`: pix2pixHD / HR-VITON PatchGAN (``layers`` stride-2 convs, spectral norm +
instance norm, LeakyReLU 0.2) at ``scales`` scales (average-pool x2 between them); ``forward`` returns, per
scale, the list of intermediate features with the patch logits last (for hinge and feature matching losses).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


class ResBlock(nn.Module):
    """conv-BN-PReLU-conv-BN, add, PReLU."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.PReLU(c),
                                  nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.act = nn.PReLU(c)

    def forward(self, x):
        return self.act(x + self.body(x))


class LandmarkNorm(nn.Module):
    def __init__(self, c: int, label_nc: int = 32, hidden: int = 128):
        super().__init__()
        self.norm = nn.InstanceNorm2d(c, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, 1, 1), nn.ReLU(True))
        self.gamma = nn.Conv2d(hidden, c, 3, 1, 1)
        self.beta = nn.Conv2d(hidden, c, 3, 1, 1)

    def forward(self, x: torch.Tensor, lmap: torch.Tensor) -> torch.Tensor:
        lmap = F.interpolate(lmap, size=x.shape[-2:], mode="nearest")
        s = self.shared(lmap)
        return self.norm(x) * (1 + self.gamma(s)) + self.beta(s)


class LASNLBlock(nn.Module):
    def __init__(self, c: int, label_nc: int = 32, hidden: int = 128):
        super().__init__()
        self.n1, self.n2 = LandmarkNorm(c, label_nc, hidden), LandmarkNorm(c, label_nc, hidden)
        self.c1, self.c2 = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x, lmap):
        y = self.c1(F.leaky_relu(self.n1(x, lmap), 0.2))
        y = self.c2(F.leaky_relu(self.n2(y, lmap), 0.2))
        return x + y


class PlainBlock(nn.Module):
    """The "w/o LASNL" replacement: same shape, BatchNorm, no landmark input."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(c), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, 1, 1),
                                  nn.BatchNorm2d(c), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, 1, 1))

    def forward(self, x, lmap=None):
        return x + self.body(x)


class LASNLGenerator(nn.Module):
    def __init__(self, in_ch: int, ngf: int = 64, levels: int = 5, res: int = 3, lasnl: bool = True,
                 label_nc: int = 32, hidden: int = 128):
        super().__init__()
        mult = [1, 2, 4, 8, 8, 8, 8][:levels]
        chans = [ngf * m for m in mult]
        self.lasnl = lasnl
        self.enc = nn.ModuleList()
        c = in_ch
        for i, co in enumerate(chans):
            bn = [nn.BatchNorm2d(co)] if 0 < i < levels - 1 else []
            self.enc.append(nn.Sequential(nn.Conv2d(c, co, 3, 2, 1), *bn, nn.PReLU(co),
                                          *[ResBlock(co) for _ in range(res)]))
            c = co
        self.dec = nn.ModuleList()
        self.norm_blocks = nn.ModuleList()
        outs = list(reversed(chans[:-1])) + [max(ngf // 2, 4)]
        for i, co in enumerate(outs):
            cin = c if i == 0 else c + list(reversed(chans))[i]
            self.dec.append(nn.Sequential(nn.Conv2d(cin, co, 3, 1, 1), nn.BatchNorm2d(co), nn.PReLU(co),
                                          *[ResBlock(co) for _ in range(res)]))
            self.norm_blocks.append(LASNLBlock(co, label_nc, hidden) if lasnl else PlainBlock(co))
            c = co
        self.head = nn.Sequential(nn.PReLU(c), nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh())

    def forward(self, x: torch.Tensor, lmap: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.lasnl and lmap is None:
            raise ValueError("the LASNL generator needs the person landmark map")
        size = x.shape[-2:]
        skips = []
        for e in self.enc:
            x = e(x)
            skips.append(x)
        targets = [s.shape[-2:] for s in reversed(skips[:-1])] + [size]
        y = skips[-1]
        for i, (d, nb) in enumerate(zip(self.dec, self.norm_blocks)):
            if i > 0:
                y = torch.cat([y, list(reversed(skips))[i]], 1)
            y = F.interpolate(y, size=targets[i], mode="nearest")
            y = nb(d(y), lmap) if self.lasnl else nb(d(y))
        return self.head(y)


class PatchD(nn.Module):
    def __init__(self, in_ch: int, ndf: int = 64, layers: int = 3):
        super().__init__()
        seq = [nn.Sequential(spectral_norm(nn.Conv2d(in_ch, ndf, 4, 2, 2)), nn.LeakyReLU(0.2, True))]
        c = ndf
        for i in range(1, layers + 1):
            co = min(c * 2, 512)
            stride = 2 if i < layers else 1
            seq.append(nn.Sequential(spectral_norm(nn.Conv2d(c, co, 4, stride, 2)), nn.InstanceNorm2d(co),
                                     nn.LeakyReLU(0.2, True)))
            c = co
        seq.append(nn.Conv2d(c, 1, 4, 1, 2))
        self.layers = nn.ModuleList(seq)

    def forward(self, x):
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    def __init__(self, in_ch: int, ndf: int = 64, layers: int = 3, scales: int = 2):
        super().__init__()
        self.ds = nn.ModuleList(PatchD(in_ch, ndf, layers) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.ds):
            if i:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            out.append(d(x))
        return out


def hinge_d(real: list, fake: list) -> torch.Tensor:
    """Discriminator hinge loss: mean over scales of ``relu(1 - D(real)) + relu(1 + D(fake))``."""
    return sum(F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean() for r, f in zip(real, fake)) / len(real)


def hinge_g(fake: list) -> torch.Tensor:
    return sum(-f[-1].mean() for f in fake) / len(fake)


def feature_matching(real: list, fake: list) -> torch.Tensor:
    """pix2pixHD feature matching: L1 between intermediate D features (real detached), mean over scales."""
    total = 0
    for r, f in zip(real, fake):
        total = total + sum(F.l1_loss(fi, ri.detach()) for ri, fi in zip(r[:-1], f[:-1])) / max(1, len(r) - 1)
    return total / len(real)
