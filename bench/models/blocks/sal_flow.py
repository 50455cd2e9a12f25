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
  (summed at 1/2 resolution); patch sizes ``(g_w, g_h, p_w, p_h) = sigmoid(C_1(pg)) * (I_w, I_h, I_w, I_h)``
  with ``I = image / init_frac`` (Eqs. 2-3; ``patch="fixed"`` drops ``C_1`` and uses hard ``I_h x I_w`` boxes);
  per landmark pair k a window of ``odd(I_h) x odd(I_w)`` pixels around ``L_g^k`` (garment) and ``L_p^k``
  (person) is cropped from full-resolution correlation features (all 32 windows of all samples in one
  ``grid_sample``), both crops are weighted by their (soft) patch boxes, the correlation matrix is their
  matrix product (softmax over garment positions; the garment box enters as a log prior; computed with the
  attention kernel of :func:`correlate` on CUDA, in memory-bounded groups on CPU), and the local
  flow of a person pixel is the correlation-weighted mean of the garment positions (paper: "search for the
  correlative position coordinates on the garment"; DECIDED: positions, not a learnt value map). The local
  attention ``m_l`` ``N x K x H x W`` is restricted to each pair's person window; ``W_l`` (Eq. 4) is the
  softmax-over-K blend of the K locally warped garments, white (1) where no window covers a pixel.
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
        """``p_feats`` / ``g_feats``: pyramid maps finest first; ``local_att`` N x K x H x W (or None)."""
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


class LocalFlow(nn.Module):
    def __init__(self, size, num_points: int = 32, dim: int = 256, levels: int = 3, local_ch: int = 32,
                 corr_ch: int = 16, init_frac: float = 5.0, patch: str = "deformable", slope: float = 2.0,
                 chunk: int = 32):
        super().__init__()
        if patch not in ("deformable", "fixed"):
            raise ValueError(f"patch must be 'deformable' or 'fixed', not {patch!r}")
        self.h, self.w = int(size[0]), int(size[1])
        self.k, self.levels, self.patch, self.slope, self.chunk = num_points, levels, patch, slope, chunk
        self.init_h, self.init_w = self.h / init_frac, self.w / init_frac
        self.win_h, self.win_w = _odd(self.init_h), _odd(self.init_w)
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
        dy = torch.arange(self.win_h, dtype=torch.float32) - (self.win_h - 1) / 2
        dx = torch.arange(self.win_w, dtype=torch.float32) - (self.win_w - 1) / 2
        gy, gx = torch.meshgrid(dy, dx, indexing="ij")
        self.register_buffer("offsets", torch.stack([gx.reshape(-1), gy.reshape(-1)], -1), persistent=False)

    # ------------------------------------------------------------------ pieces
    def patch_sizes(self, pg: torch.Tensor) -> Optional[torch.Tensor]:
        """``N x K x 4`` (g_w, g_h, p_w, p_h) in pixels (Eqs. 2-3), or None for fixed patches."""
        if self.c1 is None:
            return None
        logits = self.c1(pg).view(pg.shape[0], self.k, 4)
        scale = logits.new_tensor([self.init_w, self.init_h, self.init_w, self.init_h])
        return torch.sigmoid(logits) * scale

    def box(self, sizes: Optional[torch.Tensor], which: int, n: int) -> torch.Tensor:
        """Patch box weights over the window ``N x K x P`` (soft for deformable, hard for fixed)."""
        d = self.offsets.abs()                       # P x 2
        if sizes is None:
            hard = (d[:, 0] <= self.init_w / 2) & (d[:, 1] <= self.init_h / 2)
            return hard.to(self.offsets.dtype).view(1, 1, -1).expand(n, self.k, -1)
        wh = sizes[..., 2 * which:2 * which + 2]     # N x K x 2 (w, h)
        m = torch.sigmoid(self.slope * (wh[..., None, :] / 2 - d))  # N x K x P x 2
        return m[..., 0] * m[..., 1]

    def _crop(self, feat: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Features at ``centres + offsets`` (pixels): ``N x K x P x C``."""
        n, c, h, w = feat.shape
        pos = centres[:, :, None, :] + self.offsets          # N x K x P x 2
        grid = pixel_to_norm(pos, h, w).view(n, self.k * self.win_h, self.win_w, 2)
        out = F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out.view(n, c, self.k, -1).permute(0, 2, 3, 1)

    def features(self, p_feats, g_feats):
        size = (self.h, self.w)
        half = p_feats[0].shape[-2:]
        pg, fp, fg = 0, 0, 0
        for i in range(self.levels):
            p, g = p_feats[i], g_feats[i]
            pg = pg + F.interpolate(self.c0[i](torch.cat([p, g], 1)), size=half, mode="bilinear", align_corners=False)
            fp = fp + F.interpolate(self.red_p[i](p), size=size, mode="bilinear", align_corners=False)
            fg = fg + F.interpolate(self.red_g[i](g), size=size, mode="bilinear", align_corners=False)
        return pg, self.mix_p(fp), self.mix_g(fg)

    # ------------------------------------------------------------------ forward
    def forward(self, p_feats, g_feats, xy_g: torch.Tensor, xy_p: torch.Tensor, valid: torch.Tensor,
                garment: torch.Tensor) -> dict:
        """``xy_g`` / ``xy_p``: N x K x 2 landmark pixels at the image size; ``valid``: N x K bool (pair used);
        ``garment`` N x 3 x H x W. Returns ``warped`` (W_l), ``covered`` (N x 1 x H x W), ``att`` (masked local
        attention probabilities N x K x H x W), ``flow`` (N x 2K x H x W, -2 outside windows), ``sizes``."""
        n = garment.shape[0]
        h, w, k = self.h, self.w, self.k
        pg, fp, fg = self.features(p_feats, g_feats)
        sizes = self.patch_sizes(pg)
        mg, mp = self.box(sizes, 0, n), self.box(sizes, 1, n)          # N x K x P
        cp = torch.round(xy_p.detach())                                 # person windows on the pixel grid
        pos_p = cp[:, :, None, :] + self.offsets                        # N x K x P x 2
        inb = ((pos_p[..., 0] >= 0) & (pos_p[..., 0] <= w - 1) & (pos_p[..., 1] >= 0) & (pos_p[..., 1] <= h - 1))
        use = inb & valid[:, :, None]
        qp = self._crop(fp, cp) * mp[..., None]
        kg = self._crop(fg, xy_g) * mg[..., None]
        pos_g = xy_g[:, :, None, :] + self.offsets                      # N x K x P x 2 (pixels)
        tau = self.log_tau.exp()
        coords = []
        prior = torch.log(mg + 1e-6)[:, :, None, :]                      # N x K x 1 x P (garment box)
        for s in range(0, k, self.chunk):  # all patches of all samples at once (``chunk`` landmarks per call)
            e = min(k, s + self.chunk)
            coords.append(correlate(qp[:, s:e] * tau, kg[:, s:e], pos_g[:, s:e], prior[:, s:e]))
        coords = torch.cat(coords, 1)                                   # N x K x P x 2 garment pixels
        grid = pixel_to_norm(coords, h, w).view(n, k * self.win_h, self.win_w, 2)
        vals = F.grid_sample(garment, grid, mode="bilinear", padding_mode="border", align_corners=False)
        vals = vals.view(n, 3, k, -1)                                   # N x 3 x K x P
        hw = h * w  # flat pixel index; pixels outside the image go to a dummy slot hw (dropped)
        idx = torch.where(inb, pos_p[..., 1] * w + pos_p[..., 0], torch.full_like(pos_p[..., 0], hw)).long()
        member = torch.zeros(n, k, hw + 1, device=garment.device, dtype=garment.dtype)
        member = member.scatter(2, idx, (mp * use).to(member.dtype))[..., :hw]  # a window covers distinct pixels
        logit_l = self.att(F.interpolate(pg, size=(h, w), mode="bilinear", align_corners=False)).view(n, k, -1)
        wts = torch.softmax(logit_l + torch.log(member + 1e-6), 1) * (member > 1e-3)
        covered = member.amax(1, keepdim=True).clamp(max=1).view(n, 1, h, w)
        contrib = torch.gather(F.pad(wts, (0, 1)), 2, idx) * use         # N x K x P
        blend = torch.zeros(n, 3, hw + 1, device=garment.device, dtype=garment.dtype)
        blend = blend.scatter_add(2, idx.view(n, 1, -1).expand(-1, 3, -1), (vals * contrib[:, None]).reshape(n, 3, -1))
        warped = blend[..., :hw].view(n, 3, h, w) * covered + (1 - covered)
        off = (pixel_to_norm(coords, h, w) - pixel_to_norm(pos_p, h, w)).permute(0, 1, 3, 2)  # N x K x 2 x P
        off = torch.where((use & (mp > 1e-3))[:, :, None, :], off, torch.full_like(off, -2.0))
        flow = torch.full((n, k, 2, hw + 1), -2.0, device=garment.device, dtype=garment.dtype)
        flow = flow.scatter(3, idx[:, :, None, :].expand(-1, -1, 2, -1), off)[..., :hw]
        return {"warped": warped, "covered": covered, "att": wts.view(n, k, h, w), "flow": flow.reshape(n, 2 * k, h, w),
                "sizes": sizes, "coords": coords, "weights": contrib, "centres": cp}


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
