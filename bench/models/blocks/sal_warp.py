"""SAL-VTON stage 2 as one module: stems, two unshared FPN pyramids, global flow, local flow, fusion.

``SalWarp.forward(garment, person, lmap_g, lmap_p, xy_g, xy_p, valid)`` with ``garment`` / ``person``
``N x 3 x H x W`` in [-1, 1], landmark code maps ``N x K x H x W`` (``annotate.landmarks.square_code_maps``),
landmark pixels ``N x K x 2`` and ``valid`` ``N x K`` (pairs the local flow uses) returns

* ``flow`` ``N x 2 x H x W`` (global, normalised offsets), ``flows`` (per level, coarse first), ``W_g``;
* with ``local_flow=True``: ``W_l``, ``covered``, ``local_att`` (N x K x H/2 x W/2), ``local_flow`` (N x 2K x H x W),
  ``sizes`` (N x K x 4 or None for fixed patches), ``att`` (global attention logit), ``W_f`` (Eq. 5);
  ``local_impl`` "crop" (patches resampled to ``patch_res`` rows) or "softbox" (full-resolution soft-box windows),
  see :class:`~bench.models.blocks.sal_flow.LocalFlow`;
* with ``local_flow=False`` (Table 3 "w/o Local Flow and LASNL"): no local module, no attention maps,
  ``W_f = W_g``.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from .sal_flow import GlobalFlow, LocalFlow, fuse, sample
from .sal_fpn import FeaturePyramid, SalStem


class SalWarp(nn.Module):
    def __init__(self, size, num_points: int = 32, chans: Sequence[int] = (64, 128, 256, 256, 256),
                 fpn_dim: int = 256, stem_img: int = 32, stem_out: int = 35, flow_hidden: int = 128,
                 local_flow: bool = True, patch: str = "deformable", local_levels: int = 3, local_ch: int = 32,
                 corr_ch: int = 16, init_frac: float = 5.0, slope: float = 2.0, chunk: int = 32,
                 local_impl: str = "crop", patch_res: int = 12):
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        self.stem_g = SalStem(stem_img, num_points, stem_out)
        self.stem_p = SalStem(stem_img, num_points, stem_out)
        self.pyr_g = FeaturePyramid(stem_out, chans, fpn_dim)
        self.pyr_p = FeaturePyramid(stem_out, chans, fpn_dim)
        self.local = None
        if local_flow:
            self.local = LocalFlow(self.size, num_points, fpn_dim, min(local_levels, len(chans)), local_ch, corr_ch,
                                   init_frac, patch, slope, chunk, local_impl, patch_res)
        self.glob = GlobalFlow(len(chans), fpn_dim, flow_hidden, num_points if local_flow else 0)
        self.use_attention = local_flow

    def forward(self, garment, person, lmap_g, lmap_p, xy_g, xy_p, valid) -> dict:
        g_feats = self.pyr_g(self.stem_g(garment, lmap_g))
        p_feats = self.pyr_p(self.stem_p(person, lmap_p))
        out = {}
        local_att = None
        if self.local is not None:
            loc = self.local(p_feats, g_feats, xy_g, xy_p, valid, garment)
            out.update({"W_l": loc["warped"], "covered": loc["covered"], "local_att": loc["att"],
                        "local_flow": loc["flow"], "sizes": loc["sizes"]})
            local_att = loc["att"]
        glob = self.glob(p_feats, g_feats, self.size, local_att)
        out.update({"flow": glob["flow"], "flows": glob["flows"], "att": glob["att"]})
        out["W_g"] = sample(garment, glob["flow"], "border")
        out["W_f"] = fuse(out["W_l"], out["W_g"], glob["att"]) if self.local is not None else out["W_g"]
        return out
