"""PBAFN (PF-AFN's parser-based network, Ge et al. CVPR 2021; geyuying/PF-AFN ``train_PBAFN_stage1.py`` +
``train_PBAFN_e2e.py``) as the 3D-GCL Table 2 try-on baseline, in 3D-GCL's pose-transfer setting.

Stage ``warping`` is :class:`~bench.models.afwm.AFWM` unchanged (net ``afwm``, same inputs, losses and config:
the spec extends ``afwm.json``). Stage ``tryon`` trains net ``generator``
(:class:`~bench.models.blocks.pbafn_gen.ResUNet`, 5 levels, ngf 64, BatchNorm) with ``afwm`` frozen (eval mode,
no gradient) on ``cat(preserved target regions (3), warped garment (3), warped-garment mask (1), target body
representation (3 IUV or 18 keypoint maps))``: the preserved regions are 3D-GCL's (the target person without
garment, arm and torso-skin labels and background, :meth:`GCL3D.preserved`), standing in for PF-AFN's face +
other clothes + hands; the body representation stands in for PF-AFN's DensePose part mask. Output 4 channels ->
:func:`~bench.models.blocks.pbafn_gen.composite`: rendered person and composition mask ``m`` limited to the
warped-garment mask and, in training only, to the target person's garment mask (as PF-AFN's e2e script does
with the ground-truth clothes mask; at inference only the warped mask limits it). Losses (keys of
``stages.tryon.losses``, PF-AFN's weights 5, 1, 5, 1, 1): ``l1``/``vgg`` of the composite try-on and
``render_l1``/``render_vgg`` of the rendered person against the target person, ``mask`` = mean ``|1 - m|``.
A loss whose weight is 0 is not computed.

ASSUMED: PF-AFN's e2e stage also fine-tunes the warper (lr 0.2x, 0.5 x warping loss); here the warper is frozen
in the try-on stage, like 3D-GCL's stage 2 (a clean two-stage comparison). Outputs ``tryon`` (scored by
unpaired FID in Table 2) and ``warped_garment``. Images ``N x 3 x H x W`` in [-1, 1].
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Mapping

import torch
import torch.nn as nn

from bench.harness.config import merge
from bench.harness.model import Stage
from bench.harness.registry import register_model
from bench.models.afwm import AFWM
from bench.models.blocks.pbafn_gen import ResUNet, composite, tryon_terms


@register_model
class PBAFN(AFWM):
    name = "pbafn"
    spec_file = "pbafn.json"
    outputs = ("tryon", "warped_garment")

    @classmethod
    def spec(cls) -> dict:
        """``pbafn.json`` over AFWM's spec: its ``config`` and ``profiles`` merged onto ``afwm.json``'s."""
        own = json.loads(resources.files("bench.models").joinpath(cls.spec_file).read_text())
        base = AFWM.spec()
        out = dict(own)
        out["config"] = merge(base["config"], own["config"])
        out["profiles"] = {p: merge(base["profiles"].get(p, {}), own["profiles"].get(p, {}))
                           for p in {*base["profiles"], *own["profiles"]}}
        return out

    def build(self) -> dict[str, nn.Module]:
        g = self.config["generator"]
        nets = super().build()
        nets["generator"] = ResUNet(7 + self.body_channels, 4, num_downs=int(g["num_downs"]), ngf=int(g["ngf"]))
        return nets

    def generator_inputs(self, afwm: nn.Module, batch: Mapping[str, Any]):
        """``(x, warped garment, warped mask)`` with ``x`` the generator input; the warper runs without gradient."""
        with torch.no_grad():
            garment, mask, _ = self.full_warp(self.correspond(afwm, batch), batch)
        x = torch.cat([self.preserved(batch), garment, mask, self.body(batch, "target_")], 1)
        return x, garment, mask

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        if stage.name != "tryon":
            return super().losses(stage, nets, batch)
        x, garment, mask = self.generator_inputs(nets["afwm"], batch)
        keep = self.garment(batch, "target_")[1]
        tryon, rendered, m = composite(nets["generator"](x), garment, mask * keep)
        return tryon_terms(stage.losses, tryon, rendered, m, batch["target_person"], self.vgg)

    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        x, garment, mask = self.generator_inputs(nets["afwm"], batch)
        res = {"warped_garment": garment}
        if "generator" in nets:
            res["tryon"] = composite(nets["generator"](x), garment, mask)[0]
        return res
