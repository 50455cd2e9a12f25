"""SSIM, batched on any device, faithful to scikit-image's ``structural_similarity``.

    SSIM(x, y) = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2)),
    C1 = (k1 L)^2, C2 = (k2 L)^2, L = 1 on the [0, 1] scale (= the stored dtype's range).

Local statistics come from a separable window: ``window="gaussian"`` (sigma 1.5, truncate 3.5 ->
11 taps, the "Wang et al." settings) or ``"uniform"`` (``win_size`` x ``win_size``, skimage's
default 7). ``covariance="population"`` (Wang) or ``"sample"`` (skimage default, x NP/(NP-1)).
``crop="valid"`` averages only pixels whose window lies inside the image, which is exactly
skimage's ``crop(S, (win_size-1)//2)``; ``crop="none"`` reflect-pads and averages every pixel
(torchmetrics >= 1.5). Colour images: the mean over channels (skimage ``channel_axis``);
``color="gray-pil"`` first converts with PIL's ``convert('L')`` formula (HR-VITON).

Statistics are computed on data centred at 0.5 (the means are shifted back for the luminance
term), which keeps float32 within ~1e-6 of skimage's float64 on 8-bit images; ``dtype="float64"``
is available for bit-level comparisons.

Inputs: ``pred``, ``target`` ``N x C x H x W`` uint8 or float in [0, 1]; output per image in
[-1, 1], ``value`` = mean over images, ``std`` over images (ddof 0).

Example::

    >>> m = SSIM(color="gray-pil"); m.update(pred, target); m.compute()["value"]
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from bench.metrics._images import as_unit, check_pair, gray_pil
from bench.metrics.base import Metric, mean_std
from vtondata.errors import MetricInputError

WINDOWS = ("gaussian", "uniform")
COVARIANCES = ("population", "sample")
CROPS = ("valid", "none")
COLORS = ("rgb", "gray-pil")


@lru_cache(maxsize=16)
def _taps(window: str, sigma: float, truncate: float, win_size: int) -> Tuple[float, ...]:
    if window == "gaussian":
        radius = int(truncate * sigma + 0.5)
        xs = torch.arange(-radius, radius + 1, dtype=torch.float64)
        w = torch.exp(-0.5 * (xs / sigma) ** 2)
        return tuple((w / w.sum()).tolist())
    if win_size % 2 != 1:
        raise MetricInputError(f"SSIM win_size must be odd, got {win_size}")
    return tuple([1.0 / win_size] * win_size)


def _filter(maps: torch.Tensor, taps: Tuple[float, ...], pad: bool) -> torch.Tensor:
    """Separable correlation of every channel of ``maps`` with ``taps`` (rows, then columns).

    Written as a sum of shifted slices: on CPU this is 4x faster than a grouped ``conv2d`` and
    bit-identical to it; on GPU both are memory-bound.
    """
    k = len(taps)
    if pad:
        r = (k - 1) // 2
        maps = F.pad(maps, (r, r, r, r), mode="reflect")
    w_out = maps.shape[-1] - k + 1
    rows = maps[..., 0:w_out] * taps[0]
    for i in range(1, k):
        rows.add_(maps[..., i:i + w_out], alpha=taps[i])
    h_out = rows.shape[-2] - k + 1
    out = rows[..., 0:h_out, :] * taps[0]
    for i in range(1, k):
        out.add_(rows[..., i:i + h_out, :], alpha=taps[i])
    return out


def ssim_map(pred: torch.Tensor, target: torch.Tensor, *, window: str = "gaussian", sigma: float = 1.5,
             truncate: float = 3.5, win_size: int = 7, covariance: str = "population", crop: str = "valid",
             color: str = "rgb", k1: float = 0.01, k2: float = 0.03, dtype: str = "float32") -> torch.Tensor:
    """The SSIM map, ``N x C x H' x W'`` (``H' = H - win + 1`` for ``crop="valid"``, else ``H``)."""
    _check_params(window, covariance, crop, color, dtype)
    check_pair(pred, target)
    x = as_unit(pred, "pred")
    y = as_unit(target, "target")
    if color == "gray-pil":
        x, y = gray_pil(x), gray_pil(y)
    taps = _taps(window, float(sigma), float(truncate), int(win_size))
    k = len(taps)
    if min(x.shape[2:]) < k:
        raise MetricInputError(f"SSIM window ({k} px) exceeds the image ({tuple(x.shape[2:])})",
                               fix="use a smaller win_size or larger images")
    ft = torch.float64 if dtype == "float64" else torch.float32
    x = x.to(ft) - 0.5
    y = y.to(ft) - 0.5
    c = x.shape[1]
    maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    f = _filter(maps, taps, pad=(crop == "none"))
    mx, my, mxx, myy, mxy = f[:, :c], f[:, c:2 * c], f[:, 2 * c:3 * c], f[:, 3 * c:4 * c], f[:, 4 * c:]
    norm = k * k / (k * k - 1.0) if covariance == "sample" else 1.0
    vx = norm * (mxx - mx * mx)
    vy = norm * (myy - my * my)
    vxy = norm * (mxy - mx * my)
    ux, uy = mx + 0.5, my + 0.5
    c1, c2 = (k1 * 1.0) ** 2, (k2 * 1.0) ** 2
    num = (2 * ux * uy + c1) * (2 * vxy + c2)
    den = (ux * ux + uy * uy + c1) * (vx + vy + c2)
    return num / den


def ssim(pred: torch.Tensor, target: torch.Tensor, **params: Any) -> torch.Tensor:
    """Per-image SSIM, shape ``N`` (float64); parameters as :func:`ssim_map`."""
    return ssim_map(pred, target, **params).to(torch.float64).flatten(1).mean(1)


def _check_params(window, covariance, crop, color, dtype) -> None:
    for value, allowed, what in ((window, WINDOWS, "window"), (covariance, COVARIANCES, "covariance"),
                                 (crop, CROPS, "crop"), (color, COLORS, "color"),
                                 (dtype, ("float32", "float64"), "dtype")):
        if value not in allowed:
            raise MetricInputError(f"SSIM {what} must be one of {allowed}, got {value!r}")


class SSIM(Metric):
    """Mean per-image SSIM over the dataset (``std`` over images, ddof 0)."""

    name = "ssim"
    higher_is_better = True

    def __init__(self, window: str = "gaussian", sigma: float = 1.5, truncate: float = 3.5, win_size: int = 7,
                 covariance: str = "population", crop: str = "valid", color: str = "rgb",
                 k1: float = 0.01, k2: float = 0.03, dtype: str = "float32") -> None:
        super().__init__()
        _check_params(window, covariance, crop, color, dtype)
        self._params = dict(window=window, sigma=float(sigma), truncate=float(truncate), win_size=int(win_size),
                            covariance=covariance, crop=crop, color=color, k1=float(k1), k2=float(k2), dtype=dtype)
        self.add_state("total", 0.0, "sum")
        self.add_state("total_sq", 0.0, "sum")
        self.add_state("count", 0.0, "sum")

    def params(self) -> Dict[str, Any]:
        return dict(self._params)

    def values(self, pred: torch.Tensor, target: torch.Tensor, **ctx: Any) -> torch.Tensor:
        """Per-image SSIM with this metric's parameters (hook for the masked variants)."""
        return ssim(pred, target, **self._params)

    def _update(self, pred, target, **ctx) -> None:
        v = self.values(pred, target, **ctx)
        self._add("total", v.sum())
        self._add("total_sq", (v ** 2).sum())
        self._add("count", torch.tensor(float(v.numel()), device=v.device))

    def _compute(self, state) -> Dict[str, Any]:
        n = float(state["count"])
        return {**mean_std(float(state["total"]), float(state["total_sq"]), n), "n": int(n)}
