"""Landmark editing (SAL-VTON Fig. 10): re-render one try-on from manipulated landmarks.

``vtondata bench edit-landmarks --model salvton --dataset viton --edits FILE --out edit.png`` loads the finished
run of the request (same resolution as ``vtondata bench``: model, variant, dataset, profile, seed, ``--set``),
predicts the landmarks of one evaluation tuple, applies the edits and renders both results.

Edits file (JSON)::

    {"tuple": "00006_00__00017_00",            # tuple key (as the output PNG names) or full tuple id
     "person":  {"10": [30.0, 41.5],            # point -> new (x, y) in pixels of the model's frame (H x W)
                 "12": {"xy": [28, 40], "attribute": 2}},
     "garment": {"3": {"attribute": 0}}}        # attribute only: garment 0/1, person 0/1/2

Writes ``out`` (PNG: person | garment | try-on | edited try-on, side by side) and ``out`` with suffix
``.json`` (landmarks before and after, per side: ``xy`` N x 2 and ``attribute``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from vtondata.errors import VtonDataError


def apply_edits(lm: dict, edits: dict) -> dict:
    """Landmarks after the edits (``lm``: ``xy_g``, ``attr_g``, ``xy_p``, ``attr_p``, batch of one)."""
    out = {k: v.clone() for k, v in lm.items()}
    for side, s in (("person", "p"), ("garment", "g")):
        for point, change in (edits.get(side) or {}).items():
            k = int(point)
            if not 0 <= k < out[f"xy_{s}"].shape[1]:
                raise VtonDataError(f"edit of {side} point {k}: no such landmark", fix="use points 0..31")
            if isinstance(change, (list, tuple)):
                change = {"xy": change}
            if "xy" in change:
                out[f"xy_{s}"][:, k] = torch.tensor([float(v) for v in change["xy"]])
                if "attribute" not in change and int(out[f"attr_{s}"][0, k]) == 0:
                    change = dict(change, attribute=2 if s == "p" else 1)  # a moved point is drawn
            if "attribute" in change:
                out[f"attr_{s}"][:, k] = int(change["attribute"])
    return out


def _png(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def edit_landmarks(model: str, edits: Path, out: Path, *, variant: Optional[str] = None,
                   dataset: Optional[str] = None, split: str = "test", setting: str = "paired",
                   profile: Optional[str] = None, seed: int = 0, device: Optional[str] = None,
                   manifest: Optional[str] = None, overrides=()) -> Path:
    from bench.harness import checkpoint as ckpt
    from bench.harness import registry as reg
    from bench.harness.data import open_dataset
    from bench.harness.infer import key_of
    from bench.harness.run import Request, datasets_for, plan

    req = Request(model=model, variant=variant, dataset=dataset, split=split, profile=profile, seed=seed,
                  device=device, manifest=manifest, overrides=list(overrides))
    ds_name = datasets_for(req)[0]
    p = plan(req, ds_name)
    m = reg.get_model(model)(p.config)
    if not hasattr(m, "render"):
        raise VtonDataError(f"model {model!r} has no landmark-driven renderer", fix="use --model salvton")
    state = ckpt.load(p.run_dir / "checkpoints" / "last.pt")
    dev = torch.device(device or "cpu")
    nets = m.build()
    for k, sd in state["nets"].items():
        nets[k].load_state_dict(sd)
    nets = {k: v.to(dev).eval() for k, v in nets.items()}
    spec = json.loads(Path(edits).read_text())
    inp = m.inputs("eval", setting)
    ds = open_dataset(ds_name, split, setting, inp.fields, m.size, inp.label_space, manifest)
    want = str(spec.get("tuple", ""))
    idx = [i for i, it in enumerate(ds.items) if want in (it["tuple_id"], key_of(it["tuple_id"]))]
    if not idx:
        raise VtonDataError(f"tuple {want!r} is not in {ds_name} {split} / {setting}", file=edits,
                            fix="name a tuple key as the output PNGs of the run do")
    batch = torch.utils.data.default_collate([ds[idx[0]]])
    batch = {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    before = m.render(nets, batch)
    lm = apply_edits({k: v.cpu() for k, v in before["landmarks"].items()}, spec)
    after = m.render(nets, batch, lm)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    row = [batch["person"][0], batch["garment"][0], before["tryon"][0], after["tryon"][0]]
    Image.fromarray(np.concatenate([_png(x) for x in row], 1)).save(out)
    dump = {name: {side: {"xy": r["landmarks"][f"xy_{s}"][0].tolist(), "attribute": r["landmarks"][f"attr_{s}"][0].tolist()}
                   for side, s in (("person", "p"), ("garment", "g"))}
            for name, r in (("before", before), ("after", after))}
    out.with_suffix(".json").write_text(json.dumps({"tuple": ds.items[idx[0]]["tuple_id"], "run": str(p.run_dir),
                                                    **dump}, indent=1))
    return out
