"""Tree-Block / "Down to the Last Detail: Virtual Try-on with Detail Carving" (seed 001; docs/models.md section 3).

Task ``<I_ps, p_t, C> -> I_pt`` on MPV triplets (source person, target pose, in-shop cloth). Networks (all
``build()``, all checkpointed; shapes at ``H x W``, images in [-1, 1]):

* ``gmm`` -- clothing spatial alignment: CP-VTON's GMM (:mod:`bench.models.blocks.gmm`) on the 22-channel
  representation ``cat(blurred SOURCE body shape, SOURCE head RGB, TARGET pose discs {0,1})`` and the cloth;
  loss L1 to the target person's worn cloth (white outside). Warped cloth ``C~w`` ``N x 3 x H x W``.
* ``parsing`` / ``d_parsing`` -- parsing transformation G_P (:mod:`~bench.models.blocks.treeblock_parsing`):
  36 channels -> softmax ``S~_pt`` ``N x 20 x H x W``; class-weighted CE + LSGAN with a PatchGAN on
  ``cat(input, parsing)`` (56 channels).
* ``app`` / ``d_app`` -- detailed appearance generation G_A (:class:`~bench.models.blocks.treeblock_nets.
  TreeResnetGenerator`, Tree-Blocks): ``cat(I_ps^{w/o c} (3), C~w (3), S~_pt (20))`` -> 4 channels,
  ``I~_r = tanh(out[:3])``, ``M = sigmoid(out[3])``, ``I~_pt = C~w * M + I~_r * (1 - M)`` (Eq. 4). Losses
  (Eq. 8): LSGAN with D_A on ``cat(I_ps, image)``, smooth-L1 pixel (Eq. 6), VGG19 feature + style (Gram),
  attention ``|M - M_c|_1`` with ``M_c`` = cloth labels of ``argmax S~_pt`` (Eq. 5; its TV term weight 0 by
  default, as the official ``--mask_tvloss`` flag).
* ``face`` / ``d_face`` -- face refinement G_F (:mod:`~bench.models.blocks.treeblock_face`): Tree-Block
  generator (tanh) on ``cat(source face, generated face)``; losses (Eq. 10): VGG feature loss on the first
  slice (``face_feat``), L1 on the face x10, LSGAN with D_F on ``cat(source face, face)`` x3, and smooth-L1 of
  the refined image to ``I_pt`` (``refine``, Eq. 9). Stage ``face`` takes the face region from the ground-truth
  target parsing (official code); inference and the joint stage from ``argmax S~_pt``.

Stages (Algorithm 1): ``gmm`` -> ``parsing`` -> ``appearance`` (G_P, GMM frozen) -> ``face`` (G_P, GMM, G_A
frozen) -> ``joint`` (G_P + G_A + G_F + D_A updated; the appearance losses of Eq. 8 on the final refined image
plus the parsing CE, as the official ``--joint_all --joint_parse_loss``). GAN stages train G and D with ONE
optimiser (the harness gives one per stage): the generator's adversarial term is evaluated through detached
discriminator parameters and the discriminator term on a detached fake, so each network only receives its own
gradient (a simultaneous update instead of the official alternating one -- ASSUMED equivalent).

Variants (Table 2 names; ``full`` is the printed ``Ours`` row, named as the reported CSV and Table 1 cell):
``w/o Tree-Block`` (= SRB-VTON: ResNet blocks in G_A and G_F), ``w/o attention loss`` (attention and TV
weights 0), ``w/o face refinement`` (no G_F / D_F, output ``I~_pt``), ``w/o end2end training`` (no joint
stage). Config and schedules: ``bench/models/treeblock.json``.
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
from bench.models.blocks.treeblock_face import part, refine
from bench.models.blocks.treeblock_losses import d_loss, g_loss, tv, weighted_ce
from bench.models.blocks.treeblock_nets import PatchDiscriminator, ResnetDiscriminator, TreeResnetGenerator
from bench.models.blocks.treeblock_parsing import ParsingNet, one_hot, parsing_input
from vtondata.errors import VtonDataError
from vtondata.labels import label_space


@register_model
class TreeBlockVTON(Model):
    name = "treeblock"
    spec_file = "treeblock.json"
    outputs = ("tryon", "tryon_coarse", "warped_garment")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        space = label_space(self.config["parse_space"])
        lab = self.config["labels"]
        self.num_classes = space.num_classes
        self.cloth_ids = [space.id_of(n) for n in lab["cloth"]]
        self.head_ids = [space.id_of(n) for n in lab["head"]]
        self.face_ids = [space.id_of(n) for n in lab["face"]]
        self.radius = float(self.config["pose_radius"]) * self.size[0] / 256.0
        self.class_weights = torch.tensor([float(w) for w in self.config["parsing"]["class_weights"]])
        if self.class_weights.numel() != self.num_classes:
            raise VtonDataError(f"parsing.class_weights has {self.class_weights.numel()} values, the label space "
                                f"{self.config['parse_space']} has {self.num_classes} classes",
                                fix="give one cross-entropy weight per parsing label in bench/models/treeblock.json")
        self.vgg = None

    @property
    def with_face(self) -> bool:
        return bool(self.config["face"]["enabled"])

    # ------------------------------------------------------------------ declarations
    def inputs(self, purpose: str, setting: str) -> Inputs:
        fields = ("person", "parse", "pose", "garment", "garment_mask", "target_person", "target_parse",
                  "target_pose")
        return Inputs(fields=fields, label_space=self.config["parse_space"])

    def build(self) -> dict[str, nn.Module]:
        h, w = self.size
        g, p, a, f = (self.config[k] for k in ("gmm", "parsing", "app", "face"))
        k = self.num_classes
        p_in = k - len(self.cloth_ids) + 18 + 1
        nets: dict[str, nn.Module] = {
            "gmm": GMM(h, w, in_person=22, in_garment=3, ngf=int(g["ngf"]), grid_size=int(g["grid_size"])),
            "parsing": ParsingNet(p_in, k, ngf=int(p["ngf"]), num_downs=int(p["num_downs"]),
                                  dropout=bool(p["dropout"])),
            "d_parsing": PatchDiscriminator(p_in + k, ndf=int(p["d_ndf"]), n_layers=int(p["d_layers"])),
            "app": TreeResnetGenerator(6 + k, 4, ngf=int(a["ngf"]), n_blocks=int(a["n_blocks"]),
                                       n_down=int(a["n_down"]), block=a["block"], tanh=False,
                                       fusion_act=bool(a["fusion_act"])),
            "d_app": ResnetDiscriminator(6, ngf=int(a["d_ngf"]), n_blocks=int(a["d_blocks"])),
        }
        if self.with_face:
            nets["face"] = TreeResnetGenerator(6, 3, ngf=int(f["ngf"]), n_blocks=int(f["n_blocks"]),
                                               n_down=int(f["n_down"]), block=f["block"], tanh=True,
                                               fusion_act=bool(f["fusion_act"]))
            nets["d_face"] = ResnetDiscriminator(6, ngf=int(f["d_ngf"]), n_blocks=int(f["d_blocks"]))
        return nets

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        feat_terms = ("feat", "style", "face_feat")
        if any(s.losses.get(t, 0) for s in self.stages() for t in feat_terms):
            from bench.models.blocks.treeblock_losses import PerceptualStyleLoss

            v = self.config["vgg"]
            self.vgg = PerceptualStyleLoss(weights=v["weights"], layer_weights=v["layer_weights"],
                                           layers=int(v["layers"])).to(device)

    def provenance(self) -> dict:
        return {} if self.vgg is None else {"vgg19_perceptual_style_loss": dict(self.vgg.provenance)}

    # ------------------------------------------------------------------ inputs of the networks
    def pose_maps(self, pose: torch.Tensor) -> torch.Tensor:
        """Target pose as 18 binary discs ``N x 18 x H x W`` in {0, 1} (official ``heatmap_embedding``)."""
        h, w = self.size
        return (P.pose_maps(P.to_coco18(pose), h, w, self.radius, "disc") + 1) / 2

    def gmm_repr(self, batch: Mapping[str, Any], pose_maps: torch.Tensor) -> torch.Tensor:
        """``N x 22 x H x W``: source body shape, source head RGB (-1 outside), target pose discs."""
        shape = P.body_shape(batch["parse"], int(self.config["gmm"]["shape_factor"]))
        head = P.keep_region(batch["person"], P.region_mask(batch["parse"], self.head_ids))
        return torch.cat([shape, head, pose_maps.to(shape.dtype)], 1)

    def worn_garment(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The target person inside the cloth labels, white elsewhere (the GMM's ground truth)."""
        mask = P.region_mask(batch["target_parse"], self.cloth_ids)
        return P.keep_region(batch["target_person"], mask, fill=1.0)

    def _warp(self, gmm: nn.Module, batch: Mapping[str, Any], pose_maps: torch.Tensor):
        grid, _ = gmm(self.gmm_repr(batch, pose_maps), batch["garment"])
        return warp(batch["garment"], grid, "border"), warp(batch["garment_mask"], grid, "zeros")

    def _parsing_in(self, batch: Mapping[str, Any], pose_maps: torch.Tensor) -> torch.Tensor:
        return parsing_input(batch["parse"], pose_maps, batch["garment_mask"], self.num_classes, self.cloth_ids)

    def _appearance(self, app: nn.Module, batch: Mapping[str, Any], warped: torch.Tensor, parsing: torch.Tensor):
        """-> ``(I~_pt, I~_r, M)``; ``parsing`` = softmax ``S~_pt``."""
        no_cloth = batch["person"] * (1 - P.region_mask(batch["parse"], self.cloth_ids))
        out = app(torch.cat([no_cloth, warped.to(no_cloth.dtype), parsing.to(no_cloth.dtype)], 1))
        rendered = torch.tanh(out[:, :3])
        m = torch.sigmoid(out[:, 3:4])
        return warped * m + rendered * (1 - m), rendered, m

    def forward(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any],
                train_parsing: bool = True) -> dict[str, torch.Tensor]:
        """The whole pipeline; gradients reach G_P only with ``train_parsing`` (the joint stage), never the GMM."""
        pm = self.pose_maps(batch["target_pose"])
        with torch.no_grad():  # the GMM is trained in its own stage only (warped cloths are fixed afterwards)
            warped, wmask = self._warp(nets["gmm"], batch, pm)
        p_in = self._parsing_in(batch, pm)
        with torch.set_grad_enabled(train_parsing and torch.is_grad_enabled()):
            parsing = nets["parsing"](p_in)
        coarse, rendered, m = self._appearance(nets["app"], batch, warped, parsing)
        labels = parsing.argmax(1)
        out = {"warped": warped, "warped_mask": wmask, "parsing_in": p_in, "parsing": parsing, "labels": labels,
               "coarse": coarse, "rendered": rendered, "m": m, "tryon": coarse}
        if self.with_face and "face" in nets:
            r = refine(nets["face"], batch["person"], batch["parse"], coarse, labels, self.face_ids)
            out["tryon"] = r["refined"]
        return out

    # ------------------------------------------------------------------ losses
    def _app_terms(self, stage: Stage, nets, batch, fwd, image: torch.Tensor) -> dict[str, torch.Tensor]:
        w = stage.losses
        real = batch["target_person"]
        terms = {"pixel": F.smooth_l1_loss(image, real)}
        if w.get("gan", 0) or w.get("d", 0):
            fake_pair = torch.cat([batch["person"], image], 1)
            terms["gan"] = g_loss(nets["d_app"], fake_pair)
            terms["d"] = d_loss(nets["d_app"], torch.cat([batch["person"], real], 1), fake_pair)
        if w.get("feat", 0) or w.get("style", 0):
            terms["feat"], terms["style"] = self.vgg(image, real)
        if w.get("atten", 0):
            target_mask = P.region_mask(fwd["labels"], self.cloth_ids)
            terms["atten"] = F.l1_loss(fwd["m"], target_mask)
        if w.get("tv", 0):
            terms["tv"] = tv(fwd["m"])
        return terms

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        w = stage.losses
        if stage.name == "gmm":
            warped, _ = self._warp(nets["gmm"], batch, self.pose_maps(batch["target_pose"]))
            return {"warp_l1": F.l1_loss(warped, self.worn_garment(batch))}
        if stage.name == "parsing":
            pm = self.pose_maps(batch["target_pose"])
            p_in = self._parsing_in(batch, pm)
            fake = nets["parsing"](p_in)
            real = one_hot(batch["target_parse"], self.num_classes)
            return {"ce": weighted_ce(fake, batch["target_parse"], self.class_weights.to(fake.device)),
                    "gan": g_loss(nets["d_parsing"], torch.cat([p_in, fake], 1)),
                    "d": d_loss(nets["d_parsing"], torch.cat([p_in, real], 1), torch.cat([p_in, fake], 1))}
        if stage.name == "appearance":
            fwd = self.forward({k: v for k, v in nets.items() if k != "face"}, batch, train_parsing=False)
            return self._app_terms(stage, nets, batch, fwd, fwd["coarse"])
        if stage.name == "face":
            with torch.no_grad():
                fwd = self.forward({k: v for k, v in nets.items() if k != "face"}, batch)
            r = refine(nets["face"], batch["person"], batch["parse"], fwd["coarse"], batch["target_parse"],
                       self.face_ids)
            real_face, _ = part(batch["target_person"], batch["target_parse"], self.face_ids)
            terms = {"face_l1": F.l1_loss(r["face"], real_face),
                     "refine": F.smooth_l1_loss(r["refined"], batch["target_person"]),
                     "face_gan": g_loss(nets["d_face"], torch.cat([r["source_face"], r["face"]], 1)),
                     "d": d_loss(nets["d_face"], torch.cat([r["source_face"], real_face], 1),
                                 torch.cat([r["source_face"], r["face"]], 1))}
            if w.get("face_feat", 0):
                terms["face_feat"] = _first_slice_l1(self.vgg, r["face"], real_face)
            return terms
        if stage.name == "joint":
            fwd = self.forward(nets, batch)
            terms = self._app_terms(stage, nets, batch, fwd, fwd["tryon"])
            terms["parse_ce"] = weighted_ce(fwd["parsing"], batch["target_parse"],
                                            self.class_weights.to(fwd["parsing"].device))
            return terms
        raise ValueError(f"treeblock has no stage {stage.name!r}")

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        fwd = self.forward(nets, batch)
        return {"tryon": fwd["tryon"], "tryon_coarse": fwd["coarse"], "warped_garment": fwd["warped"]}

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"tryon": batch["target_person"], "tryon_coarse": batch["target_person"],
                "warped_garment": self.worn_garment(batch)}

    def metric_context(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"parse": batch["target_parse"], "pose": P.to_coco18(batch["target_pose"])}


def _first_slice_l1(vgg, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """VGG feature L1 at the first slice only (relu1_1; the paper: 'conv1_2 leads to the best result')."""
    s = vgg.slices[0]
    return F.l1_loss(s(pred), s(target.detach()).detach())
