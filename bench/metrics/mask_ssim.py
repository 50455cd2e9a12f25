"""mask-SSIM: SSIM after zeroing the background of both images (PG2 recipe), over the whole image.

PG2 (charliememory/Pose-Guided-Person-Image-Generation ``score_mask.py``): ``masked =
uint8(mask / 255 * img)`` for the generated and the target image, then
``compare_ssim(masked_G, masked_target, multichannel=True)`` with scikit-image defaults (7 x 7
uniform window, sample covariance, data range 255) over the full image, not only inside the
mask. The SSIM parameters come from the preset (PG2 defaults in every shipped preset).

The mask is given per batch (``mask=`` ``N x 1 x H x W``, 1 = keep): PG2's pose mask
(``bench.metrics.masks.pose_mask``) or a parsing region (``region_mask``; SPG-VTON's "face" and
"w/o clothes" regions). Which mask each paper used is UNVERIFIED (PG2's released script reads the
conditioning image's pose mask; Tree-Block does not say); it is the caller's choice, recorded in
the preset's ``mask_source``.

Inputs: ``pred``, ``target`` ``N x C x H x W`` uint8 or float in [0, 1]; ``mask`` as above.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from bench.metrics._images import as_unit, check_mask, check_pair
from bench.metrics.masks import apply_mask
from bench.metrics.ssim import SSIM, ssim


def mask_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, quantize: bool = True,
              **ssim_params: Any) -> torch.Tensor:
    """Per-image mask-SSIM, shape ``N``."""
    check_pair(pred, target)
    p, t = as_unit(pred, "pred"), as_unit(target, "target")
    m = check_mask(mask, p)
    return ssim(apply_mask(p, m, quantize), apply_mask(t, m, quantize), **ssim_params)


class MaskSSIM(SSIM):
    """Mean mask-SSIM over images; ``update(pred, target, mask=...)``."""

    name = "mask_ssim"

    def __init__(self, quantize: bool = True, mask_source: str = "caller", **ssim_params: Any) -> None:
        defaults = dict(window="uniform", win_size=7, covariance="sample", crop="valid", color="rgb")
        super().__init__(**{**defaults, **ssim_params})
        self.quantize = bool(quantize)
        self.mask_source = mask_source

    def params(self) -> Dict[str, Any]:
        return {**super().params(), "quantize": self.quantize, "mask_source": self.mask_source}

    def values(self, pred, target, mask=None, **ctx) -> torch.Tensor:
        return mask_ssim(pred, target, mask, self.quantize, **self._params)
