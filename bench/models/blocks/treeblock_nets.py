"""Tree-Block networks ("Down to the Last Detail", seed 001, section 3.1; docs/models.md section 3.2).

* :class:`TreeBlock` (Eqs. 1-3): four parallel branches ``[conv3x3 dilation d (reflect pad d) -> IN -> ReLU ->
  conv3x3 dilation d -> IN]`` with d = 1, 2, 3, 4 on ``N x C x h x w``; tree-structured fusion: the pairs
  (b1, b2) and (b3, b4) are fused by ONE shared 1x1 conv ``2C -> 2C`` (the official code reuses the same conv
  for both pairs), then a 1x1 conv ``4C -> C`` fuses the two results; residual add -> ``N x C x h x w``.
  Eq. 2 puts an activation after the fusion conv, the official code has none; ``fusion_act=False`` follows
  the code (default), ``True`` the paper (ReLU).
* :class:`ResnetBlock`: the standard pix2pix block ``conv3x3 -> IN -> ReLU -> conv3x3 -> IN`` + skip (the
  ``w/o Tree-Block`` / SRB-VTON ablation); no dilation anywhere.
* :class:`TreeResnetGenerator`: reflect-pad 3 + conv7x7 (C_in -> ngf) + IN + ReLU; ``n_down`` stride-2 3x3
  convs (ngf -> 2ngf -> 4ngf); ``n_blocks`` Tree-Blocks (or ResNet blocks) at ``4ngf`` and ``H/4 x W/4``;
  ``n_down`` ConvTranspose x2; reflect-pad 3 + conv7x7 -> C_out; optional tanh. ``N x C_in x H x W`` ->
  ``N x C_out x H x W`` (H, W divisible by ``2**n_down``). Paper config: ngf 64, 6 blocks, 2 downsamplings.
* :class:`ResnetDiscriminator` (D_A, D_F): stem + ``n_down`` stride-2 convs + ``n_blocks`` ResNet blocks +
  sigmoid, output ``N x 4ngf x H/4 x W/4`` (no 1-channel head, as the official ``network_d.py``).
* :class:`PatchDiscriminator` (D_P): 70x70 PatchGAN (3 layers, IN, LeakyReLU 0.2, sigmoid) ->
  ``N x 1 x h' x w'``.

Re-written from the description in docs/models.md section 3 (official repository
JDAI-CV/Down-to-the-Last-Detail-Virtual-Try-on-with-Detail-Carving, ``models/network_g.py``, ``network_d.py``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

DILATIONS = (1, 2, 3, 4)


def _init(m: nn.Module) -> None:
    """pix2pix ``init_type='normal'``: conv weights N(0, 0.02), biases 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _conv_unit(c: int, dilation: int) -> nn.Sequential:
    """``[reflect pad d, conv3x3 dil d, IN, ReLU, reflect pad d, conv3x3 dil d, IN]`` on ``C`` channels."""
    return nn.Sequential(
        nn.ReflectionPad2d(dilation), nn.Conv2d(c, c, 3, dilation=dilation, bias=True), nn.InstanceNorm2d(c),
        nn.ReLU(True),
        nn.ReflectionPad2d(dilation), nn.Conv2d(c, c, 3, dilation=dilation, bias=True), nn.InstanceNorm2d(c))


class TreeBlock(nn.Module):
    """Tree dilated fusion block: ``N x C x h x w`` -> ``N x C x h x w`` (Eqs. 1-3)."""

    def __init__(self, channels: int, dilations: Sequence[int] = DILATIONS, fusion_act: bool = False):
        super().__init__()
        if len(dilations) != 4:
            raise ValueError(f"a Tree-Block has four branches, got dilations {tuple(dilations)}")
        c = int(channels)
        self.dilations = tuple(int(d) for d in dilations)
        self.branches = nn.ModuleList(_conv_unit(c, d) for d in self.dilations)
        self.fuse_pair = nn.Conv2d(2 * c, 2 * c, 1)  # shared by (b1, b2) and (b3, b4)
        self.fuse_root = nn.Conv2d(4 * c, c, 1)
        self.act = nn.ReLU() if fusion_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b2, b3, b4 = (br(x) for br in self.branches)
        left = self.act(self.fuse_pair(torch.cat([b1, b2], 1)))
        right = self.act(self.fuse_pair(torch.cat([b3, b4], 1)))
        return x + self.act(self.fuse_root(torch.cat([left, right], 1)))


class ResnetBlock(nn.Module):
    """Standard pix2pix ResNet block (no dilation): ``N x C x h x w`` -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = _conv_unit(int(channels), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def make_block(kind: str, channels: int, fusion_act: bool = False) -> nn.Module:
    if kind == "tree":
        return TreeBlock(channels, fusion_act=fusion_act)
    if kind == "resnet":
        return ResnetBlock(channels)
    raise ValueError(f"block must be 'tree' or 'resnet', got {kind!r}")


class TreeResnetGenerator(nn.Module):
    """``N x C_in x H x W`` -> ``N x C_out x H x W`` (tanh when ``tanh=True``, raw otherwise)."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 6, n_down: int = 2,
                 block: str = "tree", tanh: bool = False, fusion_act: bool = False):
        super().__init__()
        self.n_down = int(n_down)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nn.InstanceNorm2d(ngf),
                                   nn.ReLU(True)]
        for i in range(self.n_down):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
        top = ngf * 2 ** self.n_down
        layers += [make_block(block, top, fusion_act) for _ in range(int(n_blocks))]
        for i in range(self.n_down, 0, -1):
            c = ngf * 2 ** i
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7)]
        if tanh:
            layers.append(nn.Tanh())
        self.model = nn.Sequential(*layers)
        self.apply(_init)

    def blocks(self) -> list[nn.Module]:
        return [m for m in self.model if isinstance(m, (TreeBlock, ResnetBlock))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = 2 ** self.n_down
        if x.shape[-2] % k or x.shape[-1] % k:
            raise ValueError(f"generator with {self.n_down} downsamplings needs H, W divisible by {k}, "
                             f"got {tuple(x.shape[-2:])}")
        return self.model(x)


class ResnetDiscriminator(nn.Module):
    """``N x C_in x H x W`` -> ``N x 4ngf x H/4 x W/4`` in (0, 1)."""

    def __init__(self, in_channels: int, ngf: int = 64, n_blocks: int = 3, n_down: int = 2):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nn.InstanceNorm2d(ngf),
                                   nn.ReLU(True)]
        for i in range(int(n_down)):
            c = ngf * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 2 ** int(n_down)) for _ in range(int(n_blocks))]
        layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN: ``N x C_in x H x W`` -> ``N x 1 x h' x w'`` in (0, 1)."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1), nn.InstanceNorm2d(ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1), nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(ndf * mult, 1, 4, 1, 1), nn.Sigmoid()]
        self.model = nn.Sequential(*layers)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
