"""PSNR: per-image peak signal-to-noise ratio, then the mean over images.

    PSNR = 10 log10(L^2 / MSE),  L = the range of the stored dtype (255 for uint8, 1 for [0, 1]).

Matches ``skimage.metrics.peak_signal_noise_ratio(gt, pred)`` per image (its default
``data_range`` for uint8 is 255, for non-negative floats 1) averaged over images. Never the PSNR
of the pooled MSE (torchmetrics' ``dim=None`` default) unless ``reduction="pooled"`` is asked.
Identical images give ``inf`` (as scikit-image); the mean is then ``inf``.

Inputs: ``pred``, ``target`` ``N x C x H x W``, uint8 or float in [0, 1]. Output ``value`` in dB.

Example::

    >>> m = PSNR(); m.update(pred, target); m.compute()["value"]
"""

from __future__ import annotations

import math
from typing import Any, Dict

import torch

from bench.metrics._images import as_unit, check_pair
from bench.metrics.base import Metric
from vtondata.errors import MetricInputError


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB, shape ``N`` (float64). Inputs as the module docstring."""
    check_pair(pred, target)
    p = as_unit(pred, "pred", torch.float64)
    t = as_unit(target, "target", torch.float64)
    mse = ((p - t) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse)


class PSNR(Metric):
    """Mean of per-image PSNR (dB); ``std`` over images (ddof 0)."""

    name = "psnr"
    higher_is_better = True

    def __init__(self, reduction: str = "per-image") -> None:
        super().__init__()
        if reduction not in ("per-image", "pooled"):
            raise MetricInputError(f"psnr reduction must be 'per-image' or 'pooled', got {reduction!r}")
        self.reduction = reduction
        self.add_mean_state()
        self.add_state("sq_err", 0.0, "sum")
        self.add_state("n_values", 0.0, "sum")

    def params(self) -> Dict[str, Any]:
        return {"reduction": self.reduction, "data_range": "dtype (uint8: 255, float: 1)"}

    def _update(self, pred, target, **ctx) -> None:
        values = psnr(pred, target)
        self._add_values(values)
        p = as_unit(pred, "pred", torch.float64)
        t = as_unit(target, "target", torch.float64)
        self._add("sq_err", ((p - t) ** 2).sum())
        self._add("n_values", torch.tensor(float(p.numel()), device=p.device))

    def _compute(self, state) -> Dict[str, Any]:
        n = float(state["count"])
        if self.reduction == "pooled":
            mse = float(state["sq_err"]) / max(float(state["n_values"]), 1.0)
            value = 10.0 * math.log10(1.0 / mse) if mse > 0 else float("inf")
            return {"value": value, "n": int(n)}
        total = float(state["total"])
        if math.isinf(total):
            return {"value": total, "std": float("nan"), "n": int(n)}
        return self._mean_result(state)
