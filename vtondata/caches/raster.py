"""A batched z-buffer triangle rasterizer in torch (CPU and CUDA), for SMPL-flow and the mesh fixtures.

Conventions: vertices ``B x V x 3`` are (x, y) in pixels of the image (pixel centres at integer positions:
column x, row y) and z a depth where **smaller is nearer**. Faces ``F x 3`` index the vertices (shared over the
batch). Orthographic: barycentric coordinates are computed in the image plane (exact for the weak-perspective
projections SMPL regressors output).

Output per pixel: the visible face (``-1`` on background), its barycentric coordinates and the depth. Ties in
depth go to the lowest face index, so the result is deterministic on every device.
"""

from __future__ import annotations

import torch

#: max candidate (face, pixel) pairs materialised at once
_BUDGET = 1 << 22


def _candidates(tri: torch.Tensor, height: int, width: int):
    """Yield ``(lin, z, face)`` of pixels inside each face, bucketed by bounding-box size. ``tri``: ``B x F x 3 x 3``."""
    B, F = tri.shape[:2]
    dev = tri.device
    x, y = tri[..., 0], tri[..., 1]
    x0 = torch.ceil(x.min(-1).values).clamp(0, width - 1).long()
    x1 = torch.floor(x.max(-1).values).clamp(-1, width - 1).long()
    y0 = torch.ceil(y.min(-1).values).clamp(0, height - 1).long()
    y1 = torch.floor(y.max(-1).values).clamp(-1, height - 1).long()
    inside_img = (x.max(-1).values >= 0) & (x.min(-1).values <= width - 1) & \
                 (y.max(-1).values >= 0) & (y.min(-1).values <= height - 1)
    sx, sy = (x1 - x0 + 1).clamp(min=0), (y1 - y0 + 1).clamp(min=0)
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])
    ok = inside_img & (sx > 0) & (sy > 0) & (area.abs() > 1e-12)
    side = torch.maximum(sx, sy)
    # power-of-two buckets of the bounding-box side
    bucket = torch.ceil(torch.log2(side.clamp(min=1).float())).long()
    for bk in torch.unique(bucket[ok]).tolist():
        S = 1 << int(bk)
        sel = (ok & (bucket == bk)).nonzero(as_tuple=False)  # (n, 2): batch, face
        per = max(1, _BUDGET // (S * S))
        oy, ox = torch.meshgrid(torch.arange(S, device=dev), torch.arange(S, device=dev), indexing="ij")
        oy, ox = oy.reshape(1, -1), ox.reshape(1, -1)
        for j in range(0, len(sel), per):
            bf = sel[j:j + per]
            b, f = bf[:, 0], bf[:, 1]
            px = x0[b, f][:, None] + ox
            py = y0[b, f][:, None] + oy
            valid = (px <= x1[b, f][:, None]) & (py <= y1[b, f][:, None])
            t = tri[b, f]  # n x 3 x 3
            w = _bary(t, px.to(t.dtype), py.to(t.dtype))
            inside = valid & (w >= -1e-6).all(-1)
            z = (w * t[:, None, :, 2]).sum(-1)
            nz = inside.nonzero(as_tuple=True)
            lin = b[nz[0]] * (height * width) + py[nz] * width + px[nz]
            yield lin, z[nz], f[nz[0]]


def _bary(t: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Barycentric weights ``n x P x 3`` of points ``(px, py)`` (``n x P``) in triangles ``t`` (``n x 3 x 3``)."""
    ax, ay = t[:, 0, 0:1], t[:, 0, 1:2]
    bx, by = t[:, 1, 0:1], t[:, 1, 1:2]
    cx, cy = t[:, 2, 0:1], t[:, 2, 1:2]
    area = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
    wa = ((bx - px) * (cy - py) - (cx - px) * (by - py)) / area
    wb = ((cx - px) * (ay - py) - (ax - px) * (cy - py)) / area
    return torch.stack([wa, wb, 1 - wa - wb], -1)


def rasterize(verts: torch.Tensor, faces: torch.Tensor, height: int, width: int):
    """Z-buffer rasterization.

    ``verts`` ``B x V x 3`` (or ``V x 3``) float, ``faces`` ``F x 3`` long. Returns ``face`` ``B x H x W`` long
    (-1 background), ``bary`` ``B x H x W x 3`` float (0 on background), ``depth`` ``B x H x W`` float (inf on
    background), all on ``verts.device``.
    """
    squeeze = verts.dim() == 2
    if squeeze:
        verts = verts[None]
    faces = faces.to(verts.device).long()
    B = verts.shape[0]
    tri = verts[:, faces]  # B x F x 3 x 3
    n = B * height * width
    zbuf = torch.full((n,), float("inf"), dtype=verts.dtype, device=verts.device)
    cands = list(_candidates(tri, height, width))
    for lin, z, _ in cands:
        zbuf.scatter_reduce_(0, lin, z, reduce="amin")
    big = torch.iinfo(torch.long).max
    fbuf = torch.full((n,), big, dtype=torch.long, device=verts.device)
    for lin, z, f in cands:
        win = z <= zbuf[lin]
        fbuf.scatter_reduce_(0, lin[win], f[win], reduce="amin")
    covered = fbuf != big
    face = torch.where(covered, fbuf, torch.full_like(fbuf, -1))
    bary = torch.zeros((n, 3), dtype=verts.dtype, device=verts.device)
    idx = covered.nonzero(as_tuple=True)[0]
    if len(idx):
        b = idx // (height * width)
        rem = idx % (height * width)
        py, px = (rem // width).to(verts.dtype), (rem % width).to(verts.dtype)
        t = tri[b, fbuf[idx]]
        bary[idx] = _bary(t, px[:, None], py[:, None])[:, 0]
    face = face.view(B, height, width)
    bary = bary.view(B, height, width, 3)
    zbuf = zbuf.view(B, height, width)
    if squeeze:
        return face[0], bary[0], zbuf[0]
    return face, bary, zbuf


def interpolate(values: torch.Tensor, faces: torch.Tensor, face: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Per-pixel barycentric interpolation of per-vertex ``values`` (``B x V x C`` or ``V x C``) -> ``... x H x W x C``.

    Background pixels (``face == -1``) get 0.
    """
    squeeze = values.dim() == 2
    if squeeze:
        values, face, bary = values[None], face[None], bary[None]
    B, H, W = face.shape
    fidx = face.clamp(min=0)
    vid = faces.to(face.device).long()[fidx]  # B x H x W x 3
    bidx = torch.arange(B, device=face.device).view(B, 1, 1, 1).expand_as(vid)
    vals = values[bidx, vid]  # B x H x W x 3 x C
    out = (vals * bary[..., None]).sum(-2)
    out = torch.where((face >= 0)[..., None], out, torch.zeros_like(out))
    return out[0] if squeeze else out
