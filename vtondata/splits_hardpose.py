"""The ``hardpose`` split (3D-GCL's HardPose test set): a deterministic, documented stand-in.

3D-GCL (seed 002 §4) evaluates on 2,406 manually selected hard-pose test pairs of DeepFashion and MPV; the list
is not public. We derive ``hardpose`` from each dataset's *test* tuples and their two COCO-18 poses (source
``pose``, target ``target_pose``, read through :func:`vtondata.loader.load`). Per pose:

* **facing** ``f`` in [-1, 1]: ``(x_Lshoulder - x_Rshoulder) / (frontal_ratio · T)`` clipped (a frontal person's
  left shoulder is on the image right: ``f > 0``; back views ``f < 0``; side views ``|f|`` small), ``T`` = torso
  length (neck to mid-hip; fallback 1.5 x shoulder width). With no face keypoint (nose, eyes) but shoulders
  present the person faces away: ``f = -|f|``. View label: ``side`` if ``|x_L - x_R| / T < side_ratio``, else
  ``front`` / ``back`` by the sign.
* **arm occlusion** in [0, 1], the mean over the two arms of: 1 if the wrist is *crossed* (beyond the body midline
  by ``crossed_margin · T`` on the other arm's side), 0.5 if the wrist or elbow is missing while its shoulder is
  present, 0.5 if the wrist lies inside the torso box, else 0.

Per pair, five components in [0, 1]: ``view`` = ``|f_s - f_t| / 2`` (front <-> back = 1, front <-> side ~ 0.5);
``torso`` = change of the torso-axis angle / (π/2); ``limbs`` = mean change of the 8 limb angles (relative to
the torso axis) / π over limbs present in both poses; ``occlusion`` = max of the two poses' arm occlusion;
``scale`` = ``|log2(T_s / T_t)| / scale_octaves``. ``hardness`` = weighted mean (weights and thresholds:
``vtondata/data/hardpose.json``). Pairs with ``hardness >= min_score`` are ranked by ``(-hardness, tuple_id)``;
the top ``quota`` are kept, ``quota = min(round(2406 · n_paper(ds) / 19108), ceil(n_test · 2406 / 19108))``
where ``n_paper`` is the paper's test-pair count (DeepFashion 8,564, MPV 10,544): the paper's size in proportion
per dataset (1,078 DeepFashion + 1,328 MPV pairs at full size), scaled down for smaller test sets.

Files (``<out>`` = the prepared dataset's directory): ``<out>/splits/hardpose.parquet`` (``tuple_id``, ``rank``,
``hardness``, the components, both view labels, ``source``) -- the loader's derived-split file -- and
``<out>/splits/hardpose_scores.parquet`` (every test pair's score) with ``hardpose_report.json`` (score quantiles
and histogram, quota, threshold, parameters). ``split_file=`` writes an official list instead (one tuple id, or
``source,target`` image names, per line).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .errors import VtonDataError
from .manifest import Manifest, atomic_write_json, open_manifest

SPLIT = "hardpose"
# COCO-18
NOSE, NECK, RSH, REL, RWR, LSH, LEL, LWR, RHIP, RKNE, RANK, LHIP, LKNE, LANK, REYE, LEYE = range(16)
LIMBS = ((RSH, REL), (REL, RWR), (LSH, LEL), (LEL, LWR), (RHIP, RKNE), (RKNE, RANK), (LHIP, LKNE), (LKNE, LANK))
COMPONENTS = ("view", "torso", "limbs", "occlusion", "scale")


def params() -> dict:
    return json.loads(resources.files("vtondata").joinpath("data/hardpose.json").read_text())


@dataclass
class PoseInfo:
    facing: float
    view: str
    torso_len: float
    torso_angle: float
    limb_angles: np.ndarray  # 8 angles (nan = missing), relative to the torso axis
    occlusion: float


def _wrap(a):
    return np.abs((a + np.pi) % (2 * np.pi) - np.pi)


def analyse_pose(kp: np.ndarray, th: Optional[dict] = None) -> Optional[PoseInfo]:
    """``kp`` ``18 x 3`` (x, y, confidence; missing = 0) -> :class:`PoseInfo`, or None without shoulders."""
    th = th or params()["thresholds"]
    kp = np.asarray(kp, np.float64)
    ok = (kp[:, 2] > th["min_confidence"]) & (kp[:, 0] > 1) & (kp[:, 1] > 1)
    if not (ok[RSH] and ok[LSH]):
        return None
    xy = kp[:, :2]
    sh_w = float(np.linalg.norm(xy[LSH] - xy[RSH]))
    neck = xy[NECK] if ok[NECK] else (xy[LSH] + xy[RSH]) / 2
    hips = [xy[i] for i in (RHIP, LHIP) if ok[i]]
    if hips:
        mid_hip = np.mean(hips, 0)
        T = float(np.linalg.norm(mid_hip - neck))
    else:
        mid_hip, T = None, 0.0
    if T < 1e-6:
        T = max(1.5 * sh_w, 1.0)
        mid_hip = neck + np.array([0.0, T])
    dx = xy[LSH, 0] - xy[RSH, 0]
    facing = float(np.clip(dx / (th["frontal_ratio"] * T), -1, 1))
    if not (ok[NOSE] or ok[REYE] or ok[LEYE]):
        facing = -abs(facing)
    ratio = abs(dx) / T
    view = "side" if ratio < th["side_ratio"] else ("front" if facing > 0 else "back")
    axis = mid_hip - neck
    torso_angle = math.atan2(axis[1], axis[0])
    limbs = np.full(len(LIMBS), np.nan)
    for i, (a, b) in enumerate(LIMBS):
        if ok[a] and ok[b]:
            v = xy[b] - xy[a]
            limbs[i] = math.atan2(v[1], v[0]) - torso_angle
    # arm occlusion
    mid_x = neck[0]
    occ = []
    for sh, el, wr in ((RSH, REL, RWR), (LSH, LEL, LWR)):
        s = 0.0
        if not (ok[el] and ok[wr]):
            s = 0.5
        else:
            side = np.sign(xy[sh, 0] - mid_x)
            if side != 0 and np.sign(xy[wr, 0] - mid_x) == -side and abs(xy[wr, 0] - mid_x) > th["crossed_margin"] * T:
                s = 1.0
            else:
                x_lo, x_hi = sorted((xy[RSH, 0], xy[LSH, 0]))
                if x_lo < xy[wr, 0] < x_hi and neck[1] < xy[wr, 1] < mid_hip[1]:
                    s = 0.5
        occ.append(s)
    return PoseInfo(facing, view, T, torso_angle, limbs, float(np.mean(occ)))


def pair_components(src: np.ndarray, tgt: np.ndarray, p: Optional[dict] = None) -> Optional[dict]:
    """The five components, ``hardness`` and both view labels of a (source, target) pose pair (None: no shoulders)."""
    p = p or params()
    th = p["thresholds"]
    a, b = analyse_pose(src, th), analyse_pose(tgt, th)
    if a is None or b is None:
        return None
    both = ~np.isnan(a.limb_angles) & ~np.isnan(b.limb_angles)
    limbs = float(np.mean(_wrap(a.limb_angles[both] - b.limb_angles[both])) / np.pi) if both.any() else 0.0
    comp = {
        "view": abs(a.facing - b.facing) / 2,
        "torso": float(min(1.0, _wrap(a.torso_angle - b.torso_angle) / (np.pi / 2))),
        "limbs": limbs,
        "occlusion": max(a.occlusion, b.occlusion),
        "scale": float(min(1.0, abs(math.log2(a.torso_len / b.torso_len)) / th["scale_octaves"])),
    }
    w = {k: float(p["weights"][k]) for k in COMPONENTS}
    comp["hardness"] = sum(w[k] * comp[k] for k in COMPONENTS) / sum(w.values())
    comp["view_source"], comp["view_target"] = a.view, b.view
    return comp


def quota(dataset: str, n_test: int, p: Optional[dict] = None) -> int:
    p = p or params()
    paper = p["paper"]
    total = sum(paper["test_pairs"].values())
    share = paper["test_pairs"].get(dataset)
    if share is None:
        raise VtonDataError(f"hardpose is defined for {sorted(paper['test_pairs'])}, not {dataset!r}",
                            fix="use --dataset deepfashion or --dataset mpv")
    return int(min(round(paper["pairs"] * share / total), math.ceil(n_test * paper["pairs"] / total)))


def _test_settings(m: Manifest) -> list[str]:
    t = m.tuples
    return sorted(set(t[(t["split"] == "test") & t["target_person"].notna()]["setting"]))


def score_pairs(m: Manifest, p: Optional[dict] = None) -> pd.DataFrame:
    """Every test pair with both poses: ``tuple_id``, the components, ``hardness``, view labels."""
    from .loader import load

    p = p or params()
    rows = []
    settings = _test_settings(m)
    if not settings:
        raise VtonDataError(f"{m.dataset}: no test pairs with a target person", file=m.dir / "tuples.parquet",
                            fix="hardpose needs the pose-transfer / multi-pose test tuples")
    for setting in settings:
        ds = load(None, "test", setting=setting, fields=("pose", "target_pose"), manifest=m.dir)
        for i in range(len(ds)):
            item = ds[i]
            c = pair_components(item["pose"].numpy(), item["target_pose"].numpy(), p)
            if c is None:
                c = {k: np.nan for k in (*COMPONENTS, "hardness")} | {"view_source": "", "view_target": ""}
            rows.append({"tuple_id": item["tuple_id"], **c})
    return pd.DataFrame(rows)


def select(scores: pd.DataFrame, dataset: str, p: Optional[dict] = None) -> pd.DataFrame:
    """The top pairs by ``(-hardness, tuple_id)`` with ``hardness >= min_score``, at most :func:`quota`."""
    p = p or params()
    k = quota(dataset, len(scores), p)
    ok = scores[scores["hardness"].notna() & (scores["hardness"] >= p["thresholds"]["min_score"])]
    ranked = ok.sort_values(["hardness", "tuple_id"], ascending=[False, True], kind="stable").head(k).copy()
    ranked.insert(1, "rank", np.arange(1, len(ranked) + 1))
    ranked["source"] = "vtondata hardness score"
    return ranked.reset_index(drop=True)


def _report(scores: pd.DataFrame, sel: pd.DataFrame, dataset: str, p: dict) -> dict:
    h = scores["hardness"].dropna().to_numpy()
    hist, edges = np.histogram(h, bins=10, range=(0.0, 1.0)) if len(h) else (np.zeros(10, int), np.linspace(0, 1, 11))
    q = {f"q{int(x * 100)}": float(np.quantile(h, x)) for x in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)} if len(h) else {}
    return {"split": SPLIT, "dataset": dataset, "n_test_pairs": int(len(scores)), "n_scored": int(len(h)),
            "quota": quota(dataset, len(scores), p), "n_selected": int(len(sel)),
            "min_selected_hardness": float(sel["hardness"].min()) if len(sel) else None,
            "quantiles": q, "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": hist.tolist()},
            "views_selected": {f"{a}->{b}": int(n) for (a, b), n in
                               sel.groupby(["view_source", "view_target"]).size().items()} if len(sel) else {},
            "params": p}


def _read_split_file(m: Manifest, path: Path) -> pd.DataFrame:
    """An official list: tuple ids, or ``source,target`` image names / stems (header lines ignored)."""
    t = m.tuples
    t = t[t["target_person"].notna()]
    by_id = set(t["tuple_id"])
    stem = lambda s: Path(str(s)).stem.split("/")[-1]  # noqa: E731
    by_pair = {(stem(a), stem(b)): tid for a, b, tid in zip(t["person"], t["target_person"], t["tuple_id"])}
    keep, missing = [], []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line in by_id:
            keep.append(line)
            continue
        parts = [x.strip() for x in line.replace("\t", ",").split(",") if x.strip()]
        if len(parts) >= 2 and (stem(parts[0]), stem(parts[1])) in by_pair:
            keep.append(by_pair[(stem(parts[0]), stem(parts[1]))])
        elif parts and parts[0].lower() not in ("from", "source", "tuple_id"):
            missing.append(f"line {n}: {line}")
    if missing:
        raise VtonDataError(f"{len(missing)} entr(y/ies) of the split file match no pair of {m.dataset}, e.g. "
                            f"{missing[0]}", file=path, fix="list tuple ids or 'source,target' image names")
    keep = list(dict.fromkeys(keep))
    return pd.DataFrame({"tuple_id": keep, "rank": np.arange(1, len(keep) + 1), "source": f"file {Path(path).name}"})


@dataclass
class SplitResult:
    path: Path
    n_selected: int
    n_test_pairs: int
    report: Optional[dict]


def _write(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def make(dataset: Optional[str] = None, manifest_dir: Optional[Path] = None,
         split_file: Optional[Path] = None) -> SplitResult:
    """Write ``<out>/splits/hardpose.parquet`` (and the scores / report) for one prepared dataset."""
    m = open_manifest(dataset, manifest_dir)
    out = m.out / "splits"
    out.mkdir(parents=True, exist_ok=True)
    if split_file is not None:
        sel = _read_split_file(m, Path(split_file))
        _write(sel, out / f"{SPLIT}.parquet")
        return SplitResult(out / f"{SPLIT}.parquet", len(sel), len(sel), None)
    p = params()
    scores = score_pairs(m, p)
    sel = select(scores, m.dataset, p)
    _write(scores, out / f"{SPLIT}_scores.parquet")
    report = _report(scores, sel, m.dataset, p)
    atomic_write_json(out / f"{SPLIT}_report.json", report)
    _write(sel, out / f"{SPLIT}.parquet")
    return SplitResult(out / f"{SPLIT}.parquet", len(sel), len(scores), report)


def ensure(dataset: Optional[str], split: str, manifest_dir: Optional[Path] = None) -> Optional[SplitResult]:
    """Make the hardpose split of a prepared dataset if it does not exist yet (``vtondata bench --split hardpose``)."""
    if split != SPLIT:
        return None
    m = open_manifest(dataset, manifest_dir)
    if (m.out / "splits" / f"{SPLIT}.parquet").exists() or SPLIT in set(m.tuples["split"]):
        return None
    return make(dataset, manifest_dir)
