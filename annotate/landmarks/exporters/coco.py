"""COCO keypoints JSON writer: one category per (scheme, side), K keypoints, 1-based skeleton.

Each annotation carries ``keypoints`` [x, y, v] x K with v from the scheme's attribute -> COCO map
(absent -> 0 with x = y = 0), ``num_keypoints`` (v > 0), ``bbox`` and ``area`` of the labelled points
(the OKS scale: s^2 = area), and our lossless extension ``attributes`` (the K attribute codes).
pycocotools' ``COCO``/``loadRes``/``COCOeval(iouType="keypoints")`` read it as is.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from ..definition import definition_names, load_definition, scheme_for_point_count
from ..readers.base import side_word
from ..table import to_arrays


def category_key(c: dict) -> Tuple[str, str]:
    """(scheme, side) of a COCO category: supercategory if it names a scheme, else the keypoint count."""
    sc = c.get("supercategory")
    if sc not in definition_names():
        sc = scheme_for_point_count(len(c.get("keypoints", []))) if c.get("keypoints") else "sal32"
    return sc, side_word(c.get("name")) or str(c.get("name"))


def categories(df: pd.DataFrame) -> List[dict]:
    cats = []
    pairs = sorted(set(zip(df["scheme"], df["side"])), key=lambda t: (t[0] != "sal32", t[0], t[1]))
    for i, (scheme, side) in enumerate(pairs, start=1):
        d = load_definition(scheme)
        cats.append({
            "id": i, "name": side, "supercategory": scheme,
            "keypoints": list(d.names),
            "skeleton": [[a + 1, b + 1] for a, b in d.skeleton],
            "attributes": {str(k): v for k, v in d.side(side).attributes.items()},
        })
    return cats


def _coco_records(df: pd.DataFrame):
    """Yield (keys, keypoints (N, K, 3), attr (N, K), bbox (N, 4)) per scheme."""
    for scheme, sub in df.groupby("scheme", sort=True):
        d = load_definition(scheme)
        keys, xy, attr = to_arrays(sub, d)
        v = np.zeros_like(attr)
        for side in ("garment", "person"):
            m = keys["side"].to_numpy() == side
            if m.any():
                lut = d.side(side).lut_to_coco()
                a = attr[m]
                v[m] = np.where((a >= 0) & (a < len(lut)), lut[np.clip(a, 0, len(lut) - 1)], 0)
        lab = v > 0
        xy0 = np.where(lab[..., None] & np.isfinite(xy), xy, 0.0)
        kp = np.concatenate([np.round(xy0, 3), v[..., None].astype(np.float64)], axis=-1)
        any_lab = lab.any(axis=1)
        x0 = np.where(any_lab, np.where(lab, xy0[..., 0], np.inf).min(axis=1), 0.0)
        y0 = np.where(any_lab, np.where(lab, xy0[..., 1], np.inf).min(axis=1), 0.0)
        x1 = np.where(any_lab, np.where(lab, xy0[..., 0], -np.inf).max(axis=1), 0.0)
        y1 = np.where(any_lab, np.where(lab, xy0[..., 1], -np.inf).max(axis=1), 0.0)
        bbox = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
        yield scheme, keys, kp, attr, bbox


def to_coco(df: pd.DataFrame, *, description: str = "vtondata landmarks") -> dict:
    """COCO keypoints dict of a canonical table (complete records; run the checks first)."""
    cats = categories(df)
    cat_id = {(c["supercategory"], c["name"]): c["id"] for c in cats}
    images, annotations = [], []
    image_id: Dict[Tuple[str, str], int] = {}
    for scheme, keys, kp, attr, bbox in _coco_records(df):
        w = keys["width"].to_numpy(np.float64) if "width" in keys.columns else np.full(len(keys), np.nan)
        h = keys["height"].to_numpy(np.float64) if "height" in keys.columns else np.full(len(keys), np.nan)
        score = keys["score"].to_numpy(np.float64) if "score" in keys.columns else None
        kp_l = kp.reshape(len(keys), -1).tolist()
        attr_l = attr.tolist()
        bbox_l = np.round(bbox, 3).tolist()
        nk = (kp[..., 2] > 0).sum(axis=1).tolist()
        for i, (img, side) in enumerate(zip(keys["image"], keys["side"])):
            key = (str(img), side)
            if key not in image_id:
                image_id[key] = len(image_id) + 1
                entry = {"id": image_id[key], "file_name": str(img)}
                if np.isfinite(w[i]):
                    entry["width"], entry["height"] = int(round(w[i])), int(round(h[i]))
                images.append(entry)
            b = bbox_l[i]
            ann = {"id": len(annotations) + 1, "image_id": image_id[key], "category_id": cat_id[(scheme, side)],
                   "keypoints": kp_l[i], "num_keypoints": nk[i], "bbox": b, "area": round(b[2] * b[3], 3),
                   "iscrowd": 0, "attributes": attr_l[i]}
            if score is not None and np.isfinite(score[i]):
                ann["score"] = float(score[i])
            annotations.append(ann)
    return {"info": {"description": description, "version": "1.0"}, "licenses": [],
            "categories": cats, "images": images, "annotations": annotations}


def to_coco_results(pred: pd.DataFrame, gt_coco: dict) -> Tuple[List[dict], int]:
    """COCO results list (``image_id``, ``category_id``, ``keypoints``, ``score``) for the images of
    ``gt_coco``; returns ``(results, n_unmatched_records)``. Score defaults to 1.0."""
    cat_of = {category_key(c): c["id"] for c in gt_coco["categories"]}
    side_of_cat = {c["id"]: category_key(c)[1] for c in gt_coco["categories"]}
    name_of = {im["id"]: im["file_name"] for im in gt_coco["images"]}
    by_name = {(name_of[a["image_id"]], side_of_cat[a["category_id"]]): a["image_id"] for a in gt_coco["annotations"]}
    results, missed = [], 0
    for scheme, keys, kp, attr, _ in _coco_records(pred):
        score = keys["score"].to_numpy(np.float64) if "score" in keys.columns else np.ones(len(keys))
        kp_l = kp.reshape(len(keys), -1).tolist()
        for i, (img, side) in enumerate(zip(keys["image"], keys["side"])):
            iid = by_name.get((str(img), side))
            cid = cat_of.get((scheme, side))
            if iid is None or cid is None:
                missed += 1
                continue
            results.append({"image_id": iid, "category_id": cid, "keypoints": kp_l[i],
                            "score": float(score[i]) if np.isfinite(score[i]) else 1.0,
                            "attributes": attr[i].tolist()})
    return results, missed
