"""ST-GAN baseline of the accessory paper's Table 1 (Lin et al., "ST-GAN: Spatial Transformer Generative
Adversarial Networks for Image Compositing", CVPR 2018), re-implemented in PyTorch from the paper (the official
TensorFlow code, chenhsuanlin/spatial-transformer-GAN, read for its hyper-parameters only), on STRAT.

One :class:`~bench.models.blocks.stgan_nets.STGAN` per sub-dataset (stage = loader setting = subset, as the
accessory model): ``warps`` geometric predictors refine the foreground's homography one after the other
(``H_i = T^-1 (I + P(dp_i)) T H_{i-1}``), each seeing cat(background, foreground and mask warped by
``H_{i-1}``); the composite (Eq. 5 of the accessory paper, ``acc_geometry.composite``) of the final warp is
judged by a WGAN-GP critic against ground-truth composites. Predicted vertices = ``H_N`` applied to the
foreground's four vertices (STRAT ``init_vertex``), saved as the array output ``vertices`` and scored exactly as
the accessory model (:class:`~bench.models.accessory.Accessory`: Disp, IoU, LSSIM).

Losses (stage weights): ``adv_g`` = ``-D(fake)`` (critic frozen), ``adv_d`` = WGAN-GP critic loss (gradient
penalty 10), ``update`` = ``sum_i ||dp_i||^2`` (the code's warp-update penalty, ``dplambda`` 1), and for
``ST-GAN(+s)`` ``mse`` = MSE of the composite to the ground-truth composite (weight 1; the accessory paper's
"(+s): extra MSE supervision on composite").

ASSUMED (documented in stgan.json ``_doc``): the initial warp ``H_0`` is the DLT homography from the foreground's
vertices to the mean target vertices of the sub-dataset's training split (the ``mean-vertices`` baseline; the
official code starts from a canonical centred placement); the critic's real images are the ground-truth
composites of the same batch; all warps are trained jointly end to end in one stage (the official code adds
warps one by one, 50k iterations each) with one optimiser for G and D (simultaneous update, D not updated
twice per G step); Adam at the official lr 1e-5, batch 20. One process only (``--gpus 1``): the warps and the
critic's gradient penalty run outside a DDP forward, so :meth:`losses` refuses a DDP-wrapped network.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.harness.model import Inputs, Model, Stage
from bench.harness.registry import register_model
from bench.models.accessory import SUBSETS, Accessory
from bench.models.blocks import acc_geometry as G
from bench.models.blocks.acc_data import StratVertices
from bench.models.blocks.stgan_nets import STGAN, critic_loss, generator_loss
from vtondata.errors import VtonDataError


@register_model
class StGan(Accessory):
    """Outputs, scoring and vertex plumbing inherited from :class:`Accessory`; its constructor is skipped (it
    accepts only the accessory's own methods)."""

    name = "stgan"
    spec_file = "stgan.json"

    def __init__(self, config: Mapping[str, Any]):
        Model.__init__(self, config)
        self.method, self.verts, self._mean = "stgan", StratVertices(None), {}
        self._prov = {}  # trained from scratch (as the paper): no pretrained weights involved

    def stages(self) -> list[Stage]:
        out = []
        for s in Model.stages(self):
            if not float(s.losses.get("mse", 0.0)):  # plain ST-GAN: no composite supervision term
                s = Stage(**{**s.__dict__, "losses": {k: v for k, v in s.losses.items() if k != "mse"}})
            out.append(s)
        return out

    def inputs(self, purpose: str, setting: str) -> Inputs:
        return Inputs(fields=("background", "foreground", "foreground_mask", "composite"), label_space=None)

    def build(self) -> dict[str, nn.Module]:
        n = self.config["net"]
        return {s.name: STGAN(self.size_for(s.setting), int(n["warps"]), n["widths"], n["d_widths"], int(n["fc"]),
                              float(n["init_std"])) for s in self.stages()}

    def prepare(self, env) -> None:
        super().prepare(env)
        for s in SUBSETS:  # the initial warp: the mean training target vertices of each sub-dataset
            try:
                self._mean[s] = self.verts.train_mean_final(self.size_for(s), env.split, s)
            except VtonDataError:
                continue

    def initial_homography(self, batch: Mapping[str, Any]) -> torch.Tensor:
        bg = batch["background"]
        setting = batch["setting"][0]
        if setting not in self._mean:
            raise VtonDataError(f"mean vertices of {setting!r} were not computed (initial warp of ST-GAN)",
                                fix="run through the bench (vtondata bench --model stgan ...)")
        init, _ = self.verts.vertices(batch, tuple(bg.shape[-2:]), bg.device)
        return G.dlt_homography(init, self._mean[setting].to(bg.device).expand(bg.shape[0], 4, 2))

    def run(self, net: STGAN, batch: Mapping[str, Any]):
        """(final homography ``N x 3 x 3``, composite ``N x 3 x H x W`` in [-1, 1], list of updates ``N x 8``)."""
        return net.warp(batch["foreground"], batch["foreground_mask"], batch["background"],
                        self.initial_homography(batch), G.composite)

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        net = self._net(nets, stage.setting)
        plain = getattr(net, "module", net)
        if plain is not net:  # the warps and the critic's double-backward penalty run outside DDP's forward
            raise VtonDataError("stgan trains in one process only (no gradient sync across DDP ranks)",
                                fix="run it without --gpus (one GPU or the CPU)")
        _, comp, dps = self.run(plain, batch)
        real = batch["composite"]
        terms = {"adv_g": generator_loss(plain.critic, comp),
                 "adv_d": critic_loss(plain.critic, real, comp, float(self.config["gan"]["gp_weight"])),
                 "update": sum((dp ** 2).sum(1).mean() for dp in dps)}
        if "mse" in stage.losses:
            terms["mse"] = F.mse_loss(comp, real)
        return terms

    def predict_vertices(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> torch.Tensor:
        bg = batch["background"]
        net = self._net(nets, batch["setting"][0])
        hom, _, _ = self.run(getattr(net, "module", net), batch)
        init, _ = self.verts.vertices(batch, tuple(bg.shape[-2:]), bg.device)
        return G.apply_homography(hom, init)
