"""ST-GAN (Lin et al., CVPR 2018) blocks in PyTorch, written from the paper's description: the geometric
predictor of one warp, the homography update, the WGAN critic and its losses.

* :class:`GeometricPredictor` -- input ``N x 7 x H x W`` = cat(background RGB, warped foreground RGB, warped mask),
  images in [-1, 1], mask in [0, 1]; five stride-2 4x4 convolutions with ReLU, after each the input downsampled
  (2x2 average pool) is concatenated again ("multi-resolution" predictor), then FC 256 + ReLU and FC 8 ->
  the warp update ``dp`` (``N x 8``). Weights N(0, std) (0.01 in the paper's code), biases zero, so an
  untrained predictor proposes updates near zero (the initial warp is kept).
* :func:`update_homography` -- ``H_i = T^-1 (I + P(dp)) T H_{i-1}``: the update is a homography in the
  background's canonical [-1, 1] frame (``P`` puts the 8 numbers into the first 8 entries of a 3 x 3 matrix),
  composed on the target side of the current pixel-frame homography (acc_geometry convention: foreground
  pixels -> background pixels, ``h33 = 1``).
* :class:`Critic` -- five stride-2 4x4 convolutions with leaky ReLU 0.2, a 3x3 score map, averaged to one score
  per image (WGAN critic on composites ``N x 3 x H x W``).
* :func:`critic_loss` (WGAN-GP: ``D(fake) - D(real) + lambda_gp (||grad D(x^)|| - 1)^2``, fake detached) and
  :func:`generator_loss` (``-D(fake)`` through the critic with its parameters detached, so one optimiser over
  G and D gives each network only its own gradient: a simultaneous update, as ``treeblock_losses.g_loss``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call


def _init(module: nn.Module, std: float) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)


class GeometricPredictor(nn.Module):
    """One warp's predictor: ``N x in_ch x H x W`` -> ``dp`` ``N x 8`` (see the module docstring)."""

    def __init__(self, size: Sequence[int], in_channels: int = 7, widths: Sequence[int] = (32, 64, 128, 256, 512),
                 fc: int = 256, std: float = 0.01):
        super().__init__()
        self.convs = nn.ModuleList()
        c, h, w = in_channels, int(size[0]), int(size[1])
        for width in widths:
            self.convs.append(nn.Conv2d(c, width, 4, 2, 1))
            h, w = (h + 1) // 2, (w + 1) // 2
            c = width + in_channels
        self.fc1 = nn.Linear(c * h * w, fc)
        self.fc2 = nn.Linear(fc, 8)
        _init(self, std)

    @staticmethod
    def _even(x: torch.Tensor) -> torch.Tensor:
        """Zero-pad odd sizes at the bottom / right, so that every stride-2 step gives ceil(n / 2) ("SAME")."""
        return F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat, img = x, x
        for conv in self.convs:
            img = F.avg_pool2d(self._even(img), 2)
            feat = torch.cat([F.relu(conv(self._even(feat))), img], 1)
        return self.fc2(F.relu(self.fc1(feat.flatten(1))))


def canonical(size: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """``3 x 3`` map from pixel (x, y) of an ``H x W`` frame to [-1, 1] (pixel centres at the ends)."""
    h, w = int(size[0]), int(size[1])
    return torch.tensor([[2.0 / max(w - 1, 1), 0, -1], [0, 2.0 / max(h - 1, 1), -1], [0, 0, 1]], dtype=dtype,
                        device=device)


def update_homography(hom: torch.Tensor, dp: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``N x 3 x 3`` (fg pixels -> bg pixels) updated by ``dp`` ``N x 8`` in the ``size`` = (H, W) frame."""
    n = dp.shape[0]
    m = torch.cat([dp, dp.new_zeros(n, 1)], 1).reshape(n, 3, 3) + torch.eye(3, dtype=dp.dtype, device=dp.device)
    t = canonical(size, dp.device, dp.dtype)
    out = torch.linalg.inv(t) @ m @ t @ hom.to(dp.dtype)
    return out / out[:, 2:3, 2:3]


class Critic(nn.Module):
    """WGAN critic: composite ``N x 3 x H x W`` in [-1, 1] -> score ``N``."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256, 512), std: float = 0.01):
        super().__init__()
        layers, c = [], 3
        for width in widths:
            layers += [nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = width
        layers.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)
        _init(self, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1).mean(1)


def critic_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, gp_weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP critic loss (fake detached here; under ``no_grad`` the penalty is evaluated, not differentiated)."""
    fake = fake.detach()
    eps = torch.rand(real.shape[0], 1, 1, 1, dtype=real.dtype, device=real.device)
    train = torch.is_grad_enabled()
    with torch.enable_grad():
        mix = (eps * real.detach() + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(d(mix).sum(), mix, create_graph=train)
    gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return d(fake).mean() - d(real).mean() + gp_weight * gp


def generator_loss(d: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """``-D(fake)`` with the critic's parameters detached (no gradient reaches ``d``)."""
    m = getattr(d, "module", d)
    params = {k: v.detach() for k, v in m.named_parameters()}
    return -functional_call(m, params, (fake,)).mean()


class STGAN(nn.Module):
    """``warps`` geometric predictors (one per warp, applied in sequence) and the critic of one sub-dataset."""

    def __init__(self, size: Sequence[int], warps: int = 5, widths: Sequence[int] = (32, 64, 128, 256, 512),
                 d_widths: Sequence[int] = (32, 64, 128, 256, 512), fc: int = 256, std: float = 0.01):
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        self.predictors = nn.ModuleList(GeometricPredictor(size, 7, widths, fc, std) for _ in range(int(warps)))
        self.critic = Critic(d_widths, std)

    def warp(self, fg: torch.Tensor, fg_mask: torch.Tensor, bg: torch.Tensor, hom0: torch.Tensor, compose):
        """Iterative warps from ``hom0`` (``N x 3 x 3``): (final homography, composite in [-1, 1], list of ``dp``).
        ``compose(fg, mask, bg, hom) -> (composite, warped fg, warped mask)`` (acc_geometry.composite)."""
        hom, dps = hom0, []
        for g in self.predictors:
            _, wfg, wmask = compose(fg, fg_mask, bg, hom)
            dp = g(torch.cat([bg, wfg, wmask], 1))
            hom = update_homography(hom, dp, self.size)
            dps.append(dp)
        comp, _, _ = compose(fg, fg_mask, bg, hom)
        return hom, comp, dps
