"""Shared base of the distribution metrics (FID, KID, IS, mask-IS): images -> Inception features.

``update(pred=None, target=None)`` runs the shared extractor (one network per configuration and
device, see ``bench.metrics.inception.get_extractor``) on whichever image set is given, so the
generated set (``pred``) and the real set (``target``) may differ in size and be fed separately.
``update_features`` accepts features computed once for several metrics (``bench.score`` does).
Results carry ``comparable: false`` whenever the network has random weights.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from bench.metrics.base import Metric
from bench.metrics.inception import get_extractor


class FeatureMetric(Metric):
    """Base: holds the extractor configuration; subclasses implement ``_update_features``."""

    paired = False
    compute_on_rank0 = True
    feature = "pool3"

    def __init__(self, extractor: Optional[Dict[str, Any]] = None, random_weights: bool = False,
                 weights: Optional[str] = None, device: Optional[str] = None) -> None:
        super().__init__()
        self.extractor_config = dict(extractor or {"network": "pytorch-fid", "resize": "torch-bilinear",
                                                   "size": 299, "normalize": "2x-1"})
        self.random_weights = bool(random_weights)
        self.weights = weights
        self.device = torch.device(device) if device else None
        self.comparable = not self.random_weights
        if self.random_weights:
            self.notes.append("random network weights: not comparable with published numbers")

    def extractor(self, like: Optional[torch.Tensor] = None):
        dev = self.device or (like.device if like is not None else torch.device("cpu"))
        return get_extractor(self.extractor_config, dev, self.random_weights, self.weights)

    def prepare(self, device=None) -> None:
        self.extractor(torch.empty(0, device=device) if device is not None else None)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor(images)(images)[self.feature]

    def _update(self, pred, target=None, **ctx) -> None:
        self._update_features(None if pred is None else self.features(self._prepare(pred, **ctx)),
                              None if target is None else self.features(target))

    def _prepare(self, pred: torch.Tensor, **ctx: Any) -> torch.Tensor:
        """Hook for the masked variant (mask-IS); identity here."""
        return pred

    def update_features(self, pred: Optional[torch.Tensor] = None, target: Optional[torch.Tensor] = None) -> None:
        """Accumulate precomputed features (``N x D``) of the generated and / or the real set."""
        with torch.no_grad():
            self._update_features(pred, target)

    def _update_features(self, pred, target) -> None:
        for name, feats in (("pred", pred), ("target", target)):
            if feats is not None:
                self._append(f"{name}_features", feats.detach().float())

    def params(self) -> Dict[str, Any]:
        return {"extractor": dict(self.extractor_config), "feature": self.feature,
                "weights": "random" if self.random_weights else (self.weights or "standard cache")}
