"""3D-GCL (Huang et al., NeurIPS 2022, seed 002): hard-pose try-on by 3D-aware global correspondence learning.
Registered as ``3dgcl`` (the module is ``gcl3d`` because a Python module name cannot start with a digit).

Setting: a source person ``I_s`` wearing garment ``G`` and a target person ``I_t`` in another pose (DeepFashion
pose-transfer pairs, MPV triplets: ``person`` -> ``target_person``). ``G`` = the source person inside the garment
labels (CIHP Upper-clothes, Dress, Coat), white (1) elsewhere. Images ``N x 3 x H x W`` in [-1, 1].

Stage ``correspondence`` (net ``corr``, :class:`Correspondence`): two unshared encoders -- source on
``cat(body(I_s), G)``, target on ``body(I_t)`` where ``body`` is the DensePose IUV (3 ch, paper) or, with
``body_repr="keypoints"``, 18 Gaussian keypoint maps (ASSUMED fallback for data without DensePose) -- give
features at H/8, H/4, H/2; 1x1 convs + PONO-c per level. ``corr.init="global"``: Eq. 1 ``o = softmax(θᵀφ/τ)``
(N x M x M at H/8), coarse warp ``y0 = o·G↓8``, ``f_0`` = argmax of ``o``; ``corr.init="local"`` (variants * and
★, ASSUMED "vanilla" replacement, docs/models.md §4.5): ``f_0`` from a conv head on ``cat(θ_0, φ_0)``,
``y0 = warp(G↓8, f_0)``. ``f_0`` is upsampled x2 and refined by one GACRM block (2 ConvGRU iterations) at H/4
and one at H/2; warped garments at every level. Training warps use ``grid_sample``'s zero padding (the GCL code's
default): a sample outside the frame is 0 (grey), so the L1 to the white-background ground truth penalises
warping the garment out of the image; with white padding the smoke runs of the variants without L_f collapsed
to that degenerate solution (mIoU 0). The full-resolution output ``warped_garment`` pads with white. Losses (keys of ``stages.correspondence.losses``):
``o_l1``/``o_vgg`` = L_o (Eqs. 4-5, pseudo-GT ``o_gt`` scattered from the SMPL flow, masked by V, H/8),
``flow`` = L_f (Eq. 6), ``warp_l1_0``/``warp_vgg_0`` at H/8 and ``warp_l1``/``warp_vgg`` summed over H/4, H/2
(Eq. 7; VGG on images masked by the target garment mask). The SMPL flow ``f_gt`` and visibility ``V`` come from
the ``smpl-flow`` cache (``flow_gt="smpl-flow"``: from meshes or its DensePose fallback, as that cache was
built) or, with ``flow_gt="keypoints"`` (smoke fallback, NOT 3D), from joint displacements; ``V`` is ANDed with
the source garment mask warped by ``f_gt``. A loss term whose weight is 0 is not computed.

Stage ``tryon`` (nets ``generator``, ``discriminator``; ``corr`` frozen; ``generator_ema`` updated in place):
:class:`~bench.models.blocks.stylegan_spade.SpatialStyleGenerator` on the target body representation, with
spatial modulation from ``cat(warped garment, warp mask, preserved target regions)`` (the target person
without garment and arm labels). Losses: ``gan`` (non-saturating), ``d_gan`` (logistic, on detached fakes),
``r1`` (γ/2·‖∇D‖², lazily every ``gan.d_reg_every`` steps, scaled by it), ``l1``, ``vgg``; D is conditioned on
the target body representation. G's adversarial term is computed through a detached copy of D's parameters and
D's terms on detached fakes, so one optimiser step over both is the simultaneous GAN update.
Outputs: ``tryon``, ``warped_garment`` (full resolution, flow f_2 upsampled) and ``warped_parse`` (the source's
garment labels warped by the same flow, nearest; label ``L`` stored as grey level ``L`` so mIoU reads it back).
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.harness.model import Inputs, Model, Stage
from bench.harness.registry import register_model
from bench.models.blocks import gcl_corr as C
from bench.models.blocks import person as P
from bench.models.blocks.convgru import GACRMBlock
from bench.models.blocks.stylegan_spade import (ResDiscriminator, SpatialStyleGenerator, d_logistic,
                                               g_nonsaturating, r1_penalty)
from vtondata.labels import label_space

THREE_D_TERMS = ("o_l1", "o_vgg", "flow")


class Correspondence(nn.Module):
    """Stage-1 network. ``forward(src_in, tgt_in, garment, garment_mask)`` -> dict with ``flows`` (offsets at
    H/8, H/4, H/2), ``warped`` (garments at those levels), ``o`` (``N x M x M`` or None), ``theta0``/``phi0``."""

    def __init__(self, src_ch: int, tgt_ch: int, nef: int = 32, feat_ch: int = 32, tau: float = 0.01,
                 init: str = "global", hidden: int = 32, motion: int = 64, iterations: int = 2, chunk: int = 0,
                 fill: float = 0.0):
        super().__init__()
        self.fill = float(fill)
        if init not in ("global", "local"):
            raise ValueError(f"corr.init must be global or local, got {init!r}")
        self.init, self.tau, self.chunk = init, float(tau), int(chunk)
        self.enc_src = C.FeatureEncoderHD(src_ch, nef)
        self.enc_tgt = C.FeatureEncoderHD(tgt_ch, nef)
        c = self.enc_src.out_channels
        self.phi = nn.ModuleList(nn.Conv2d(c, feat_ch, 1) for _ in range(3))
        self.theta = nn.ModuleList(nn.Conv2d(c, feat_ch, 1) for _ in range(3))
        if init == "local":
            self.local_head = nn.Sequential(nn.Conv2d(2 * feat_ch, 2 * hidden, 3, padding=1), nn.LeakyReLU(0.2, True),
                                            nn.Conv2d(2 * hidden, hidden, 3, padding=1), nn.LeakyReLU(0.2, True),
                                            nn.Conv2d(hidden, 2, 3, padding=1))
            nn.init.zeros_(self.local_head[-1].weight)  # start from the identity flow
            nn.init.zeros_(self.local_head[-1].bias)
        self.gacrm = nn.ModuleList(GACRMBlock(feat_ch, hidden, motion, iterations) for _ in range(2))

    def forward(self, src_in, tgt_in, garment, garment_mask) -> dict[str, Any]:
        fs, ft = self.enc_src(src_in), self.enc_tgt(tgt_in)
        phi = [C.pono_c(p(x)) for p, x in zip(self.phi, fs)]
        theta = [C.pono_c(t(x)) for t, x in zip(self.theta, ft)]
        h0, w0 = theta[0].shape[-2:]
        g0 = F.interpolate(garment, size=(h0, w0), mode="area")
        o = None
        if self.init == "global":
            if self.chunk and not self.training:
                y0, idx = C.global_warp_chunked(theta[0], phi[0], g0, self.tau, self.chunk)
                f0 = C.index_flow(idx, h0, w0)
            else:
                o = C.correspondence(theta[0], phi[0], self.tau)
                y0 = C.apply_correspondence(o, g0)
                f0 = C.argmax_flow(o, h0, w0)
        else:
            f0 = self.local_head(torch.cat([theta[0], phi[0]], 1))
            y0 = C.warp(g0, f0, fill=self.fill)
        flows, warped = [f0], [y0]
        f = f0
        for lvl in (1, 2):
            size = theta[lvl].shape[-2:]
            f = C.resize_flow(f.detach() if self.init == "global" else f, size)
            f = self.gacrm[lvl - 1](theta[lvl], phi[lvl], f)
            g = F.interpolate(garment, size=size, mode="area")
            flows.append(f)
            warped.append(C.warp(g, f, fill=self.fill))
        return {"flows": flows, "warped": warped, "o": o}


@register_model
class GCL3D(Model):
    name = "3dgcl"
    spec_file = "gcl3d.json"
    outputs = ("tryon", "warped_garment", "warped_parse")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        space = label_space(self.config["parse_space"])
        self.garment_ids = [space.id_of(n) for n in self.config["garment_labels"]]
        self.drop_ids = self.garment_ids + [space.id_of(n) for n in self.config["preserve_drop_labels"]]
        self.vgg = None
        self._gan_steps = 0

    # ------------------------------------------------------------------ declarations
    @property
    def body_channels(self) -> int:
        return 3 if self.config["body_repr"] == "densepose" else 18

    def _stage_weights(self, name: str) -> Mapping[str, float]:
        return self.config["stages"][name]["losses"]

    def uses_3d(self) -> bool:
        return any(float(self._stage_weights("correspondence").get(k, 0)) for k in THREE_D_TERMS)

    def inputs(self, purpose: str, setting: str) -> Inputs:
        fields = ["person", "parse", "target_person", "target_parse"]
        caches = []
        if self.config["body_repr"] == "densepose":
            fields += ["densepose", "target_densepose"]
            caches.append("densepose")
        if self.config["body_repr"] == "keypoints" or (purpose == "train" and self.config["flow_gt"] == "keypoints"):
            fields += ["pose", "target_pose"]
        if purpose == "train" and self.uses_3d() and self.config["flow_gt"] == "smpl-flow":
            fields += ["smpl_flow", "smpl_flow_mask"]
            caches.append("smpl-flow")
        return Inputs(fields=tuple(fields), caches=tuple(caches), label_space=self.config["parse_space"])

    def build(self) -> dict[str, nn.Module]:
        c, g, d = self.config["corr"], self.config["generator"], self.config["discriminator"]
        b = self.body_channels
        gen = SpatialStyleGenerator(b, 7, ngf=int(g["ngf"]), levels=int(g["levels"]), max_ch=int(g["max_ch"]))
        ema = copy.deepcopy(gen)
        for p in ema.parameters():
            p.requires_grad_(False)
        return {
            "corr": Correspondence(b + 3, b, nef=int(c["nef"]), feat_ch=int(c["feat_ch"]), tau=float(c["tau"]),
                                   init=c["init"], hidden=int(c["hidden"]), motion=int(c["motion"]),
                                   iterations=int(c["iterations"]), chunk=int(c.get("chunk", 0))),
            "generator": gen,
            "generator_ema": ema,
            "discriminator": ResDiscriminator(3 + b, ndf=int(d["ndf"]), levels=int(d["levels"]), max_ch=int(d["max_ch"])),
        }

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        v = self.config["vgg"]
        self.vgg = _vgg(v["weights"], int(v.get("layers", 5))).to(device)

    def prepare(self, env) -> None:
        """Record which ``smpl-flow`` cache trains the 3D losses: built from meshes or from DensePose (fallback)."""
        self._flow_cache = None
        if not (self.uses_3d() and self.config["flow_gt"] == "smpl-flow"):
            return
        import json as _json

        from vtondata.caches.store import cache_dir, current_fingerprint
        from vtondata.manifest import open_manifest

        m = open_manifest(env.dataset, env.manifest)
        fp = current_fingerprint(m, "smpl-flow")
        meta = {}
        if fp is not None:
            try:
                meta = _json.loads((cache_dir(m, "smpl-flow", fp) / "meta.json").read_text())
            except (OSError, ValueError):
                meta = {}
        src = meta.get("params", {}).get("source")
        self._flow_cache = {"fingerprint": fp, "source": src,
                            "kind": {"iuv": "densepose-correspondence fallback", "mesh": "smpl meshes"}.get(src, src)}

    def provenance(self) -> dict:
        out = {"smpl_flow": {"source": self.config["flow_gt"], "used": self.uses_3d(),
                             "cache": getattr(self, "_flow_cache", None),
                             "note": "smpl-flow = the cache as built (cache.kind: meshes or the DensePose "
                                     "fallback); keypoints = joint-displacement stand-in, not 3D"}}
        if self.vgg is not None:
            out["vgg19_perceptual_loss"] = dict(self.vgg.provenance)
        return out

    # ------------------------------------------------------------------ representations
    def body(self, batch: Mapping[str, Any], side: str) -> torch.Tensor:
        """Body representation of ``side`` ("" source, "target_"): IUV in [-1, 1] (3 ch) or keypoint maps (18 ch)."""
        h, w = self.size
        if self.config["body_repr"] == "densepose":
            iuv = batch[f"{side}densepose"].float()
            return torch.cat([iuv[:, :1] / 12.0 - 1, iuv[:, 1:] * 2 - 1], 1)
        kp = P.to_coco18(batch[f"{side}pose"].float())
        sigma = float(self.config["keypoint_sigma"]) * h / 256.0
        ok = ((kp[..., 0] > 1) & (kp[..., 1] > 1)).float()[..., None, None]
        g = C.base_grid(h, w, kp.device)
        d2 = (g[:, 0:1] - kp[..., 0, None, None]) ** 2 + (g[:, 1:2] - kp[..., 1, None, None]) ** 2
        return torch.exp(-d2 / (2 * sigma ** 2)) * ok

    def garment(self, batch: Mapping[str, Any], side: str = ""):
        """``(G, M)``: the person of ``side`` inside the garment labels on white, and that mask ``N x 1 x H x W``."""
        m = P.region_mask(batch[f"{side}parse"], self.garment_ids)
        return P.keep_region(batch[f"{side}person"], m, fill=1.0), m

    def garment_labels(self, parse: torch.Tensor) -> torch.Tensor:
        """``N x H x W`` ids -> ``N x 1 x H x W`` ids with every non-garment label set to 0."""
        keep = torch.isin(parse, torch.as_tensor(self.garment_ids, device=parse.device))
        return torch.where(keep, parse, torch.zeros_like(parse)).unsqueeze(1)

    def preserved(self, batch: Mapping[str, Any]) -> torch.Tensor:
        keep = 1 - P.region_mask(batch["target_parse"], self.drop_ids)
        keep = keep * (batch["target_parse"] > 0).unsqueeze(1).float()
        return P.keep_region(batch["target_person"], keep, fill=0.0)

    # ------------------------------------------------------------------ computation
    def correspond(self, corr: nn.Module, batch: Mapping[str, Any]) -> dict[str, Any]:
        g, m = self.garment(batch)
        src = torch.cat([self.body(batch, ""), g], 1)
        out = corr(src, self.body(batch, "target_"), g, m)
        out["garment"], out["garment_mask"] = g, m
        return out

    def full_warp(self, out: Mapping[str, Any], batch: Mapping[str, Any]):
        """Warped garment, warp mask and warped garment labels at ``H x W`` from the finest flow."""
        h, w = self.size
        f = C.resize_flow(out["flows"][-1], (h, w))
        garment = C.warp(out["garment"], f, fill=1.0)
        mask = C.warp(out["garment_mask"], f)
        labels = C.warp(self.garment_labels(batch["parse"]), f, mode="nearest")
        return garment, mask, labels

    def gt_flow(self, batch: Mapping[str, Any], garment_mask: torch.Tensor):
        """``(f_gt N x 2 x H x W, V N x 1 x H x W)``, V ANDed with the source garment mask warped by f_gt."""
        if self.config["flow_gt"] == "smpl-flow":
            f, v = batch["smpl_flow"].float(), batch["smpl_flow_mask"].float()
        else:
            h = self.size[0]
            body = (batch["target_parse"] > 0).unsqueeze(1).float()
            f, v = C.keypoint_flow(P.to_coco18(batch["pose"].float()), P.to_coco18(batch["target_pose"].float()),
                                   body, float(self.config["keypoint_flow_sigma"]) * h / 256.0)
        v = v * (C.warp(garment_mask, f) > 0.5).float()
        return f, v

    def _masked_l1(self, a, b, m):
        return ((a - b).abs() * m).sum() / (m.sum() * a.shape[1]).clamp_min(1.0)

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        if stage.name == "correspondence":
            return self._corr_losses(stage, nets["corr"], batch)
        if stage.name == "tryon":
            return self._tryon_losses(stage, nets, batch)
        raise ValueError(f"3dgcl has no stage {stage.name!r}")

    def _corr_losses(self, stage: Stage, corr: nn.Module, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        w = stage.losses
        out = self.correspond(corr, batch)
        target, tmask = self.garment(batch, "target_")
        terms: dict[str, torch.Tensor] = {}
        for lvl, (y, key) in enumerate(zip(out["warped"], ("_0", "", ""))):
            size = y.shape[-2:]
            t = F.interpolate(target, size=size, mode="area")
            m = F.interpolate(tmask, size=size, mode="area")
            if w.get("warp_l1" + key, 0):
                terms["warp_l1" + key] = terms.get("warp_l1" + key, 0) + F.l1_loss(y, t)
            if w.get("warp_vgg" + key, 0):
                terms["warp_vgg" + key] = terms.get("warp_vgg" + key, 0) + self.vgg(y * m, t * m)
        if any(w.get(k, 0) for k in THREE_D_TERMS):
            f_gt, vis = self.gt_flow(batch, out["garment_mask"])
            if w.get("flow", 0):
                lf = 0
                for f in out["flows"][1:]:
                    fl, vl = C.downsample_flow(f_gt, vis, f.shape[-2:])
                    lf = lf + self._masked_l1(f, fl, vl)
                terms["flow"] = lf
            if (w.get("o_l1", 0) or w.get("o_vgg", 0)):
                if out["o"] is None:
                    raise ValueError("L_o needs the global correspondence (corr.init='global'); set its weights to 0")
                f0, v0 = C.downsample_flow(f_gt, vis, out["flows"][0].shape[-2:])
                o_gt = C.pseudo_gt_correspondence(f0, v0)
                g0 = F.interpolate(out["garment"], size=f0.shape[-2:], mode="area")
                pred, ref = C.apply_correspondence(out["o"], g0), C.apply_correspondence(o_gt, g0)
                if w.get("o_l1", 0):
                    terms["o_l1"] = self._masked_l1(pred, ref, v0)
                if w.get("o_vgg", 0):
                    terms["o_vgg"] = self.vgg(pred * v0, ref * v0)
        return terms

    def _tryon_inputs(self, corr: nn.Module, batch: Mapping[str, Any]):
        with torch.no_grad():
            out = self.correspond(corr, batch)
            garment, mask, _ = self.full_warp(out, batch)
        pose = self.body(batch, "target_")
        return pose, torch.cat([garment, mask * 2 - 1, self.preserved(batch)], 1)

    def _tryon_losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]):
        from bench.harness.train import unwrap

        w, gan = stage.losses, self.config["gan"]
        gen, disc = nets["generator"], nets["discriminator"]
        with torch.no_grad():  # EMA of the generator (in place; lags the optimiser by one step)
            decay = float(gan["ema_decay"])
            for pe, p in zip(nets["generator_ema"].parameters(), unwrap(gen).parameters()):
                pe.lerp_(p.detach(), 1 - decay)
            for be, b in zip(nets["generator_ema"].buffers(), unwrap(gen).buffers()):
                be.copy_(b)
        pose, app = self._tryon_inputs(nets["corr"], batch)
        fake = gen(pose, app)
        real = batch["target_person"]
        terms: dict[str, torch.Tensor] = {}
        if w.get("l1", 0):
            terms["l1"] = F.l1_loss(fake, real)
        if w.get("vgg", 0):
            terms["vgg"] = self.vgg(fake, real)
        if w.get("gan", 0):
            d = unwrap(disc)
            frozen = {k: v.detach() for k, v in d.named_parameters()}
            logits = torch.func.functional_call(d, frozen, (torch.cat([fake, pose], 1),))
            terms["gan"] = g_nonsaturating(logits)
        if w.get("d_gan", 0) or w.get("r1", 0):
            every = int(gan["d_reg_every"])
            reg = w.get("r1", 0) and self._gan_steps % every == 0
            real_in = torch.cat([real, pose], 1).detach().requires_grad_(bool(reg))
            real_logits = disc(real_in)
            if w.get("d_gan", 0):
                terms["d_gan"] = d_logistic(real_logits, disc(torch.cat([fake.detach(), pose], 1)))
            if w.get("r1", 0):
                terms["r1"] = (float(gan["r1_gamma"]) / 2 * r1_penalty(real_logits, real_in) * every if reg
                               else real_logits.new_zeros(()))
            self._gan_steps += 1
        return terms

    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        out = self.correspond(nets["corr"], batch)
        garment, mask, labels = self.full_warp(out, batch)
        res = {"warped_garment": garment, "warped_parse": labels_to_image(labels)}
        gen = nets.get("generator_ema", nets.get("generator"))
        if gen is not None:
            pose = self.body(batch, "target_")
            res["tryon"] = gen(pose, torch.cat([garment, mask * 2 - 1, self.preserved(batch)], 1))
        return res

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"tryon": batch["target_person"], "warped_garment": self.garment(batch, "target_")[0],
                "warped_parse": labels_to_image(self.garment_labels(batch["target_parse"]))}

    def score_inputs(self, metric: str, output: str, pred, target, batch, pred_dir, keys):
        """mIoU reads the label maps stored as grey PNGs: one channel of prediction and reference."""
        if metric == "miou" and target is not None:
            return pred[:, :1], target[:, :1], {}
        return None

    def metric_context(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"parse": batch["target_parse"]}


@functools.lru_cache(maxsize=2)
def _vgg(weights: str, layers: int) -> nn.Module:
    """The frozen VGG19 loss network, built once per process (building VGG19 takes seconds on a CPU)."""
    from bench.models.blocks.vgg import VGGLoss

    return VGGLoss(weights=weights, layers=layers)


def labels_to_image(labels: torch.Tensor) -> torch.Tensor:
    """Label ids ``N x 1 x H x W`` -> ``N x 3 x H x W`` in [-1, 1] whose uint8 PNG stores id ``L`` as grey ``L``."""
    return (labels.float() / 127.5 - 1).expand(-1, 3, -1, -1)
