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

Computation: four moment maps, the difference ``d = x - y`` and the centred sum ``t = x + y - 1``
(``x + y - 255`` in levels) and their squares (skimage filters five: x, y, x^2, y^2, x y), filtered
with the separable window, then combined per pixel: ``E[d^2] - E[d]^2 = vx + vy - 2 cov`` and
``E[t^2] - E[t]^2 = vx + vy + 2 cov`` (see ``_combine``). For similar images ``d`` is small, so its
variance is exact to the last bits and the rounding of the large ``t`` terms cancels between the
numerator and the denominator (identical images give exactly 1). On CPU the filter is OpenCV's
``sepFilter2D`` / ``filter2D`` over all planes of the batch stacked into one tall image, in
cache-sized bands of rows; uint8 batches are mapped to exact int16 ``d``, ``t`` and exact float
squares, band by band, and everything else runs in place with NumPy and OpenCV (no Python loop
over images; values do not depend on the batch, the band size or the thread count;
``torch.get_num_threads()`` threads of a persistent pool share the bands); on other devices
(CUDA, MPS) the same maps are filtered with torch slice sums (``backend="torch"`` forces that path
on CPU). Precision in float32 against skimage's float64: ~1e-8 on noise images, <= 2.5e-6
(typically ~5e-7) on real photographs with flat regions, noisy, shifted or darkened copies
(measured on the 69 images of ``shared/realdata``); ``dtype="float64"`` agrees to ~1e-10.

Inputs: ``pred``, ``target`` ``N x C x H x W`` uint8 or float (float16 / 32 / 64) in [0, 1]; output
per image in [-1, 1], ``value`` = mean over images, ``std`` over images (ddof 0).

Example::

    >>> m = SSIM(color="gray-pil"); m.update(pred, target); m.compute()["value"]
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Dict, Optional, Tuple

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


def _moments(x: torch.Tensor, y: torch.Tensor, lin: torch.Tensor, sq: torch.Tensor) -> None:
    """The four maps SSIM filters, on the [0, 1] scale: the difference ``d = x - y`` and the centred sum
    ``t = x + y - 1`` into ``lin`` (2 x ...), ``d^2`` and ``t^2`` into ``sq`` (2 x ...). ``x``, ``y``: float in
    [0, 1], or uint8 levels (mapped here, ``(x - y) / 255`` and ``(x + y - 255) / 255``: exact integers,
    then one correct rounding; one cache-sized band at a time instead of converting the whole batch
    first).

    Four maps, not skimage's five (x, y, x^2, y^2, x y): ``d`` and ``t`` carry both means, and
    ``E[t^2] - E[t]^2 = vx + vy + 2 cov``, ``E[d^2] - E[d]^2 = vx + vy - 2 cov`` carry what SSIM uses of
    the second moments (the filter is linear, so the result differs from skimage only by rounding).
    """
    if x.dtype == torch.uint8:
        lin[0].copy_(x).sub_(y).div_(255.0)
        lin[1].copy_(x).add_(y).sub_(255.0).div_(255.0)
    else:
        torch.sub(x, y, out=lin[0])
        torch.add(x, y, out=lin[1]).sub_(1.0)
    torch.mul(lin, lin, out=sq)


def _int_moments(x: np.ndarray, y: np.ndarray, ints: np.ndarray, squares: np.ndarray) -> None:
    """``_moments`` of uint8 levels ``x``, ``y`` (``m x W``), in levels: ``ints`` (2 x m x W int16) gets the
    exact ``d = x - y`` and ``t = x + y - 255`` (both in [-255, 255]), ``squares`` (2 x m x W float) their
    exact squares (up to 65025, which int16 cannot hold without an offset that would cost float32
    precision where the variances are small). The filter's roundings are then the only ones, and
    int16 maps cost half the memory traffic of float32 ones.
    """
    np.subtract(x, y, out=ints[0], dtype=np.int16)
    np.add(x, y, out=ints[1], dtype=np.int16)
    ints[1] -= 255
    np.copyto(squares, ints)
    np.square(squares, out=squares)


def _combine(f, c1: float, c2n: float, t_center: float):
    """SSIM per pixel from the filtered maps ``f`` = (E[d], E[t], -E[d^2], -E[t^2]) of ``_moments``
    (``t_center = 1``) or ``_int_moments`` (levels: ``t_center = 255``, ``c1``, ``c2n`` in levels^2), the
    squares' means negated (a negated kernel costs nothing); torch tensors or NumPy arrays
    (4 x ...), overwritten, no other memory (the working set stays in cache).

    With ``ux + uy = E[t] + t_center``, ``ux - uy = E[d]``, ``vD = E[d^2] - E[d]^2 = vx + vy - 2 cov`` and
    ``vT = E[t^2] - E[t]^2 = vx + vy + 2 cov``, Wang's SSIM (``c2n = C2 / norm`` folds the covariance
    normalisation in) is

        SSIM = ((ux + uy)^2 - (ux - uy)^2 + 2 C1) (vT - vD + 2 c2n)
               / (((ux + uy)^2 + (ux - uy)^2 + 2 C1) (vT + vD + 2 c2n)).

    Float32 care: the variances cancel on centred values, and ``ux + uy`` is formed before squaring
    (dark regions, where C1 dominates, would otherwise lose ~1e-4 per pixel). In-place operators and
    two helpers only, so NumPy (the OpenCV path) and torch (any device) share this code.
    """
    ud, ut, nd, nt = f
    _acc_square(ud, nd)  # -vD
    _acc_square(ut, nt)  # -vT
    ud *= ud  # D^2
    ut += t_center
    ut *= ut
    ut += 2 * c1
    ut += ud  # luminance denominator
    _scale_add(ud, -2.0, ut, ud)  # luminance numerator
    nt += nd
    nt -= 2 * c2n  # -(contrast-structure denominator)
    _scale_add(nd, -2.0, nt, nd)  # -(contrast-structure numerator)
    ud *= nd
    ut *= nt
    ud /= ut
    return ud


def _acc_square(a, out) -> None:
    """``out += a^2`` elementwise (NumPy: one OpenCV pass; torch: ``addcmul_``)."""
    if isinstance(a, np.ndarray):
        _opencv().accumulateSquare(a, out)
    else:
        out.addcmul_(a, a)


def _scale_add(a, alpha: float, b, out) -> None:
    """``out = alpha a + b`` elementwise (NumPy: one OpenCV pass; torch: ``add``); ``out`` may alias.

    OpenCV's ``scaleAdd`` and ``accumulateSquare`` give the same bits in their SIMD body and scalar
    tail (``addWeighted`` with an offset does not), so values never depend on the band size."""
    if isinstance(a, np.ndarray):
        _opencv().scaleAdd(a, alpha, b, dst=out)
    else:
        torch.add(b, a, alpha=alpha, out=out)


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
        maps = torch.empty((4, *xi.shape), dtype=ft, device=x.device)
        _moments(xi, yi, maps[:2], maps[2:])
        f = _filter(maps, taps)
        del maps
        f[2:].neg_()  # _combine takes the squares' means negated (the OpenCV path negates its kernel)
        s = _combine(f, c1, c2n, 1.0)
        out.append(s.flatten(1).sum(1, dtype=torch.float64) if reduce else s)
    if reduce:
        return torch.cat(out) / (h_out * w_out)
    return torch.cat(out)


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


_local = threading.local()
_POOL: Optional[ThreadPoolExecutor] = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _carve(*nbytes: int) -> Tuple[np.ndarray, ...]:
    """Byte buffers of the given sizes (64-byte aligned, contents undefined), carved from one arena
    per thread that only grows (about 5 MB per thread for the default band in float32): repeated
    calls reuse memory that is already paged in (fresh pages cost as much as the arithmetic on
    small batches)."""
    sizes = [-(-b // 64) * 64 for b in nbytes]
    arena = getattr(_local, "arena", None)
    if arena is None or arena.nbytes < sum(sizes) + 64:
        arena = _local.arena = np.empty(sum(sizes) + 64, dtype=np.uint8)
    offset = -arena.ctypes.data % 64
    views = []
    for b, s in zip(nbytes, sizes):
        views.append(arena[offset:offset + b])
        offset += s
    return tuple(views)


def _pool(workers: int) -> ThreadPoolExecutor:
    """A persistent thread pool of at least ``workers`` threads (their buffers persist with them); a
    smaller one is replaced, not shut down, so that a caller still holding it can go on."""
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < workers:
            _POOL, _POOL_SIZE = ThreadPoolExecutor(workers, thread_name_prefix="ssim"), workers
        return _POOL


def _cv_rows(xt: torch.Tensor, yt: torch.Tensor, start: int, stop: int, band: int, kern: np.ndarray, c1: float,
             c2n: float, ft: torch.dtype, out: torch.Tensor, reduce: bool) -> None:
    """Tall output rows ``[start, stop)`` of the stacked planes ``xt``, ``yt`` into ``out`` (row sums of
    SSIM when ``reduce``, else SSIM rows), band by band in this thread's reusable buffers.

    Per band: the four moment maps (exact int16 ``d``, ``t`` and float squares for uint8 levels, else
    ``_moments`` in ``ft``), the maps of each pair stacked into one tall image (a halo row of one map
    mixes with the next map only in output rows that the crop drops): ``d``, ``t`` filtered by
    ``sepFilter2D`` (int16 input), the squares by two ``filter2D`` passes with the kernel negated
    (a little faster on float input); then ``_combine`` in place on whole rows (contiguous, so
    each NumPy call is one loop), the columns cropped after.
    """
    cv2 = _opencv()
    torch.set_num_threads(1)  # this thread's intra-op pool (the caller restores the setting)
    k, w = len(kern), xt.shape[1]
    r, w_out = k // 2, w - k + 1
    nf = np.float32 if ft == torch.float32 else np.float64
    fb, size = np.dtype(nf).itemsize, 2 * (band + k - 1) * w  # values per pair of maps
    pair_a, pair_b, tmp, filt = _carve(size * fb, size * fb, size * fb, 2 * size * fb)
    pair_a, pair_b, tmp, filt = pair_a.view(nf), pair_b.view(nf), tmp.view(nf), filt.view(nf)
    ddepth = cv2.CV_32F if ft == torch.float32 else cv2.CV_64F
    row_kern, col_kern = kern[None].copy(), (-kern)[:, None].copy()
    levels = xt.dtype == torch.uint8 and yt.dtype == torch.uint8
    if levels:  # level units: constants scaled by 255^2; d and t as int16 in the first buffer
        c1, c2n, t_center = c1 * 65025.0, c2n * 65025.0, 255.0
        x_np, y_np, pair_a = xt.numpy(), yt.numpy(), pair_a.view(np.int16)
    else:
        t_center = 1.0
    for t0 in range(start, stop, band):
        n = min(band, stop - t0)
        m = n + k - 1
        first, second = pair_a[:2 * m * w].reshape(2, m, w), pair_b[:2 * m * w].reshape(2, m, w)
        if levels:
            _int_moments(x_np[t0:t0 + m], y_np[t0:t0 + m], first, second)
        else:
            _moments(xt[t0:t0 + m], yt[t0:t0 + m], torch.from_numpy(first), torch.from_numpy(second))
        fv, tv = filt[:4 * m * w].reshape(4 * m, w), tmp[:2 * m * w].reshape(2 * m, w)
        cv2.sepFilter2D(first.reshape(2 * m, w), ddepth, kern, kern, dst=fv[:2 * m], borderType=cv2.BORDER_REFLECT_101)
        cv2.filter2D(second.reshape(2 * m, w), -1, row_kern, dst=tv, borderType=cv2.BORDER_REFLECT_101)
        cv2.filter2D(tv, -1, col_kern, dst=fv[2 * m:], borderType=cv2.BORDER_REFLECT_101)
        s = torch.from_numpy(_combine(fv.reshape(4, m, w)[:, r:r + n], c1, c2n, t_center)[:, r:r + w_out])
        if reduce:  # row sums in float32 (cascade summation, <= a few thousand terms), rows added in float64
            out[t0:t0 + n] = s.sum(1)
        else:
            out[t0:t0 + n] = s


def _unit_kernel(taps: Tuple[float, ...], dtype) -> np.ndarray:
    """``taps`` in ``dtype``, on the grid of the centre tap's ulp, with the centre tap set so that they
    sum to exactly 1 (each tap moves by at most one ulp of the centre tap, ~3e-8 in float32). A gain
    of ``1 + e`` would make the filtered variance of a flat region ``e`` times its squared level
    instead of 0 (``E[t^2] - E[t]^2`` with ``t`` up to 255): ~1e-5 of SSIM for 7 taps of 1/7 in float32."""
    kern = np.asarray(taps, dtype=np.float64)
    c = len(kern) // 2
    q = float(np.spacing(dtype(kern[c])))
    kern = np.round(kern / q) * q
    kern[c] = 1.0 - (kern.sum() - kern[c])
    return kern.astype(dtype)


def _ssim_planes_cv(x: torch.Tensor, y: torch.Tensor, taps: Tuple[float, ...], norm: float, c1: float,
                    c2: float, ft: torch.dtype, reduce: bool) -> torch.Tensor:
    """CPU path: OpenCV's SIMD, row-buffered filters on the planes stacked into one tall image.

    The contiguous ``P x H x W`` planes are viewed as one ``P H x W`` image and processed in bands
    of about ``_CV_BAND_PIXELS`` output pixels (plus a ``k - 1`` row halo) that stay in cache: a
    "valid" output row mixes two planes only in the ``k - 1`` rows per plane that the crop drops
    anyway, so no Python loop runs over images and each value is independent of the batch, the band
    size and the thread count (every elementwise op gives the same bits in its SIMD body and tail).
    Threads: ``torch.get_num_threads()`` workers of a persistent pool each take a contiguous run of
    bands, with single-threaded torch and OpenCV calls inside (intra-op threads on these small ops
    only add barrier waits, which cost 10x on a loaded machine); both settings are restored
    afterwards.
    """
    cv2 = _opencv()
    planes, h, w = x.shape
    k = len(taps)
    h_out, w_out = h - k + 1, w - k + 1
    xt, yt = x.reshape(planes * h, w), y.reshape(planes * h, w)
    rows = planes * h - k + 1
    band = max(1, min(rows, _CV_BAND_PIXELS // w))
    kern = _unit_kernel(taps, np.float32 if ft == torch.float32 else np.float64)
    c2n = c2 / norm
    out = torch.zeros(planes * h, dtype=torch.float64) if reduce else torch.empty((planes * h, w_out), dtype=ft)
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    n_bands = -(-rows // band)
    workers = max(1, min(threads, n_bands))
    per = -(-n_bands // workers) * band
    args = (band, kern, c1, c2n, ft, out, reduce)
    if cv_threads != 1:
        cv2.setNumThreads(1)
    try:
        if workers == 1:
            _cv_rows(xt, yt, 0, rows, *args)
        else:
            torch.set_num_threads(1)  # new threads start from the global setting
            jobs = [_pool(workers).submit(_cv_rows, xt, yt, a, min(rows, a + per), *args) for a in range(0, rows, per)]
            for job in jobs:
                job.result()
    finally:
        torch.set_num_threads(threads)
        if cv_threads != 1:
            cv2.setNumThreads(cv_threads)
    # tall output row p * h + i (i < h_out) is plane p's output row i
    if reduce:
        return out.view(planes, h)[:, :h_out].sum(1) / (h_out * w_out)
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
