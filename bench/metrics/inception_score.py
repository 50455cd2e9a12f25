"""IS: Inception Score of the generated images (mean and std over splits).

    IS = exp(E_x KL(p(y|x) || p(y))),  p(y) = mean of p(y|x) within the split

Recipes (preset data):

* TF-compatible (presets pytorch-fid, clean): the TF ``inception-2015-12-05`` graph's logits
  without bias (``logits_unbiased`` = pool3 @ W, 1008 classes, as openai/improved-gan and
  torch-fidelity), softmax, ``splits=10`` consecutive splits in input order
  (``[i N // splits, (i + 1) N // splits)``, no shuffling), mean and std with ddof 0;
* HR-VITON (preset hr-viton): torchvision's ImageNet Inception (``logits`` with bias, 1000
  classes) on images PIL-resized to 299 and mapped to [-1, 1], ``splits=1`` (std is then 0).

The input resize of the original TF graph is done here by the preset's recipe (pytorch-fid's
bilinear for the TF network), a documented approximation of the graph's own resize.

Inputs: ``pred`` ``N x 3 x H x W`` uint8 or float in [0, 1] (``target`` is ignored).
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from bench.metrics._features import FeatureMetric
from vtondata.errors import MetricInputError


def inception_score_from_logits(logits: torch.Tensor, splits: int = 10, ddof: int = 0) -> Dict[str, Any]:
    """IS from ``N x K`` logits: ``{"value", "std", "per_split"}`` (float64)."""
    lg = torch.as_tensor(logits, dtype=torch.float64)
    n = lg.shape[0]
    if n < splits or splits < 1:
        raise MetricInputError(f"IS needs at least `splits` ({splits}) images, got {n}")
    logp = torch.log_softmax(lg, dim=1)
    p = logp.exp()
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        part, logpart = p[lo:hi], logp[lo:hi]
        log_py = torch.log(part.mean(0, keepdim=True))
        kl = (part * (logpart - log_py)).sum(1).mean()
        scores.append(float(torch.exp(kl)))
    t = torch.tensor(scores, dtype=torch.float64)
    std = float(t.std(correction=ddof)) if splits - ddof > 0 else 0.0
    return {"value": float(t.mean()), "std": std, "per_split": scores}


class InceptionScore(FeatureMetric):
    """IS of the generated set; ``logits`` selects ``logits_unbiased`` (TF) or ``logits`` (with bias)."""

    name = "is"
    higher_is_better = True

    def __init__(self, splits: int = 10, logits: str = "logits_unbiased", std_ddof: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        if logits not in ("logits_unbiased", "logits"):
            raise MetricInputError(f"IS logits must be 'logits_unbiased' or 'logits', got {logits!r}")
        self.feature = logits
        self.splits, self.std_ddof = int(splits), int(std_ddof)
        self.add_state("pred_features", [], "cat")

    def params(self) -> Dict[str, Any]:
        return {**super().params(), "splits": self.splits, "std_ddof": self.std_ddof}

    def _update(self, pred, target=None, **ctx) -> None:
        if pred is None:
            raise MetricInputError("IS scores the generated images: pass pred")
        super()._update(pred, None, **ctx)

    def _update_features(self, pred, target) -> None:
        if pred is not None:
            self._append("pred_features", pred.detach().float())

    def _compute(self, state) -> Dict[str, Any]:
        logits = state["pred_features"]
        if logits is None:
            raise MetricInputError("IS has no generated images")
        return {**inception_score_from_logits(logits, self.splits, self.std_ddof), "n": int(logits.shape[0])}
