"""IoU (STRAT accessory try-on): overlap of predicted and ground-truth warped-foreground masks.

UNVERIFIED definition (CorrelNet, arXiv 2207.02398, has no public code). Working definition: the
foreground alpha warped by the predicted homography vs. warped by the annotated one, both
thresholded at ``threshold`` (0.5), IoU = |P and G| / |P or G| per pair (1.0 when both are
empty), then the mean over pairs. ``bench.metrics.disp.warp_points`` and ``warp_mask`` build the
masks the way STRAT's ``composite_by_opencv.py`` warps them.

Inputs: ``pred``, ``target`` ``N x 1 x H x W`` masks (bool, uint8 0/255 or float [0, 1]).
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from bench.metrics._images import as_unit, check_pair
from bench.metrics.base import Metric


def mask_iou(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-pair IoU, shape ``N`` (float64)."""
    check_pair(pred, target)
    p = as_unit(pred, "pred") > threshold
    t = as_unit(target, "target") > threshold
    inter = (p & t).flatten(1).sum(1).to(torch.float64)
    union = (p | t).flatten(1).sum(1).to(torch.float64)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


class IoU(Metric):
    """Mean per-pair mask IoU."""

    name = "iou"
    higher_is_better = True

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        self.threshold = float(threshold)
        self.add_mean_state()

    def params(self) -> Dict[str, Any]:
        return {"threshold": self.threshold, "definition": "UNVERIFIED (CorrelNet)"}

    def _update(self, pred, target, **ctx) -> None:
        v = mask_iou(pred, target, self.threshold)
        self._add_values(v)

    def _compute(self, state) -> Dict[str, Any]:
        return self._mean_result(state)
