"""KID: unbiased MMD^2 with a cubic polynomial kernel on Inception pool3 features.

    k(x, y) = (gamma x.y + coef0)^degree,  gamma = 1 / D, coef0 = 1, degree = 3
    MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
            - 2 sum_{i, j} k(x_i, y_j) / m^2

averaged over ``subsets`` random subsets of size ``subset_size`` drawn without replacement from
each set with ``numpy.random.RandomState(seed)`` in the order torch-fidelity uses (for each subset:
indices of the generated set, then of the real set). When a set has fewer than ``subset_size``
rows, ``subset_size`` shrinks to the smaller set (clean-fid's behaviour; ``shrink=False`` raises
as torch-fidelity does). ``value`` is the raw KID; ``std`` is the population std over subsets;
the preset's ``display`` scale (x100 HR-VITON tables, x1000 LaDI-VTON / CatVTON) is applied only
when printing.

Features are gathered from all ranks in rank order and KID is computed on rank 0; the seeded
subsets make the value depend on the row order, so a distributed run matches a single process
when the ranks hold consecutive shards.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch

from bench.metrics._features import FeatureMetric
from vtondata.errors import MetricInputError

# kernel matrices over the whole sets are precomputed when they hold at most this many entries
_GRAM_LIMIT = 3 * 4096 * 4096


def kid_from_features(pred: torch.Tensor, target: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                      degree: int = 3, gamma: Optional[float] = None, coef0: float = 1.0, seed: int = 2020,
                      shrink: bool = True) -> Dict[str, Any]:
    """KID between ``N1 x D`` and ``N2 x D`` features: ``{"value", "std", "subset_size", "subsets"}``."""
    x = torch.as_tensor(pred, dtype=torch.float64)
    y = torch.as_tensor(target, dtype=torch.float64).to(x.device)
    n1, n2, d = x.shape[0], y.shape[0], x.shape[1]
    m = int(subset_size)
    if min(n1, n2) < m:
        if not shrink:
            raise MetricInputError(f"KID subset_size {m} exceeds the set sizes ({n1}, {n2})",
                                   fix="lower subset_size or allow shrink")
        m = min(n1, n2)
    if m < 2:
        raise MetricInputError(f"KID needs at least 2 samples per set, got ({n1}, {n2})")
    g = 1.0 / d if gamma is None else float(gamma)

    def kern(a, b):
        return (a @ b.T * g + coef0) ** degree

    gram = n1 * n1 + n2 * n2 + n1 * n2 <= _GRAM_LIMIT
    if gram:
        kxx_all, kyy_all, kxy_all = kern(x, x), kern(y, y), kern(x, y)
    rng = np.random.RandomState(seed)
    values = np.empty(int(subsets), dtype=np.float64)
    for s in range(int(subsets)):
        i1 = torch.from_numpy(rng.choice(n1, m, replace=False)).to(x.device)
        i2 = torch.from_numpy(rng.choice(n2, m, replace=False)).to(x.device)
        if gram:
            kxx, kyy, kxy = kxx_all[i1][:, i1], kyy_all[i2][:, i2], kxy_all[i1][:, i2]
        else:
            xs, ys = x[i1], y[i2]
            kxx, kyy, kxy = kern(xs, xs), kern(ys, ys), kern(xs, ys)
        a = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
        b = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        values[s] = float(a + b - 2.0 * kxy.sum() / (m * m))
    return {"value": float(values.mean()), "std": float(values.std()), "subset_size": m, "subsets": int(subsets)}


class KID(FeatureMetric):
    """KID between generated (``pred``) and real (``target``) sets."""

    name = "kid"
    higher_is_better = False

    def __init__(self, subsets: int = 100, subset_size: int = 1000, degree: int = 3, gamma: Optional[float] = None,
                 coef0: float = 1.0, seed: int = 2020, shrink: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.kid_params = dict(subsets=int(subsets), subset_size=int(subset_size), degree=int(degree), gamma=gamma,
                               coef0=float(coef0), seed=int(seed), shrink=bool(shrink))
        self.add_state("pred_features", [], "cat")
        self.add_state("target_features", [], "cat")

    def params(self) -> Dict[str, Any]:
        return {**super().params(), **self.kid_params}

    def _compute(self, state) -> Dict[str, Any]:
        x, y = state["pred_features"], state["target_features"]
        if x is None or y is None:
            raise MetricInputError("KID needs features of both the generated (pred) and the real (target) set")
        out = kid_from_features(x, y, **self.kid_params)
        return {**out, "n_pred": int(x.shape[0]), "n_target": int(y.shape[0])}
