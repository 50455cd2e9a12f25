"""StyleFlow (He, Song, Xiang, "Style-Based Global Appearance Flow for Virtual Try-On", CVPR 2022;
SenHe/Flow-Style-VTON), the SAL-VTON Table 2 baseline on VITON. Spec: docs/models.md section 1.2; shapes and
weights in ``bench/models/styleflow.json``.

Warper (:class:`~bench.models.blocks.styleflow_warp.StyleFlowWarper`): garment pyramid and condition pyramid,
a global style vector from their coarsest levels modulating the flow convolutions, coarse to fine with a local
refinement residual per level. Generator: PF-AFN's residual U-Net (:class:`~bench.models.blocks.pbafn_gen.ResUNet`,
the reference's ``ResUnetGenerator(7, 4, 5, ngf=64)``) -> rendered person (tanh) + composition mask (sigmoid);
``tryon = warped * m + rendered * (1 - m)``, ``m`` limited to the warped garment mask
(:func:`~bench.models.blocks.pbafn_gen.composite`).

Variants. ``parser-free`` (the Table 2 row): the condition is a person image. Training is the PF-AFN / StyleFlow
distillation setting: the condition is ``P_o``, the person re-dressed in another training garment by a
parser-based teacher (the SAL-VTON stage-0 mechanism, :func:`bench.models.salvton_teacher.synthesise`; cached
per teacher checkpoint), the garment is the person's own, the target the real person; at inference the condition
is the real person. ``parser-based`` (the teacher, StyleFlow's PB model): the condition is ``cat(head mask,
lower-clothes mask, blurred body shape, 18 pose maps)`` (21 ch; the reference's 25-ch DensePose is replaced by
the body shape, ASSUMED: no DensePose in our VITON manifests); generator input ``cat(preserved region RGB,
warped, warped mask, body shape)`` (8 ch, as the reference's 8).

Stage ``warp`` (PF stage 1): per level ``num`` (coarse to fine)
``(num+1)·[L1 + VGG + mask L1 + second-order smoothness]`` (stage weights 1, 0.2, 2, 6; shared with PF-AFN,
:func:`bench.models.blocks.pfafn_losses.warp_terms`, at each level's size -- the reference compares at twice the
level size, ASSUMED equivalent) + 0.01·TV of the flow residuals. ASSUMED: the teacher-feature / teacher-flow
distillation terms of ``train_PFAFN_stage1_fs.py`` are dropped (they need a teacher with the same warper run on
the fly; ours is any registered model, read from the P_o cache). Stage ``gen`` (e2e): the warper fine-tuned at
0.2x lr with its loss x0.25, generator L1 x5 + VGG x1 of the try-on and of the rendered image, mask term
``mean|1 - m|`` (``m`` also limited to the worn-garment mask in training, as the reference); the DensePose skin
terms are dropped, ASSUMED. The garment and the worn garment (person x cloth labels) lie on white.
Outputs ``tryon`` and ``warped_garment``, ``N x 3 x H x W`` in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import torch
import torch.nn as nn

from bench.harness.model import Inputs, Model, PrepareEnv, Stage
from bench.harness.registry import register_model
from bench.models.blocks import person as P
from bench.models.blocks.afwm_flow import tv
from bench.models.blocks.gcl_corr import resize_flow, warp
from bench.models.blocks.pbafn_gen import ResUNet, composite, tryon_terms
from bench.models.blocks.pfafn_losses import WARP_TERMS, warp_terms
from bench.models.blocks.styleflow_warp import StyleFlowWarper
from bench.models.blocks.vgg import perceptual_loss_for, perceptual_provenance
from vtondata.labels import label_space


@register_model
class StyleFlow(Model):
    name = "styleflow"
    spec_file = "styleflow.json"
    outputs = ("tryon", "warped_garment")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        space = label_space(self.config["parse_space"])
        self.cloth_ids, self.head_ids, self.lower_ids = ([space.id_of(n) for n in self.config[k]]
                                                         for k in ("cloth_labels", "head_labels", "lower_labels"))
        self.vgg = None
        self._po_dir: Optional[Path] = None
        self._po_mem: dict[str, torch.Tensor] = {}

    @property
    def parser_based(self) -> bool:
        return self.config["condition"] == "parser-based"

    # ------------------------------------------------------------------ declarations
    def inputs(self, purpose: str, setting: str) -> Inputs:
        fields = ["person", "garment", "garment_mask"]
        if purpose == "train" or self.parser_based:
            fields.append("parse")
        if self.parser_based:
            fields.append("pose")
        return Inputs(fields=tuple(fields), label_space=self.config["parse_space"])

    def build(self) -> dict[str, nn.Module]:
        w, g = self.config["warp"], self.config["gen"]
        cond = 21 if self.parser_based else 3
        return {"warp": StyleFlowWarper(3, cond, self.size, tuple(w["chans"]), int(w["fpn"]), int(w["style_dim"]),
                                        int(w["corr"]), int(w["hidden"]), tuple(w["head"])),
                "gen": ResUNet(8 if self.parser_based else 7, 4, num_downs=int(g["num_downs"]), ngf=int(g["ngf"]))}

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        self.vgg = perceptual_loss_for(self, device, ("vgg", "render_vgg"))

    def provenance(self) -> dict:
        return perceptual_provenance(self.vgg)

    # ------------------------------------------------------------------ teacher (parser-free training)
    def prepare(self, env: PrepareEnv) -> None:
        if not self.parser_based and self.config["teacher"].get("model"):
            from bench.models.salvton_teacher import synthesise

            self._po_dir = synthesise(self, env)
            self._po_mem = {}

    def set_teacher_outputs(self, directory: Optional[Path]) -> None:
        self._po_dir = None if directory is None else Path(directory)
        self._po_mem = {}

    def other_person(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """``P_o`` ``N x 3 x H x W`` in [-1, 1] from the teacher cache (the person itself without a teacher);
        the same reader as SAL-VTON's."""
        from bench.models.salvton import SALVTON

        return SALVTON.other_person(self, batch)

    # ------------------------------------------------------------------ representations
    def garment(self, batch: Mapping[str, Any]):
        """The in-shop garment on white and its mask ``N x 1 x H x W``."""
        m = batch["garment_mask"].to(batch["garment"].dtype)
        return P.keep_region(batch["garment"], m, fill=1.0), m

    def worn_garment(self, batch: Mapping[str, Any]):
        """The person inside the cloth labels (white elsewhere) and that mask."""
        m = P.region_mask(batch["parse"], self.cloth_ids).to(batch["person"].dtype)
        return P.keep_region(batch["person"], m, fill=1.0), m

    def condition(self, batch: Mapping[str, Any], train: bool) -> torch.Tensor:
        """Parser-free: ``P_o`` when training, the person at inference (3 ch). Parser-based: 21 ch."""
        if not self.parser_based:
            return self.other_person(batch) if train else batch["person"]
        h, w = self.size
        parse = batch["parse"]
        pose = P.to_coco18(batch["pose"]).float()
        maps = P.pose_maps(pose, h, w, float(self.config["pose_radius"]) * h / 256.0).to(batch["person"].dtype)
        return torch.cat([P.region_mask(parse, self.head_ids), P.region_mask(parse, self.lower_ids),
                          P.body_shape(parse), maps], 1)

    # ------------------------------------------------------------------ computation
    def run_warp(self, net: nn.Module, batch: Mapping[str, Any], train: bool) -> dict:
        g, m = self.garment(batch)
        cond = self.condition(batch, train)
        flows, deltas = net(g, cond)
        full = resize_flow(flows[-1], self.size)
        return {"flows": flows, "deltas": deltas, "garment": g, "garment_mask": m, "cond": cond,
                "warped": warp(g, full, fill=1.0), "warped_mask": warp(m, full)}

    def warp_losses(self, out: Mapping[str, Any], target: torch.Tensor, tmask: torch.Tensor) -> dict:
        """PF-AFN's per-level terms (:func:`~bench.models.blocks.pfafn_losses.warp_terms`, ``(num+1)``-weighted);
        TV on the flow residuals, as StyleFlow."""
        t = warp_terms(out["flows"], out["garment"], out["garment_mask"], target, tmask, self.vgg)
        t["tv"] = sum(tv(d) for d in out["deltas"])
        zero = out["warped"].sum() * 0
        return {k: t[k] if k in t else zero for k in WARP_TERMS}

    def generate(self, net: nn.Module, batch: Mapping[str, Any], w: Mapping[str, Any], limit: torch.Tensor):
        """``(tryon, rendered, m)``; ``m`` limited to ``limit`` (warped mask, x worn mask in training)."""
        if self.parser_based:
            keep = P.region_mask(batch["parse"], self.head_ids + self.lower_ids).to(batch["person"].dtype)
            gin = torch.cat([batch["person"] * keep, w["warped"], w["warped_mask"], w["cond"][:, 2:3]], 1)
        else:
            gin = torch.cat([w["cond"], w["warped"], w["warped_mask"]], 1)
        return composite(net(gin), w["warped"], limit)

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        target, tmask = self.worn_garment(batch)
        w = self.run_warp(nets["warp"], batch, train=True)
        wt = self.warp_losses(w, target, tmask)
        if stage.name == "warp":
            return wt
        if stage.name != "gen":
            raise ValueError(f"styleflow has no stage {stage.name!r}")
        fixed = self.config["warp_loss_weights"]
        tryon, rendered, m = self.generate(nets["gen"], batch, w, w["warped_mask"] * tmask)
        terms = tryon_terms(stage.losses, tryon, rendered, m, batch["person"], self.vgg)
        terms["warp"] = sum(float(fixed[k]) * wt[k] for k in WARP_TERMS)
        return terms

    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        w = self.run_warp(nets["warp"], batch, train=False)
        out = {"warped_garment": w["warped"].clamp(-1, 1)}
        if "gen" in nets:
            out["tryon"] = self.generate(nets["gen"], batch, w, w["warped_mask"])[0].clamp(-1, 1)
        return out

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"tryon": batch["person"]}
