"""Disp (STRAT accessory try-on): vertex displacement between predicted and annotated corners.

UNVERIFIED definition (CorrelNet, arXiv 2207.02398, has no public code; the accessory paper's
supplement prints Disp as a percentage, so it is normalised by the image size). Working
definition: for each pair, the mean over the 4 vertices of the Euclidean distance between the
predicted and the ground-truth final vertex, with x divided by the image width and y by the
height (``norm="wh"``); then the mean over pairs. Alternatives kept selectable: ``norm="diag"``
(pixel distance / image diagonal) and ``distance="l1"``.

Inputs: ``pred``, ``target`` vertices ``N x K x 2`` as (x, y) pixels; ``size=(H, W)`` per call
(or ``N x 2`` per pair). ``warp_points`` maps initial vertices through a homography exactly like
STRAT's ``composite_by_opencv.py`` (divide by w + 1e-8, clip to the image).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Union

import torch

from bench.metrics.base import Metric
from vtondata.errors import MetricInputError


def warp_points(homography: torch.Tensor, points: torch.Tensor, size: Sequence[int], clip: bool = True) -> torch.Tensor:
    """``N x 3 x 3`` homographies applied to ``N x K x 2`` (x, y) points; ``size`` = (H, W)."""
    h = torch.as_tensor(homography, dtype=torch.float64)
    pts = torch.as_tensor(points, dtype=torch.float64)
    if h.ndim == 2:
        h = h.unsqueeze(0)
    if pts.ndim == 2:
        pts = pts.unsqueeze(0)
    ones = torch.ones(*pts.shape[:-1], 1, dtype=torch.float64)
    homog = torch.cat([pts, ones], dim=-1) @ h.transpose(-1, -2)
    out = homog[..., :2] / (homog[..., 2:3] + 1e-8)
    if clip:
        out[..., 0] = out[..., 0].clamp(0, int(size[1]) - 1)
        out[..., 1] = out[..., 1].clamp(0, int(size[0]) - 1)
    return out


def warp_mask(homography: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Warp ``N x 1 x H x W`` alpha masks by ``N x 3 x 3`` homographies (output size = input size).

    Inverse mapping with bilinear sampling and zero fill, like ``cv2.warpPerspective`` with its
    default ``INTER_LINEAR`` and constant-zero border.
    """
    import torch.nn.functional as F

    a = torch.as_tensor(alpha, dtype=torch.float32)
    n, _, hgt, wid = a.shape
    hinv = torch.linalg.inv(torch.as_tensor(homography, dtype=torch.float64).reshape(-1, 3, 3))
    ys, xs = torch.meshgrid(torch.arange(hgt, dtype=torch.float64), torch.arange(wid, dtype=torch.float64),
                            indexing="ij")
    grid = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3) @ hinv.transpose(-1, -2)
    src = grid[..., :2] / grid[..., 2:3]
    gx = src[..., 0] / (wid - 1) * 2 - 1
    gy = src[..., 1] / (hgt - 1) * 2 - 1
    g = torch.stack([gx, gy], -1).reshape(n, hgt, wid, 2).to(torch.float32)
    return F.grid_sample(a, g, mode="bilinear", padding_mode="zeros", align_corners=True)


def displacement(pred: torch.Tensor, target: torch.Tensor, size: Union[Sequence[int], torch.Tensor],
                 norm: str = "wh", distance: str = "l2") -> torch.Tensor:
    """Per-pair normalised vertex displacement, shape ``N`` (float64)."""
    if norm not in ("wh", "diag"):
        raise MetricInputError(f"disp norm must be 'wh' or 'diag', got {norm!r}")
    if distance not in ("l2", "l1"):
        raise MetricInputError(f"disp distance must be 'l2' or 'l1', got {distance!r}")
    p = torch.as_tensor(pred, dtype=torch.float64)
    t = torch.as_tensor(target, dtype=torch.float64).to(p.device)
    if p.ndim != 3 or p.shape[-1] != 2 or p.shape != t.shape:
        raise MetricInputError(f"vertices must be N x K x 2 (x, y) and equal in shape, got {tuple(p.shape)} "
                               f"and {tuple(t.shape)}")
    hw = torch.as_tensor(size, dtype=torch.float64, device=p.device)
    hw = hw.expand(p.shape[0], 2) if hw.ndim == 1 else hw
    wh = hw.flip(-1).unsqueeze(1)  # N x 1 x (W, H)
    diff = p - t
    if norm == "wh":
        diff = diff / wh
    d = diff.norm(dim=-1) if distance == "l2" else diff.abs().sum(-1)
    if norm == "diag":
        d = d / wh.norm(dim=-1)
    return d.mean(1)


class Disp(Metric):
    """Mean normalised vertex displacement; ``update(pred_vertices, gt_vertices, size=(H, W))``."""

    name = "disp"
    higher_is_better = False

    def __init__(self, norm: str = "wh", distance: str = "l2") -> None:
        super().__init__()
        displacement(torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), (1, 1), norm, distance)  # validates
        self.norm, self.distance = norm, distance
        self.add_mean_state()

    def params(self) -> Dict[str, Any]:
        return {"norm": self.norm, "distance": self.distance, "definition": "UNVERIFIED (CorrelNet)"}

    def _update(self, pred, target, size=None, **ctx) -> None:
        if size is None:
            raise MetricInputError("disp needs size=(H, W) of the images the vertices live in")
        v = displacement(pred, target, size, self.norm, self.distance)
        self._add_values(v)

    def _compute(self, state) -> Dict[str, Any]:
        return self._mean_result(state)
