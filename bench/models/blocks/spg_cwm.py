"""SPG-VTON's Clothes Warping Module (§III-C, Eqs. 8-9; ``docs/models.md`` section 5.3).

Two CP-VTON-style geometric matching networks on masks (ASSUMED: one channel per input, TPS grid 5 x 5):

* ``GMM1(M_p^C, M^C)`` -> grid ``T_θ1``: ``M_w^C = T_θ1(M^C)``, ``C_w = T_θ1(C)`` (clothes onto the predicted
  target clothes mask ``M_p^C``);
* ``GMM2(M^C, M_w^C)`` -> grid ``T_θ2``: ``Ĉ = T_θ2(C_w)`` (back to the in-shop layout: the conductible cycle).

:class:`MaskGMM` is CP-VTON's GMM (:mod:`bench.models.blocks.gmm`: L2-normalised features, correlation,
regression head, :class:`~bench.models.blocks.tps.TpsGrid`) with a configurable number of stride-2 stages in
the feature extractors: ``downsamplings = 4`` (H/16, CP-VTON, the paper's 256 x 192) or 3 (H/8, so that the
64 x 48 smoke size keeps a correlation map the regression head can reduce). Inputs ``N x 1 x H x W`` in
[0, 1]; the regression head's last layer starts at zero, so both warps start as the identity (ASSUMED); output
grid ``N x H x W x 2`` for :func:`~bench.models.blocks.gmm.warp` and offsets ``N x 2g²``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .gmm import FeatureRegression, _init_normal, correlation, l2_normalise, warp
from .tps import TpsGrid


class MaskFeatures(nn.Module):
    """``N x C x H x W`` -> ``N x top x H/2^d x W/2^d``: ``d`` 4x4 stride-2 convs (ngf doubling up to 8ngf),
    then two 3x3 convs at the top width; conv -> ReLU -> BatchNorm as CP-VTON."""

    def __init__(self, in_ch: int, ngf: int, downsamplings: int):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_ch
        for i in range(downsamplings):
            cout = min(ngf * 2 ** i, 8 * ngf)
            layers += [nn.Conv2d(c, cout, 4, 2, 1), nn.ReLU(True), nn.BatchNorm2d(cout)]
            c = cout
        layers += [nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(True), nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(True)]
        self.model = nn.Sequential(*layers)
        self.out_ch = c
        self.model.apply(_init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MaskGMM(nn.Module):
    """``(target-side N x C_a x H x W, source-side N x C_b x H x W)`` -> ``(grid, theta)``; the grid samples the
    source side (and anything aligned with it) into the target layout."""

    def __init__(self, height: int, width: int, in_a: int = 1, in_b: int = 1, ngf: int = 64, grid_size: int = 5,
                 downsamplings: int = 4):
        super().__init__()
        f = 2 ** downsamplings
        if height % f or width % f:
            raise ValueError(f"MaskGMM with {downsamplings} downsamplings needs H, W divisible by {f}, "
                             f"got {height}x{width}")
        self.extraction_a = MaskFeatures(in_a, ngf, downsamplings)
        self.extraction_b = MaskFeatures(in_b, ngf, downsamplings)
        fh, fw = height // f, width // f
        self.regression = FeatureRegression(fh * fw, (fh, fw), 2 * grid_size ** 2, width=ngf / 64)
        # identity warp at initialisation (ASSUMED; spatial-transformer practice): zero offsets from the head
        nn.init.zeros_(self.regression.linear.weight)
        nn.init.zeros_(self.regression.linear.bias)
        self.tps = TpsGrid(height, width, grid_size)

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        fa = l2_normalise(self.extraction_a(a))
        fb = l2_normalise(self.extraction_b(b))
        theta = self.regression(correlation(fa, fb))
        return self.tps(theta.float()), theta


__all__ = ["MaskGMM", "MaskFeatures", "warp"]
