"""Thin-plate-spline sampling grids from a regular ``g x g`` control grid (CP-VTON ``TpsGridGen``).

The network predicts offsets ``theta`` (``N x 2g²``: x offsets of the g² control points, then y offsets, in
normalised [-1, 1] units) that move the regular control points ``P``; the TPS through ``(P, P + theta)`` maps
every output pixel to a sampling position in the source image. Because the control points are fixed, the
whole solve folds into one precomputed matrix ``M`` (``HW x g²``): ``grid = M @ (P + theta)`` per axis, one
batched matmul instead of the reference's broadcasted sums (same numbers, measured to 1e-6).

Control-point order follows the reference (index ``k = i * g + j`` with ``x = axis[i]``, ``y = axis[j]``) so
official GMM checkpoints keep their meaning. Pixel coordinates use ``align_corners=True`` (``linspace(-1, 1,
W)``), as the reference did with the PyTorch of its time: sample with ``F.grid_sample(..., align_corners=True)``.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _u(d2: torch.Tensor) -> torch.Tensor:
    """TPS radial basis ``r² log r²`` with ``U(0) = 0``."""
    return torch.where(d2 > 0, d2 * torch.log(d2.clamp_min(1e-30)), torch.zeros_like(d2))


def control_points(grid_size: int) -> torch.Tensor:
    """``g² x 2`` regular control points (x, y) in [-1, 1], reference order."""
    axis = torch.linspace(-1.0, 1.0, grid_size, dtype=torch.float64)
    px = axis.repeat_interleave(grid_size)
    py = axis.repeat(grid_size)
    return torch.stack([px, py], 1)


class TpsGrid(nn.Module):
    """``theta`` ``N x 2g²`` -> sampling grid ``N x H x W x 2`` (x, y in [-1, 1])."""

    def __init__(self, height: int, width: int, grid_size: int = 5):
        super().__init__()
        self.height, self.width, self.grid_size = int(height), int(width), int(grid_size)
        p = control_points(grid_size)
        n = p.shape[0]
        d2 = ((p[:, None, :] - p[None, :, :]) ** 2).sum(-1)
        ones = torch.ones(n, 1, dtype=torch.float64)
        pa = torch.cat([ones, p], 1)  # n x 3
        L = torch.zeros(n + 3, n + 3, dtype=torch.float64)
        L[:n, :n] = _u(d2)
        L[:n, n:] = pa
        L[n:, :n] = pa.T
        Li = torch.linalg.inv(L)
        ys = torch.linspace(-1.0, 1.0, self.height, dtype=torch.float64)
        xs = torch.linspace(-1.0, 1.0, self.width, dtype=torch.float64)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pix = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)  # HW x 2
        u = _u(((pix[:, None, :] - p[None, :, :]) ** 2).sum(-1))  # HW x n
        pix_a = torch.cat([torch.ones(pix.shape[0], 1, dtype=torch.float64), pix], 1)  # HW x 3
        M = u @ Li[:n, :n] + pix_a @ Li[n:, :n]  # HW x n
        self.register_buffer("M", M.float(), persistent=False)
        self.register_buffer("P", p.float(), persistent=False)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        n = self.P.shape[0]
        if theta.ndim != 2 or theta.shape[1] != 2 * n:
            raise ValueError(f"theta must be N x {2 * n}, got {tuple(theta.shape)}")
        q = torch.stack([theta[:, :n], theta[:, n:]], 2) + self.P.to(theta.dtype)  # N x n x 2
        grid = torch.matmul(self.M.to(theta.dtype), q)  # N x HW x 2
        return grid.view(theta.shape[0], self.height, self.width, 2)
