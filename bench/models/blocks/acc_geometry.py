"""Geometry of the accessory model (seed 004 §3.1, Eqs. 4-5): soft-argmax keypoints, a differentiable DLT
homography from four vertex pairs, perspective warping and compositing.

Conventions: points are ``N x K x 2`` as (x, y) in pixels of the image they live in, pixel centres at integer
coordinates (the convention of ``cv2.warpPerspective`` and of :func:`bench.metrics.disp.warp_mask`);
homographies are ``N x 3 x 3`` mapping source (foreground) pixels to target (background) pixels, normalised to
``h33 = 1`` like STRAT's ``trans_params.json`` matrices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_argmax(heatmaps: torch.Tensor, beta: float = 1000.0) -> torch.Tensor:
    """Eq. 4: ``v_k = sum_p p * softmax(beta * H_k)(p)``.

    ``heatmaps`` ``N x K x H x W`` (any real values; the paper's are regressed to Gaussians in [0, 1]) ->
    ``N x K x 2`` (x, y) pixel coordinates, differentiable. Computed in float32 (beta = 1000 overflows fp16).
    """
    n, k, h, w = heatmaps.shape
    prob = torch.softmax(beta * heatmaps.float().reshape(n, k, h * w), dim=-1).reshape(n, k, h, w)
    xs = torch.arange(w, dtype=prob.dtype, device=prob.device)
    ys = torch.arange(h, dtype=prob.dtype, device=prob.device)
    x = (prob.sum(2) * xs).sum(-1)
    y = (prob.sum(3) * ys).sum(-1)
    return torch.stack([x, y], -1)


def _normaliser(pts: torch.Tensor) -> torch.Tensor:
    """Hartley normalisation ``N x 3 x 3``: centroid to the origin, mean distance sqrt(2)."""
    c = pts.mean(1, keepdim=True)
    d = (pts - c).norm(dim=-1).mean(1).clamp(min=1e-8)
    s = (2.0 ** 0.5) / d
    t = torch.zeros(pts.shape[0], 3, 3, dtype=pts.dtype, device=pts.device)
    t[:, 0, 0] = s
    t[:, 1, 1] = s
    t[:, 0, 2] = -s * c[:, 0, 0]
    t[:, 1, 2] = -s * c[:, 0, 1]
    t[:, 2, 2] = 1
    return t


def dlt_homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares DLT with ``h33 = 1`` (STRAT ``derive_matrix_from_vertexes``), differentiable in both inputs.

    ``src``, ``dst`` ``N x K x 2`` (K >= 4) -> ``N x 3 x 3`` (input dtype) with ``dst ~ H @ src``. Solved in
    float64 on Hartley-normalised points (normal equations), then de-normalised and scaled to ``h33 = 1``;
    with K = 4 the solution is exact (``cv2.getPerspectiveTransform``).
    """
    dtype = src.dtype
    s, d = src.double(), dst.double()
    ts, td = _normaliser(s), _normaliser(d)
    ones = torch.ones(*s.shape[:-1], 1, dtype=s.dtype, device=s.device)
    sn = (torch.cat([s, ones], -1) @ ts.transpose(1, 2))[..., :2]
    dn = (torch.cat([d, ones], -1) @ td.transpose(1, 2))[..., :2]
    x, y = sn[..., 0], sn[..., 1]
    u, v = dn[..., 0], dn[..., 1]
    z, o = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, o, z, z, z, -u * x, -u * y], -1)
    rows_v = torch.stack([z, z, z, x, y, o, -v * x, -v * y], -1)
    a = torch.cat([rows_u, rows_v], 1)  # N x 2K x 8
    b = torch.cat([u, v], 1).unsqueeze(-1)
    at = a.transpose(1, 2)
    ata = at @ a + 1e-12 * torch.eye(8, dtype=a.dtype, device=a.device)  # degenerate targets stay solvable
    h = torch.linalg.solve(ata, at @ b).squeeze(-1)
    hn = torch.cat([h, torch.ones_like(h[:, :1])], 1).reshape(-1, 3, 3)
    full = torch.linalg.inv(td) @ hn @ ts
    den = full[:, 2:3, 2:3]
    full = full / torch.where(den.abs() < 1e-12, torch.full_like(den, 1e-12), den)
    return full.to(dtype)


def apply_homography(hom: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """``N x 3 x 3`` applied to ``N x K x 2`` points (no clipping)."""
    ones = torch.ones(*pts.shape[:-1], 1, dtype=pts.dtype, device=pts.device)
    p = torch.cat([pts, ones], -1) @ hom.to(pts.dtype).transpose(1, 2)
    return p[..., :2] / (p[..., 2:3] + 1e-8)


def invert(hom: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``N x 3 x 3`` inverses in float64 and an ``N`` bool "invertible" flag; a singular matrix (collapsed
    predicted vertices of an untrained network) gets the identity and the flag False instead of an error."""
    h = hom.double()
    inv, info = torch.linalg.inv_ex(h)
    ok = (info == 0) & torch.isfinite(inv).flatten(1).all(1) & (torch.linalg.det(h).abs() > 1e-12)
    eye = torch.eye(3, dtype=h.dtype, device=h.device).expand_as(h)
    return torch.where(ok[:, None, None], inv, eye), ok


def warp_perspective(img: torch.Tensor, hom: torch.Tensor, size=None) -> torch.Tensor:
    """Warp ``N x C x h x w`` source images by ``N x 3 x 3`` into an ``size`` = (H, W) frame (default: same).

    Inverse mapping with bilinear sampling and zero fill (``cv2.warpPerspective`` defaults); differentiable
    in the image and the homography. Batched: one ``grid_sample`` for the whole batch. A singular homography
    (zero-area target quadrilateral) gives an all-zero warp.
    """
    n, _, hs, ws = img.shape
    ho, wo = (hs, ws) if size is None else (int(size[0]), int(size[1]))
    hinv, ok = invert(hom)
    ys, xs = torch.meshgrid(torch.arange(ho, dtype=torch.float64, device=img.device),
                            torch.arange(wo, dtype=torch.float64, device=img.device), indexing="ij")
    grid = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(1, -1, 3) @ hinv.transpose(1, 2)
    den = grid[..., 2:3]
    den = torch.where(den.abs() < 1e-8, torch.full_like(den, 1e-8), den)
    src = grid[..., :2] / den
    gx = src[..., 0] / max(ws - 1, 1) * 2 - 1
    gy = src[..., 1] / max(hs - 1, 1) * 2 - 1
    g = torch.stack([gx, gy], -1).reshape(n, ho, wo, 2).to(img.dtype)
    out = F.grid_sample(img, g, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out * ok.to(out.dtype)[:, None, None, None]  # a singular homography warps to nothing


def composite(fg: torch.Tensor, fg_mask: torch.Tensor, bg: torch.Tensor, hom: torch.Tensor):
    """Eq. 5: warp ``fg`` (``N x 3 x h x w``) and ``fg_mask`` (``N x 1 x h x w``, [0, 1]) by ``hom`` into the
    background's frame and blend: ``I_c = M~ * I~_f + (1 - M~) * I_b``. Returns (composite, warped fg,
    warped mask) with the background's H x W."""
    size = bg.shape[-2:]
    both = warp_perspective(torch.cat([fg, fg_mask], 1), hom, size)
    wfg, wmask = both[:, :-1], both[:, -1:].clamp(0, 1)
    return wmask * wfg + (1 - wmask) * bg, wfg, wmask
