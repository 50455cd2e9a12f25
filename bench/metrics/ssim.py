"""SSIM, batched on any device, faithful to scikit-image's ``structural_similarity``.

    SSIM(x, y) = (2 ux uy + C1)(2 vxy + C2) / ((ux^2 + uy^2 + C1)(vx + vy + C2)),
    C1 = (k1 L)^2, C2 = (k2 L)^2, L = the stored dtype's range (255 for uint8, 1 for [0, 1] floats).

Local statistics come from a separable window: ``window="gaussian"`` (sigma 1.5, truncate 3.5 ->
11 taps, the "Wang et al." settings) or ``"uniform"`` (``win_size`` x ``win_size``, skimage's
default 7). ``covariance="population"`` (Wang) or ``"sample"`` (skimage default, x NP/(NP-1)).
``crop="valid"`` averages only pixels whose window lies inside the image, which is exactly
skimage's ``crop(S, (win_size-1)//2)``; ``crop="none"`` reflect-pads and averages every pixel
(torchmetrics >= 1.5). Colour images: the mean over channels (skimage ``channel_axis``);
``color="gray-pil"`` first converts with PIL's ``convert('L')`` formula (HR-VITON). Images
smaller than the window (either side < 11 px for the Gaussian, < ``win_size`` for the uniform
window) are refused, as skimage refuses them.

Computation: four moment maps (x, y, x^2 + y^2, x y; skimage filters five, but only vx + vy
enters the formula) on the [0, 1] scale centred at 0.5, filtered with the separable window, then
combined per pixel. On CPU the filter is OpenCV's ``sepFilter2D`` over all planes of the batch
stacked into one tall image, in cache-sized bands of rows (no Python loop over images; values do
not depend on the batch, the band size or the thread count; ``torch.get_num_threads()`` threads
share the bands); on other devices (CUDA, MPS) the same maps are filtered with torch slice sums
(``backend="torch"`` forces that path on CPU). Precision in float32: ~1e-8 from skimage's float64
on noise images, up to ~1e-5 (typically ~1e-6) on real photographs with flat regions (measured on
the 69 images of ``shared/realdata``); ``dtype="float64"`` agrees with skimage to ~1e-10.

Inputs: ``pred``, ``target`` ``N x C x H x W`` uint8 or float (float16 / 32 / 64) in [0, 1]; output
per image in [-1, 1], ``value`` = mean over images, ``std`` over images (ddof 0).

Example::

    >>> m = SSIM(color="gray-pil"); m.update(pred, target); m.compute()["value"]
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from bench.metrics._images import as_unit, check_pair, gray_pil
from bench.metrics.base import Metric
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

    Plain sums of shifted slices: device-agnostic (the CUDA / MPS path and the reference for the
    OpenCV path in the tests).
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


def _moments(x: torch.Tensor, y: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The four maps SSIM filters, on the [0, 1] scale centred at 0.5, written into ``out`` (4 x ...):
    ``out[0] = x - .5``, ``out[1] = y - .5``, ``out[2] = out[0]^2 + out[1]^2``, ``out[3] = out[0] out[1]``.
    ``x``, ``y``: float in [0, 1], or uint8 levels (mapped here, ``(x - 127.5) / 255``, one cache-sized
    band at a time instead of converting the whole batch first).

    Only the sum of the two variances enters SSIM, so ``x^2`` and ``y^2`` share one map (4 maps,
    not skimage's 5; the filter is linear, so the result differs from skimage only by rounding).
    """
    if x.dtype == torch.uint8:
        torch.sub(x, 127.5, out=out[0]).div_(255.0)  # exact half-integers, then one correct rounding
        torch.sub(y, 127.5, out=out[1]).div_(255.0)
    else:
        torch.sub(x, 0.5, out=out[0])
        torch.sub(y, 0.5, out=out[1])
    torch.mul(out[0], out[0], out=out[2])
    out[2].addcmul_(out[1], out[1])
    torch.mul(out[0], out[1], out=out[3])
    return out


def _combine(f: torch.Tensor, c1: float, c2n: float) -> torch.Tensor:
    """SSIM / 4 per pixel from the filtered centred moments ``f`` (4 x ...; overwritten).

    SSIM = 4 (ux uy + C1/2)(cov + c2n/2) / ((ux^2 + uy^2 + C1)(vx + vy + c2n)), ``c2n = C2 / norm``, which
    is Wang's formula with the covariance normalisation folded into C2 (the factor 4 is applied by the
    caller). Float32 care: the constants are added after the cancelling subtractions, and the means
    are shifted back by 0.5 before the luminance products (dark regions, where C1 dominates, would
    otherwise lose ~1e-4 per pixel).
    """
    a, b, s2, p = f.unbind(0)
    p.addcmul_(a, b, value=-1.0).add_(0.5 * c2n)  # cov + c2n / 2
    s2.addcmul_(a, a, value=-1.0).addcmul_(b, b, value=-1.0).add_(c2n)  # vx + vy + c2n
    ux, uy = a.add_(0.5), b.add_(0.5)
    num = torch.addcmul(ux.new_full((), 0.5 * c1), ux, uy)  # ux uy + C1 / 2
    den = torch.addcmul(ux.new_full((), c1), ux, ux).addcmul_(uy, uy)  # ux^2 + uy^2 + C1
    num.mul_(p)
    den.mul_(s2)
    return num.div_(den)


# pixels per work unit: the torch path on CPU (cache-sized), the torch path elsewhere (memory cap),
# and the OpenCV path (output pixels per band of rows)
_CPU_CHUNK_PIXELS = 1 << 17
_DEVICE_CHUNK_PIXELS = 1 << 25
_CV_BAND_PIXELS = 1 << 17


def _ssim_planes_torch(x: torch.Tensor, y: torch.Tensor, taps: Tuple[float, ...], norm: float, c1: float,
                       c2: float, ft: torch.dtype, reduce: bool) -> torch.Tensor:
    """SSIM of ``P x H x W`` planes on any device: per-plane means (``reduce``) or ``P x H' x W'`` maps.

    Units of whole planes (cache-sized on CPU, memory-capped elsewhere); the 4 moment maps of a
    unit are stacked and filtered together.
    """
    planes, h, w = x.shape
    k = len(taps)
    h_out, w_out = h - k + 1, w - k + 1
    budget = _CPU_CHUNK_PIXELS if x.device.type == "cpu" else _DEVICE_CHUNK_PIXELS
    per = max(1, budget // (h * w))
    c2n = c2 / norm
    out = []
    for p0 in range(0, planes, per):
        xi, yi = x[p0:p0 + per], y[p0:p0 + per]
        maps = _moments(xi, yi, torch.empty((4, *xi.shape), dtype=ft, device=x.device))
        f = _filter(maps, taps)
        del maps
        s = _combine(f, c1, c2n)
        out.append(s.flatten(1).sum(1, dtype=torch.float64) if reduce else s)
    if reduce:
        return torch.cat(out) * (4.0 / (h_out * w_out))
    return torch.cat(out).mul_(4)


_cv2 = None


def _opencv():
    """OpenCV (``opencv-python-headless``, a dependency), or ``None`` when it cannot be imported."""
    global _cv2
    if _cv2 is None:
        try:
            import cv2
        except ImportError:  # pragma: no cover - the torch path is the fallback
            _cv2 = False
        else:
            _cv2 = cv2
    return _cv2 or None


def _cv_rows(xt: torch.Tensor, yt: torch.Tensor, start: int, stop: int, band: int, kern: np.ndarray, c1: float,
             c2n: float, ft: torch.dtype, out: torch.Tensor, reduce: bool) -> None:
    """Tall output rows ``[start, stop)`` of the stacked planes ``xt``, ``yt`` into ``out`` (row sums of
    SSIM / 4 when ``reduce``, else SSIM rows), band by band with this call's own buffers."""
    cv2 = _opencv()
    torch.set_num_threads(1)  # this thread's intra-op pool (the caller restores the setting)
    k, w = len(kern), xt.shape[1]
    r, w_out = k // 2, w - k + 1
    maps = torch.empty((4, band + k - 1, w), dtype=ft)
    filt = torch.empty_like(maps)
    maps_np, filt_np = maps.numpy(), filt.numpy()
    for t0 in range(start, stop, band):
        n = min(band, stop - t0)
        _moments(xt[t0:t0 + n + k - 1], yt[t0:t0 + n + k - 1], maps[:, :n + k - 1])
        for j in range(4):
            cv2.sepFilter2D(maps_np[j, :n + k - 1], -1, kern, kern, dst=filt_np[j, :n + k - 1],
                            borderType=cv2.BORDER_REFLECT_101)
        s = _combine(filt[:, r:r + n, r:r + w_out], c1, c2n)
        if reduce:  # row sums in float32 (cascade summation, <= a few thousand terms), rows added in float64
            out[t0:t0 + n] = s.sum(1)
        else:
            torch.mul(s, 4, out=out[t0:t0 + n])


def _ssim_planes_cv(x: torch.Tensor, y: torch.Tensor, taps: Tuple[float, ...], norm: float, c1: float,
                    c2: float, ft: torch.dtype, reduce: bool) -> torch.Tensor:
    """CPU path: ``cv2.sepFilter2D`` (SIMD, row-buffered) on the planes stacked into one tall image.

    The contiguous ``P x H x W`` planes are viewed as one ``P H x W`` image and processed in bands
    of about ``_CV_BAND_PIXELS`` output pixels (plus a ``k - 1`` row halo) that stay in cache: a
    "valid" output row mixes two planes only in the ``k - 1`` rows per plane that the crop drops
    anyway, so no Python loop runs over images and each value is independent of the batch, the band
    size and the thread count. Threads: ``torch.get_num_threads()`` workers each take a contiguous
    run of bands, with single-threaded torch and OpenCV calls inside (intra-op threads on these
    small ops only add barrier waits, which cost 10x on a loaded machine); both settings are
    restored afterwards.
    """
    cv2 = _opencv()
    planes, h, w = x.shape
    k = len(taps)
    h_out, w_out = h - k + 1, w - k + 1
    xt, yt = x.reshape(planes * h, w), y.reshape(planes * h, w)
    rows = planes * h - k + 1
    band = max(1, min(rows, _CV_BAND_PIXELS // w))
    kern = np.asarray(taps, dtype=np.float32 if ft == torch.float32 else np.float64)
    c2n = c2 / norm
    out = torch.zeros(planes * h, dtype=torch.float64) if reduce else torch.empty((planes * h, w_out), dtype=ft)
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    n_bands = -(-rows // band)
    workers = max(1, min(threads, n_bands))
    per = -(-n_bands // workers) * band
    args = (band, kern, c1, c2n, ft, out, reduce)
    cv2.setNumThreads(1)
    try:
        if workers == 1:
            _cv_rows(xt, yt, 0, rows, *args)
        else:
            from concurrent.futures import ThreadPoolExecutor

            torch.set_num_threads(1)  # new threads start from the global setting
            with ThreadPoolExecutor(workers) as pool:
                jobs = [pool.submit(_cv_rows, xt, yt, a, min(rows, a + per), *args) for a in range(0, rows, per)]
                for job in jobs:
                    job.result()
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    # tall output row p * h + i (i < h_out) is plane p's output row i
    if reduce:
        return out.view(planes, h)[:, :h_out].sum(1) * (4.0 / (h_out * w_out))
    return out.view(planes, h, w_out)[:, :h_out]


BACKENDS = ("auto", "opencv", "torch")


def _ssim_planes(x: torch.Tensor, y: torch.Tensor, taps: Tuple[float, ...], norm: float, pad: bool,
                 c1: float, c2: float, ft: torch.dtype, reduce: bool, backend: str = "auto") -> torch.Tensor:
    """SSIM of ``P x H x W`` planes (uint8 levels or float in [0, 1]; data range 1 on that scale)
    computed in ``ft``: the per-plane mean (``reduce``, float64) or the map ``P x H' x W'`` (``ft``).

    ``backend="auto"``: OpenCV on CPU tensors, torch slice sums elsewhere (CUDA, MPS).
    """
    if pad:
        r = (len(taps) - 1) // 2
        x = F.pad(x.unsqueeze(1), (r, r, r, r), mode="reflect").squeeze(1)
        y = F.pad(y.unsqueeze(1), (r, r, r, r), mode="reflect").squeeze(1)
    use_cv = backend == "opencv" or (backend == "auto" and x.device.type == "cpu" and _opencv() is not None)
    if use_cv:
        if x.device.type != "cpu":
            raise MetricInputError("SSIM backend 'opencv' needs CPU tensors", fix="use backend='auto'")
        return _ssim_planes_cv(x.contiguous(), y.contiguous(), taps, norm, c1, c2, ft, reduce)
    return _ssim_planes_torch(x, y, taps, norm, c1, c2, ft, reduce)


def _stored(t: torch.Tensor, name: str, ft: torch.dtype, keep_uint8: bool) -> torch.Tensor:
    """A validated batch: uint8 stays uint8 (mapped to [0, 1] band by band, which saves two passes
    over the batch), anything else becomes float ``ft`` in [0, 1] (data range 1 on both)."""
    if keep_uint8 and isinstance(t, torch.Tensor) and t.dtype == torch.uint8:
        as_unit(t[:0], name)  # the shape / channel checks only
        return t
    return as_unit(t, name, ft)


def _prepare(pred, target, window, sigma, truncate, win_size, covariance, crop, color, dtype, backend):
    _check_params(window, covariance, crop, color, dtype)
    if backend not in BACKENDS:
        raise MetricInputError(f"SSIM backend must be one of {BACKENDS}, got {backend!r}")
    check_pair(pred, target)
    ft = torch.float64 if dtype == "float64" else torch.float32
    raw = color == "rgb" and getattr(pred, "dtype", None) == getattr(target, "dtype", None) == torch.uint8
    x = _stored(pred, "pred", ft, raw)
    y = _stored(target, "target", ft, raw)
    if color == "gray-pil":
        x, y = gray_pil(x), gray_pil(y)
    taps = _taps(window, float(sigma), float(truncate), int(win_size))
    k = len(taps)
    if min(x.shape[2:]) < k:
        raise MetricInputError(f"SSIM window ({k} px) exceeds the image ({tuple(x.shape[2:])}); scikit-image "
                               "refuses such images too", fix="use a smaller win_size or larger images")
    norm = k * k / (k * k - 1.0) if covariance == "sample" else 1.0
    return x, y, taps, norm, ft


def ssim_map(pred: torch.Tensor, target: torch.Tensor, *, window: str = "gaussian", sigma: float = 1.5,
             truncate: float = 3.5, win_size: int = 7, covariance: str = "population", crop: str = "valid",
             color: str = "rgb", k1: float = 0.01, k2: float = 0.03, dtype: str = "float32",
             backend: str = "auto") -> torch.Tensor:
    """The SSIM map, ``N x C x H' x W'`` (``H' = H - win + 1`` for ``crop="valid"``, else ``H``).

    ``backend``: ``"auto"`` (OpenCV on CPU, torch on other devices), ``"opencv"`` or ``"torch"``.
    """
    x, y, taps, norm, ft = _prepare(pred, target, window, sigma, truncate, win_size, covariance, crop,
                                           color, dtype, backend)
    n, c, h, w = x.shape
    smap = _ssim_planes(x.reshape(n * c, h, w), y.reshape(n * c, h, w), taps, norm, crop == "none",
                        k1 ** 2, k2 ** 2, ft, reduce=False, backend=backend)
    return smap.reshape(n, c, *smap.shape[-2:])


def ssim(pred: torch.Tensor, target: torch.Tensor, *, window: str = "gaussian", sigma: float = 1.5,
         truncate: float = 3.5, win_size: int = 7, covariance: str = "population", crop: str = "valid",
         color: str = "rgb", k1: float = 0.01, k2: float = 0.03, dtype: str = "float32",
         backend: str = "auto") -> torch.Tensor:
    """Per-image SSIM, shape ``N`` (float64): the mean of the map over channels and pixels.

    ``backend``: ``"auto"`` (OpenCV on CPU, torch on other devices), ``"opencv"`` or ``"torch"``.
    """
    x, y, taps, norm, ft = _prepare(pred, target, window, sigma, truncate, win_size, covariance, crop,
                                           color, dtype, backend)
    n, c, h, w = x.shape
    means = _ssim_planes(x.reshape(n * c, h, w), y.reshape(n * c, h, w), taps, norm, crop == "none",
                         k1 ** 2, k2 ** 2, ft, reduce=True, backend=backend)
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
        self.add_mean_state()

    def params(self) -> Dict[str, Any]:
        return dict(self._params)

    def values(self, pred: torch.Tensor, target: torch.Tensor, **ctx: Any) -> torch.Tensor:
        """Per-image SSIM with this metric's parameters (hook for the masked variants)."""
        return ssim(pred, target, **self._params)

    def _update(self, pred, target, **ctx) -> None:
        v = self.values(pred, target, **ctx)
        self._add_values(v)

    def _compute(self, state) -> Dict[str, Any]:
        return self._mean_result(state)
