"""LSSIM (STRAT accessory try-on): SSIM restricted to the ground-truth foreground's region.

UNVERIFIED definition. The accessory paper (seed 004 §4) adopts LSSIM "following" CorrelNet
(arXiv 2207.02398), whose code and exact formula were not available. Working definition:

* ``region="bbox"`` (default): crop the predicted and the ground-truth composites to the bounding
  box of the ground-truth warped-foreground mask (``mask=``, > 0.5), grown symmetrically to at
  least the SSIM window when smaller (clamped to the image), and compute SSIM of the crops;
* ``region="mask"``: the mean of the full-image SSIM map over the pixels inside the mask
  (pixels whose window leaves the image are excluded when ``crop="valid"``);
* the SSIM flavour comes from the preset (skimage "Wang" settings by default; also UNVERIFIED);
* the mean over pairs; pairs with an empty mask are skipped and counted in ``n_empty``.
Images are 224 x 224 (glasses, hat) or 448 x 448 (tie) in the paper.

Inputs: ``pred``, ``target`` ``N x C x H x W`` uint8 or float [0, 1]; ``mask`` ``N x 1 x H x W``.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from bench.metrics._images import as_unit, check_mask, check_pair
from bench.metrics.base import Metric
from bench.metrics.ssim import _taps, ssim, ssim_map
from vtondata.errors import MetricInputError


def _grow(lo: int, hi: int, size: int, limit: int):
    """Grow the inclusive range [lo, hi] to at least ``size`` pixels inside [0, limit)."""
    while hi - lo + 1 < min(size, limit):
        if lo > 0:
            lo -= 1
        if hi - lo + 1 < size and hi < limit - 1:
            hi += 1
    return lo, hi


def lssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, region: str = "bbox",
          **ssim_params: Any) -> torch.Tensor:
    """Per-pair LSSIM, shape ``N`` (NaN where the mask is empty)."""
    if region not in ("bbox", "mask"):
        raise MetricInputError(f"lssim region must be 'bbox' or 'mask', got {region!r}")
    check_pair(pred, target)
    p, t = as_unit(pred, "pred"), as_unit(target, "target")
    m = check_mask(mask, p) > 0.5
    out = torch.full((p.shape[0],), float("nan"), dtype=torch.float64, device=p.device)
    if region == "mask":
        smap = ssim_map(p, t, **ssim_params).to(torch.float64).mean(1)
        r = (m.shape[-1] - smap.shape[-1]) // 2
        inner = m[:, 0, r:m.shape[-2] - r, r:m.shape[-1] - r]
        for i in range(p.shape[0]):
            if inner[i].any():
                out[i] = smap[i][inner[i]].mean()
        return out
    win = len(_taps(ssim_params.get("window", "gaussian"), float(ssim_params.get("sigma", 1.5)),
                    float(ssim_params.get("truncate", 3.5)), int(ssim_params.get("win_size", 7))))
    for i in range(p.shape[0]):
        ys, xs = torch.nonzero(m[i, 0], as_tuple=True)
        if ys.numel() == 0:
            continue
        y0, y1 = _grow(int(ys.min()), int(ys.max()), win, p.shape[-2])
        x0, x1 = _grow(int(xs.min()), int(xs.max()), win, p.shape[-1])
        out[i] = ssim(p[i:i + 1, :, y0:y1 + 1, x0:x1 + 1], t[i:i + 1, :, y0:y1 + 1, x0:x1 + 1], **ssim_params)[0]
    return out


class LSSIM(Metric):
    """Mean LSSIM over pairs; ``update(pred, target, mask=gt_foreground_mask)``."""

    name = "lssim"
    higher_is_better = True

    def __init__(self, region: str = "bbox", **ssim_params: Any) -> None:
        super().__init__()
        if region not in ("bbox", "mask"):
            raise MetricInputError(f"lssim region must be 'bbox' or 'mask', got {region!r}")
        self.region = region
        self.ssim_params = dict(ssim_params)
        self.add_mean_state()
        self.add_state("n_empty", 0.0, "sum")

    def params(self) -> Dict[str, Any]:
        return {"region": self.region, "ssim": dict(self.ssim_params), "definition": "UNVERIFIED (CorrelNet)"}

    def _update(self, pred, target, mask=None, **ctx) -> None:
        v = lssim(pred, target, mask, self.region, **self.ssim_params)
        ok = ~torch.isnan(v)
        self._add_values(v[ok])
        self._add("n_empty", (~ok).sum().to(torch.float64))

    def _compute(self, state) -> Dict[str, Any]:
        return {**self._mean_result(state), "n_empty": int(float(state["n_empty"]))}
