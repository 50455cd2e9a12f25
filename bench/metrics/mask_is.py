"""mask-IS: Inception Score of the generated images with the background zeroed (PG2 recipe).

``masked = uint8(mask / 255 * img)`` (``bench.metrics.masks.apply_mask``), then IS with the
preset's recipe (10 splits, TF Inception logits without bias). SPG-VTON scores mask-IS on the
face and the clothes regions of the generated images; the region masks come from parsing
(``bench.metrics.masks.region_mask``), whose source (GT or predicted parsing) is UNVERIFIED.

Inputs: ``pred`` ``N x 3 x H x W`` uint8 or float [0, 1]; ``mask`` ``N x 1 x H x W`` (1 = keep).
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from bench.metrics._images import as_unit, check_mask
from bench.metrics.inception_score import InceptionScore
from bench.metrics.masks import apply_mask


class MaskIS(InceptionScore):
    """IS of ``pred`` after masking; ``update(pred, mask=...)``."""

    name = "mask_is"

    def __init__(self, quantize: bool = True, mask_source: str = "caller", **kw: Any) -> None:
        super().__init__(**kw)
        self.quantize = bool(quantize)
        self.mask_source = mask_source

    def params(self) -> Dict[str, Any]:
        return {**super().params(), "quantize": self.quantize, "mask_source": self.mask_source}

    def _prepare(self, pred: torch.Tensor, mask=None, **ctx: Any) -> torch.Tensor:
        p = as_unit(pred, "pred")
        return apply_mask(p, check_mask(mask, p), self.quantize)
