"""3D-GCL stage-1 pieces: pose-aware feature encoders, the global correspondence (Eq. 1), flows and the SMPL
pseudo-ground-truth correspondence (Eqs. 4-5). Written from seed 002 §3.2-3.3 and docs/models.md §4.2.

Conventions (shared with the ``smpl-flow`` cache): a *flow* / *offset* field ``f`` is ``N x 2 x h x w`` in
pixels of its own level, ``f[:, :, p] = q - p`` where ``q`` (x, y) is the *source* pixel of the *target* pixel
``p``; warping the source is ``grid_sample(source, p + f)`` with ``align_corners=True`` (pixel centres at
integer coordinates). A correspondence matrix ``o`` is ``N x M_t x M_s`` (rows: target positions, columns:
source positions, row-major ``y * w + x``); warping by ``o`` is ``o @ values`` per sample.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- encoders


class ResBlock(nn.Module):
    """Pre-norm-free residual block: conv-BN-LReLU-conv-BN + identity, then LReLU (``k x k`` kernels)."""

    def __init__(self, ch: int, k: int = 3):
        super().__init__()
        p = k // 2
        self.body = nn.Sequential(nn.Conv2d(ch, ch, k, 1, p), nn.BatchNorm2d(ch), nn.LeakyReLU(0.2, True),
                                  nn.Conv2d(ch, ch, k, 1, p), nn.BatchNorm2d(ch))

    def forward(self, x):
        return F.leaky_relu(x + self.body(x), 0.2)


def _cbl(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True))


class FeatureEncoderHD(nn.Module):
    """Pose-aware encoder (GCL repo ``FeatureEncoderHD``, nef = 32): ``N x C_in x H x W`` ->
    ``[N x 4nef x H/8 x W/8, N x 4nef x H/4 x W/4, N x 4nef x H/2 x W/2]`` (coarse to fine).

    Down path: conv s2 -> 2nef (H/2); conv s2 + Res -> 2nef (H/4); conv s2 + Res -> 4nef (H/8); two 5x5 + Res
    blocks at H/8; merges ``cat(x5, x4)`` and ``cat(., x3)``; up path with skips to H/4 and H/2.
    """

    def __init__(self, in_ch: int, nef: int = 32):
        super().__init__()
        c1, c2 = 2 * nef, 4 * nef
        self.d1 = _cbl(in_ch, c1, 3, 2)
        self.d2 = nn.Sequential(_cbl(c1, c1, 3, 2), ResBlock(c1))
        self.d3 = nn.Sequential(_cbl(c1, c2, 3, 2), ResBlock(c2))
        self.d4 = nn.Sequential(_cbl(c2, c2, 5, 1), ResBlock(c2, 5))
        self.d5 = nn.Sequential(_cbl(c2, c2, 5, 1), ResBlock(c2, 5))
        self.m1 = _cbl(2 * c2, c2)
        self.m2 = _cbl(2 * c2, c2)
        self.u1 = _cbl(c2 + c1, c2)
        self.u2 = _cbl(c2 + c1, c2)
        self.out_channels = c2

    def forward(self, x):
        x1 = self.d1(x)
        x2 = self.d2(x1)
        x3 = self.d3(x2)
        x4 = self.d4(x3)
        x5 = self.d5(x4)
        y8 = self.m2(torch.cat([self.m1(torch.cat([x5, x4], 1)), x3], 1))
        y4 = self.u1(torch.cat([F.interpolate(y8, size=x2.shape[-2:], mode="bilinear", align_corners=False), x2], 1))
        y2 = self.u2(torch.cat([F.interpolate(y4, size=x1.shape[-2:], mode="bilinear", align_corners=False), x1], 1))
        return [y8, y4, y2]


def pono_c(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Channel-centred, L2-normalised features (PONO-c): per position, subtract the channel mean, divide by
    the channel L2 norm. ``N x C x h x w`` -> same."""
    x = x - x.mean(1, keepdim=True)
    return x / (x.norm(dim=1, keepdim=True) + eps)


# ----------------------------------------------------------------------------- global correspondence


def correspondence(theta: torch.Tensor, phi: torch.Tensor, tau: float = 0.01) -> torch.Tensor:
    """Eq. 1: ``o = softmax(θᵀφ / τ)`` over source positions. ``theta`` (target) and ``phi`` (source)
    ``N x C x h x w`` (PONO-c normalised) -> ``N x hw x hw``."""
    t = theta.flatten(2).transpose(1, 2)  # N x M x C
    s = phi.flatten(2)  # N x C x M
    return torch.softmax(torch.bmm(t, s) / tau, dim=-1)


def apply_correspondence(o: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``o @ values``: ``o`` ``N x M_t x M_s``, values ``N x C x h_s x w_s`` -> ``N x C x h_t x w_t`` (h_t, w_t =
    the value's size; the matrix must be square)."""
    n, c, h, w = values.shape
    v = values.flatten(2).transpose(1, 2)  # N x M_s x C
    return torch.bmm(o, v).transpose(1, 2).reshape(n, c, h, w)


def global_warp_chunked(theta: torch.Tensor, phi: torch.Tensor, values: torch.Tensor, tau: float = 0.01,
                        chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Memory-bounded ``(o @ values, argmax_source_index)`` without materialising ``o``: target rows are
    processed ``chunk`` at a time (peak extra memory ``N x chunk x M`` instead of ``N x M x M``).
    Returns warped ``N x C x h x w`` and ``N x hw`` long indices of the best source position."""
    n, c, h, w = values.shape
    t = theta.flatten(2).transpose(1, 2)
    s = phi.flatten(2)
    v = values.flatten(2).transpose(1, 2)
    outs, idx = [], []
    for a in range(0, t.shape[1], chunk):
        logits = torch.bmm(t[:, a:a + chunk], s) / tau
        idx.append(logits.argmax(-1))
        outs.append(torch.bmm(torch.softmax(logits, -1), v))
    warped = torch.cat(outs, 1).transpose(1, 2).reshape(n, c, h, w)
    return warped, torch.cat(idx, 1)


def argmax_flow(o: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Top-1 correspondence as an offset field ``N x 2 x h x w`` (integer pixels at this level)."""
    return index_flow(o.argmax(-1), h, w)


def index_flow(idx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Source indices ``N x hw`` (row-major) -> offsets ``N x 2 x h x w``."""
    sx = (idx % w).float()
    sy = torch.div(idx, w, rounding_mode="floor").float()
    yy, xx = torch.meshgrid(torch.arange(h, device=idx.device, dtype=torch.float32),
                            torch.arange(w, device=idx.device, dtype=torch.float32), indexing="ij")
    return torch.stack([sx.view(-1, h, w) - xx, sy.view(-1, h, w) - yy], 1)


# ----------------------------------------------------------------------------- flows


def base_grid(h: int, w: int, device, dtype=torch.float32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype),
                            indexing="ij")
    return torch.stack([xx, yy], 0)[None]  # 1 x 2 x h x w


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """Pixel offsets ``N x 2 x h x w`` -> ``grid_sample`` grid ``N x h x w x 2`` (align_corners=True)."""
    n, _, h, w = flow.shape
    q = base_grid(h, w, flow.device, flow.dtype) + flow
    gx = 2 * q[:, 0] / max(w - 1, 1) - 1
    gy = 2 * q[:, 1] / max(h - 1, 1) - 1
    return torch.stack([gx, gy], -1)


def warp(x: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear", fill: float = 0.0) -> torch.Tensor:
    """Warp the source ``x`` (``N x C x h x w``, same size as ``flow``) into the target frame; outside = ``fill``."""
    g = flow_to_grid(flow.to(x.dtype) if x.is_floating_point() else flow)
    if not x.is_floating_point():
        return F.grid_sample(x.float(), g, mode="nearest", padding_mode="zeros", align_corners=True).round().to(x.dtype)
    if fill:
        return F.grid_sample(x - fill, g, mode=mode, padding_mode="zeros", align_corners=True) + fill
    return F.grid_sample(x, g, mode=mode, padding_mode="zeros", align_corners=True)


def resize_flow(flow: torch.Tensor, size) -> torch.Tensor:
    """Resize an offset field to ``size`` (bilinear), scaling the vectors with the size ratio."""
    h, w = flow.shape[-2:]
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=True)
    sx = (size[1] - 1) / max(w - 1, 1)
    sy = (size[0] - 1) / max(h - 1, 1)
    return torch.stack([out[:, 0] * sx, out[:, 1] * sy], 1)


def downsample_flow(flow: torch.Tensor, mask: torch.Tensor, size) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth flow and visibility at a coarser level: nearest sampling of both (vectors rescaled)."""
    h, w = flow.shape[-2:]
    f = F.interpolate(flow, size=size, mode="nearest")
    f = torch.stack([f[:, 0] * (size[1] - 1) / max(w - 1, 1), f[:, 1] * (size[0] - 1) / max(h - 1, 1)], 1)
    m = F.interpolate(mask.float(), size=size, mode="nearest")
    return f, m


# ----------------------------------------------------------------------------- SMPL pseudo ground truth


def pseudo_gt_correspondence(flow: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Eqs. 4-5: ``o_gt`` ``N x M x M`` that scatters the 4 bilinear weights of the target->source flow ``f_gt``
    (``N x 2 x h x w``, this level's pixels) into each target row; rows outside ``mask`` (``N x 1 x h x w``) and
    out-of-image neighbours are zero. ``o_gt @ values`` equals ``grid_sample(values, p + f_gt)`` (zeros padding,
    align_corners=True)."""
    n, _, h, w = flow.shape
    m = h * w
    q = base_grid(h, w, flow.device, flow.dtype) + flow
    x, y = q[:, 0].reshape(n, m), q[:, 1].reshape(n, m)
    x0, y0 = torch.floor(x), torch.floor(y)
    o = flow.new_zeros(n, m, m)
    rows = torch.arange(m, device=flow.device).expand(n, m)
    keep = torch.ones_like(x) if mask is None else mask.reshape(n, m).to(flow.dtype)
    for dx in (0, 1):
        for dy in (0, 1):
            xs, ys = x0 + dx, y0 + dy
            wgt = (1 - (x - xs).abs()) * (1 - (y - ys).abs())
            ok = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
            col = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).long()
            o.view(n, -1).scatter_add_(1, rows * m + col, torch.where(ok, wgt, torch.zeros_like(wgt)) * keep)
    return o


def dilate(mask: torch.Tensor, k: int = 3) -> torch.Tensor:
    return F.max_pool2d(mask, k, 1, k // 2)


def keypoint_flow(src_kp: torch.Tensor, tgt_kp: torch.Tensor, body: torch.Tensor, sigma: float,
                  min_xy: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A keypoint stand-in for the SMPL flow (smoke profiles on data without DensePose or meshes; NOT 3D):
    inside the target body mask ``body`` (``N x 1 x H x W``), the inverse-distance-weighted mean of the joint
    displacements ``src_j - tgt_j`` over joints present in both poses (``N x K x 3``, pixels), weights
    ``1 / (d² + σ²)``. Returns ``flow`` ``N x 2 x H x W`` and ``mask`` ``N x 1 x H x W`` (body and >= 2 joints)."""
    n, _, h, w = body.shape
    ok = ((src_kp[..., 0] > min_xy) & (src_kp[..., 1] > min_xy) & (tgt_kp[..., 0] > min_xy)
          & (tgt_kp[..., 1] > min_xy)).float()  # N x K
    g = base_grid(h, w, body.device).view(1, 2, 1, h * w)
    t = tgt_kp[..., :2].transpose(1, 2).unsqueeze(-1)  # N x 2 x K x 1
    d2 = ((g - t) ** 2).sum(1)  # N x K x HW
    wgt = ok.unsqueeze(-1) / (d2 + sigma ** 2)
    disp = (src_kp[..., :2] - tgt_kp[..., :2]).transpose(1, 2)  # N x 2 x K
    flow = torch.bmm(disp, wgt) / wgt.sum(1, keepdim=True).clamp_min(1e-12)
    valid = (ok.sum(1) >= 2).float().view(n, 1, 1, 1)
    return flow.view(n, 2, h, w) * body, body * valid
