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
from typing import Any, Dict, Tuple

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


def _filter(maps: torch.Tensor, taps: Tuple[float, ...]) -> torch.Tensor:
    """Separable correlation of the last two dims of ``maps`` with ``taps`` (valid region only).

    Written as sums of shifted slices, which on CPU beats ``conv2d`` (grouped, or depthwise on
    channels-last memory) once the working set fits in cache; the caller feeds cache-sized units.
    """
    k = len(taps)
    h_out = maps.shape[-2] - k + 1
    cols = maps[..., 0:h_out, :] * taps[0]
    for i in range(1, k):
        cols.add_(maps[..., i:i + h_out, :], alpha=taps[i])
    w_out = maps.shape[-1] - k + 1
    out = cols[..., 0:w_out] * taps[0]
    for i in range(1, k):
        out.add_(cols[..., i:i + w_out], alpha=taps[i])
    return out


# pixels per work unit on CPU: 5 float maps of this size stay within a few MB of cache
_CPU_CHUNK_PIXELS = 1 << 17


def _ssim_planes(x: torch.Tensor, y: torch.Tensor, taps: Tuple[float, ...], norm: float, pad: bool,
                 c1: float, c2: float, ft: torch.dtype, reduce: bool) -> torch.Tensor:
    """SSIM of ``P x H x W`` planes: the per-plane mean (``reduce``) or the map ``P x H' x W'``.

    On CPU the work is cut into cache-sized units (several small planes, or bands of rows of a
    large plane with a ``k - 1`` row halo); on GPU one unit holds everything.
    """
    k = len(taps)
    if pad:
        r = (k - 1) // 2
        x = F.pad(x.unsqueeze(1), (r, r, r, r), mode="reflect").squeeze(1)
        y = F.pad(y.unsqueeze(1), (r, r, r, r), mode="reflect").squeeze(1)
    planes, h, w = x.shape
    h_out, w_out = h - k + 1, w - k + 1
    if x.device.type != "cpu":
        per_chunk, band = planes, h_out
    elif h * w <= _CPU_CHUNK_PIXELS:
        per_chunk, band = max(1, _CPU_CHUNK_PIXELS // (h * w)), h_out
    else:
        per_chunk, band = 1, max(1, _CPU_CHUNK_PIXELS // w - (k - 1))
    sums = torch.zeros(planes, dtype=torch.float64, device=x.device)
    maps_out = []
    for p0 in range(0, planes, per_chunk):
        rows_out = []
        for r0 in range(0, h_out, band):
            r1 = min(h_out, r0 + band)
            xin = x[p0:p0 + per_chunk, r0:r1 + k - 1]
            maps = torch.empty((5, *xin.shape), dtype=ft, device=x.device)
            torch.sub(xin, 0.5, out=maps[0])
            torch.sub(y[p0:p0 + per_chunk, r0:r1 + k - 1], 0.5, out=maps[1])
            torch.mul(maps[0], maps[0], out=maps[2])
            torch.mul(maps[1], maps[1], out=maps[3])
            torch.mul(maps[0], maps[1], out=maps[4])
            f = _filter(maps, taps)
            del maps
            mx, my, mxx, myy, mxy = f[0], f[1], f[2], f[3], f[4]
            # in place on the filtered maps: variances, then numerator / denominator
            mxx.sub_(mx * mx)
            myy.sub_(my * my)
            mxy.sub_(mx * my)
            mx.add_(0.5)
            my.add_(0.5)
            num = (mx * my).mul_(2).add_(c1).mul_(mxy.mul_(2 * norm).add_(c2))
            den = mx.square_().add_(my.square_()).add_(c1).mul_(mxx.add_(myy).mul_(norm).add_(c2))
            smap = num.div_(den)
            if reduce:
                sums[p0:p0 + per_chunk] += smap.flatten(1).sum(1, dtype=torch.float64)
            else:
                rows_out.append(smap)
        if not reduce:
            maps_out.append(torch.cat(rows_out, dim=1))
    if reduce:
        return sums / float(h_out * w_out)
    return torch.cat(maps_out)


def _prepare(pred, target, window, sigma, truncate, win_size, covariance, crop, color, dtype):
    _check_params(window, covariance, crop, color, dtype)
    check_pair(pred, target)
    ft = torch.float64 if dtype == "float64" else torch.float32
    x = as_unit(pred, "pred", ft)
    y = as_unit(target, "target", ft)
    if color == "gray-pil":
        x, y = gray_pil(x), gray_pil(y)
    taps = _taps(window, float(sigma), float(truncate), int(win_size))
    k = len(taps)
    if min(x.shape[2:]) < k:
        raise MetricInputError(f"SSIM window ({k} px) exceeds the image ({tuple(x.shape[2:])})",
                               fix="use a smaller win_size or larger images")
    norm = k * k / (k * k - 1.0) if covariance == "sample" else 1.0
    return x, y, taps, norm, ft


def ssim_map(pred: torch.Tensor, target: torch.Tensor, *, window: str = "gaussian", sigma: float = 1.5,
             truncate: float = 3.5, win_size: int = 7, covariance: str = "population", crop: str = "valid",
             color: str = "rgb", k1: float = 0.01, k2: float = 0.03, dtype: str = "float32") -> torch.Tensor:
    """The SSIM map, ``N x C x H' x W'`` (``H' = H - win + 1`` for ``crop="valid"``, else ``H``)."""
    x, y, taps, norm, ft = _prepare(pred, target, window, sigma, truncate, win_size, covariance, crop, color, dtype)
    n, c, h, w = x.shape
    smap = _ssim_planes(x.reshape(n * c, h, w), y.reshape(n * c, h, w), taps, norm, crop == "none",
                        k1 ** 2, k2 ** 2, ft, reduce=False)
    return smap.reshape(n, c, *smap.shape[-2:])


def ssim(pred: torch.Tensor, target: torch.Tensor, *, window: str = "gaussian", sigma: float = 1.5,
         truncate: float = 3.5, win_size: int = 7, covariance: str = "population", crop: str = "valid",
         color: str = "rgb", k1: float = 0.01, k2: float = 0.03, dtype: str = "float32") -> torch.Tensor:
    """Per-image SSIM, shape ``N`` (float64): the mean of the map over channels and pixels."""
    x, y, taps, norm, ft = _prepare(pred, target, window, sigma, truncate, win_size, covariance, crop, color, dtype)
    n, c, h, w = x.shape
    means = _ssim_planes(x.reshape(n * c, h, w), y.reshape(n * c, h, w), taps, norm, crop == "none",
                         k1 ** 2, k2 ** 2, ft, reduce=True)
    return means.reshape(n, c).mean(1)


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
