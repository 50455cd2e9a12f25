"""Landmark metrics for estimators (SAL-VTON stage 1 predicts garment and person landmarks + attributes).

Records are matched by (scheme, image, side). Evaluated points: ground-truth attribute > 0.

* PCK@a: fraction of evaluated points with ||pred - gt|| <= a * D, D = diagonal of the bounding box of
  the record's evaluated ground-truth points (a = 0.05, 0.1). A point the prediction marks absent (no
  coordinates) counts as a miss.
* NME: mean over records of the mean ||pred - gt|| / D over evaluated points with predicted coordinates.
* OKS AP: pycocotools ``COCOeval(iouType="keypoints")`` with the scheme's sigmas
  (``kpt_oks_sigmas``); s^2 = area of the ground-truth landmark box; AP over OKS 0.50:0.05:0.95, AP50, AP75.
* Attribute accuracy: fraction of all K points of matched records whose predicted code equals the truth.

Every figure is given per side and for both sides together.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
import pandas as pd

from vtondata.errors import PoseFormatError, VtonDataError

from .definition import load_definition
from .exporters.coco import category_key, to_coco, to_coco_results
from .readers import detect_format, read_landmarks
from .readers.base import RecordBuilder
from .table import to_arrays

ALPHAS = (0.05, 0.1)


def _matched(gt: pd.DataFrame, pred: pd.DataFrame, scheme: str):
    d = load_definition(scheme)
    gk, gxy, ga = to_arrays(gt[gt["scheme"] == scheme], d)
    pk, pxy, pa = to_arrays(pred[pred["scheme"] == scheme], d)
    pos = {(i, s): n for n, (i, s) in enumerate(zip(pk["image"], pk["side"]))}
    idx = np.array([pos.get((i, s), -1) for i, s in zip(gk["image"], gk["side"])], dtype=np.int64)
    return gk, gxy, ga, pk, pxy, pa, idx


def localisation(gxy: np.ndarray, ga: np.ndarray, pxy: np.ndarray, alphas: Sequence[float] = ALPHAS) -> Dict[str, float]:
    """PCK@alphas and NME for matched arrays: ``gxy``/``pxy`` (N, K, 2), ``ga`` (N, K) ground-truth codes."""
    lab = (ga > 0) & np.isfinite(gxy).all(-1)
    big = np.where(lab[..., None], gxy, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN records: no evaluated point
        lo, hi = np.nanmin(big, axis=1), np.nanmax(big, axis=1)
    diag = np.hypot(*(hi - lo).T)                              # (N,)
    use = lab & (np.isfinite(diag) & (diag > 0))[:, None]
    dist = np.hypot(*(pxy - gxy).transpose(2, 0, 1))            # (N, K), NaN when the prediction has no point
    out = {"n_points": int(use.sum())}
    for a in alphas:
        hit = (dist <= a * diag[:, None]) & use
        out[f"pck@{a:g}"] = float(hit.sum() / use.sum()) if use.any() else float("nan")
    have = use & np.isfinite(dist)
    per_rec = np.where(have, dist / np.where(diag > 0, diag, np.nan)[:, None], 0.0).sum(1) / np.maximum(have.sum(1), 1)
    rec_ok = have.any(1)
    out["nme"] = float(per_rec[rec_ok].mean()) if rec_ok.any() else float("nan")
    out["n_pred_missing"] = int((use & ~np.isfinite(dist)).sum())
    return out


def _coco_gt(gt_coco: dict):
    from pycocotools.coco import COCO

    c = COCO()
    c.dataset = json.loads(json.dumps(gt_coco))
    with contextlib.redirect_stdout(io.StringIO()):
        c.createIndex()
    return c


def oks_ap(gt_coco: dict, results: list, sigmas: np.ndarray, cat_ids: Optional[Sequence[int]] = None) -> Dict[str, float]:
    """COCOeval keypoint AP / AP50 / AP75 / AR with our sigmas; ``results`` in COCO results format."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0, "ar": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        cg = _coco_gt(gt_coco)
        cd = cg.loadRes(json.loads(json.dumps(results)))
        ev = COCOeval(cg, cd, iouType="keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        if cat_ids is not None:
            ev.params.catIds = list(cat_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"ap": float(s[0]), "ap50": float(s[1]), "ap75": float(s[2]), "ar": float(s[5])}


def evaluate(gt: pd.DataFrame, pred: pd.DataFrame, *, gt_coco: Optional[dict] = None,
             results: Optional[list] = None, alphas: Sequence[float] = ALPHAS) -> Dict[str, dict]:
    """All metrics, ``{scheme: {side | "all": {metric: value}}}`` plus record counts.

    ``gt_coco``/``results`` may be passed when the inputs already are COCO (ids kept); else they are
    built from the tables.
    """
    report: Dict[str, dict] = {}
    for scheme in sorted(gt["scheme"].unique()):
        d = load_definition(scheme)
        gk, gxy, ga, pk, pxy, pa, idx = _matched(gt, pred, scheme)
        m = idx >= 0
        pxy_m = np.full_like(gxy, np.nan)
        pa_m = np.full_like(ga, -1)
        pxy_m[m], pa_m[m] = pxy[idx[m]], pa[idx[m]]
        gsub = gt[gt["scheme"] == scheme]
        gc = gt_coco if gt_coco is not None else to_coco(gsub)
        res = results if results is not None else to_coco_results(pred[pred["scheme"] == scheme], gc)[0]
        cats = {k[1]: cid for k, cid in ((category_key(c), c["id"]) for c in gc["categories"]) if k[0] == scheme}
        sc_rep = {}
        for side in ("garment", "person", "all"):
            sel = np.ones(len(gk), bool) if side == "all" else (gk["side"].to_numpy() == side)
            if not sel.any():
                continue
            r = localisation(gxy[sel], ga[sel], pxy_m[sel], alphas)
            r["attribute_accuracy"] = float((pa_m[sel] == ga[sel]).mean())
            r["n_records"] = int(sel.sum())
            r["n_matched"] = int((m & sel).sum())
            ids = list(cats.values()) if side == "all" else [cats[side]] if side in cats else []
            r.update(oks_ap(gc, [x for x in res if x["category_id"] in ids], d.sigmas, ids))
            sc_rep[side] = r
        sc_rep["n_pred_records"] = int(len(pk))
        sc_rep["n_pred_unmatched"] = int(len(pk) - m.sum())
        report[scheme] = sc_rep
    return report


def results_to_table(results: list, gt_coco: dict, source: str = "<results>") -> pd.DataFrame:
    """COCO results list -> canonical table, names and sides taken from ``gt_coco``."""
    images = {im["id"]: im for im in gt_coco["images"]}
    cats = {c["id"]: c for c in gt_coco["categories"]}
    b = RecordBuilder(source)
    for n, r in enumerate(results):
        if r.get("image_id") not in images or r.get("category_id") not in cats:
            raise PoseFormatError(f"result {n}: image_id / category_id not in the ground truth", file=source)
        scheme, side = category_key(cats[r["category_id"]])
        kp = np.asarray(r["keypoints"], np.float64).reshape(-1, 3)
        if "attributes" in r:
            attr = np.asarray(r["attributes"], np.int64)
        else:
            attr = load_definition(scheme).side(side).lut_from_coco()[np.clip(kp[:, 2].astype(int), 0, 2)]
        xy = kp[:, :2].copy()
        xy[attr == 0] = np.nan
        im = images[r["image_id"]]
        b.add(image=im["file_name"], side=side, scheme=scheme, record=f"result {n}", xy=xy, attribute=attr,
              width=im.get("width"), height=im.get("height"), score=r.get("score", 1.0))
    return b.build()


def evaluate_files(gt_path: Union[str, Path], pred_path: Union[str, Path], *, gt_format: Optional[str] = None,
                   pred_format: Optional[str] = None) -> Dict[str, dict]:
    """Read ground truth and predictions in any supported format (predictions may also be a COCO results
    list when the ground truth is COCO) and evaluate."""
    gt_path, pred_path = Path(gt_path), Path(pred_path)
    gfmt = gt_format or detect_format(gt_path)
    gt = read_landmarks(gt_path, gfmt)
    gt_coco = None
    if gfmt == "coco":
        gt_coco = json.loads(gt_path.read_text())
    if pred_path.suffix.lower() == ".json" and pred_path.read_text()[:64].lstrip().startswith("["):
        if gt_coco is None:
            raise VtonDataError("a COCO results list needs COCO ground truth (image ids)", file=pred_path,
                                fix="pass --gt as the COCO keypoints JSON the ids refer to")
        results = json.loads(pred_path.read_text())
        pred = results_to_table(results, gt_coco, str(pred_path))
        return evaluate(gt, pred, gt_coco=gt_coco, results=results)
    pred = read_landmarks(pred_path, pred_format)
    if gt_coco is not None:
        return evaluate(gt, pred, gt_coco=gt_coco)
    return evaluate(gt, pred)
