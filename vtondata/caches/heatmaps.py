"""Keypoint heatmaps shared by the pose-maps and landmark-maps caches (and usable by ``annotate``).

Coordinates are pixels with pixel centres at integer positions (column x, row y). Missing points (not
``visible``) give all-zero channels.
"""

from __future__ import annotations

import numpy as np


def _grid(height: int, width: int):
    return np.arange(height, dtype=np.float32)[:, None], np.arange(width, dtype=np.float32)[None, :]


def disc_maps(points: np.ndarray, visible: np.ndarray, height: int, width: int, radius: float = 4.0) -> np.ndarray:
    """``K x H x W`` uint8 {0, 1}: 1 where ``(x - px)^2 + (y - py)^2 <= radius^2`` (SPG-VTON: 18 discs, r = 4)."""
    out = np.zeros((len(points), height, width), np.uint8)
    r = float(radius)
    for k, (p, v) in enumerate(zip(np.asarray(points, np.float64), visible)):
        if not v:
            continue
        # only the window around the point can be inside the disc
        x0, x1 = max(0, int(np.floor(p[0] - r))), min(width, int(np.ceil(p[0] + r)) + 1)
        y0, y1 = max(0, int(np.floor(p[1] - r))), min(height, int(np.ceil(p[1] + r)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        yy = np.arange(y0, y1, dtype=np.float64)[:, None]
        xx = np.arange(x0, x1, dtype=np.float64)[None, :]
        out[k, y0:y1, x0:x1] = ((xx - p[0]) ** 2 + (yy - p[1]) ** 2) <= r * r
    return out


def gaussian_maps(points: np.ndarray, visible: np.ndarray, height: int, width: int, sigma: float = 6.0,
                  dtype=np.float16) -> np.ndarray:
    """``K x H x W`` in [0, 1]: ``exp(-d^2 / (2 sigma^2))`` around each visible point (peak 1 at the point).

    Computed as the outer product of the two 1-D Gaussians (the same function, separably).
    """
    yy, xx = _grid(height, width)
    out = np.zeros((len(points), height, width), np.float64 if dtype == np.float64 else np.float32)
    s2 = 2.0 * float(sigma) ** 2
    for k, (p, v) in enumerate(zip(np.asarray(points, np.float64), visible)):
        if v:
            gy = np.exp(-((yy[:, 0].astype(np.float64) - p[1]) ** 2) / s2)
            gx = np.exp(-((xx[0].astype(np.float64) - p[0]) ** 2) / s2)
            np.multiply(gy[:, None], gx[None, :], out=out[k], casting="same_kind")
    return out.astype(dtype, copy=False)
