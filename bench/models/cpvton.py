"""CP-VTON (Wang et al., ECCV 2018): Geometric Matching Module + Try-On Module, as in sergeywong/cp-vton.

Stage ``gmm``: the GMM (:mod:`bench.models.blocks.gmm`) warps the in-shop garment onto the person
representation; loss L1(warped garment, worn garment), the worn garment being the person image inside the
cloth labels with white elsewhere. Stage ``tom``: with the GMM frozen, a U-Net on ``cat(person repr, warped
garment)`` (25 channels) renders a person (tanh) and a composition mask (sigmoid);
``tryon = warped * m' + rendered * (1 - m')`` with ``m' = m * warped_mask``; losses L1(tryon, person),
VGG19 perceptual(tryon, person), L1(m, warped_mask), all weight 1.

Person representation (22 channels at ``H x W``): blurred body shape (1), head RGB (3, -1 outside),
18 pose discs (:mod:`bench.models.blocks.person`), computed on the fly from the loader's parse and pose.
Variant ``multi-pose`` (MPV baselines) draws the pose maps from the target pose and supervises with the
target person. Shapes and weights: ``bench/models/cpvton.json``.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.harness.model import Inputs, Model, Stage
from bench.harness.registry import register_model
from bench.models.blocks import person as P
from bench.models.blocks.gmm import GMM, warp
from bench.models.blocks.unet import UNet
from bench.models.blocks.vgg import perceptual_loss_for, perceptual_provenance
from vtondata.labels import label_space


@register_model
class CPVTON(Model):
    name = "cpvton"
    spec_file = "cpvton.json"
    outputs = ("tryon", "warped_garment")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        rep = self.config["person_repr"]
        space = label_space(self.config["parse_space"])
        self.head_ids = [space.id_of(n) for n in rep["head_labels"]]
        self.cloth_ids = [space.id_of(n) for n in rep["cloth_labels"]]
        self.radius = float(rep["pose_radius"]) * self.size[0] / 256.0
        self.vgg = None

    # ------------------------------------------------------------------ declarations
    def _multi(self, setting: str) -> bool:
        rep = self.config["person_repr"]
        uses_target = "target" in (rep["pose_from"], rep["shape_from"], rep["head_from"], self.config["target_from"])
        return uses_target

    def inputs(self, purpose: str, setting: str) -> Inputs:
        fields = ["person", "parse", "pose", "garment", "garment_mask"]
        if self._multi(setting):
            fields += ["target_person", "target_parse", "target_pose"]
        return Inputs(fields=tuple(fields), label_space=self.config["parse_space"])

    def build(self) -> dict[str, nn.Module]:
        h, w = self.size
        g, t = self.config["gmm"], self.config["tom"]
        return {
            "gmm": GMM(h, w, in_person=22, in_garment=3, ngf=int(g["ngf"]), grid_size=int(g["grid_size"])),
            "tom": UNet(25, 4, num_downs=int(t["num_downs"]), ngf=int(t["ngf"]), dropout=bool(t["dropout"])),
        }

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        self.vgg = perceptual_loss_for(self, device, ("vgg",))

    def provenance(self) -> dict:
        return perceptual_provenance(self.vgg)

    # ------------------------------------------------------------------ representation
    def _side(self, batch: Mapping[str, Any], which: str, field: str) -> torch.Tensor:
        return batch[f"target_{field}"] if which == "target" else batch[field]

    def representation(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The 22-channel cloth-agnostic person representation ``N x 22 x H x W`` in [-1, 1]."""
        rep = self.config["person_repr"]
        h, w = self.size
        shape = P.body_shape(self._side(batch, rep["shape_from"], "parse"), int(rep["shape_factor"]))
        head_parse = self._side(batch, rep["head_from"], "parse")
        head = P.keep_region(self._side(batch, rep["head_from"], "person"), P.region_mask(head_parse, self.head_ids))
        pose = P.to_coco18(self._side(batch, rep["pose_from"], "pose"))
        maps = P.pose_maps(pose, h, w, self.radius, rep["pose_shape"])
        return torch.cat([shape, head, maps.to(shape.dtype)], 1)

    def target(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The person the try-on must reproduce ``N x 3 x H x W``."""
        return self._side(batch, self.config["target_from"], "person")

    def worn_garment(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The target person inside the cloth labels, white (1) elsewhere: the GMM's ground truth."""
        which = self.config["target_from"]
        mask = P.region_mask(self._side(batch, which, "parse"), self.cloth_ids)
        return P.keep_region(self._side(batch, which, "person"), mask, fill=1.0)

    # ------------------------------------------------------------------ computation
    def _warp(self, gmm: nn.Module, agnostic: torch.Tensor, batch: Mapping[str, Any]):
        grid, _ = gmm(agnostic, batch["garment"])
        garment = warp(batch["garment"], grid, "border")
        mask = warp(batch["garment_mask"], grid, "zeros")
        return garment, mask

    def _tom(self, tom: nn.Module, agnostic: torch.Tensor, garment: torch.Tensor, mask: torch.Tensor):
        out = tom(torch.cat([agnostic, garment.to(agnostic.dtype)], 1))
        rendered = torch.tanh(out[:, :3])
        composition = torch.sigmoid(out[:, 3:4])
        selected = composition * mask
        tryon = garment * selected + rendered * (1 - selected)
        return tryon, rendered, composition

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        agnostic = self.representation(batch)
        if stage.name == "gmm":
            warped, _ = self._warp(nets["gmm"], agnostic, batch)
            return {"warp_l1": F.l1_loss(warped, self.worn_garment(batch))}
        if stage.name == "tom":
            with torch.no_grad():
                warped, mask = self._warp(nets["gmm"], agnostic, batch)
            tryon, _, composition = self._tom(nets["tom"], agnostic, warped, mask)
            person = self.target(batch)
            terms = {"l1": F.l1_loss(tryon, person), "mask": F.l1_loss(composition, mask)}
            if stage.losses.get("vgg", 0):
                terms["vgg"] = self.vgg(tryon, person)
            return terms
        raise ValueError(f"cpvton has no stage {stage.name!r}")

    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        agnostic = self.representation(batch)
        warped, mask = self._warp(nets["gmm"], agnostic, batch)
        out = {"warped_garment": warped}
        if "tom" in nets:
            out["tryon"] = self._tom(nets["tom"], agnostic, warped, mask)[0]
        return out

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"tryon": self.target(batch), "warped_garment": self.worn_garment(batch)}

    def metric_context(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        which = self.config["target_from"]
        return {"parse": self._side(batch, which, "parse"), "pose": P.to_coco18(self._side(batch, which, "pose"))}
