"""Landmark rasters the models consume, vectorised over a batch in torch.

Coordinate convention everywhere: pixel (x, y) of the input image, x right, y down; a raster cell
(i, j) of stride ``s`` sits at (j * s, i * s), i.e. a landmark maps to (x / s, y / s) in a heatmap
(the HRNet convention; SAL-VTON's decoder multiplies the arg-max index by the stride).

* ``gaussian_heatmaps``: N x K x H/s x W/s, values in [0, 1], peak 1 at the landmark, 0 for absent points.
* ``hard_landmark_masks``: SAL-VTON Eq. (9) hard landmark masks, N x K x H x W in {0, 1} (discs of
  ``radius`` pixels); ``landmark_union_mask`` is their union M_l, N x 1 x H x W.
* ``square_code_maps``: the ModelScope SAL-VTON landmark maps (background -1, a square of half-size r
  around each drawn landmark filled with its code), N x K x H x W.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import torch

from .definition import load_definition
from .table import to_arrays

ArrayLike = Union[torch.Tensor, np.ndarray]


def _t(a: ArrayLike, dtype=torch.float32) -> torch.Tensor:
    return a.to(dtype) if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a), dtype=dtype)


def _valid(xy: torch.Tensor, valid: Optional[ArrayLike]) -> torch.Tensor:
    ok = torch.isfinite(xy).all(-1)
    return ok if valid is None else ok & _t(valid, torch.bool).to(xy.device)


def default_radius(height: int) -> int:
    """Hard-mask radius: 5 px at 256 rows, scaled with the height (ASSUMED; the paper gives none)."""
    return max(1, int(round(5 * height / 256)))


def gaussian_heatmaps(xy: ArrayLike, valid: Optional[ArrayLike] = None, *, size: Tuple[int, int],
                      stride: int = 1, sigma: float = 2.0, truncate: Optional[float] = None,
                      out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-point Gaussian heatmaps.

    Args:
        xy: (N, K, 2) landmark pixel coordinates in an image of ``size`` = (H, W); NaN = absent.
        valid: optional (N, K) bool; False points give an all-zero map.
        stride: heatmap stride s; output is (N, K, H // s, W // s).
        sigma: Gaussian sigma in heatmap cells.
        truncate: if given, zero outside a square window of ``truncate * sigma`` cells (HRNet uses 3).
        out: optional float32 tensor (N, K, H // s, W // s) to write into; reusing one across batches
            saves the page faults of a fresh allocation (64 x 32 x 256 x 192 floats are 400 MB).
    Returns:
        float32 tensor in [0, 1]; exp(-((j - x/s)^2 + (i - y/s)^2) / (2 sigma^2)). Computed as an outer
        product of two 1-D Gaussians (separable), so the cost is one multiply per output cell.
    """
    xy = _t(xy)
    ok = _valid(xy, valid)
    h, w = size[0] // stride, size[1] // stride
    c = torch.nan_to_num(xy / stride, nan=-1e6)
    jj = torch.arange(w, dtype=torch.float32, device=xy.device)
    ii = torch.arange(h, dtype=torch.float32, device=xy.device)
    dx = jj - c[..., 0:1]                       # N, K, w
    dy = ii - c[..., 1:2]                       # N, K, h
    gx = torch.exp(-(dx * dx) / (2 * sigma * sigma))
    gy = torch.exp(-(dy * dy) / (2 * sigma * sigma))
    if truncate is not None:
        gx = gx * (dx.abs() <= truncate * sigma)
        gy = gy * (dy.abs() <= truncate * sigma)
    gx = gx * ok[..., None]
    if out is not None:
        return torch.mul(gy[..., :, None], gx[..., None, :], out=out)
    return gy[..., :, None] * gx[..., None, :]


def gaussian_heatmaps_loop(xy: ArrayLike, valid: Optional[ArrayLike] = None, *, size: Tuple[int, int],
                           stride: int = 1, sigma: float = 2.0, truncate: Optional[float] = None) -> np.ndarray:
    """Reference implementation: one full-grid 2-D Gaussian per point in a Python loop (tests, bench)."""
    xy = np.asarray(xy.cpu() if isinstance(xy, torch.Tensor) else xy, dtype=np.float64)
    n, k, _ = xy.shape
    ok = np.isfinite(xy).all(-1) & (np.ones((n, k), bool) if valid is None else np.asarray(valid, bool))
    h, w = size[0] // stride, size[1] // stride
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((n, k, h, w), dtype=np.float32)
    for a in range(n):
        for b in range(k):
            if not ok[a, b]:
                continue
            cx, cy = xy[a, b] / stride
            g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma * sigma))
            if truncate is not None:
                g[(np.abs(xx - cx) > truncate * sigma) | (np.abs(yy - cy) > truncate * sigma)] = 0
            out[a, b] = g
    return out


def hard_landmark_masks(xy: ArrayLike, valid: Optional[ArrayLike] = None, *, size: Tuple[int, int],
                        radius: Optional[float] = None) -> torch.Tensor:
    """SAL-VTON Eq. (9) hard landmark masks: (N, K, H, W) float32, 1 inside the disc
    ``(j - x)^2 + (i - y)^2 <= radius^2`` around each valid landmark, else 0."""
    xy = _t(xy)
    ok = _valid(xy, valid)
    r = default_radius(size[0]) if radius is None else radius
    c = torch.nan_to_num(xy, nan=-1e6)
    jj = torch.arange(size[1], dtype=torch.float32, device=xy.device)
    ii = torch.arange(size[0], dtype=torch.float32, device=xy.device)
    dx2 = (jj - c[..., 0:1]) ** 2
    dy2 = (ii - c[..., 1:2]) ** 2
    inside = (dy2[..., :, None] + dx2[..., None, :]) <= r * r
    return (inside & ok[..., None, None]).to(torch.float32)


def landmark_union_mask(xy: ArrayLike, valid: Optional[ArrayLike] = None, *, size: Tuple[int, int],
                        radius: Optional[float] = None) -> torch.Tensor:
    """M_l of Eq. (9): the union of the K hard masks, (N, 1, H, W) in {0, 1}."""
    return hard_landmark_masks(xy, valid, size=size, radius=radius).amax(dim=1, keepdim=True)


def square_code_maps(xy: ArrayLike, codes: ArrayLike, draw: Optional[ArrayLike] = None, *, size: Tuple[int, int],
                     half_size: Optional[int] = None, background: float = -1.0) -> torch.Tensor:
    """ModelScope SAL-VTON landmark maps: (N, K, H, W), ``background`` everywhere except a square of
    half-size ``half_size`` (default 5 px at 256 rows, scaled) around drawn points, filled with ``codes``
    (N, K) (garment: attribute; person: attribute - 1, drawn when the attribute is >= 1)."""
    xy = _t(xy)
    ok = _valid(xy, draw)
    r = default_radius(size[0]) if half_size is None else half_size
    c = torch.nan_to_num(xy, nan=-1e6).round()
    jj = torch.arange(size[1], dtype=torch.float32, device=xy.device)
    ii = torch.arange(size[0], dtype=torch.float32, device=xy.device)
    inx = (jj - c[..., 0:1]).abs() <= r
    iny = (ii - c[..., 1:2]).abs() <= r
    inside = iny[..., :, None] & inx[..., None, :] & ok[..., None, None]
    val = _t(codes)[..., None, None].expand_as(inside)
    return torch.where(inside, val, torch.full_like(val, background))


def table_points(df: pd.DataFrame, side: str, images: Optional[Sequence[str]] = None, scheme: str = "sal32"
                 ) -> Tuple[list, np.ndarray, np.ndarray]:
    """(images, xy (N, K, 2), attribute (N, K)) of one side of a canonical table, in ``images`` order."""
    sub = df[(df["side"] == side) & (df["scheme"] == scheme)]
    keys, xy, attr = to_arrays(sub, load_definition(scheme))
    if images is None:
        return keys["image"].tolist(), xy, attr
    pos = {img: i for i, img in enumerate(keys["image"])}
    idx = [pos[i] for i in images]
    return list(images), xy[idx], attr[idx]
