"""StyleGAN2-style try-on generator with spatial (SPADE-like) modulation, its discriminator and GAN losses
(3D-GCL stage 2, seed 002 §3.1 / Eq. 8; docs/models.md §4.3). Written from the papers, not from code.

:class:`SpatialStyleGenerator` ``forward(pose, appearance) -> N x 3 x H x W`` in [-1, 1]:

* ``pose`` ``N x P x H x W`` (target body representation) -> a pose encoder (stride-2 convs) down to
  ``H / 2^levels``; that tensor replaces StyleGAN2's constant input;
* ``appearance`` ``N x A x H x W`` (warped garment, its mask, the preserved target regions) -> an appearance
  pyramid (one feature map per synthesis resolution);
* synthesis: per resolution (coarse to fine) upsample x2, two :class:`SpatialModConv` layers (3x3 conv, then the
  activations are normalised per channel and modulated by ``(1 + γ(a)) · x + β(a)`` where ``γ, β`` are 3x3 convs
  of the appearance features at that resolution -- StyleGAN2's style vector replaced by a spatial map),
  per-pixel noise with a learned strength, leaky ReLU; skip ``toRGB`` outputs summed across resolutions
  (StyleGAN2's skip architecture); final ``tanh``.

:class:`ResDiscriminator`: residual stride-2 blocks on ``cat(image, condition)``, minibatch standard deviation,
one logit per image. Losses: non-saturating logistic (softplus) and the R1 penalty ``γ/2 · E‖∇D(x)‖²``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class SpatialModConv(nn.Module):
    """conv3x3 -> per-channel normalisation -> ``x·(1+γ) + β`` from the appearance map -> noise -> LReLU."""

    def __init__(self, cin: int, cout: int, app_ch: int, hidden: int = 64):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.shared = nn.Sequential(nn.Conv2d(app_ch, hidden, 3, padding=1), nn.ReLU(True))
        self.gamma = nn.Conv2d(hidden, cout, 3, padding=1)
        self.beta = nn.Conv2d(hidden, cout, 3, padding=1)
        self.noise_strength = nn.Parameter(torch.zeros(1))

    def forward(self, x, app):
        x = self.conv(x)
        x = F.instance_norm(x, eps=1e-5)
        a = self.shared(F.interpolate(app, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = x * (1 + self.gamma(a)) + self.beta(a)
        x = x + self.noise_strength * torch.randn(x.shape[0], 1, *x.shape[-2:], device=x.device, dtype=x.dtype)
        return F.leaky_relu(x, 0.2)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(cout, cout, 3, 1, 1),
                         nn.LeakyReLU(0.2, True))


class SpatialStyleGenerator(nn.Module):
    """See the module docstring. ``levels`` down/up steps; channels ``ngf · 2^min(i, max_mult_log)``."""

    def __init__(self, pose_ch: int, app_ch: int, ngf: int = 64, levels: int = 4, max_ch: int = 512):
        super().__init__()
        self.levels = int(levels)
        ch = [min(max_ch, ngf * 2 ** i) for i in range(self.levels + 1)]  # ch[i] at H / 2^i
        self.pose_in = nn.Sequential(nn.Conv2d(pose_ch, ch[0], 3, 1, 1), nn.LeakyReLU(0.2, True))
        self.pose_down = nn.ModuleList(_down(ch[i], ch[i + 1]) for i in range(self.levels))
        self.app_in = nn.Sequential(nn.Conv2d(app_ch, ch[0], 3, 1, 1), nn.LeakyReLU(0.2, True))
        self.app_down = nn.ModuleList(_down(ch[i], ch[i + 1]) for i in range(self.levels))
        self.start = SpatialModConv(ch[-1], ch[-1], ch[-1])
        self.blocks = nn.ModuleList()
        self.to_rgb = nn.ModuleList([nn.Conv2d(ch[-1], 3, 1)])
        for i in range(self.levels - 1, -1, -1):
            self.blocks.append(nn.ModuleList([SpatialModConv(ch[i + 1], ch[i], ch[i]), SpatialModConv(ch[i], ch[i], ch[i])]))
            self.to_rgb.append(nn.Conv2d(ch[i], 3, 1))

    def forward(self, pose: torch.Tensor, appearance: torch.Tensor) -> torch.Tensor:
        x = self.pose_in(pose)
        for d in self.pose_down:
            x = d(x)
        apps = [self.app_in(appearance)]
        for d in self.app_down:
            apps.append(d(apps[-1]))
        x = self.start(x, apps[-1])
        rgb = self.to_rgb[0](x)
        for j, (m1, m2) in enumerate(self.blocks):
            i = self.levels - 1 - j
            x = F.interpolate(x, size=apps[i].shape[-2:], mode="bilinear", align_corners=False)
            x = m2(m1(x, apps[i]), apps[i])
            rgb = F.interpolate(rgb, size=x.shape[-2:], mode="bilinear", align_corners=False) + self.to_rgb[j + 1](x)
        return torch.tanh(rgb)


class ResDiscriminator(nn.Module):
    """Residual discriminator on ``cat(image, condition)`` (``in_ch`` channels) -> ``N`` logits."""

    def __init__(self, in_ch: int, ndf: int = 64, levels: int = 4, max_ch: int = 512):
        super().__init__()
        ch = [min(max_ch, ndf * 2 ** i) for i in range(levels + 1)]
        self.inp = nn.Sequential(nn.Conv2d(in_ch, ch[0], 1), nn.LeakyReLU(0.2, True))
        self.blocks = nn.ModuleList()
        self.skips = nn.ModuleList()
        for i in range(levels):
            self.blocks.append(nn.Sequential(nn.Conv2d(ch[i], ch[i], 3, 1, 1), nn.LeakyReLU(0.2, True),
                                             nn.Conv2d(ch[i], ch[i + 1], 3, 2, 1), nn.LeakyReLU(0.2, True)))
            self.skips.append(nn.Conv2d(ch[i], ch[i + 1], 1, 2, bias=False))
        self.final = nn.Sequential(nn.Conv2d(ch[-1] + 1, ch[-1], 3, 1, 1), nn.LeakyReLU(0.2, True))
        self.fc = nn.Linear(ch[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        for b, s in zip(self.blocks, self.skips):
            x = (b(x) + s(x)) / math.sqrt(2)
        # minibatch standard deviation (sqrt(var + 1e-8): finite gradients where the batch agrees, as StyleGAN2)
        std = (x.var(0, unbiased=False) + 1e-8).sqrt().mean().expand(x.shape[0], 1, *x.shape[-2:])
        x = self.final(torch.cat([x, std], 1))
        return self.fc(x.mean((2, 3))).squeeze(1)


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_input: torch.Tensor) -> torch.Tensor:
    """``E‖∇_x D(x)‖²`` on real inputs (``real_input`` must require grad; graph kept for the backward)."""
    (g,) = torch.autograd.grad(real_logits.sum(), real_input, create_graph=True)
    return g.pow(2).flatten(1).sum(1).mean()
