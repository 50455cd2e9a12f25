"""SPG-VTON (Hu et al., TMM 2022, "Semantic Prediction Guidance for Multi-pose Virtual Try-on"; seed 003).

No public code: built from the paper and ``docs/models.md`` section 5. Multi-pose triplets (source person
``I_s`` with parse ``S_s``, target person ``I_t`` with parse ``S_t`` and pose, in-shop clothes ``C`` with mask
``M^C``), images in [-1, 1], at ``H x W`` (256 x 192 in the paper).

Representations (computed on the fly from the loader's fields; channel counts at the paper's setting):

* ``P_t`` 18 binary pose discs of radius 4 px (scaled by H / 256), values {0, 1};
* ``S'_s`` one-hot source parse (20) with hair, face and clothes pixels set to all-zero (ASSUMED encoding);
  ``A_s`` = source face and hair masks (2); ``M^C`` (1);
* ``I_s^{w/o C}`` = source image with the clothes labels set to 0 (grey) (3).

Modules (networks of :mod:`bench.models.blocks.spg_nets`, Table I):

* SPM-1 ``g1``: ``cat(S'_s, A_s, M^C, P_t)`` (41) -> ``Ŝ_t`` (20, softmax); ``d1`` on ``cat(S, S'_s, A_s, M^C, P_t)``
  (61). Losses ``L_adv^s + λ1 L_fl^s + L_recon^s`` (focal on logits, L1 between ``Ŝ_t`` and one-hot ``S_t``).
* SPM-2 ``g2``: ``cat(Ŝ'_t, P_t, C, I_s^{w/o C})`` (44) -> coarse ``I_p`` (3) + clothes mask ``M_p^C`` (1);
  ``d2`` on ``cat(I, Ŝ_t, C, P_t, I_s^{w/o C})`` (47). ``L_adv^p + λ2 (L1(I_p, I_t) + L1(M_p^C, M_t^C) + L_perc^p)``.
* CWM ``gmm1``, ``gmm2`` (:mod:`bench.models.blocks.spg_cwm`): ``C_w = T_θ1(C)``, ``Ĉ = T_θ2(C_w)``,
  ``L_cond = ||C_w - C_t||_1 + ||Ĉ - C||_1`` weighted λ3 (``C_t`` = the target's worn clothes, white elsewhere).
* TSM ``g3``: ``cat(erase(I_p), C_w, P_t)`` (24) -> ``I_r`` (3) + ``𝓜`` (1); ``Î_t = C_w 𝓜 + I_r (1 - 𝓜)``;
  ``λ4 (2 ||Î_t - I_t||_1 + 0.5 ||1 - 𝓜||_1 + L_perc^t) + L_adv^g + L_adv^l + λ5 L_id``; ``dg`` on
  ``cat(Î_t, Ĉ_t, P_t, I_s^{w/o C})`` (27), ``dl`` on ``cat(face, hair, Ĉ_t, P_t, I_s^{w/o C})`` (30), face and hair
  regions from the semantic map; ``L_id`` through SphereFace (:mod:`bench.models.blocks.spg_face`).

Adversarial terms are LSGAN with an R1 penalty on real inputs (ASSUMED weight 10, ``lambdas.gp``); G and D
train in the same step (:func:`bench.models.blocks.spg_losses.frozen_call`). Stage loss weights in the JSON may
name a lambda (``"lambda3"``): they resolve from ``config["lambdas"]``, so Table V/VI variants set one number.

DeepFashion (pairs without garment images): ``garment_source: source_worn`` takes ``C`` / ``M^C`` from the source
person's worn clothes (profiles' ``per_dataset.deepfashion``; train and evaluate with ``--setting pose-transfer``).
The paper's DeepFashion protocol (MPV test clothes on 10,000 unpublished pairs) is rebuilt as the seeded derived
split ``spg-deepfashion`` (:mod:`vtondata.splits_spg`): trained on MPV, tested on DeepFashion pairs wearing MPV
test garments (Table II DeepFashion column; the pairs are ours, not the paper's).

Outputs: ``tryon`` (Î_t), ``tryon_gt_semantic`` (the same trained networks fed the ground-truth ``S_t`` instead
of ``Ŝ_t``: Table IV "w/ S_t" from the same checkpoint), ``coarse`` (I_p), ``warped_garment`` (C_w).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.harness.model import Inputs, Model, Stage
from bench.harness.registry import register_model
from bench.models.blocks import person as P
from bench.models.blocks import spg_losses as L
from bench.models.blocks.spg_cwm import MaskGMM, warp
from bench.models.blocks.spg_face import face_crops, load_sphereface
from bench.models.blocks.spg_nets import MultiScaleD, SPGGenerator
from bench.models.blocks.vgg import perceptual_loss_for, perceptual_provenance
from vtondata.errors import VtonDataError
from vtondata.labels import label_space

N_POSE = 18

# which network each loss term trains (a term whose network is absent in a variant is dropped)
TERM_NETS = {"s_adv": "g1", "s_focal": "g1", "s_recon": "g1", "d1": "d1", "d1_gp": "d1",
             "p_adv": "g2", "p_recon": "g2", "p_perc": "g2", "cond": "gmm1", "t_recon": "g3", "t_perc": "g3",
             "t_adv_g": "g3", "t_adv_l": "dl", "id": "g3", "d2": "d2", "dg": "dg", "dl": "dl", "d_gp": "d2"}


@register_model
class SPGVTON(Model):
    name = "spgvton"
    spec_file = "spgvton.json"
    outputs = ("tryon", "tryon_gt_semantic", "coarse", "warped_garment")

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        space = label_space(self.config["parse_space"])
        rep = self.config["repr"]
        self.n_labels = len(space.names)
        self.face_ids = [space.id_of(n) for n in rep["face_labels"]]
        self.hair_ids = [space.id_of(n) for n in rep["hair_labels"]]
        self.cloth_ids = [space.id_of(n) for n in rep["cloth_labels"]]
        self.radius = float(rep["pose_radius"]) * self.size[0] / 256.0
        self.vgg = None
        self.face_net = None
        self._prov: dict = {}

    # ------------------------------------------------------------------ declarations
    @property
    def parsing(self) -> bool:
        """True: G1 predicts the 20-class map Ŝ_t; False (``w/o S_t-hat``): a 1-channel body mask M_p^b."""
        return self.config["semantic"] == "parsing"

    @property
    def sem_ch(self) -> int:
        return self.n_labels if self.parsing else 1

    def net_names(self) -> list[str]:
        names = ["g1", "d1", "g2", "d2", "gmm1", "gmm2", "g3", "dg", "dl"]
        if not self.config["cycle"]:
            names.remove("gmm2")
        if not self.config["local_d"]:
            names.remove("dl")
        return names

    def active_terms(self) -> set[str]:
        """Loss terms this variant computes (before zero weights)."""
        terms = set(TERM_NETS)
        if not self.config["local_d"]:
            terms -= {"t_adv_l", "dl"}
        if not self.config["perceptual"]:
            terms -= {"p_perc", "t_perc"}
        return terms

    def stages(self) -> list[Stage]:
        lam = self.config["lambdas"]
        nets, terms = set(self.net_names()), self.active_terms()
        setting = self.config.get("train_setting", "multi-pose")
        out = []
        for name, d in self.config["stages"].items():
            if name.startswith("_") or not d.get("enabled", True):
                continue
            d = dict(d)
            losses = {}
            for k, w in d["losses"].items():
                if k not in terms:
                    continue
                if isinstance(w, str):
                    if w not in lam:
                        raise VtonDataError(f"stage {name!r}: loss {k!r} names unknown weight {w!r}",
                                            fix=f"use a number or one of {sorted(lam)}")
                    w = lam[w]
                losses[k] = float(w)
            d["losses"] = losses
            d["trains"] = [n for n in d["trains"] if n in nets]
            d["uses"] = [n for n in d.get("uses", ()) if n in nets]
            out.append(Stage.from_config(name, d, setting))
        return out

    def inputs(self, purpose: str, setting: str) -> Inputs:
        garment = ("garment", "garment_mask") if self.config["garment_source"] == "dataset" else ()
        return Inputs(fields=("person", "parse", "pose", *garment, "target_person", "target_parse", "target_pose"),
                      label_space=self.config["parse_space"])

    def garment(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """In-shop clothes ``C`` (``N x 3 x H x W``) and mask ``M^C`` (``N x 1 x H x W``): the dataset's garment, or
        with ``garment_source: source_worn`` (DeepFashion pairs, which ship no garment images) the source person's
        worn clothes on white and their parse mask -- a documented stand-in for the paper's MPV test clothes."""
        if self.config["garment_source"] == "dataset":
            return batch["garment"], batch["garment_mask"].float()
        mask = P.region_mask(batch["parse"], self.cloth_ids)
        return P.keep_region(batch["person"], mask, fill=1.0), mask

    def build(self) -> dict[str, nn.Module]:
        h, w = self.size
        g, d, m = self.config["g"], self.config["d"], self.config["gmm"]
        ngf, nb, ndf, sc = int(g["ngf"]), int(g["n_bottleneck"]), int(d["ndf"]), int(d["scales"])
        cond1 = self.n_labels + 2 + 1 + N_POSE  # S'_s, A_s, M^C, P_t
        sem = self.sem_ch
        nets: dict[str, nn.Module] = {
            "g1": SPGGenerator(cond1, sem, ngf, nb),
            "d1": MultiScaleD(sem + cond1, ndf, sc),
            "g2": SPGGenerator(sem + N_POSE + 3 + 3, 4, ngf, nb),
            "d2": MultiScaleD(3 + sem + 3 + N_POSE + 3, ndf, sc),
            "gmm1": MaskGMM(h, w, 1, 1, int(m["ngf"]), int(m["grid_size"]), int(m["downsamplings"])),
            "gmm2": MaskGMM(h, w, 1, 1, int(m["ngf"]), int(m["grid_size"]), int(m["downsamplings"])),
            "g3": SPGGenerator(3 + 3 + N_POSE, 4, ngf, nb),
            "dg": MultiScaleD(3 + 3 + N_POSE + 3, ndf, sc),
            "dl": MultiScaleD(3 + 3 + 3 + N_POSE + 3, ndf, sc),
        }
        return {k: v for k, v in nets.items() if k in self.net_names()}

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        used = set().union(*[{k for k, v in s.losses.items() if v} for s in self.stages()]) if self.stages() else set()
        self.vgg, self.face_net, self._prov = None, None, {}
        self.vgg = perceptual_loss_for(self, device, ("p_perc", "t_perc"))
        self._prov.update(perceptual_provenance(self.vgg))
        if "id" in used:
            f = self.config["face_id"]
            net, prov = load_sphereface(f["weights"], tuple(f["size"]), float(f["width"]))
            self.face_net = net.to(device)
            self._prov["sphereface_identity_loss"] = prov

    def provenance(self) -> dict:
        return dict(self._prov)

    # ------------------------------------------------------------------ stage-1 sharing (lambda sweeps)
    #: config keys that cannot change what stage 1 (G1 / D1) learns, nor the initial weights of any network
    NOT_STAGE1 = ("perceptual", "gmm_mask", "test_semantic", "erase", "face_id", "vgg", "eval", "train", "share_stage1")

    def stage1_signature(self, config: Mapping[str, Any]) -> dict:
        """The part of a config that determines the ``spm`` checkpoint: everything but the later stages, the
        later loss weights (lambda2..lambda5) and the loss / evaluation options of later stages."""
        sig = {k: v for k, v in config.items() if k not in self.NOT_STAGE1 and not k.startswith("_")}
        sig["stages"] = {"spm": config["stages"]["spm"]}
        sig["lambdas"] = {k: v for k, v in config["lambdas"].items() if k in ("lambda1", "gp")}
        return sig

    def prepare(self, env) -> None:
        """Reuse the ``spm`` checkpoint of a finished run whose stage 1 is identical (same stage-1 signature,
        training dataset, split, manifest and seed), e.g. the seven lambda3 values of Table VI share one G1: the
        trainer then resumes after stage 1. Later stages start from the same seeds as an unshared run, so the result
        is the same as training stage 1 again (``share_stage1: false`` turns this off). Every run writes its key
        to ``<run>/stage1_key.json``; a run with the same key and a ``checkpoints/spm.pt`` is a donor."""
        import json
        from pathlib import Path

        from bench.harness import checkpoint as ckpt
        from bench.harness.dist import barrier
        from vtondata.manifest import atomic_write_json

        self.warm_started = False
        run_dir = Path(env.run_dir)
        if not self.config.get("share_stage1", True) or "spm" not in [s.name for s in self.stages()]:
            return
        key = {"signature": self.stage1_signature(self.config), "dataset": env.dataset, "split": env.split,
               "seed": env.seed, "manifest": str(env.manifest) if env.manifest else None}
        text = json.dumps(key, sort_keys=True)
        if env.ctx.main:
            atomic_write_json(run_dir / "stage1_key.json", key)
        if env.resume:
            return
        found = None
        for key_path in sorted(run_dir.parent.parent.glob(f"{self.name}-*/seed*/stage1_key.json")):
            donor = key_path.parent / "checkpoints" / "spm.pt"
            if key_path.parent == run_dir or not donor.exists():
                continue
            if json.dumps(json.loads(key_path.read_text()), sort_keys=True) == text:
                found = donor
                break
        if found is None:
            return
        if env.ctx.main:
            own_hash = json.loads((run_dir / "config.json").read_text())["config_hash"]
            state = ckpt.load(found)
            state.update(stage="spm", stage_index=0, done=True, config_hash=own_hash, shared_from=str(found))
            ckpt.save(run_dir / "checkpoints" / "last.pt", state)
            env.log(f"stage spm: shared with {found.parent.parent.parent.name}/{found.parent.parent.name} "
                    "(identical stage-1 config, data and seed)")
        barrier(env.ctx)
        self.warm_started = True

    # ------------------------------------------------------------------ representations
    def _onehot(self, parse: torch.Tensor) -> torch.Tensor:
        return F.one_hot(parse.long().clamp(0, self.n_labels - 1), self.n_labels).permute(0, 3, 1, 2).float()

    def pose_maps(self, pose: torch.Tensor) -> torch.Tensor:
        h, w = self.size
        return (P.pose_maps(P.to_coco18(pose).float(), h, w, self.radius, "disc") + 1) / 2

    def represent(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """All conditioning tensors of one batch (see the module docstring)."""
        src_parse, tgt_parse = batch["parse"], batch["target_parse"]
        face_s = P.region_mask(src_parse, self.face_ids)
        hair_s = P.region_mask(src_parse, self.hair_ids)
        cloth_s = P.region_mask(src_parse, self.cloth_ids)
        onehot_s = self._onehot(src_parse)
        s_prime = onehot_s * (1 - torch.clamp(face_s + hair_s + cloth_s, 0, 1))
        person_t = batch["target_person"]
        cloth_t = P.region_mask(tgt_parse, self.cloth_ids)
        garment, garment_mask = self.garment(batch)
        r = {
            "s_prime": s_prime, "a_s": torch.cat([face_s, hair_s], 1), "m_c": garment_mask,
            "p_t": self.pose_maps(batch["target_pose"]), "c": garment,
            "i_s_wo_c": batch["person"] * (1 - cloth_s), "i_t": person_t, "labels_t": tgt_parse.long(),
            "m_t_c": cloth_t, "c_t": P.keep_region(person_t, cloth_t, fill=1.0), "c_t_zero": person_t * cloth_t,
            "onehot_t": self._onehot(tgt_parse),
        }
        r["cond1"] = torch.cat([r["s_prime"], r["a_s"], r["m_c"], r["p_t"]], 1)
        r["sem_t"] = r["onehot_t"] if self.parsing else (tgt_parse > 0).unsqueeze(1).float()
        return r

    # ------------------------------------------------------------------ modules
    def spm1(self, g1: nn.Module, r: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits ``N x sem x H x W``, Ŝ_t: softmax over labels, or the sigmoid body mask)."""
        logits = g1(r["cond1"])
        return logits, (torch.softmax(logits, 1) if self.parsing else torch.sigmoid(logits))

    def without_clothes(self, sem: torch.Tensor) -> torch.Tensor:
        """Ŝ'_t: the cloth channels zeroed (the body-mask variant passes M_p^b as it is)."""
        if not self.parsing:
            return sem
        keep = torch.ones(self.n_labels, device=sem.device, dtype=sem.dtype)
        keep[self.cloth_ids] = 0
        return sem * keep.view(1, -1, 1, 1)

    def spm2(self, g2: nn.Module, r, sem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = g2(torch.cat([self.without_clothes(sem), r["p_t"], r["c"], r["i_s_wo_c"]], 1))
        return torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:4])

    def cwm(self, nets: Mapping[str, nn.Module], r, m_p_c: torch.Tensor) -> dict[str, torch.Tensor]:
        guide = r["m_t_c"] if self.config["gmm_mask"] == "ground_truth" else m_p_c
        grid1, _ = nets["gmm1"](guide, r["m_c"])
        out = {"c_w": warp(r["c"], grid1, "border"), "m_w": warp(r["m_c"], grid1, "zeros"), "guide": guide}
        if self.config["cycle"]:
            grid2, _ = nets["gmm2"](r["m_c"], out["m_w"])
            out["c_hat"] = warp(out["c_w"], grid2, "border")
            out["m_hat"] = warp(out["m_w"], grid2, "zeros")
        return out

    def tsm(self, g3: nn.Module, r, coarse: torch.Tensor, c_w: torch.Tensor, erase: bool):
        if erase:
            e = self.config["erase"]
            coarse = L.random_erase(coarse, tuple(e["scale"]), tuple(e["ratio"]))
        out = g3(torch.cat([coarse, c_w, r["p_t"]], 1))
        rendered, comp = torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:4])
        return c_w * comp + rendered * (1 - comp), comp

    def head_masks(self, sem: torch.Tensor, r) -> tuple[torch.Tensor, torch.Tensor]:
        """Face and hair masks ``N x 1 x H x W`` from the semantic map (hard argmax). Body-mask variant: the
        mask above the target neck keypoint is the face region, hair empty (ASSUMED)."""
        if self.parsing:
            lab = sem.argmax(1)
            return P.region_mask(lab, self.face_ids), P.region_mask(lab, self.hair_ids)
        h = sem.shape[-2]
        neck = P.to_coco18(r["pose_t"])[:, 1, 1] if "pose_t" in r else torch.full((sem.shape[0],), h / 5.0)
        rows = torch.arange(h, device=sem.device).view(1, 1, h, 1).float()
        head = (sem > 0.5).float() * (rows < neck.to(sem.device).view(-1, 1, 1, 1)).float()
        return head, torch.zeros_like(head)

    def forward_all(self, nets: Mapping[str, nn.Module], batch, erase: bool, semantic: str = "predicted"):
        r = self.represent(batch)
        r["pose_t"] = batch["target_pose"]
        logits, s_hat = self.spm1(nets["g1"], r)
        sem = r["sem_t"] if semantic == "ground_truth" else s_hat
        coarse, m_p_c = self.spm2(nets["g2"], r, sem)
        w = self.cwm(nets, r, m_p_c)
        tryon, comp = self.tsm(nets["g3"], r, coarse, w["c_w"], erase)
        return {"r": r, "logits": logits, "s_hat": s_hat, "sem": sem, "coarse": coarse, "m_p_c": m_p_c, **w,
                "tryon": tryon, "comp": comp}

    # ------------------------------------------------------------------ losses
    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        want = {k for k, v in stage.losses.items() if v}
        gp = "d1_gp" in want or "d_gp" in want
        t: dict[str, torch.Tensor] = {}
        r = self.represent(batch)
        r["pose_t"] = batch["target_pose"]
        logits, s_hat = self.spm1(nets["g1"], r)
        if want & {"s_adv", "s_focal", "s_recon", "d1", "d1_gp"}:
            if self.parsing:
                t["s_focal"] = L.focal_loss(logits, r["labels_t"], float(self.config["focal_gamma"]))
            else:
                t["s_focal"] = L.binary_focal_loss(logits, r["sem_t"], float(self.config["focal_gamma"]))
            t["s_recon"] = F.l1_loss(s_hat, r["sem_t"])
            t["s_adv"] = L.lsgan_g(L.frozen_call(nets["d1"], torch.cat([s_hat, r["cond1"]], 1)))
            t["d1"], t["d1_gp"] = L.d_terms(nets["d1"], torch.cat([r["sem_t"], r["cond1"]], 1),
                                            torch.cat([s_hat, r["cond1"]], 1), "d1_gp" in want)
        if not want & (set(TERM_NETS) - {"s_adv", "s_focal", "s_recon", "d1", "d1_gp"}):
            return {k: v for k, v in t.items() if k in stage.losses}
        # ---- SPM-2
        coarse, m_p_c = self.spm2(nets["g2"], r, s_hat)
        sem_c = s_hat.detach()
        tail = torch.cat([r["c"], r["p_t"], r["i_s_wo_c"]], 1)
        t["p_recon"] = F.l1_loss(coarse, r["i_t"]) + F.l1_loss(m_p_c, r["m_t_c"])
        if "p_perc" in want:
            t["p_perc"] = self.vgg(coarse, r["i_t"])
        t["p_adv"] = L.lsgan_g(L.frozen_call(nets["d2"], torch.cat([coarse, sem_c, tail], 1)))
        d2, gp2 = L.d_terms(nets["d2"], torch.cat([r["i_t"], sem_c, tail], 1), torch.cat([coarse, sem_c, tail], 1), gp)
        t["d2"] = d2
        # ---- CWM
        w = self.cwm(nets, r, m_p_c)
        if self.config["cycle"]:
            t["cond"] = F.l1_loss(w["c_w"], r["c_t"]) + F.l1_loss(w["c_hat"], r["c"])
        else:  # w/o Cycle: L1(C_w, C_t) + L1(M_w^C, guide mask)
            t["cond"] = F.l1_loss(w["c_w"], r["c_t"]) + F.l1_loss(w["m_w"], w["guide"])
        # ---- TSM
        tryon, comp = self.tsm(nets["g3"], r, coarse, w["c_w"], erase=True)
        t["t_recon"] = 2 * F.l1_loss(tryon, r["i_t"]) + 0.5 * (1 - comp).abs().mean()
        if "t_perc" in want:
            t["t_perc"] = self.vgg(tryon, r["i_t"])
        cloth_fake = w["c_w"] * comp
        ctx = torch.cat([r["p_t"], r["i_s_wo_c"]], 1)
        fake_g = torch.cat([tryon, cloth_fake, ctx], 1)
        real_g = torch.cat([r["i_t"], r["c_t_zero"], ctx], 1)
        t["t_adv_g"] = L.lsgan_g(L.frozen_call(nets["dg"], fake_g))
        dg, gpg = L.d_terms(nets["dg"], real_g, fake_g, gp)
        t["dg"] = dg
        gp_sum = gp2 + gpg
        face, hair = self.head_masks(s_hat.detach(), r)
        if self.config["local_d"]:
            fake_l = torch.cat([tryon * face, tryon * hair, cloth_fake, ctx], 1)
            real_l = torch.cat([r["i_t"] * face, r["i_t"] * hair, r["c_t_zero"], ctx], 1)
            t["t_adv_l"] = L.lsgan_g(L.frozen_call(nets["dl"], fake_l))
            dl, gpl = L.d_terms(nets["dl"], real_l, fake_l, gp)
            t["dl"] = dl
            gp_sum = gp_sum + gpl
        t["d_gp"] = gp_sum
        if "id" in want:
            size = tuple(self.config["face_id"]["size"])
            region = torch.clamp(face + hair, 0, 1)
            fa = self.face_net(face_crops(tryon, region, size))
            fb = self.face_net(face_crops(r["i_t"], region, size))
            t["id"] = (fa - fb.detach()).abs().mean()
        return {k: v for k, v in t.items() if k in stage.losses}

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        semantic = self.config["test_semantic"]
        out = self.forward_all(nets, batch, erase=False, semantic=semantic)
        res = {"tryon": out["tryon"], "coarse": out["coarse"], "warped_garment": out["c_w"]}
        gt = out if semantic == "ground_truth" else self.forward_all(nets, batch, erase=False, semantic="ground_truth")
        res["tryon_gt_semantic"] = gt["tryon"]
        return res

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        person = batch["target_person"]
        cloth = P.region_mask(batch["target_parse"], self.cloth_ids)
        return {"tryon": person, "tryon_gt_semantic": person, "coarse": person,
                "warped_garment": P.keep_region(person, cloth, fill=1.0)}

    def metric_context(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"parse": batch["target_parse"], "pose": P.to_coco18(batch["target_pose"])}
