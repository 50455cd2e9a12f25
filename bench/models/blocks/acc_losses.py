"""Heatmap targets and losses of the accessory model (seed 004 §3.1, Eqs. 1-3, 7).

* :func:`gaussian_heatmaps`: one Gaussian of radius ``g`` per target vertex. "Radius" is ASSUMED to follow the
  CenterNet ``draw_gaussian`` convention (a (2g+1)-wide window, sigma = (2g+1)/6, zero outside the window),
  peak 1 at the (sub-pixel) vertex. Shapes ``N x K x 2`` (x, y pixels) -> ``N x K x H x W`` in [0, 1].
* :func:`awing`: Adaptive Wing (Eq. 1; omega 14, theta 0.5, epsilon 1, alpha 2.1), per pixel, continuous at
  ``|y - y^| = theta`` by construction of ``A`` and ``C``.
* :func:`positive_mask`: ``M_pos = [dilate_3x3(H) >= 0.2]`` (Eq. 2).
* :func:`heatmap_loss`: ``mean(loss(H, H^) * (gamma * M_pos + 1))`` with loss ``awing`` or ``mse``; gamma = 0
  gives the unweighted rows (Table 2 rows 6-7). Reduction: mean over all pixels (ASSUMED).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_heatmaps(points: torch.Tensor, size, radius: float) -> torch.Tensor:
    n, k, _ = points.shape
    h, w = int(size[0]), int(size[1])
    sigma = (2 * float(radius) + 1) / 6.0
    ys = torch.arange(h, dtype=torch.float32, device=points.device).view(1, 1, h, 1)
    xs = torch.arange(w, dtype=torch.float32, device=points.device).view(1, 1, 1, w)
    px = points[..., 0].float().view(n, k, 1, 1)
    py = points[..., 1].float().view(n, k, 1, 1)
    dx, dy = xs - px, ys - py
    g = torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))
    inside = (dx.abs() <= radius) & (dy.abs() <= radius)
    return g * inside


def awing(pred: torch.Tensor, target: torch.Tensor, omega: float = 14.0, theta: float = 0.5, epsilon: float = 1.0,
          alpha: float = 2.1) -> torch.Tensor:
    """Per-pixel Adaptive Wing loss (same shape as the inputs); ``target`` in [0, 1]."""
    d = (target - pred).abs()
    p = alpha - target
    a = omega * (1 / (1 + (theta / epsilon) ** p)) * p * ((theta / epsilon) ** (p - 1)) / epsilon
    c = theta * a - omega * torch.log1p((theta / epsilon) ** p)
    small = omega * torch.log1p((d / epsilon).clamp(min=0) ** p)
    large = a * d - c
    return torch.where(d < theta, small, large)


def positive_mask(target: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """``N x K x H x W`` {0, 1}: 3x3 grey dilation of the target heatmaps, thresholded."""
    return (F.max_pool2d(target, 3, stride=1, padding=1) >= threshold).to(target.dtype)


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "awing", gamma: float = 10.0,
                 awing_params: dict | None = None) -> torch.Tensor:
    """Eq. 3 (``kind="awing"``) or its MSE counterpart (``kind="mse"``), weighted by ``gamma * M_pos + 1``."""
    pred = pred.float()
    if kind == "awing":
        per = awing(pred, target, **(awing_params or {}))
    elif kind == "mse":
        per = (pred - target) ** 2
    else:
        raise ValueError(f"heatmap loss must be 'awing' or 'mse', got {kind!r}")
    if gamma:
        per = per * (gamma * positive_mask(target) + 1)
    return per.mean()


def awing_constants(omega: float = 14.0, theta: float = 0.5, epsilon: float = 1.0, alpha: float = 2.1, y: float = 0.0):
    """``(A, C)`` of Eq. 1 for one target value ``y`` (tests and docs)."""
    p = alpha - y
    a = omega * (1 / (1 + (theta / epsilon) ** p)) * p * ((theta / epsilon) ** (p - 1)) / epsilon
    return a, theta * a - omega * math.log1p((theta / epsilon) ** p)
