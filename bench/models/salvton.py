"""SAL-VTON (Yan et al., CVPR 2023): semantically associated landmarks linking garment and person.

Spec: ``docs/models.md`` section 2 (seed 000); shapes and weights in ``bench/models/salvton.json``.

Stage 0, teacher (:mod:`bench.models.salvton_teacher`, run from :meth:`SALVTON.prepare`): SAL-VTON is
parser-free; its training triplets ``(P_o, G, P_gt)`` need ``P_o``, the person re-dressed in ANOTHER training
garment by a parser-based teacher. The teacher is a registered bench model (``config.teacher.model``; the smoke
profile uses ``cpvton``). It is trained through the harness in its own run directory (reused when already
trained) and its try-on of every training person with a deranged garment is cached as PNGs under
``<run>/teacher/<teacher config hash>-<checkpoint digest>/tryon/<tuple key>.png`` (+ ``done.json``).

Stage 1 ``landmark`` (:mod:`bench.models.blocks.sal_hrnet`): cascade of two HRNets. ``lm_garment(G)`` ->
32 heatmaps at 1/4 + 2-class attributes (absent / present); ``lm_person(cat(P_o, G, up4(H_g) * present))`` ->
32 heatmaps + 3-class attributes (absent / occluded / visible). Loss: BCE on heatmaps (Gaussian targets,
sigma 2 cells) + CE on attributes, both nets; the person net is trained on the ground-truth garment heatmaps
(teacher forcing, ASSUMED). Ground truth: the manifest's ``landmarks`` table (SAL-HG; ``vtondata landmarks
convert``), garment points of the garment sample, person points of the person sample (who wears G in the
paired training tuples, i.e. ``L_p`` of ``P_gt``).

Stage 2 ``warp`` (:mod:`bench.models.blocks.sal_warp`): global + local flow with ground-truth landmarks
(ASSUMED, docs 2.4); losses: per-level ``(num + 1)``-weighted L1 and garment-mask L1 of the global warps and
Charbonnier smoothness of every level's flow (Eqs. 7-8; PF-AFN's per-level weighting ASSUMED), VGG of the final
``W_g`` (Eq. 6: the sum runs over VGG blocks; PF-AFN's per-level VGG is not used), L1 + VGG of ``W_f``
(Eqs. 6-7), masked L1 of ``W_l`` with the hard landmark masks of the ground-truth person landmarks (Eq. 9).
``W_gt`` = the person inside the cloth labels, white elsewhere.

Stage 3 ``gen`` (:mod:`bench.models.blocks.sal_lasnl`): LASNL generator on ``cat(P_o, W_g, W_l, W_f)`` with the
person landmark code map, frozen landmark and warping nets, landmarks PREDICTED (as at inference; ASSUMED);
losses VGG x10, discriminator feature matching x10, hinge GAN x1 (HR-VITON recipe), discriminator hinge loss
with its own learning rate (``lr_mult.disc = 4``: 4e-4 vs 1e-4). G and D train with one optimiser: G's terms go
through detached D parameters, D's through a detached fake.

Inference: ``G, P -> landmarks -> flows -> P_g`` on the real person. Multi-resolution (VITON-HD,
``landmark_size`` / ``warp_size``): landmarks at 512x384, warping at 256x192 with the flows upsampled
(bicubic) to the image size, generator at full size. :meth:`SALVTON.render` accepts edited person landmarks
(Fig. 10 landmark editing).

Variants (Table 3 names): ``full`` = ``w/ Deformable Patch``, ``w/ Fixed Patch``, ``w/o LASNL``,
``w/o Local Flow and LASNL`` (see the JSON's ``_doc`` of each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from annotate.landmarks.render import default_radius, gaussian_heatmaps, landmark_union_mask, square_code_maps
from bench.harness.model import Inputs, Model, PrepareEnv, Stage
from bench.harness.registry import register_model
from bench.models.blocks import person as P
from bench.models.blocks.sal_flow import charbonnier_smoothness, fuse, resize_flow, sample
from bench.models.blocks.sal_hrnet import HRNet
from bench.models.blocks.sal_lasnl import (LASNLGenerator, MultiscaleDiscriminator, feature_matching, hinge_d,
                                           hinge_g)
from bench.models.blocks.sal_warp import SalWarp
from bench.models.blocks.vgg import perceptual_loss_for, perceptual_provenance
from vtondata.errors import VtonDataError
from vtondata.labels import label_space

STRIDE = 4  # HRNet heatmaps at 1/4 resolution


def _resize(x: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=tuple(size), mode="nearest")
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=False,
                         antialias=mode in ("bilinear", "bicubic") and x.shape[-1] > size[1])


def _scale_xy(xy: torch.Tensor, src, dst) -> torch.Tensor:
    if tuple(src) == tuple(dst):
        return xy
    return xy * xy.new_tensor([dst[1] / src[1], dst[0] / src[0]])


def decode_heatmaps(heat: torch.Tensor, stride: float) -> torch.Tensor:
    """Per-channel arg-max of ``N x K x h x w`` heatmaps -> ``N x K x 2`` pixels (x, y) = index * stride, shifted
    a quarter cell towards the higher neighbour (HRNet ``get_final_preds``)."""
    n, k, h, w = heat.shape
    flat = heat.reshape(n, k, -1)
    idx = flat.argmax(-1)
    y, x = (idx // w), (idx % w)
    xf, yf = x.float(), y.float()
    hp = F.pad(heat, (1, 1, 1, 1), mode="replicate").reshape(n, k, -1)
    wp = w + 2
    c = (y + 1) * wp + (x + 1)
    dx = torch.gather(hp, 2, (c + 1)[..., None])[..., 0] - torch.gather(hp, 2, (c - 1)[..., None])[..., 0]
    dy = torch.gather(hp, 2, (c + wp)[..., None])[..., 0] - torch.gather(hp, 2, (c - wp)[..., None])[..., 0]
    xf = xf + 0.25 * torch.sign(dx)
    yf = yf + 0.25 * torch.sign(dy)
    return torch.stack([xf, yf], -1) * stride


@register_model
class SALVTON(Model):
    name = "salvton"
    spec_file = "salvton.json"
    outputs = ("tryon", "warped_garment")
    #: predicted landmarks per tuple, ``2 x K x 3`` (garment, person; x, y in pixels of the model frame, attribute)
    array_outputs = ("landmarks",)

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        self.k = int(self.config["num_points"])
        space = label_space(self.config["parse_space"])
        self.cloth_ids = [space.id_of(n) for n in self.config["cloth_labels"]]
        self.lm_size = tuple(self.config.get("landmark_size") or self.size)
        self.warp_size = tuple(self.config.get("warp_size") or self.size)
        self.vgg = None
        self._landmarks: Optional[dict] = None   # (sample_id, side) -> (xy K x 2 at self.size, attr K)
        self._po_dir: Optional[Path] = None       # teacher outputs (stage 0)
        self._po_mem: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ declarations
    @property
    def local_flow(self) -> bool:
        return bool(self.config["warp"]["local_flow"])

    @property
    def lasnl(self) -> bool:
        return bool(self.config["gen"]["lasnl"])

    def inputs(self, purpose: str, setting: str) -> Inputs:
        fields = ["person", "garment", "garment_mask"]
        if purpose == "train":
            fields.append("parse")
        return Inputs(fields=tuple(fields), label_space=self.config["parse_space"])

    def gen_in_channels(self) -> int:
        return 12 if self.config["gen"]["input"] == "warps" else 6

    def build(self) -> dict[str, nn.Module]:
        lm, wp, g, d = self.config["landmark"], self.config["warp"], self.config["gen"], self.config["disc"]
        hr = dict(width=int(lm["width"]), stem=int(lm["stem"]), stage_modules=tuple(lm["stage_modules"]),
                  blocks=int(lm["blocks"]), branches=int(lm["branches"]))
        return {
            "lm_garment": HRNet(3, self.k, 2, **hr),
            "lm_person": HRNet(6 + self.k, self.k, 3, **hr),
            "warp": SalWarp(self.warp_size, self.k, tuple(wp["chans"]), int(wp["fpn_dim"]), int(wp["stem_img"]),
                            int(wp["stem_out"]), int(wp["flow_hidden"]), self.local_flow, wp["patch"],
                            int(wp["local_levels"]), int(wp["local_ch"]), int(wp["corr_ch"]), float(wp["init_frac"]),
                            float(wp["slope"]), int(wp["chunk"]), str(wp.get("local_impl", "crop")),
                            int(wp.get("patch_res", 12))),
            "gen": LASNLGenerator(self.gen_in_channels(), int(g["ngf"]), int(g["levels"]), int(g["res"]), self.lasnl,
                                  self.k, int(g["hidden"])),
            "disc": MultiscaleDiscriminator(3 + self.k, int(d["ndf"]), int(d["layers"]), int(d["scales"])),
        }

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        self.vgg = perceptual_loss_for(self, device, ("global_vgg", "fused_vgg", "gen_vgg"))

    def provenance(self) -> dict:
        return perceptual_provenance(self.vgg)

    # ------------------------------------------------------------------ stage 0 and ground truth
    def prepare(self, env: PrepareEnv) -> None:
        from bench.models.salvton_teacher import landmark_lookup, synthesise

        self._landmarks = landmark_lookup(env.dataset, env.manifest, self.size)
        if self.config["teacher"].get("model"):
            self._po_dir = synthesise(self, env)
            self._po_mem = {}

    def missing_data(self, dataset: str, manifest: Optional[str] = None) -> Optional[str]:
        from vtondata.manifest import open_manifest

        try:
            m = open_manifest(dataset, Path(manifest) if manifest else None)
        except Exception:  # no prepared dataset: the run itself reports it with its fix
            return None
        if not m.has_table("landmarks"):
            return (f"dataset {dataset} has no SAL-HG landmarks table "
                    f"(vtondata landmarks convert <SAL-HG annotations> --dataset {dataset})")
        return None

    def set_landmarks(self, lookup: dict) -> None:
        self._landmarks = lookup

    def set_teacher_outputs(self, directory: Optional[Path]) -> None:
        self._po_dir = None if directory is None else Path(directory)
        self._po_mem = {}

    def gt_landmarks(self, batch: Mapping[str, Any], side: str):
        """``(xy N x K x 2 at the model size, attribute N x K int64)`` of the garment or person sample."""
        if self._landmarks is None:
            raise VtonDataError("SAL-VTON training needs landmark ground truth, which was not loaded",
                                fix="run through `vtondata bench` (Model.prepare) or call set_landmarks()")
        ids = batch["garment_id"] if side == "garment" else batch["person_id"]
        xs, attrs = [], []
        for sid in ids:
            got = self._landmarks.get((sid, side))
            if got is None:
                raise VtonDataError(f"no {side} landmarks for sample {sid!r}",
                                    fix="convert the SAL-HG landmarks for every training image "
                                        "(`vtondata landmarks convert FILE --dataset D`)")
            xs.append(got[0])
            attrs.append(got[1])
        dev = batch["garment"].device
        return torch.stack(xs).to(dev), torch.stack(attrs).to(dev)

    def other_person(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """``P_o`` ``N x 3 x H x W`` in [-1, 1]: the teacher's try-on of the person in another garment
        (the person itself when ``teacher.model`` is null)."""
        if not self.config["teacher"].get("model"):
            return batch["person"]
        if self._po_dir is None:
            raise VtonDataError("the teacher outputs P_o were not synthesised",
                                fix="run through `vtondata bench` (stage 0 runs in Model.prepare) or "
                                    "call set_teacher_outputs()")
        from bench.harness.infer import key_of, read_png

        out = []
        for tid in batch["tuple_id"]:
            if tid not in self._po_mem:
                path = self._po_dir / "tryon" / f"{key_of(tid)}.png"
                if not path.exists():
                    raise VtonDataError(f"teacher output missing for {tid!r}", file=path,
                                        fix="delete the teacher cache directory and run again")
                img = read_png(path).float()[None] / 127.5 - 1
                self._po_mem[tid] = _resize(img, self.size)[0].clamp(-1, 1)
            out.append(self._po_mem[tid])
        return torch.stack(out).to(batch["person"].device)

    def worn_garment(self, batch: Mapping[str, Any]):
        """``W_gt`` (person inside the cloth labels, white elsewhere) and its mask ``N x 1 x H x W``."""
        mask = P.region_mask(batch["parse"], self.cloth_ids).to(batch["person"].dtype)
        return P.keep_region(batch["person"], mask, fill=1.0), mask

    # ------------------------------------------------------------------ landmark helpers
    def code_maps(self, xy: torch.Tensor, attr: torch.Tensor, side: str, size) -> torch.Tensor:
        """ModelScope landmark maps at ``size`` (docs 2.3): -1 background, squares with the attribute code."""
        r = self.config["maps"].get("half_size")
        r = default_radius(size[0]) if r is None else int(round(float(r) * size[0] / self.size[0]))
        codes = attr.float() if side == "garment" else attr.float() - 1
        return square_code_maps(xy, codes, attr >= 1, size=tuple(size), half_size=r)

    def predict_landmarks(self, nets: Mapping[str, nn.Module], garment: torch.Tensor, person: torch.Tensor) -> dict:
        ls = self.lm_size
        g, p = _resize(garment, ls), _resize(person, ls)
        hg, ag = nets["lm_garment"](g)
        present = ag.argmax(1)
        hmap = torch.sigmoid(hg) * (present == 1)[..., None, None].to(hg.dtype)
        hp, ap = nets["lm_person"](torch.cat([p, g, _resize(hmap, ls)], 1))
        stride = ls[1] / hg.shape[-1]
        return {"xy_g": _scale_xy(decode_heatmaps(hg.detach(), stride), ls, self.size), "attr_g": present,
                "xy_p": _scale_xy(decode_heatmaps(hp.detach(), stride), ls, self.size), "attr_p": ap.argmax(1)}

    # ------------------------------------------------------------------ stages 2-3
    def warp(self, nets: Mapping[str, nn.Module], garment: torch.Tensor, person: torch.Tensor, lm: Mapping) -> dict:
        """Stage 2 at ``warp_size``; returns the module's outputs (``low``) and full-size ``W_g / W_l / W_f``."""
        ws = self.warp_size
        xy_g, xy_p = _scale_xy(lm["xy_g"], self.size, ws), _scale_xy(lm["xy_p"], self.size, ws)
        valid = (lm["attr_g"] == 1) & (lm["attr_p"] == 2)
        low = nets["warp"](_resize(garment, ws), _resize(person, ws), self.code_maps(xy_g, lm["attr_g"], "garment", ws),
                           self.code_maps(xy_p, lm["attr_p"], "person", ws), xy_g, xy_p, valid)
        if ws == tuple(self.size):
            return {"low": low, "W_g": low["W_g"], "W_l": low.get("W_l"), "W_f": low["W_f"]}
        flow = resize_flow(low["flow"], self.size, "bicubic")
        out = {"low": low, "W_g": sample(garment, flow, "border")}
        if "W_l" in low:
            out["W_l"] = _resize(low["W_l"], self.size, "bilinear")
            out["W_f"] = fuse(out["W_l"], out["W_g"], _resize(low["att"], self.size, "bilinear"))
        else:
            out["W_l"], out["W_f"] = None, out["W_g"]
        return out

    def generate(self, nets: Mapping[str, nn.Module], person: torch.Tensor, warps: Mapping, lm: Mapping):
        parts = [person, warps["W_g"]]
        if self.config["gen"]["input"] == "warps":
            parts += [warps["W_l"] if warps.get("W_l") is not None else warps["W_g"], warps["W_f"]]
        lmap = self.code_maps(lm["xy_p"], lm["attr_p"], "person", self.size) if self.lasnl else None
        return nets["gen"](torch.cat(parts, 1), lmap)

    def _garment(self, batch: Mapping[str, Any]) -> torch.Tensor:
        m = batch["garment_mask"].to(batch["garment"].dtype)
        return batch["garment"] * m + (1 - m)

    # ------------------------------------------------------------------ losses
    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        if stage.name == "landmark":
            return self._landmark_losses(nets, batch)
        if stage.name == "warp":
            return self._warp_losses(stage, nets, batch)
        if stage.name == "gen":
            return self._gen_losses(stage, nets, batch)
        raise ValueError(f"salvton has no stage {stage.name!r}")

    def _landmark_losses(self, nets, batch):
        ls = self.lm_size
        garment = _resize(self._garment(batch), ls)
        po = _resize(self.other_person(batch), ls)
        xy_g, a_g = self.gt_landmarks(batch, "garment")
        xy_p, a_p = self.gt_landmarks(batch, "person")
        sigma = float(self.config["landmark"]["sigma"])
        hsize = (ls[0] // STRIDE * STRIDE, ls[1] // STRIDE * STRIDE)
        t_g = gaussian_heatmaps(_scale_xy(xy_g, self.size, ls), a_g >= 1, size=hsize, stride=STRIDE, sigma=sigma)
        t_p = gaussian_heatmaps(_scale_xy(xy_p, self.size, ls), a_p >= 1, size=hsize, stride=STRIDE, sigma=sigma)
        hg, ag = nets["lm_garment"](garment)
        t_g, t_p = _resize(t_g.to(hg), hg.shape[-2:]), _resize(t_p.to(hg), hg.shape[-2:])
        if self.config["landmark"]["teacher_forcing"]:
            cond = t_g
        else:
            cond = torch.sigmoid(hg.detach()) * (ag.detach().argmax(1) == 1)[..., None, None]
        hp, ap = nets["lm_person"](torch.cat([po, garment, _resize(cond, ls)], 1))
        return {"heat_g": F.binary_cross_entropy_with_logits(hg, t_g),
                "heat_p": F.binary_cross_entropy_with_logits(hp, t_p),
                "attr_g": F.cross_entropy(ag, (a_g >= 1).long()),
                "attr_p": F.cross_entropy(ap, a_p.clamp(0, 2).long())}

    def _gt_lm(self, batch) -> dict:
        xy_g, a_g = self.gt_landmarks(batch, "garment")
        xy_p, a_p = self.gt_landmarks(batch, "person")
        return {"xy_g": xy_g, "attr_g": (a_g >= 1).long(), "xy_p": xy_p, "attr_p": a_p}

    def _warp_losses(self, stage, nets, batch):
        ws = self.warp_size
        lm = self._gt_lm(batch)
        garment = self._garment(batch)
        out = self.warp(nets, garment, self.other_person(batch), lm)["low"]
        w_gt, m_gt = self.worn_garment(batch)
        w_gt, m_gt = _resize(w_gt, ws), _resize(m_gt, ws)
        g_low = _resize(garment, ws)
        gm_low = _resize(batch["garment_mask"].to(garment.dtype), ws)
        want = stage.losses
        terms: dict[str, torch.Tensor] = {}
        l1 = edge = smooth = 0
        for num, f in enumerate(out["flows"]):  # coarse -> fine, weight num + 1 (PF-AFN / StyleFlow)
            fu = resize_flow(f, ws)
            wg = sample(g_low, fu, "border")
            l1 = l1 + (num + 1) * F.l1_loss(wg, w_gt)
            edge = edge + (num + 1) * F.l1_loss(sample(gm_low, fu, "zeros"), m_gt)
            smooth = smooth + (num + 1) * charbonnier_smoothness(f)
        terms["global_l1"], terms["global_edge"], terms["smooth"] = l1, edge, smooth
        if want.get("global_vgg", 0):  # Eq. 6 on the final global warp (VGG blocks, not pyramid levels)
            terms["global_vgg"] = self.vgg(out["W_g"], w_gt)
        if want.get("fused_l1", 0):
            terms["fused_l1"] = F.l1_loss(out["W_f"], w_gt)
        if want.get("fused_vgg", 0):
            terms["fused_vgg"] = self.vgg(out["W_f"], w_gt)
        if want.get("local_l1", 0):
            r = self.config["warp"].get("mask_radius")
            r = default_radius(ws[0]) if r is None else float(r) * ws[0] / self.size[0]
            m_l = landmark_union_mask(_scale_xy(lm["xy_p"], self.size, ws), lm["attr_p"] >= 1, size=ws,
                                      radius=r).to(w_gt)
            terms["local_l1"] = ((out["W_l"] - w_gt).abs() * m_l).sum() / (3 * m_l.sum()).clamp(min=1)
        for k in want:
            terms.setdefault(k, out["W_g"].sum() * 0)
        return terms

    def _gen_inputs(self, nets, batch):
        garment = self._garment(batch)
        person = self.other_person(batch)
        with torch.no_grad():
            if self.config["stages"]["gen"].get("landmarks", "predicted") == "gt":
                lm = self._gt_lm(batch)
            else:
                lm = self.predict_landmarks(nets, garment, person)
            warps = self.warp(nets, garment, person, lm)
        return person, warps, lm

    def _gen_losses(self, stage, nets, batch):
        person, warps, lm = self._gen_inputs(nets, batch)
        fake = self.generate(nets, person, warps, lm)
        real = batch["person"]
        cond = self.code_maps(lm["xy_p"], lm["attr_p"], "person", self.size)
        disc = nets["disc"]
        bare = getattr(disc, "module", disc)  # DDP: G's terms go through the unwrapped D with detached weights
        frozen = {k: v.detach() for k, v in bare.named_parameters()}
        frozen.update(dict(bare.named_buffers()))
        d_fake_g = torch.func.functional_call(bare, frozen, (torch.cat([cond, fake], 1),))
        d_real_g = torch.func.functional_call(bare, frozen, (torch.cat([cond, real], 1),))
        terms = {"gen_adv": hinge_g(d_fake_g), "gen_fm": feature_matching(d_real_g, d_fake_g),
                 "disc": hinge_d(disc(torch.cat([cond, real], 1)), disc(torch.cat([cond, fake.detach()], 1)))}
        terms["gen_vgg"] = self.vgg(fake, real) if self.vgg is not None else fake.sum() * 0
        terms["gen_l1"] = F.l1_loss(fake, real)
        return terms

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def render(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any],
               edit: Optional[Mapping[str, torch.Tensor]] = None) -> dict:
        """The inference chain with every intermediate. ``edit``: replacement landmarks (``xy_p`` N x K x 2,
        ``attr_p``, ``xy_g``, ``attr_g``; any subset) applied after prediction (landmark editing, Fig. 10)."""
        garment = self._garment(batch)
        person = batch["person"]
        lm = self.predict_landmarks(nets, garment, person)
        if edit:
            lm.update({k: v.to(lm[k].device) for k, v in edit.items() if k in lm})
        warps = self.warp(nets, garment, person, lm)
        out = {"landmarks": lm, "warps": warps}
        if "gen" in nets:
            out["tryon"] = self.generate(nets, person, warps, lm).clamp(-1, 1)
        return out

    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        r = self.render(nets, batch)
        lm = r["landmarks"]
        out = {"warped_garment": r["warps"]["W_f"].clamp(-1, 1),
               "landmarks": torch.stack([torch.cat([lm["xy_g"], lm["attr_g"][..., None].float()], -1),
                                         torch.cat([lm["xy_p"], lm["attr_p"][..., None].float()], -1)], 1)}
        if "tryon" in r:
            out["tryon"] = r["tryon"]
        return out

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"tryon": batch["person"]}

    # ------------------------------------------------------------------ stage metric
    @torch.no_grad()
    def landmark_accuracy(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict:
        """PCK@0.05/0.1, NME (``annotate.landmarks.metrics.localisation``) and attribute accuracy of the
        predicted landmarks against the ground truth, per side (person side evaluated on P_o)."""
        from annotate.landmarks.metrics import localisation

        lm = self.predict_landmarks(nets, self._garment(batch), self.other_person(batch))
        out = {}
        for side, s in (("garment", "g"), ("person", "p")):
            xy, attr = self.gt_landmarks(batch, side)
            if side == "garment":
                attr = (attr >= 1).long()
            pred = lm[f"xy_{s}"].clone()
            pred[lm[f"attr_{s}"] == 0] = float("nan")
            gxy = xy.clone().float()
            gxy[attr == 0] = float("nan")
            loc = localisation(gxy.cpu().numpy(), attr.cpu().numpy(), pred.cpu().numpy())
            loc["attr_acc"] = float((lm[f"attr_{s}"] == attr).float().mean())
            out[side] = loc
        return out


def evaluate_saved_landmarks(out_dir, dataset: str, manifest: Optional[str], size, sides=("garment", "person")) -> dict:
    """PCK@0.05 / 0.1, NME and attribute accuracy (``annotate.landmarks.metrics.localisation``) of the landmarks
    an inference run saved (``<out_dir>/landmarks/<key>.npy``) against the manifest's SAL-HG ground truth.

    ``out_dir``: ``<run>/eval/<dataset>-<split>-<setting>``; evaluate the person side on the paired setting only
    (there the person wears the garment, so the truth of ``L_p`` is the person's own landmarks)."""
    import numpy as np
    import pandas as pd

    from annotate.landmarks.metrics import localisation
    from bench.harness.infer import key_of
    from bench.models.salvton_teacher import landmark_lookup
    from vtondata.manifest import open_manifest

    out_dir = Path(out_dir)
    lookup = landmark_lookup(dataset, manifest, size)
    m = open_manifest(dataset, Path(manifest) if manifest else None)
    tuples = m.tuples
    by_key = {key_of(str(t)): (str(p), str(g)) for t, p, g in zip(tuples["tuple_id"], tuples["person"], tuples["garment"])
              if not (pd.isna(p) or pd.isna(g))}
    res = {}
    for si, side in enumerate(("garment", "person")):
        if side not in sides:
            continue
        gxy, ga, pxy, pa = [], [], [], []
        for f in sorted((out_dir / "landmarks").glob("*.npy")):
            ids = by_key.get(f.stem)
            got = lookup.get((ids[1] if side == "garment" else ids[0], side)) if ids else None
            if got is None:
                continue
            pred = np.load(f)[si]
            xy, attr = got[0].numpy().astype(np.float64), got[1].numpy()
            if side == "garment":
                attr = (attr >= 1).astype(np.int64)
            gxy.append(np.where(attr[:, None] > 0, xy, np.nan))
            ga.append(attr)
            pxy.append(np.where(pred[:, 2:3] > 0, pred[:, :2], np.nan))
            pa.append(pred[:, 2].astype(np.int64))
        if not gxy:
            continue
        loc = localisation(np.stack(gxy), np.stack(ga), np.stack(pxy))
        loc["attr_acc"] = float((np.stack(pa) == np.stack(ga)).mean())
        loc["n_images"] = len(gxy)
        res[side] = loc
    return res
