"""AFWM (PF-AFN's appearance-flow warping module, Ge et al. CVPR 2021; geyuying/PF-AFN ``models/afwm.py``) as the
3D-GCL Table 1 warping baseline ("warping module only"), in 3D-GCL's pose-transfer setting.

Same data and representations as :mod:`bench.models.gcl3d` (garment ``G`` segmented from the source person on
white; source branch ``cat(body(I_s), G)``, target branch ``body(I_t)``; the paper says "we leverage the FlowNet
backbone for all methods"), warper :class:`~bench.models.blocks.afwm_flow.AFWMWarper` (two FPN encoders, local
7x7 correlation + refinement residual per level, coarse to fine; the finest flow is at H/2 and is upsampled to
the image). Losses per level ``num = 0..L-1`` (coarse to fine, PF-AFN ``train_PBAFN_stage1.py``):
``(num+1)·[L1 + 0.2·VGG + 2·L1(warped mask, target garment mask) + 6·second-order smoothness]`` plus
``0.01·TV``; the stage weights hold 1, 0.2, 2, 6, 0.01 and the ``(num+1)`` factors are applied here.
Outputs ``warped_garment`` and ``warped_parse`` (scored as in 3D-GCL Table 1: LPIPS and mIoU).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.harness.model import Inputs, Stage
from bench.harness.registry import register_model
from bench.models.blocks import gcl_corr as C
from bench.models.blocks.afwm_flow import AFWMWarper, second_order_smoothness, tv
from bench.models.gcl3d import GCL3D, labels_to_image


@register_model
class AFWM(GCL3D):
    name = "afwm"
    spec_file = "afwm.json"
    outputs = ("warped_garment", "warped_parse")

    def uses_3d(self) -> bool:
        return False

    def inputs(self, purpose: str, setting: str) -> Inputs:
        fields = ["person", "parse", "target_person", "target_parse"]
        fields += ["densepose", "target_densepose"] if self.config["body_repr"] == "densepose" else ["pose", "target_pose"]
        return Inputs(fields=tuple(fields), caches=("densepose",) if "densepose" in fields else (),
                      label_space=self.config["parse_space"])

    def build(self) -> dict[str, nn.Module]:
        a = self.config["afwm"]
        b = self.body_channels
        return {"afwm": AFWMWarper(b + 3, b, chans=tuple(a["chans"]), fpn=int(a["fpn"]), head=tuple(a["head"]),
                                   radius=int(a["radius"]))}

    def prepare(self, env) -> None:
        self._flow_cache = None

    def provenance(self) -> dict:
        return {"vgg19_perceptual_loss": dict(self.vgg.provenance)} if self.vgg is not None else {}

    def correspond(self, net: nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
        g, m = self.garment(batch)
        flows = net(torch.cat([self.body(batch, ""), g], 1), self.body(batch, "target_"))
        return {"flows": flows, "garment": g, "garment_mask": m}

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        if stage.name != "warping":
            raise ValueError(f"afwm has no stage {stage.name!r}")
        out = self.correspond(nets["afwm"], batch)
        target, tmask = self.garment(batch, "target_")
        terms = {k: 0 for k in ("l1", "vgg", "mask", "smooth", "tv")}
        for num, f in enumerate(out["flows"]):
            size, k = f.shape[-2:], num + 1
            g = F.interpolate(out["garment"], size=size, mode="area")
            m = F.interpolate(out["garment_mask"], size=size, mode="area")
            t = F.interpolate(target, size=size, mode="area")
            tm = F.interpolate(tmask, size=size, mode="area")
            warped = C.warp(g, f, fill=1.0)
            terms["l1"] = terms["l1"] + k * F.l1_loss(warped, t)
            if stage.losses.get("vgg", 0):
                terms["vgg"] = terms["vgg"] + k * self.vgg(warped, t)
            terms["mask"] = terms["mask"] + k * F.l1_loss(C.warp(m, f), tm)
            terms["smooth"] = terms["smooth"] + k * second_order_smoothness(f)
            terms["tv"] = terms["tv"] + tv(f)
        return {k: v for k, v in terms.items() if torch.is_tensor(v)}

    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        out = self.correspond(nets["afwm"], batch)
        garment, _, labels = self.full_warp(out, batch)
        return {"warped_garment": garment, "warped_parse": labels_to_image(labels)}
