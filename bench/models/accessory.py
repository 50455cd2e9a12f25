"""Virtual accessory try-on via keypoint hallucination (seed 004; docs/models.md section 6) on STRAT.

One :class:`~bench.models.blocks.acc_nets.KeypointNet` per sub-dataset (``glasses``, ``hat``, ``tie``; the loader's
setting is the sub-dataset), trained by its own stage: the background U-Net (ResNet-18 ``E_b`` + GCA-style
heatmap decoder ``D_hm``) predicts four heatmaps ``N x 4 x H x W`` for the target locations of the foreground's
four vertices; the foreground encoder ``E_f`` on ``cat(I_f, M_f)`` is fused at the bottleneck (none / add /
DAF / DAF(s)); the semantic decoder ``D_sm`` predicts the background parsing (12 face classes, 8 body
classes) and adds its stage features to ``D_hm``. Keypoints by soft-argmax (beta 1000), homography from the
four source vertices (STRAT ``init_vertex``) to them by DLT, perspective warp of foreground and mask,
composite (Eq. 5) -> ``tryon`` in [-1, 1]; predicted vertices saved as the array output ``vertices``.

Losses (stage weights = the paper's): ``hm`` = Adaptive Wing (or MSE) weighted by ``gamma * M_pos + 1`` on
Gaussian targets of radius ``g`` (weight 1), ``sm`` = pixel cross-entropy (weight lambda = 0.1, dropped when the
variant has no semantic decoder). Variants: Table 2 rows 1-9 (``row1`` ... ``row8``, row 3 = ``Ours(w/o sm)``,
row 9 = ``Ours``) and two sanity baselines without training: ``mean-vertices`` (mean training target vertices of
the sub-dataset) and ``gt-homography`` (annotated vertices: IoU 1 and Disp 0 by construction).

Scoring (:meth:`score_inputs`): Disp from the saved vertices vs the annotated ``final_vertex``; IoU of the
foreground mask warped by the predicted vs the annotated vertices (both through the same DLT and
``bench.metrics.disp.warp_mask``); LSSIM of ``tryon`` vs the ground-truth composite inside the annotated warped mask.
Vertices come from the manifest's ``strat_params`` (:mod:`bench.models.blocks.acc_data`), located by
:meth:`prepare` (the run's manifest) or ``$VTONDATA_HOME``.

Sweeps of Supp. section 1 (STRAT-hat), one command each (:mod:`bench.acc_sweep`): ``vtondata bench sweep lambda
0.001,0.01,0.1,1,10`` (``--set stages.hat.losses.sm=L`` per value), ``... sweep g 10,15,20,25,30``
(``heatmap.radius``), ``... sweep gamma 4,6,8,10,12`` (``heatmap.gamma``) -> PNG + JSON of the points.
ImageNet ResNet-18: ``bench.weights`` key ``resnet18`` (``vtondata weights status``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.harness.model import Inputs, Model, Stage
from bench.harness.registry import register_model
from bench.models.blocks import acc_geometry as G
from bench.models.blocks.acc_data import StratVertices
from bench.models.blocks.acc_losses import gaussian_heatmaps, heatmap_loss
from bench.models.blocks.acc_nets import KeypointNet
from vtondata.errors import VtonDataError

SUBSETS = ("glasses", "hat", "tie")


@register_model
class Accessory(Model):
    name = "accessory"
    spec_file = "accessory.json"
    outputs = ("tryon",)
    array_outputs = ("vertices",)

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.method = self.config.get("method", "keypoint")
        if self.method not in ("keypoint", "mean_vertices", "gt_homography"):
            raise VtonDataError(f"unknown accessory method {self.method!r}",
                                fix="use keypoint, mean_vertices or gt_homography")
        self.verts = StratVertices(None)
        self._mean: dict[str, torch.Tensor] = {}
        self._prov: dict = {}

    # ------------------------------------------------------------------ declarations
    @property
    def use_sm(self) -> bool:
        return bool(self.config["net"]["use_sm"])

    def stages(self) -> list[Stage]:
        if self.method != "keypoint":
            return []
        out = []
        for s in super().stages():
            if not self.use_sm and "sm" in s.losses:  # no semantic decoder: no L_sm term (Table 2 rows 1, 3)
                s = Stage(**{**s.__dict__, "losses": {k: v for k, v in s.losses.items() if k != "sm"}})
            out.append(s)
        return out

    def inputs(self, purpose: str, setting: str) -> Inputs:
        fields = ["background", "foreground", "foreground_mask", "composite"]
        if purpose == "train" and self.use_sm and self.method == "keypoint":
            fields.append("background_parse")
        return Inputs(fields=tuple(fields), label_space=None)

    def build(self) -> dict[str, nn.Module]:
        if self.method != "keypoint":
            return {}
        n, e, sub = self.config["net"], self.config["encoder"], self.config["subsets"]
        nets = {}
        for s in self.stages():
            nets[s.name] = KeypointNet(4, int(sub[s.setting]["classes"]), use_sm=bool(n["use_sm"]), fg_mode=n["fg"],
                                       weights=e["weights"], widths=n["widths"], blocks=n["blocks"],
                                       spectral_norm=bool(n["spectral_norm"]), enc_width=int(e.get("width", 64)))
            self._prov = {"resnet18_encoders": nets[s.name].provenance}
        return nets

    def prepare(self, env) -> None:
        self.verts = StratVertices(Path(env.manifest) if env.manifest else None)
        if self.method == "mean_vertices":
            for s in SUBSETS:
                try:
                    self._mean[s] = self.verts.train_mean_final(self.size_for(s), env.split, s)
                except VtonDataError:
                    continue

    def provenance(self) -> dict:
        return dict(self._prov)

    # ------------------------------------------------------------------ computation
    def _net(self, nets: Mapping[str, nn.Module], setting: str) -> nn.Module:
        if setting not in nets:
            raise VtonDataError(f"no trained network for sub-dataset {setting!r} in this variant",
                                fix="enable its stage (stages.<subset>.enabled=true) or evaluate another subset")
        return nets[setting]

    def heatmaps(self, net: nn.Module, batch: Mapping[str, Any]):
        """(heatmaps ``N x 4 x H x W``, semantic logits or None)."""
        fg = batch.get("foreground") if self.config["net"]["fg"] != "none" else None
        mask = batch.get("foreground_mask") if fg is not None else None
        return net(batch["background"], fg, mask)

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        hm_cfg = self.config["heatmap"]
        size = tuple(batch["background"].shape[-2:])
        _, final = self.verts.vertices(batch, size, batch["background"].device)
        pred, sem = self.heatmaps(self._net(nets, stage.setting), batch)
        target = gaussian_heatmaps(final, size, float(hm_cfg["radius"]))
        terms = {"hm": heatmap_loss(pred, target, hm_cfg["loss"], float(hm_cfg["gamma"]), hm_cfg.get("awing"))}
        if sem is not None and "sm" in stage.losses:
            parse = batch["background_parse"]
            parse = torch.where(parse < sem.shape[1], parse, torch.full_like(parse, -100))  # unknown ids ignored
            terms["sm"] = F.cross_entropy(sem.float(), parse, ignore_index=-100)
        return terms

    def predict_vertices(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> torch.Tensor:
        """Target vertices ``N x 4 x 2`` (x, y pixels of the background frame) by the variant's method."""
        bg = batch["background"]
        size, setting = tuple(bg.shape[-2:]), batch["setting"][0]
        if self.method == "gt_homography":
            return self.verts.vertices(batch, size, bg.device)[1]
        if self.method == "mean_vertices":
            if setting not in self._mean:
                raise VtonDataError(f"mean vertices of {setting!r} were not computed", fix="run through the bench")
            return self._mean[setting].to(bg.device).expand(bg.shape[0], 4, 2).clone()
        hm, _ = self.heatmaps(self._net(nets, setting), batch)
        return G.soft_argmax(hm, float(self.config["heatmap"]["beta"]))

    def forward_tryon(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]):
        """(composite ``N x 3 x H x W`` in [-1, 1], predicted vertices, warped mask)."""
        bg = batch["background"]
        init, _ = self.verts.vertices(batch, tuple(bg.shape[-2:]), bg.device)
        pred = self.predict_vertices(nets, batch)
        hom = G.dlt_homography(init, pred)
        tryon, _, wmask = G.composite(batch["foreground"], batch["foreground_mask"], bg, hom)
        return tryon.clamp(-1, 1), pred, wmask

    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        tryon, pred, _ = self.forward_tryon(nets, batch)
        return {"tryon": tryon, "vertices": pred}

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"tryon": batch["composite"]}

    def score_inputs(self, metric: str, output: str, pred: torch.Tensor, target, batch: Mapping[str, Any],
                     pred_dir, keys) -> Optional[tuple]:
        if metric not in ("disp", "iou", "lssim"):
            return None
        from bench.metrics.disp import warp_mask

        size = tuple(pred.shape[-2:])
        init, final = self.verts.vertices(batch, size)
        files = [Path(pred_dir) / "vertices" / f"{k}.npy" for k in keys]
        if metric == "disp" or metric == "iou":
            missing = [f for f in files if not f.exists()]
            if missing:
                raise VtonDataError(f"{len(missing)} predicted vertex file(s) missing, e.g. {missing[0].name}",
                                    file=missing[0].parent, fix="run the infer stage again (drop --resume)")
            pv = torch.as_tensor(np.stack([np.load(f) for f in files]), dtype=torch.float32)
        mask = batch["foreground_mask"].float().cpu()
        if metric == "disp":
            return pv, final, {"size": size}
        if metric == "iou":
            return (*self.warped_masks(init, pv, final, mask), {})
        gt_mask = warp_mask(G.dlt_homography(init.double(), final.double()), mask)
        return pred, target, {"mask": gt_mask.to(pred.device)}

    @staticmethod
    def warped_masks(init: torch.Tensor, pred: torch.Tensor, final: torch.Tensor, mask: torch.Tensor):
        """The IoU pair: the foreground mask ``N x 1 x H x W`` warped by the homography of ``init -> pred`` and of
        ``init -> final`` (vertices ``N x 4 x 2``); a singular predicted homography (collapsed vertices) warps to an
        empty mask."""
        from bench.metrics.disp import warp_mask

        mask = mask.float().cpu()
        hp = G.dlt_homography(init.double().cpu(), pred.double().cpu())
        ok = torch.isfinite(hp).flatten(1).all(1) & (torch.linalg.det(hp).abs() > 1e-12)
        hp = torch.where(ok[:, None, None], hp, torch.eye(3, dtype=hp.dtype).expand_as(hp))
        gt = warp_mask(G.dlt_homography(init.double().cpu(), final.double().cpu()), mask)
        return warp_mask(hp, mask) * ok[:, None, None, None], gt
