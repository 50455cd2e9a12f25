"""SAL-VTON landmark-based deformable patch warping (``docs/models.md`` 2.4; seed 000 section 3.2, Eqs. 1-5, 8).

Flow convention: a flow is an offset field ``N x 2 x h x w`` (x, y) in normalised coordinates
(``align_corners=False``: pixel column j sits at ``(2j + 1) / w - 1``); the sampling position of output pixel
p is ``p + f(p)``. Offsets are resolution independent, so flows move between pyramid levels by bilinear
resizing. :func:`compose` chains a residual: ``warp(warp(x, f), d) == warp(x, compose(f, d))``.

* :class:`GlobalFlow` (Fig. 4): coarse-to-fine over the pyramid levels. Per level: warp ``g_i`` with the
  previous flow, predict a residual from ``[g'_i, p_i]`` (``style``), compose, warp again, predict a second
  residual from ``[g''_i, p_i]`` (``refine``), compose; global attention logit from ``[g''_i, p_i]``, refined with
  the upsampled previous attention and (when given) the local attention maps ``m_l`` resized to the level.
  Returns the full-resolution flow ``N x 2 x H x W``, every level's flow (coarse first, for Eq. 8) and the
  attention logit ``m_g`` ``N x 1 x H x W``.
* :class:`LocalFlow` (Fig. 5, Eqs. 1-4): ``pg = C_0([p_i, g_i])`` on the finest ``levels`` pyramid levels
  (summed at 1/2 resolution, the finest level's); patch sizes ``(g_w, g_h, p_w, p_h) = sigmoid(C_1(pg)) * (I_w, I_h, I_w, I_h)``
  with ``I = image / init_frac`` (Eqs. 2-3; ``patch="fixed"`` drops ``C_1`` and uses ``I_w x I_h`` hard boxes).
  Per landmark pair k the person patch around ``L_p^k`` and the garment patch around ``L_g^k`` are cropped from
  correlation features at 1/2 resolution (DECIDED: ModelScope upsamples them to the image first, which adds no
  information to bilinear crops; the crops take image-pixel positions at any feature resolution), correlated by matrix product (softmax over garment positions) and the
  local flow of a person position is the correlation-weighted mean of the garment positions (paper: "search
  for the correlative position coordinates on the garment"; DECIDED: positions, not a learnt value map).
  ``impl`` (config ``warp.local_impl``) picks the crop:

  - ``"crop"`` (default, DECIDED): each patch, at its (deformable) size, is resampled to a fixed
    ``patch_res x round(patch_res W / H)`` grid of cells (ROI-align style, all N x K patches in one
    ``grid_sample`` on the channels-last correlation features; the sizes move the sampling positions, so
    Eqs. 2-3 get gradient through them), one batched fused-attention call correlates them, and the per-cell
    garment positions are resampled (bilinear, border) onto the person window's pixels: the window is a
    separable grid, so this is two small matmuls with ``grid_sample``'s 1-D weights (``_interp_rows``), or one
    ``grid_sample`` per patch in the per-landmark loops (fewer ops per call; equal to rounding);
  - ``"softbox"`` (ModelScope's code): full-resolution ``odd(I_h) x odd(I_w)`` windows (51 x 39 at 256x192)
    weighted by soft boxes ``sigmoid(slope (size/2 - |d|))`` (hard for fixed), the garment box as a log prior;
    every window pixel against every window pixel (4M entries per patch at 256x192, in memory-bounded
    groups on CPU).

  Both give garment positions for every pixel of the person window of ``odd(I_h) x odd(I_w)`` pixels centred
  on the rounded ``L_p^k`` and the pixel's membership of the person patch (soft box, hard for fixed). Eq. 4
  (:meth:`LocalFlow.blend`): ``W_l(x) = sum_k a_k(x) G(f_l^k(x))``, ``a_k`` the softmax of
  ``m_l^k(x) + log(member_k(x) + 1e-6)`` over the patches whose window covers x (membership > 1e-3), white
  (1) where none does; computed on the windows with flat-index gathers / scatters. The logits ``m_l^k`` are
  predicted at 1/2 resolution from ``pg`` and upsampled bilinearly only where a window reads them
  (:meth:`LocalFlow.window_logits`; DECIDED: ModelScope predicts them from ``pg`` upsampled to the image, a 3x3
  conv at 4x the pixels). The local attention output
  ``m_l`` holds those ``a_k`` at half resolution, ``N x K x ceil(H/2) x ceil(W/2)``: the 2 x 2 means, i.e.
  exactly ``F.interpolate(a, scale 1/2, bilinear)`` of the full-resolution weights for even H, W (ASSUMED: the
  paper's ``m_l in R^{h x w x 32}`` at feature resolution; :class:`GlobalFlow` only reads it resized to its
  levels, the finest of which is 1/2, so that level sees the same values and the coarser ones a box-filtered
  rather than point-sampled downsizing; the dense full-resolution map is never built).
  :meth:`LocalFlow.core_loop` is the same math one patch per Python iteration (reference for tests and
  ``bench/perf/perf_salvton.py``). The softmax over overlapping windows and the weighted paste are autograd
  Functions with closed-form backwards (:class:`_WindowSoftmax`, :class:`_Paste`).
* :func:`fuse` (Eq. 5): ``W_f = (1 - sigmoid(m_g)) * W_l + sigmoid(m_g) * W_g``.
* :func:`charbonnier_smoothness` (Eq. 8): generalised Charbonnier ``((d2 f)^2 + eps^2)^q`` (q = 0.45, PF-AFN) of
  the second differences of a flow in four directions.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def base_grid(n: int, h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Identity sampling positions ``n x 2 x h x w`` (x, y) in [-1, 1] (pixel centres)."""
    xs = (torch.arange(w, device=device, dtype=dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=device, dtype=dtype) * 2 + 1) / h - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], 0).unsqueeze(0).expand(n, -1, -1, -1)


def sample(x: torch.Tensor, flow: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """``x`` (N x C x h x w) warped by the offset field ``flow`` (N x 2 x h' x w')."""
    n, _, h, w = flow.shape
    grid = (base_grid(n, h, w, flow.device, flow.dtype) + flow).permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def resize_flow(flow: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    if tuple(flow.shape[-2:]) == tuple(size):
        return flow
    return F.interpolate(flow, size=tuple(size), mode=mode, align_corners=False)


def compose(prev: Optional[torch.Tensor], delta: torch.Tensor) -> torch.Tensor:
    """The flow of ``warp(warp(x, prev), delta)``."""
    if prev is None:
        return delta
    return sample(prev, delta, "border") + delta


def pixel_to_norm(xy: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel (x, y) -> normalised coordinates (align_corners=False)."""
    scale = xy.new_tensor([2.0 / w, 2.0 / h])
    return (xy + 0.5) * scale - 1


def _act_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.PReLU(cout))


def _head(cin: int, hidden: int, cout: int, zero: bool = True) -> nn.Sequential:
    h2 = max(hidden // 2, 4)
    last = nn.Conv2d(h2, cout, 3, 1, 1)
    if zero:  # start from the identity warp / neutral attention
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(_act_conv(cin, hidden), _act_conv(hidden, h2), last)


class GlobalFlow(nn.Module):
    def __init__(self, levels: int = 5, dim: int = 256, hidden: int = 128, local_points: int = 0):
        super().__init__()
        self.levels = levels
        self.style = nn.ModuleList(_head(2 * dim, hidden, 2) for _ in range(levels))
        self.refine = nn.ModuleList(_head(2 * dim, hidden, 2) for _ in range(levels))
        self.att = nn.ModuleList(_head(2 * dim, hidden // 2, 1, zero=False) for _ in range(levels))
        self.local_points = local_points
        extra = 1 + local_points
        self.att_refine = nn.ModuleList(_head(1 + extra, 16, 1, zero=False) for _ in range(levels))

    def forward(self, p_feats: list[torch.Tensor], g_feats: list[torch.Tensor], size,
                local_att: Optional[torch.Tensor] = None) -> dict:
        """``p_feats`` / ``g_feats``: pyramid maps finest first; ``local_att`` N x K x h x w (any size, resized to
        each level; or None)."""
        flow, att, flows = None, None, []
        n_lv = len(p_feats)
        for li, i in enumerate(range(n_lv - 1, -1, -1)):  # coarse -> fine
            p, g = p_feats[i], g_feats[i]
            hw = p.shape[-2:]
            if flow is not None:
                flow = resize_flow(flow, hw)
            g1 = g if flow is None else sample(g, flow.detach())
            flow = compose(flow, self.style[li](torch.cat([g1, p], 1)))
            g2 = sample(g, flow)
            flow = compose(flow, self.refine[li](torch.cat([g2, p], 1)))
            flows.append(flow)
            m = self.att[li](torch.cat([sample(g, flow), p], 1))
            prev = torch.zeros_like(m) if att is None else F.interpolate(att, size=hw, mode="bilinear",
                                                                          align_corners=False)
            extra = [m, prev]
            if self.local_points:
                la = local_att if local_att is not None else m.new_zeros(m.shape[0], self.local_points, *hw)
                extra.append(F.interpolate(la, size=hw, mode="bilinear", align_corners=False))
            att = m + self.att_refine[li](torch.cat(extra, 1))
        return {"flow": resize_flow(flow, size), "flows": flows,
                "att": F.interpolate(att, size=tuple(size), mode="bilinear", align_corners=False)}


def correlate(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T + prior) v`` over the last two dims (``... x P x C``, values ``... x P x D``): the
    correlation matrix of the cropped person and garment features, normalised over garment positions, applied
    to the garment positions. On CUDA PyTorch's fused attention (no P x P matrix stored); on CPU explicit
    batched matmul + softmax over groups of patches holding at most 4M correlation entries (the fused
    CPU kernel is slow for 2-dim values; unbounded groups spend their time in page faults)."""
    if q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v.to(q.dtype), attn_mask=prior.to(q.dtype), scale=1.0)
    lead = q.shape[:-2]
    p_q, p_k = q.shape[-2], k.shape[-2]
    qf, kf = q.reshape(-1, p_q, q.shape[-1]), k.reshape(-1, p_k, k.shape[-1])
    vf = v.to(q.dtype).reshape(-1, p_k, v.shape[-1])
    pf = prior.to(q.dtype).expand(*lead, 1, p_k).reshape(-1, 1, p_k)
    step = max(1, (1 << 22) // (p_q * p_k))
    out = [torch.baddbmm(pf[i:i + step], qf[i:i + step], kf[i:i + step].transpose(1, 2)).softmax(-1)
           @ vf[i:i + step] for i in range(0, qf.shape[0], step)]
    return torch.cat(out, 0).reshape(*lead, p_q, v.shape[-1])


def _odd(x: float) -> int:
    n = max(1, int(round(x)))
    return n if n % 2 else n + 1


def _cells(rows: int, cols: int, unit: bool) -> torch.Tensor:
    """``rows cols x 2`` (x, y) grid, row-major: pixel offsets from the centre (``unit=False``) or cell centres
    of a unit patch in [-0.5, 0.5] (``unit=True``)."""
    if unit:
        dy, dx = (torch.arange(rows) + 0.5) / rows - 0.5, (torch.arange(cols) + 0.5) / cols - 0.5
    else:
        dy, dx = torch.arange(rows) - (rows - 1) / 2, torch.arange(cols) - (cols - 1) / 2
    gy, gx = torch.meshgrid(dy.float(), dx.float(), indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)


class _DenseGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient: ``bmm``'s backward falls back to one copy per
    matrix for broadcast (stride-0) or transposed gradients."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous()


class _WindowSoftmax(torch.autograd.Function):
    """Eq. 4's weights: softmax of ``z`` (``N x K x P``) over the window entries that land on the same pixel
    (flat pixel index ``flat``, ``N x KP``; ``hw1`` slots), restricted to ``keep``; 0 elsewhere. One fused
    forward (in place, max-shifted) and the closed-form backward ``w (g - sum_pixel w g)`` instead of an
    autograd graph of a dozen window-sized temporaries."""

    @staticmethod
    def forward(ctx, z, keep, flat, hw1):
        n = z.shape[0]
        e = torch.where(keep, z.detach(), -1e30)
        mx = e.new_full((n, hw1), -1e30).scatter_reduce_(1, flat, e.view(n, -1), "amax")
        e.sub_(torch.gather(mx, 1, flat).view_as(e)).exp_().mul_(keep)     # entries nobody keeps: exp(0) * 0
        den = e.new_zeros(n, hw1).scatter_add_(1, flat, e.view(n, -1))
        e.div_(torch.gather(den, 1, flat).view_as(e).clamp_(min=1e-30))
        ctx.save_for_backward(e, flat)
        ctx.hw1 = hw1
        return e

    @staticmethod
    def backward(ctx, g):
        w, flat = ctx.saved_tensors
        n = w.shape[0]
        gw = g * w
        tot = gw.new_zeros(n, ctx.hw1).scatter_add_(1, flat, gw.view(n, -1))
        return gw.sub_(torch.gather(tot, 1, flat).view_as(w).mul_(w)), None, None, None


class _Paste(torch.autograd.Function):
    """``out[:, c, flat] += vals[:, c] * wts`` (``vals`` N x C x KP, ``wts`` N x KP) into ``N x C x hw1``: Eq. 4's
    weighted sum without keeping ``vals * wts`` for autograd."""

    @staticmethod
    def forward(ctx, vals, wts, flat, hw1):
        n, c = vals.shape[:2]
        ctx.save_for_backward(vals, wts, flat)
        return vals.new_zeros(n, c, hw1).scatter_add_(2, flat[:, None].expand(-1, c, -1), vals * wts[:, None])

    @staticmethod
    def backward(ctx, g):
        vals, wts, flat = ctx.saved_tensors
        gg = torch.gather(g, 2, flat[:, None].expand(-1, vals.shape[1], -1))
        gv = gg * wts[:, None] if ctx.needs_input_grad[0] else None
        gw = gg.mul_(vals).sum(1) if ctx.needs_input_grad[1] else None
        return gv, gw, None, None


def _interp_rows(g: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resampling weights ``... x m x size`` of normalised positions ``g`` (``... x m``, align_corners
    False) on a ``size``-cell axis with border padding: ``grid_sample``'s 1-D weights as a matrix, so a separable
    grid is resampled by two small matmuls."""
    u = (((g + 1) * size - 1) / 2).clamp(0, size - 1)
    return (1 - (u[..., None] - torch.arange(size, device=g.device, dtype=g.dtype)).abs()).clamp(min=0)


IMPLS = ("crop", "softbox")


class LocalFlow(nn.Module):
    """Local flow and Eq. 4 blend; ``impl`` picks how a patch pair is correlated (see the module docstring):

    * ``"crop"`` (default): each patch ``(w, h)`` around its landmark is resampled to a fixed ``patch_h x
      patch_w`` grid (``patch_res`` rows, columns by the image aspect) with one ``grid_sample`` for all
      N x K patches (the deformable sizes move the sampling positions, so the size head gets gradient through
      them); correlation ``(NK, P, C) x (NK, C, P)`` in one batched matmul, softmax over garment cells, garment
      positions averaged per person cell; the ``NK x 2 x patch_h x patch_w`` position maps are resampled onto
      the person windows (two batched matmuls over the separable window grid). 12 x 9 cells at 256x192 (4.3 px, the 1/4 pyramid level's
      spacing): 108^2 correlation entries per patch instead of 1989^2.
    * ``"softbox"``: the ModelScope formulation; full-resolution ``win_h x win_w`` windows weighted by soft
      boxes, correlation of every window pixel with every window pixel (4M entries per patch at 256x192).

    Both feed the same windowed blend (:meth:`blend`)."""

    def __init__(self, size, num_points: int = 32, dim: int = 256, levels: int = 3, local_ch: int = 32,
                 corr_ch: int = 16, init_frac: float = 5.0, patch: str = "deformable", slope: float = 2.0,
                 chunk: int = 32, impl: str = "crop", patch_res: int = 12):
        super().__init__()
        if patch not in ("deformable", "fixed"):
            raise ValueError(f"patch must be 'deformable' or 'fixed', not {patch!r}")
        if impl not in IMPLS:
            raise ValueError(f"local flow impl must be one of {IMPLS}, not {impl!r}")
        self.h, self.w = int(size[0]), int(size[1])
        self.k, self.levels, self.patch, self.slope, self.chunk = num_points, levels, patch, slope, chunk
        self.impl = impl
        self.init_h, self.init_w = self.h / init_frac, self.w / init_frac
        self.win_h, self.win_w = _odd(self.init_h), _odd(self.init_w)
        self.patch_h, self.patch_w = int(patch_res), max(1, int(round(patch_res * self.w / self.h)))
        self.c0 = nn.ModuleList(nn.Sequential(nn.Conv2d(2 * dim, local_ch, 3, 1, 1), nn.BatchNorm2d(local_ch),
                                              nn.PReLU(local_ch)) for _ in range(levels))
        self.c1 = None
        if patch == "deformable":
            self.c1 = nn.Sequential(nn.Conv2d(local_ch, local_ch, 3, 2, 1), nn.BatchNorm2d(local_ch),
                                    nn.PReLU(local_ch), nn.Conv2d(local_ch, local_ch, 3, 2, 1),
                                    nn.BatchNorm2d(local_ch), nn.PReLU(local_ch), nn.AdaptiveAvgPool2d(1),
                                    nn.Conv2d(local_ch, 4 * num_points, 1))
        self.red_p = nn.ModuleList(nn.Conv2d(dim, corr_ch, 1) for _ in range(levels))
        self.red_g = nn.ModuleList(nn.Conv2d(dim, corr_ch, 1) for _ in range(levels))
        self.mix_p = nn.Conv2d(corr_ch, corr_ch, 3, 1, 1)
        self.mix_g = nn.Conv2d(corr_ch, corr_ch, 3, 1, 1)
        self.att = nn.Sequential(nn.Conv2d(local_ch, local_ch, 3, 1, 1), nn.PReLU(local_ch),
                                 nn.Conv2d(local_ch, num_points, 3, 1, 1))
        self.log_tau = nn.Parameter(torch.tensor(math.log(4.0 / math.sqrt(corr_ch))))
        self.register_buffer("offsets", _cells(self.win_h, self.win_w, False), persistent=False)
        self.register_buffer("unit", _cells(self.patch_h, self.patch_w, True), persistent=False)
        self.register_buffer("off_x", torch.arange(self.win_w).float() - (self.win_w - 1) / 2, persistent=False)
        self.register_buffer("off_y", torch.arange(self.win_h).float() - (self.win_h - 1) / 2, persistent=False)

    # ------------------------------------------------------------------ pieces
    def patch_sizes(self, pg: torch.Tensor) -> Optional[torch.Tensor]:
        """``N x K x 4`` (g_w, g_h, p_w, p_h) in pixels (Eqs. 2-3), or None for fixed patches."""
        if self.c1 is None:
            return None
        logits = self.c1(pg).view(pg.shape[0], self.k, 4)
        scale = logits.new_tensor([self.init_w, self.init_h, self.init_w, self.init_h])
        return torch.sigmoid(logits) * scale

    def box_at(self, d: torch.Tensor, wh: Optional[torch.Tensor]) -> torch.Tensor:
        """Patch membership ``... x P`` of pixel offsets ``d`` (``... x P x 2``) from a patch centre: soft
        ``sigmoid(slope (size/2 - |d|))`` per axis for sizes ``wh`` (``... x 2``), hard ``I_w x I_h`` for None."""
        d = d.abs()
        if wh is None:
            return ((d[..., 0] <= self.init_w / 2) & (d[..., 1] <= self.init_h / 2)).to(d.dtype)
        m = torch.sigmoid(self.slope * (wh[..., None, :] / 2 - d))
        return m[..., 0] * m[..., 1]

    def box_axes(self, dx: torch.Tensor, dy: torch.Tensor, wh: Optional[torch.Tensor]) -> torch.Tensor:
        """:meth:`box_at` on the separable window grid: ``dx`` ``... x win_w`` / ``dy`` ``... x win_h`` pixel
        offsets from the patch centre, sizes ``wh`` ``... x 2`` (None: hard); returns ``... x win_h x win_w``."""
        dx, dy = dx.abs(), dy.abs()
        if wh is None:
            return ((dy <= self.init_h / 2)[..., :, None] & (dx <= self.init_w / 2)[..., None, :]).to(dx.dtype)
        mx = torch.sigmoid(self.slope * (wh[..., 0:1] / 2 - dx))
        my = torch.sigmoid(self.slope * (wh[..., 1:2] / 2 - dy))
        return my[..., :, None] * mx[..., None, :]

    def box(self, sizes: Optional[torch.Tensor], which: int, n: int, k: Optional[int] = None) -> torch.Tensor:
        """Patch box weights over the window ``N x K x P`` (soft for deformable, hard for fixed)."""
        k = k or (self.k if sizes is None else sizes.shape[1])
        return self.box_at(self.offsets.expand(n, k, -1, -1),
                           None if sizes is None else sizes[..., 2 * which:2 * which + 2])

    def crop(self, feat: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``feat`` (N x C x h x w, any resolution covering the image) bilinearly sampled at image-pixel
        positions ``pos`` (N x K x P x 2), zeros outside: ``N x K x P x C`` (one ``grid_sample`` for all patches,
        the ``K x P`` positions as its output rows and columns so the CPU kernel vectorises over P; channels-last
        ``feat`` keeps each tap one cache line)."""
        out = F.grid_sample(feat, pixel_to_norm(pos, self.h, self.w), mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        return out.permute(0, 2, 3, 1)

    def window_logits(self, logit_l: torch.Tensor, cp: torch.Tensor) -> torch.Tensor:
        """The attention logits ``m_l^k`` (``N x K x h x w``, half resolution) upsampled bilinearly (as
        ``F.interpolate(..., align_corners=False)``: border clamped) at the person-window pixels of each patch:
        ``N x K x win_h x win_w``, one ``grid_sample`` over all N x K single-channel maps."""
        n, k, h, w = logit_l.shape
        gx = ((cp[..., 0:1] + self.off_x) * 2 + 1) / self.w - 1             # N x K x win_w
        gy = ((cp[..., 1:2] + self.off_y) * 2 + 1) / self.h - 1             # N x K x win_h
        grid = torch.stack(torch.broadcast_tensors(gx[..., None, :], gy[..., :, None]), -1)
        out = F.grid_sample(logit_l.reshape(n * k, 1, h, w), grid.view(n * k, self.win_h, self.win_w, 2),
                            mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(n, k, self.win_h, self.win_w)

    def features(self, p_feats, g_feats):
        """``pg`` (Eq. 1) and the person / garment correlation features, all at the finest pyramid level's
        resolution (1/2): upsampling them further adds no information, and the crops sample them at image-pixel
        positions wherever they fall."""
        half = tuple(p_feats[0].shape[-2:])

        def up(x):
            return x if tuple(x.shape[-2:]) == half else F.interpolate(x, size=half, mode="bilinear",
                                                                        align_corners=False)
        pg, fp, fg = 0, 0, 0
        for i in range(self.levels):
            p, g = p_feats[i], g_feats[i]
            pg = pg + up(self.c0[i](torch.cat([p, g], 1)))
            fp = fp + up(self.red_p[i](p))
            fg = fg + up(self.red_g[i](g))
        cl = torch.channels_last  # the patch crops sample 16-channel pixels: one cache line each when channels-last
        return pg, self.mix_p(fp.contiguous(memory_format=cl)), self.mix_g(fg.contiguous(memory_format=cl))

    def window_coords(self, fp, fg, xy_g, xy_p, cp, sizes, separable: bool = True):
        """Garment pixel positions ``N x K x P x 2`` for every person-window pixel (``P = win_h win_w``, window
        centred on the integer pixel ``cp``) and the person-patch membership ``N x K x P`` of those pixels.
        ``fp`` / ``fg`` N x C x H x W correlation features (channels-last is fastest); ``xy_*`` N x K x 2 pixels;
        ``sizes`` N x K x 4 / None. ``"crop"`` resamples the cell positions onto the window (bilinear, border)
        as two small matmuls over the separable window grid (``separable``, cheapest for many patches) or with
        one ``grid_sample`` over the window's pixels (fewer ops: what the per-landmark loops use); the two agree
        to rounding."""
        tau = self.log_tau.exp()
        if self.impl == "softbox":
            n, k = xy_g.shape[:2]
            mg, mp = self.box(sizes, 0, n, k), self.box(sizes, 1, n, k)
            qp = self.crop(fp, cp[:, :, None, :] + self.offsets) * mp[..., None]
            pos_g = xy_g[:, :, None, :] + self.offsets
            kg = self.crop(fg, pos_g) * mg[..., None]
            prior = torch.log(mg + 1e-6)[:, :, None, :]                    # the garment box as a log prior
            coords = [correlate(qp[:, s:s + self.chunk] * tau, kg[:, s:s + self.chunk], pos_g[:, s:s + self.chunk],
                                prior[:, s:s + self.chunk]) for s in range(0, k, self.chunk)]
            return torch.cat(coords, 1), mp
        n, k = xy_g.shape[:2]
        s = sizes if sizes is not None else xy_g.new_tensor([self.init_w, self.init_h] * 2).expand(n, k, 4)
        s = s.clamp(min=1e-3)
        pos_g = xy_g[:, :, None, :] + self.unit * s[:, :, None, 0:2]          # N x K x Pc x 2 garment cells
        q = self.crop(fp, xy_p[:, :, None, :] + self.unit * s[:, :, None, 2:4])
        kg = self.crop(fg, pos_g)
        # softmax_garment(q k^T) @ positions (N x K x Pc x 2); the fused attention kernel (flash on CPU too)
        # never stores the Pc x Pc matrix and wants values as wide as the keys, hence the zero padding
        vals = F.pad(pos_g, (0, max(0, q.shape[-1] - 2)))
        cells = F.scaled_dot_product_attention(q.contiguous() * tau, kg.contiguous(), vals, scale=1.0)[..., :2]
        if not separable:
            d = cp[:, :, None, :] + self.offsets - xy_p[:, :, None, :]         # window pixel - patch centre
            maps = cells.reshape(n * k, self.patch_h, self.patch_w, 2).permute(0, 3, 1, 2)
            grid = (2 * d / s[:, :, None, 2:4]).view(n * k, self.win_h, self.win_w, 2)  # patch-normalised
            coords = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
            return (coords.view(n, k, 2, -1).transpose(2, 3),
                    self.box_at(d, None if sizes is None else sizes[..., 2:4]))
        # window pixel - patch centre per axis (the window is a separable grid), in patch-normalised units
        dx = cp[..., 0:1] + self.off_x - xy_p[..., 0:1]                       # N x K x win_w
        dy = cp[..., 1:2] + self.off_y - xy_p[..., 1:2]                       # N x K x win_h
        ry = _interp_rows(2 * dy / s[..., 3:4], self.patch_h)                 # N x K x win_h x patch_h
        rx = _interp_rows(2 * dx / s[..., 2:3], self.patch_w)                 # N x K x win_w x patch_w
        maps = cells.reshape(n * k, self.patch_h, self.patch_w, 2).permute(0, 3, 1, 2).reshape(-1, self.patch_h,
                                                                                             self.patch_w)
        ry = ry.view(n * k, 1, *ry.shape[-2:]).expand(-1, 2, -1, -1).reshape(maps.shape[0], -1, self.patch_h)
        rx = rx.view(n * k, 1, *rx.shape[-2:]).expand(-1, 2, -1, -1).reshape(maps.shape[0], -1, self.patch_w)
        coords = _DenseGrad.apply(torch.bmm(torch.bmm(ry, maps), rx.transpose(1, 2)))
        coords = coords.view(n, k, 2, dy.shape[-1], dx.shape[-1])
        member = self.box_axes(dx, dy, None if sizes is None else sizes[..., 2:4])
        return coords.flatten(3).transpose(2, 3), member.view(n, k, -1)

    def blend(self, garment, coords, mp, cp, valid, logit_l) -> dict:
        """Eq. 4 on the windows: ``W_l(x) = sum_k a_k(x) G(coords_k(x))`` with ``a_k`` the softmax of
        ``m_l^k + log(member_k + 1e-6)`` over the patches whose window covers x (membership > 1e-3); white where
        none does. ``garment`` N x 3 x H x W, ``coords`` N x K x P x 2, ``mp`` N x K x P, ``cp`` N x K x 2 integer
        window centres, ``valid`` N x K, ``logit_l`` N x K x h x w (1/2 resolution; upsampled bilinearly at the
        window pixels, :meth:`window_logits`). Everything is gathered / scattered with flat pixel indices (one
        call each); window pixels outside the image go to a dropped dummy slot. (Sampling only the kept entries,
        about 40% at random sizes, measured slower on CPU: the compaction's indexing costs more than it saves.)"""
        n, _, h, w = garment.shape
        k, hw = coords.shape[1], h * w
        px, py = cp[..., 0:1] + self.off_x, cp[..., 1:2] + self.off_y            # N x K x win_w / win_h
        inb = ((py >= 0) & (py <= h - 1))[..., :, None] & ((px >= 0) & (px <= w - 1))[..., None, :]
        idx = torch.where(inb, py[..., :, None] * w + px[..., None, :], hw).long().view(n, k, -1)
        member = mp * (inb.view(n, k, -1) & valid[:, :, None])
        keep = member > 1e-3
        z = self.window_logits(logit_l, cp).view(n, k, -1) + torch.log(member + 1e-6)
        flat = idx.view(n, -1)
        wts = _WindowSoftmax.apply(z, keep, flat, hw + 1)                        # N x K x P
        vals = F.grid_sample(garment, pixel_to_norm(coords, h, w), mode="bilinear", padding_mode="border",
                             align_corners=False).view(n, 3, -1)                # N x 3 x (K P)
        out = _Paste.apply(vals, wts.view(n, -1), flat, hw + 1)
        covered = garment.new_zeros(n, hw + 1).scatter_reduce_(1, flat, member.view(n, -1), "amax")
        covered = covered[:, :hw].clamp(max=1).view(n, 1, h, w)
        warped = out[..., :hw].view(n, 3, h, w) * covered + (1 - covered)
        ah, aw = (h + 1) // 2, (w + 1) // 2                                    # m_l: 2 x 2 means of the weights
        cell = torch.where(inb, (py // 2)[..., :, None] * aw + (px // 2)[..., None, :], 0).long().view(n, k, -1)
        att = garment.new_zeros(n, k, ah * aw).scatter_add_(2, cell, wts * 0.25)
        return {"warped": warped, "covered": covered, "att": att.view(n, k, ah, aw), "coords": coords, "weights": wts,
                "centres": cp, "index": idx, "keep": keep}

    @torch.no_grad()
    def dense_flow(self, out: dict, h: int, w: int) -> torch.Tensor:
        """The local flows ``f_l`` as an ``N x 2K x H x W`` offset field (-2, outside the image, where a pair's
        window does not reach). An inspection output (no loss uses it; no gradient)."""
        coords, idx, keep = out["coords"], out["index"], out["keep"]
        n, k, hw = coords.shape[0], coords.shape[1], h * w
        pos_p = out["centres"][:, :, None, :] + self.offsets
        off = (pixel_to_norm(coords, h, w) - pixel_to_norm(pos_p, h, w)).permute(0, 1, 3, 2)  # N x K x 2 x P
        off = torch.where(keep[:, :, None, :], off, torch.full_like(off, -2.0))
        flow = torch.full((n, k, 2, hw + 1), -2.0, device=coords.device, dtype=coords.dtype)
        return flow.scatter(3, idx[:, :, None, :].expand(-1, -1, 2, -1), off)[..., :hw].reshape(n, 2 * k, h, w)

    def core(self, fp, fg, xy_g, xy_p, valid, garment, sizes, logit_l) -> dict:
        """Batched local flow + Eq. 4 from correlation features, patch sizes and the attention logits."""
        cp = torch.round(xy_p.detach())                                     # person windows on the pixel grid
        coords, mp = self.window_coords(fp, fg, xy_g, xy_p, cp, sizes)
        return self.blend(garment, coords, mp, cp, valid, logit_l)

    def core_loop(self, fp, fg, xy_g, xy_p, valid, garment, sizes, logit_l) -> dict:
        """Naive reference of :meth:`core`: the same math, one (sample, landmark) patch per Python iteration
        (crop, correlate, resample, sample the garment and paste into the image slice by slice). Returns
        ``warped``, ``covered``, ``att``. Used by the perf benchmark and the equality test."""
        n, _, h, w = garment.shape
        k, wh, ww = xy_g.shape[1], self.win_h, self.win_w
        ah, aw = (h + 1) // 2, (w + 1) // 2
        cp = torch.round(xy_p.detach())
        fps, fgs, gs, logs = fp.unbind(0), fg.unbind(0), garment.unbind(0), logit_l.unbind(0)
        # window pixel positions, normalised to the image (the logits are upsampled where a window reads them)
        grid_l = pixel_to_norm(cp[:, :, None, :] + self.offsets, h, w).view(n, k, wh, ww, 2)
        warped, covered, att = [], [], []
        for a in range(n):
            mx = garment.new_full((h, w), -1e30)
            den, cov, out = garment.new_zeros(h, w), garment.new_zeros(h, w), garment.new_zeros(3, h, w)
            lg, parts = logs[a].unbind(0), {}
            for j in range(k):
                x0, y0 = int(cp[a, j, 0]) - (ww - 1) // 2, int(cp[a, j, 1]) - (wh - 1) // 2
                ys, xs = slice(max(0, y0), min(h, y0 + wh)), slice(max(0, x0), min(w, x0 + ww))
                if not bool(valid[a, j]) or ys.stop <= ys.start or xs.stop <= xs.start:
                    continue
                sz = None if sizes is None else sizes[a:a + 1, j:j + 1]
                coords, mp = self.window_coords(fps[a][None], fgs[a][None], xy_g[a:a + 1, j:j + 1],
                                                xy_p[a:a + 1, j:j + 1], cp[a:a + 1, j:j + 1], sz, separable=False)
                win = (slice(None), slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
                v = F.grid_sample(gs[a][None], pixel_to_norm(coords, h, w).view(1, wh, ww, 2), mode="bilinear",
                                  padding_mode="border", align_corners=False)[0][win]
                m = mp.view(1, wh, ww)[win][0]
                keep = m > 1e-3
                zl = F.grid_sample(lg[j][None, None], grid_l[a, j][None], mode="bilinear", padding_mode="border",
                                   align_corners=False)[0, 0]
                z = zl[win[1:]] + torch.log(m + 1e-6)
                mx[ys, xs] = torch.maximum(mx[ys, xs], torch.where(keep, z, -1e30).detach())
                cov[ys, xs] = torch.maximum(cov[ys, xs].clone(), m)
                parts[j] = (ys, xs, v, z, keep)
            es = {}
            for j, (ys, xs, v, z, keep) in parts.items():
                es[j] = torch.exp(torch.where(keep, z - mx[ys, xs], 0)) * keep
                den[ys, xs] += es[j]
            maps = [garment.new_zeros(ah, aw)] * k
            for j, (ys, xs, v, z, keep) in parts.items():
                wt = es[j] / den[ys, xs].clamp(min=1e-30)
                out[:, ys, xs] += v * wt
                # the window's 2 x 2 means (zero-padded to even rows / columns) pasted into the half-size map
                top, left = ys.start % 2, xs.start % 2
                pad = (left, (left + wt.shape[1]) % 2, top, (top + wt.shape[0]) % 2)
                q = F.avg_pool2d(F.pad(wt, pad)[None], 2)[0]
                y2, x2 = ys.start // 2, xs.start // 2
                maps[j] = F.pad(q, (x2, aw - x2 - q.shape[1], y2, ah - y2 - q.shape[0]))
            c = cov.clamp(max=1)
            warped.append(out * c + (1 - c))
            covered.append(c[None])
            att.append(torch.stack(maps))
        return {"warped": torch.stack(warped), "covered": torch.stack(covered), "att": torch.stack(att)}

    # ------------------------------------------------------------------ forward
    def forward(self, p_feats, g_feats, xy_g: torch.Tensor, xy_p: torch.Tensor, valid: torch.Tensor,
                garment: torch.Tensor) -> dict:
        """``xy_g`` / ``xy_p``: N x K x 2 landmark pixels at the image size; ``valid``: N x K bool (pair used);
        ``garment`` N x 3 x H x W. Returns ``warped`` (W_l), ``covered`` (N x 1 x H x W), ``att`` (masked local
        attention probabilities, 2 x 2 means: N x K x ceil(H/2) x ceil(W/2)), ``flow`` (N x 2K x H x W, -2 outside windows), ``sizes``."""
        h, w = self.h, self.w
        pg, fp, fg = self.features(p_feats, g_feats)
        sizes = self.patch_sizes(pg)
        logit_l = self.att(pg)                                              # m_l logits at 1/2 resolution
        out = self.core(fp, fg, xy_g, xy_p, valid, garment, sizes, logit_l)
        out["sizes"] = sizes
        out["flow"] = self.dense_flow(out, h, w)
        return out


def local_warp_loop(garment: torch.Tensor, coords: torch.Tensor, weights: torch.Tensor, centres: torch.Tensor,
                    win: tuple[int, int]) -> torch.Tensor:
    """Naive reference of the Eq. 4 blend: one ``grid_sample`` and one slice-add per sample and landmark.

    ``coords`` N x K x P x 2 garment pixels, ``weights`` N x K x P, ``centres`` N x K x 2 integer person pixels.
    Used by the perf benchmark and to test the batched scatter in :class:`LocalFlow`."""
    n, _, h, w = garment.shape
    wh, ww = win
    out = torch.zeros(n, 3, h, w, dtype=garment.dtype)
    for a in range(n):
        for k in range(coords.shape[1]):
            g = pixel_to_norm(coords[a, k], h, w).view(1, wh, ww, 2)
            v = F.grid_sample(garment[a:a + 1], g, mode="bilinear", padding_mode="border", align_corners=False)[0]
            v = v * weights[a, k].view(1, wh, ww)
            x0, y0 = int(centres[a, k, 0]) - (ww - 1) // 2, int(centres[a, k, 1]) - (wh - 1) // 2
            for yy in range(wh):
                for xx in range(ww):
                    y, x = y0 + yy, x0 + xx
                    if 0 <= y < h and 0 <= x < w:
                        out[a, :, y, x] += v[:, yy, xx]
    return out


def fuse(warped_local: torch.Tensor, warped_global: torch.Tensor, att_logit: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``(1 - sigmoid(m_g)) * W_l + sigmoid(m_g) * W_g``."""
    a = torch.sigmoid(att_logit)
    return (1 - a) * warped_local + a * warped_global


def charbonnier_smoothness(flow: torch.Tensor, eps: float = 1e-3, q: float = 0.45) -> torch.Tensor:
    """Mean generalised Charbonnier of the second differences of ``flow`` (N x 2 x h x w) in 4 directions."""
    terms = []
    if flow.shape[-1] >= 3:
        terms.append(flow[..., :, 2:] - 2 * flow[..., :, 1:-1] + flow[..., :, :-2])
    if flow.shape[-2] >= 3:
        terms.append(flow[..., 2:, :] - 2 * flow[..., 1:-1, :] + flow[..., :-2, :])
    if flow.shape[-1] >= 3 and flow.shape[-2] >= 3:
        terms.append(flow[..., 2:, 2:] - 2 * flow[..., 1:-1, 1:-1] + flow[..., :-2, :-2])
        terms.append(flow[..., 2:, :-2] - 2 * flow[..., 1:-1, 1:-1] + flow[..., :-2, 2:])
    if not terms:
        return flow.sum() * 0
    return sum(((t * t + eps * eps) ** q).mean() for t in terms) / len(terms)
