"""SAL-VTON data preparation: stage 0 (the parser-based teacher's ``P_o``) and the landmark ground truth.

Not a model module (no JSON spec beside it); :meth:`bench.models.salvton.SALVTON.prepare` calls it.

:func:`synthesise` -- stage 0. The teacher is a registered bench model (``config.teacher.model``, with
``variant`` and ``--set``-style ``overrides``). It is trained through the harness with ``--resume`` semantics,
so an existing finished teacher run (same model, variant, config, data, profile, seed) is reused; its run
directory lies under ``$VTONDATA_HOME/runs`` like any other. Then every tuple of the SAL training split is
re-dressed: person ``i`` with the garment fields of tuple ``perm[i]``, ``perm`` a seeded derangement (the
random other training garment, as PF-AFN; ASSUMED), rendered by the teacher's ``infer`` through the harness's
inference writer. Cache: ``<SAL run>/teacher/<teacher config hash>-<teacher checkpoint digest>/tryon/<key>.png``
(key = the tuple id without ``split/setting/``), complete when its ``done.json`` names the same digest and
seed; a new teacher checkpoint gives a new directory. The PNGs are at the teacher's size and resized to SAL's.

:func:`landmark_lookup` -- SAL-HG ground truth from the manifest's ``landmarks`` table (``vtondata landmarks
convert``): ``{(sample_id, side): (xy K x 2 float32 at the model size, attribute K int64)}``; absent points
have attribute 0 and coordinates (0, 0). The loader's ``landmark_maps`` cache carries heatmaps only (no
occluded / visible attribute), so the table is read directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from vtondata.errors import VtonDataError


def landmark_lookup(dataset: str, manifest: Optional[str], size, num_points: int = 32) -> dict:
    from vtondata.manifest import open_manifest

    m = open_manifest(dataset, Path(manifest) if manifest else None)
    if not m.has_table("landmarks"):
        raise VtonDataError(f"dataset {dataset!r} has no landmarks table; SAL-VTON trains on SAL-HG landmarks",
                            fix="vtondata landmarks convert <SAL-HG annotations> --dataset " + dataset
                                + " (for generated data: the fixture's .vtondata-fixture/landmarks.csv)")
    lm = m.table("landmarks")
    if "scheme" in lm.columns:
        lm = lm[lm["scheme"] == "sal32"]
    a = m.assets.set_index("asset_id")
    h, w = int(size[0]), int(size[1])
    out = {}
    for (aid, side), g in lm.groupby(["asset_id", "side"], sort=False):
        if aid not in a.index:
            continue
        row = a.loc[aid]
        w0, h0 = float(row["width"]), float(row["height"])
        xy = np.zeros((num_points, 2), np.float32)
        attr = np.zeros(num_points, np.int64)
        pts = g["point"].to_numpy().astype(np.int64)
        keep = (pts >= 0) & (pts < num_points)
        vals = g[["x", "y"]].to_numpy(np.float64)[keep]
        at = g["attribute"].to_numpy().astype(np.int64)[keep]
        ok = np.isfinite(vals).all(1) & (at > 0)
        xy[pts[keep][ok]] = (vals[ok] * [w / w0, h / h0]).astype(np.float32)
        attr[pts[keep][ok]] = at[ok]
        out[(str(row["sample_id"]), str(side))] = (torch.from_numpy(xy), torch.from_numpy(attr))
    return out


def derangement(n: int, seed: int) -> list[int]:
    """A seeded permutation without fixed points (identity for n = 1)."""
    if n < 2:
        return list(range(n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    perm = [0] * n
    for i, j in enumerate(order):
        perm[j] = order[(i + 1) % n]
    return perm


class OtherGarment(Dataset):
    """Item ``i`` of ``ds`` with its garment-side fields taken from item ``perm[i]``."""

    def __init__(self, ds, perm: list[int], garment_fields: list[str]):
        self.ds, self.perm, self.fields = ds, perm, garment_fields

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        item = dict(self.ds[i])
        other = self.ds[self.perm[i]]
        for f in self.fields:
            item[f] = other[f]
        item["garment_id"] = other.get("garment_id", item.get("garment_id"))
        return item


def synthesise(model, env) -> Path:
    """Train (or reuse) the teacher and write ``P_o`` for every training tuple; returns the cache directory."""
    from bench.harness import checkpoint as ckpt
    from bench.harness import registry as reg
    from bench.harness.data import open_dataset
    from bench.harness.infer import is_done, run_inference
    from bench.harness.run import Request, _file_digest, execute, plan
    from vtondata.loader import field_spec

    t = model.config["teacher"]
    req = Request(model=t["model"], variant=t.get("variant"), dataset=env.dataset, profile=env.profile,
                  seed=env.seed, manifest=env.manifest, overrides=list(t.get("overrides", [])), resume=True,
                  until="train", device=str(env.ctx.device))
    p = plan(req, env.dataset)
    env.log(f"stage 0: teacher {t['model']} ({p.variant}) -> {p.run_dir}")
    execute(p, env.ctx, env.log)
    last = p.run_dir / "checkpoints" / "last.pt"
    digest = _file_digest(last)
    out_dir = Path(env.run_dir) / "teacher" / f"{p.config_hash}-{digest}"
    teacher = reg.get_model(t["model"])(p.config)
    inp = teacher.inputs("eval", "paired")
    ds = open_dataset(env.dataset, env.split, "paired", inp.fields, teacher.size, inp.label_space, env.manifest)
    stamp = f"{digest}-seed{env.seed}"
    if is_done(out_dir, len(ds), stamp):
        env.log(f"stage 0: P_o cache complete ({len(ds)} images) in {out_dir}")
        return out_dir
    nets = teacher.build()
    state = ckpt.load(last)
    for k, sd in state["nets"].items():
        nets[k].load_state_dict(sd)
    nets = {k: v.to(env.ctx.device).eval() for k, v in nets.items()}
    teacher.device = env.ctx.device
    garment_fields = [f for f in inp.fields if field_spec(f)[1] == "garment"]
    other = OtherGarment(ds, derangement(len(ds), env.seed), garment_fields)
    eval_cfg = p.config.get("eval", {})
    run_inference(teacher, nets, other, out_dir, env.ctx, int(eval_cfg.get("batch_size", 8)), 0, stamp,
                  progress=False)
    env.log(f"stage 0: synthesised P_o for {len(ds)} training tuples -> {out_dir}")
    return out_dir
