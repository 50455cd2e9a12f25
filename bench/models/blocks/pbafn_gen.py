"""PF-AFN's residual U-Net try-on generator (``ResUnetGenerator`` of geyuying/PF-AFN ``models/networks.py``,
re-written) and the composition of its output (``train_PBAFN_e2e.py``).

:class:`ResUNet` ``(in_ch, out_ch, num_downs=5, ngf=64)``: ``N x in_ch x H x W`` -> ``N x out_ch x H x W`` (raw,
no activation); ``H`` and ``W`` must be divisible by ``2**num_downs``. Level ``i`` (0 = outermost) has width
``ngf * min(2**i, 8)`` (64, 128, 256, 512, 512 for the paper's 5 levels). Encoder level: 3x3 stride-2 conv,
BatchNorm (not on the outermost and innermost levels, as the reference), ReLU, two residual blocks
(conv-BN-ReLU-conv-BN, add, ReLU). Decoder level: nearest x2, 3x3 conv to the next outer width, BN, ReLU, two
residual blocks, concatenated with that level's encoder output; the outermost decoder is nearest x2 + 3x3 conv
to ``out_ch``. Convolutions carry no bias (BatchNorm follows them; the reference also drops it on the last one).
The reference needs ``num_downs >= 5``; here any ``num_downs >= 2`` works (smoke runs at 64x48 use 4).

:func:`composite`: ``raw N x 4 x H x W`` -> ``(tryon, rendered, m)``: ``rendered = tanh(raw[:, :3])`` in
[-1, 1], ``m = sigmoid(raw[:, 3:]) * mask`` in [0, 1] (the composition mask limited to the warped-garment mask),
``tryon = warped * m + rendered * (1 - m)``. :func:`tryon_terms`: PF-AFN's unweighted try-on loss terms.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True),
                                  nn.Conv2d(ch, ch, 3, 1, 1, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x):
        return torch.relu(x + self.body(x))


def _level(cin: int, cout: int, stride_down: bool, norm: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 3, 2, 1, bias=False)] if stride_down else \
        [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers, nn.ReLU(True), ResBlock(cout), ResBlock(cout))


class ResUNet(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, num_downs: int = 5, ngf: int = 64):
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"num_downs must be >= 2, got {num_downs}")
        self.num_downs = int(num_downs)
        widths = [ngf * min(2 ** i, 8) for i in range(num_downs)]
        self.down = nn.ModuleList(_level(in_ch if i == 0 else widths[i - 1], c, True, 0 < i < num_downs - 1)
                                  for i, c in enumerate(widths))
        self.up = nn.ModuleList(_level(widths[i] * (1 if i == num_downs - 1 else 2), widths[i - 1], False, True)
                                for i in range(num_downs - 1, 0, -1))
        self.out = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                 nn.Conv2d(2 * widths[0], out_ch, 3, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = 2 ** self.num_downs
        if x.shape[-2] % k or x.shape[-1] % k:
            raise ValueError(f"ResUNet with {self.num_downs} downsamplings needs H, W divisible by {k}, "
                             f"got {tuple(x.shape[-2:])}")
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
        x = skips.pop()
        for u in self.up:
            x = torch.cat([skips.pop(), u(x)], 1)
        return self.out(x)


def composite(raw: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor):
    """``(tryon, rendered, m)`` from the generator's 4 channels, the warped garment and the mask limiting ``m``."""
    rendered = torch.tanh(raw[:, :3])
    m = torch.sigmoid(raw[:, 3:4]) * mask
    return warped * m + rendered * (1 - m), rendered, m


def tryon_terms(weights: Mapping[str, float], tryon: torch.Tensor, rendered: torch.Tensor, m: torch.Tensor,
                real: torch.Tensor, vgg: Optional[Callable] = None) -> dict[str, torch.Tensor]:
    """The terms of ``weights`` that are non-zero: ``l1``/``vgg`` of the composite and ``render_l1``/``render_vgg``
    of the rendered person against ``real``, ``mask`` = mean ``|1 - m|`` (PF-AFN weights 5, 1, 5, 1, 1)."""
    terms: dict[str, torch.Tensor] = {}
    for key, img in (("", tryon), ("render_", rendered)):
        if weights.get(key + "l1", 0):
            terms[key + "l1"] = F.l1_loss(img, real)
        if weights.get(key + "vgg", 0):
            terms[key + "vgg"] = vgg(img, real)
    if weights.get("mask", 0):
        terms["mask"] = (1 - m).abs().mean()
    return terms
