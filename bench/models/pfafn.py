"""PF-AFN (Ge et al., CVPR 2021, "Parser-Free Virtual Try-on via Distilling Appearance Flows"; geyuying/PF-AFN)
on VITON, as the SAL-VTON Table 2 baseline. Spec: ``docs/models.md`` §1.2; config in ``pfafn.json``.

Nets (all :class:`~bench.models.blocks.afwm_flow.AFWMWarper` warpers and
:class:`~bench.models.blocks.pbafn_gen.ResUNet` generators with :func:`~bench.models.blocks.pbafn_gen.composite`):

* ``pb_warp`` (teacher, parser-based): source ``cat(G, M_G)`` (4) vs condition ``cat(preserved person (3), blurred
  body shape (1), 18 pose maps)`` (22), all from the person's parse and pose (CP-VTON-style agnostic; PF-AFN
  uses parse masks + DensePose: ASSUMED pose maps, the VITON manifest has no DensePose).
* ``pb_gen``: ``cat(preserved person, warped G, warped M_G, pose maps)`` (25) -> rendered person + mask.
* ``pf_warp`` (student, parser-free): source ``cat(G, M_G)`` vs condition = a person image (3).
* ``pf_gen``: ``cat(person image, warped G, warped M_G)`` (7) -> rendered person + mask.

Preserved person = the person outside the garment, arm and torso-skin labels, -1 inside them.

Stages (``config.stages``, in order): ``pb_warp`` (PF-AFN ``train_PBAFN_stage1``), ``pb_tryon`` (``train_PBAFN_e2e``
with the warper frozen, ASSUMED as in ``pbafn``), and for the student ``pf_warp`` (``train_PFAFN_stage1``) and
``pf_tryon`` (``train_PFAFN_e2e``, warper frozen, ASSUMED). Warping losses per level (``(num+1)``-weighted L1,
VGG, mask L1, second-order smoothness, plus TV; :mod:`bench.models.blocks.pfafn_losses`), weights 1, 0.2, 2, 6,
0.01. Try-on losses: L1 and VGG of the composite and of the rendered person against the real person, composition
mask L1 ``mean |1 - m|`` (weights 5, 1, 5, 1, 1); in training ``m`` is limited to the warped mask and the
person's garment mask. PF-AFN's extra skin terms of the student e2e stage are omitted (ASSUMED; simpler).

Teacher-tutor-student (the student stages): for person ``I`` in a training batch, the frozen teacher re-dresses
``I`` in another garment of the batch (``roll(1)``, a derangement for batch size >= 2) -> the tutor ``I'``.
The student warps ``I``'s own garment onto ``I'`` and its generator renders ``I`` from ``cat(I', warped G,
warped M)``; both are supervised with the real ``I``. Distillation (``pf_warp``): the teacher's condition
features and flows on the parser-based inputs of ``I`` supervise the student's (``(L-num)·0.04·MSE`` per level
and ``(num+1)·L2`` on the three finest flows), only for samples where the teacher's warp beats the student's
(PF-AFN's adjustable distillation). The teacher nets are trained in the same run (stages ``pb_*``) and used
on the fly, not through SAL-VTON's cached stage 0 (:mod:`bench.models.salvton_teacher` caches try-on PNGs,
which carry neither the features nor the flows the distillation needs). The student's condition features are
taken with a second pass of its condition encoder (same function, same parameters).

Inference: ``PB-AFN`` needs parse and pose; ``PF-AFN`` reads only the person image and the garment
(``inputs("eval")`` has no parse). Outputs ``tryon`` and ``warped_garment``, ``N x 3 x H x W`` in [-1, 1].
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from bench.harness.model import Inputs, Model, Stage
from bench.harness.registry import register_model
from bench.models.blocks import person as P
from bench.models.blocks.afwm_flow import AFWMWarper
from bench.models.blocks.gcl_corr import resize_flow, warp
from bench.models.blocks.pbafn_gen import ResUNet, composite, tryon_terms
from bench.models.blocks.pfafn_losses import WARP_TERMS, distill_gate, feature_distill, flow_distill, warp_terms
from bench.models.blocks.vgg import perceptual_loss_for, perceptual_provenance
from vtondata.labels import label_space


@register_model
class PFAFN(Model):
    name = "pfafn"
    spec_file = "pfafn.json"
    outputs = ("tryon", "warped_garment")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        space = label_space(self.config["parse_space"])
        self.cloth_ids = [space.id_of(n) for n in self.config["cloth_labels"]]
        self.drop_ids = self.cloth_ids + [space.id_of(n) for n in self.config["drop_labels"]]
        self.radius = float(self.config["pose_radius"]) * self.size[0] / 256.0
        self.vgg = None

    @property
    def student(self) -> bool:
        return bool(self.config["student"])

    # ------------------------------------------------------------------ declarations
    def inputs(self, purpose: str, setting: str) -> Inputs:
        fields = ["person", "garment", "garment_mask"]
        if purpose == "train" or not self.student:
            fields += ["parse", "pose"]
        return Inputs(fields=tuple(fields), label_space=self.config["parse_space"])

    def build(self) -> dict[str, nn.Module]:
        w, g = self.config["warp"], self.config["generator"]

        def warper(cond: int) -> AFWMWarper:
            return AFWMWarper(4, cond, chans=tuple(w["chans"]), fpn=int(w["fpn"]), head=tuple(w["head"]),
                              radius=int(w["radius"]))

        def gen(cin: int) -> ResUNet:
            return ResUNet(cin, 4, num_downs=int(g["num_downs"]), ngf=int(g["ngf"]))

        nets = {"pb_warp": warper(22), "pb_gen": gen(25)}
        if self.student:
            nets.update(pf_warp=warper(3), pf_gen=gen(7))
        return nets

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        self.vgg = perceptual_loss_for(self, device, ("vgg", "render_vgg"))

    def provenance(self) -> dict:
        return perceptual_provenance(self.vgg)

    # ------------------------------------------------------------------ representations
    def pose_maps(self, batch: Mapping[str, Any]) -> torch.Tensor:
        h, w = self.size
        return P.pose_maps(P.to_coco18(batch["pose"]).float(), h, w, self.radius).to(batch["person"].dtype)

    def preserved(self, batch: Mapping[str, Any]) -> torch.Tensor:
        keep = 1 - P.region_mask(batch["parse"], self.drop_ids).to(batch["person"].dtype)
        return P.keep_region(batch["person"], keep)

    def condition(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The teacher's parser-based condition ``N x 22 x H x W``."""
        return torch.cat([self.preserved(batch), P.body_shape(batch["parse"]).to(batch["person"].dtype),
                          self.pose_maps(batch)], 1)

    def worn_garment(self, batch: Mapping[str, Any]):
        """The person inside the cloth labels (white elsewhere) and that mask ``N x 1 x H x W``."""
        mask = P.region_mask(batch["parse"], self.cloth_ids).to(batch["person"].dtype)
        return P.keep_region(batch["person"], mask, fill=1.0), mask

    # ------------------------------------------------------------------ computation
    def warp_full(self, net: nn.Module, cond: torch.Tensor, garment: torch.Tensor, mask: torch.Tensor):
        """``(flows, warped garment, warped mask)`` at the image size from the finest flow."""
        flows = net(torch.cat([garment, mask], 1), cond)
        f = resize_flow(flows[-1], tuple(garment.shape[-2:]))
        return flows, warp(garment, f, fill=1.0), warp(mask, f)

    def teacher_tryon(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any], garment, mask,
                      keep=None):
        """PB-AFN try-on of the batch's persons in ``garment``: ``(tryon, rendered, m, warped, warped mask)``."""
        _, wg, wm = self.warp_full(nets["pb_warp"], self.condition(batch), garment, mask)
        x = torch.cat([self.preserved(batch), wg, wm, self.pose_maps(batch)], 1)
        lim = wm if keep is None else wm * keep
        return (*composite(nets["pb_gen"](x), wg, lim), wg, wm)

    def tutor(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> torch.Tensor:
        """The teacher's try-on of person ``i`` in garment ``i - 1`` of the batch (cyclic; no gradient). A batch of
        one gets its own garment back."""
        with torch.no_grad():
            g, m = batch["garment"].roll(1, 0), batch["garment_mask"].to(batch["garment"].dtype).roll(1, 0)
            return self.teacher_tryon(nets, batch, g, m)[0].detach()

    def student_tryon(self, nets: Mapping[str, nn.Module], person, garment, mask, keep=None):
        _, wg, wm = self.warp_full(nets["pf_warp"], person, garment, mask)
        lim = wm if keep is None else wm * keep
        return (*composite(nets["pf_gen"](torch.cat([person, wg, wm], 1)), wg, lim), wg, wm)

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        w = stage.losses
        g, m = batch["garment"], batch["garment_mask"].to(batch["garment"].dtype)
        target, tmask = self.worn_garment(batch)
        vgg = self.vgg if w.get("vgg", 0) else None
        if stage.name == "pb_warp":
            flows = nets["pb_warp"](torch.cat([g, m], 1), self.condition(batch))
            terms = warp_terms(flows, g, m, target, tmask, vgg)
            return {k: terms[k] for k in WARP_TERMS if k in terms}
        if stage.name == "pb_tryon":
            tryon, rendered, comp, _, _ = self.teacher_tryon(nets, batch, g, m, keep=tmask)  # pb_warp frozen
            return tryon_terms(w, tryon, rendered, comp, batch["person"], self.vgg)
        if stage.name == "pf_warp":
            tutor = self.tutor(nets, batch)
            flows = nets["pf_warp"](torch.cat([g, m], 1), tutor)
            terms = {k: v for k, v in warp_terms(flows, g, m, target, tmask, vgg).items() if k in WARP_TERMS}
            if w.get("distill_feat", 0) or w.get("distill_flow", 0):
                with torch.no_grad():
                    cond = self.condition(batch)
                    t_flows, t_wg, _ = self.warp_full(nets["pb_warp"], cond, g, m)
                    t_feats = nets["pb_warp"].enc_tgt(cond)
                s_wg = warp(g, resize_flow(flows[-1], tuple(g.shape[-2:])), fill=1.0)
                gate = distill_gate(t_wg, s_wg, target)
                if w.get("distill_feat", 0):
                    terms["distill_feat"] = feature_distill(t_feats, nets["pf_warp"].enc_tgt(tutor), gate)
                if w.get("distill_flow", 0):
                    terms["distill_flow"] = flow_distill(t_flows, flows, gate)
            return terms
        if stage.name == "pf_tryon":
            tutor = self.tutor(nets, batch)
            tryon, rendered, comp, _, _ = self.student_tryon(nets, tutor, g, m, keep=tmask)  # pf_warp frozen
            return tryon_terms(w, tryon, rendered, comp, batch["person"], self.vgg)
        raise ValueError(f"pfafn has no stage {stage.name!r}")

    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        g, m = batch["garment"], batch["garment_mask"].to(batch["garment"].dtype)
        if self.student:
            tryon, _, _, wg, _ = self.student_tryon(nets, batch["person"], g, m)
        else:
            tryon, _, _, wg, _ = self.teacher_tryon(nets, batch, g, m)
        return {"tryon": tryon, "warped_garment": wg}

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        out = {"tryon": batch["person"]}
        if "parse" in batch:
            out["warped_garment"] = self.worn_garment(batch)[0]
        return out
