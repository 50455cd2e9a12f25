"""SPG-VTON's generator ``G_i`` and discriminator ``D_i`` (paper Table I; ``docs/models.md`` section 5.2).

Generator (shared by G1, G2, G3), at ``H x W`` (256 x 192 in the paper), ``ngf = 64``::

    conv1 3x3 IN_CH -> ngf          H x W        conv2 3x3 ngf -> 2ngf        H x W
    conv3 3x3 s2 2ngf -> 2ngf       H/2          + ResBlock(2ngf)
    conv4 3x3 s2 2ngf -> 4ngf       H/4          + ResBlock(4ngf)
    conv5 3x3 s2 4ngf -> 8ngf       H/8          + 4 x ResBlock(8ngf)
    up x2, conv6 3x3 8ngf -> 4ngf   H/4          up x2, conv7 3x3 4ngf -> 2ngf   H/2
    up x2, conv8 3x3 2ngf -> ngf    H            conv9 3x3 ngf -> OUT (ReLU)
    conv10 3x3 OUT -> OUT (tanh)                 conv11 1x1 OUT -> OUT (linear)

InstanceNorm + ReLU after every conv up to conv8 (§IV-C). Table I typo "128 x 92" is read as H/2 x W/2.
The generator returns the raw ``conv11`` output ``N x OUT x H x W``; the callers map it: G1 -> softmax over
the 20 parsing classes, G2 / G3 -> RGB ``tanh(out[:, :3])`` in [-1, 1] and mask ``sigmoid(out[:, 3:4])`` in
[0, 1] (ASSUMED: Table I ends in a linear 1x1 conv, the paper needs an image and a [0, 1] mask).

Discriminator, ``ndf = 32``: conv1 3x3 IN_CH -> ndf, conv2 3x3 ndf -> ndf, conv3 3x3 s2 ndf -> ndf (H/2),
conv4 3x3 ndf -> ndf (H/2), conv5 3x3 s2 ndf -> 2ndf (H/4), conv6 1x1 2ndf -> 1: a PatchGAN map
``N x 1 x H/4 x W/4`` (64 x 48 at 256 x 192). LeakyReLU(0.2), InstanceNorm on conv2..conv5. Table I typos
(conv1 "3x1, pad 0", conv4 "stride 2" with unchanged size) are read as 3x3 / pad 1 and stride 1.
:class:`MultiScaleD` applies ``scales`` such discriminators to the input and its 2x, 4x... average-pooled
copies (pix2pixHD; ASSUMED 2 scales).
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, s, k // 2)


def _cna(cin: int, cout: int, s: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, 3, s), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(True))


class ResBlock(nn.Module):
    """``x + IN(conv3x3(ReLU(IN(conv3x3(x)))))`` at constant shape."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c), nn.InstanceNorm2d(c, affine=True), nn.ReLU(True),
                                  _conv(c, c), nn.InstanceNorm2d(c, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class SPGGenerator(nn.Module):
    """``N x in_ch x H x W`` -> ``N x out_ch x H x W`` (raw conv11 output). H, W divisible by 8."""

    def __init__(self, in_ch: int, out_ch: int, ngf: int = 64, n_bottleneck: int = 4):
        super().__init__()
        c1, c2, c3, c4 = ngf, 2 * ngf, 4 * ngf, 8 * ngf
        self.in_ch, self.out_ch = in_ch, out_ch
        self.encoder = nn.Sequential(
            _cna(in_ch, c1), _cna(c1, c2),
            _cna(c2, c2, 2), ResBlock(c2),
            _cna(c2, c3, 2), ResBlock(c3),
            _cna(c3, c4, 2), *[ResBlock(c4) for _ in range(n_bottleneck)])
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), _cna(c4, c3),
            nn.Upsample(scale_factor=2, mode="nearest"), _cna(c3, c2),
            nn.Upsample(scale_factor=2, mode="nearest"), _cna(c2, c1))
        self.head = nn.Sequential(_conv(c1, out_ch), nn.ReLU(True), _conv(out_ch, out_ch), nn.Tanh(),
                                  nn.Conv2d(out_ch, out_ch, 1, 1, 0))

    def table_layers(self) -> List[tuple]:
        """``(Table I layer name, module producing the row's output)`` in the table's row order."""
        e, d, h = self.encoder, self.decoder, self.head
        return [("Conv1", e[0]), ("Conv2", e[1]), ("Conv3", e[2]), ("Resblock", e[3]), ("Conv4", e[4]),
                ("Resblock", e[5]), ("Conv5", e[6]), ("Resblock x 4", e[-1]), ("Upsample", d[0]),
                ("Conv6", d[1]), ("Upsample", d[2]), ("Conv7", d[3]), ("Upsample", d[4]), ("Conv8", d[5]),
                ("Conv9", h[1]), ("Conv10", h[3]), ("Conv11", h[4])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_ch:
            raise ValueError(f"generator expects {self.in_ch} input channels, got {x.shape[1]}")
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"generator needs H and W divisible by 8, got {tuple(x.shape[-2:])}")
        return self.head(self.decoder(self.encoder(x)))


class SPGDiscriminator(nn.Module):
    """``N x in_ch x H x W`` -> PatchGAN map ``N x 1 x H/4 x W/4``."""

    def __init__(self, in_ch: int, ndf: int = 32):
        super().__init__()

        def block(cin, cout, s, norm=True):
            layers: List[nn.Module] = [_conv(cin, cout, 3, s)]
            if norm:
                layers.append(nn.InstanceNorm2d(cout, affine=True))
            layers.append(nn.LeakyReLU(0.2, True))
            return layers

        self.in_ch = in_ch
        self.net = nn.Sequential(*block(in_ch, ndf, 1, norm=False), *block(ndf, ndf, 1), *block(ndf, ndf, 2),
                                 *block(ndf, ndf, 1), *block(ndf, 2 * ndf, 2), nn.Conv2d(2 * ndf, 1, 1, 1, 0))

    def table_layers(self) -> List[tuple]:
        """``(Table I layer name, module ending the layer)`` in the table's row order."""
        n = self.net
        return [("Conv1", n[1]), ("Conv2", n[4]), ("Conv3", n[7]), ("Conv4", n[10]), ("Conv5", n[13]), ("Conv6", n[14])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiScaleD(nn.Module):
    """pix2pixHD multi-scale form: a list of PatchGAN maps, one per scale (full, 1/2, ...)."""

    def __init__(self, in_ch: int, ndf: int = 32, scales: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(SPGDiscriminator(in_ch, ndf) for _ in range(scales))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            out.append(d(x))
        return out
