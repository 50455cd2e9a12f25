"""The pix2pix-style U-Net of CP-VTON's try-on module (TOM), with upsample + 3x3 conv decoders.

``UNet(in_channels, out_channels, num_downs, ngf)``: ``N x C_in x H x W`` -> ``N x C_out x H x W`` (no final
activation; the outermost block ends in the norm layer, exactly as the reference). ``H`` and ``W`` must be
divisible by ``2**num_downs`` (6 downsamplings at 256 x 192 -> 4 x 3 at the bottleneck). Encoder: 4x4 stride-2
convs with LeakyReLU(0.2); decoder: ReLU, bilinear x2, 3x3 conv; InstanceNorm (no affine) everywhere but the
outermost encoder conv and the innermost encoder; skip connections by concatenation. Channel widths
ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...

Reference: sergeywong/cp-vton ``networks.py`` (``UnetGenerator``, ``UnetSkipConnectionBlock``), re-written.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn


class _Block(nn.Module):
    """One level: ``x -> cat(x, up(sub(down(x))))`` (the outermost level returns ``up(...)`` only)."""

    def __init__(self, outer: int, inner: int, in_channels: Optional[int] = None,
                 sub: Optional[nn.Module] = None, outermost: bool = False, innermost: bool = False,
                 dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        in_channels = outer if in_channels is None else in_channels
        down_conv = nn.Conv2d(in_channels, inner, 4, 2, 1, bias=True)
        up_in = inner if innermost else inner * 2
        up = [nn.ReLU(True), nn.Upsample(scale_factor=2, mode="bilinear"),
              nn.Conv2d(up_in, outer, 3, 1, 1, bias=True), nn.InstanceNorm2d(outer)]
        if outermost:
            layers = [down_conv, sub, *up]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down_conv, *up]
        else:
            layers = [nn.LeakyReLU(0.2, True), down_conv, nn.InstanceNorm2d(inner), sub, *up]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UNet(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, num_downs: int = 6, ngf: int = 64,
                 dropout: bool = False):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        self.num_downs = num_downs
        block = _Block(ngf * 8, ngf * 8, innermost=True)
        for _ in range(num_downs - 5):
            block = _Block(ngf * 8, ngf * 8, sub=block, dropout=dropout)
        block = _Block(ngf * 4, ngf * 8, sub=block)
        block = _Block(ngf * 2, ngf * 4, sub=block)
        block = _Block(ngf, ngf * 2, sub=block)
        self.model = _Block(out_channels, ngf, in_channels=in_channels, sub=block, outermost=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = 2 ** self.num_downs
        if x.shape[-2] % k or x.shape[-1] % k:
            raise ValueError(f"UNet with {self.num_downs} downsamplings needs H, W divisible by {k}, "
                             f"got {tuple(x.shape[-2:])}")
        return self.model(x)
