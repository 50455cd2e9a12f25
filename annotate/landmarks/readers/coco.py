"""COCO keypoints JSON (``images``, ``annotations``, ``categories``), one category per side.

A category's ``name`` gives the side (``garment`` / ``person``; ``cloth``, ``shop``, ``user`` accepted) and
its ``supercategory`` the scheme when it names one (else the keypoint count decides). Visibility ``v`` maps
to our attribute through the scheme (garment v>0 -> present; person v -> 0/1/2); an annotation that
carries our extension list ``attributes`` (K codes) keeps those exactly. ``score`` is kept if present.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from vtondata.errors import PoseFormatError

from ..definition import definition_names, load_definition, scheme_for_point_count
from .base import Reader, RecordBuilder, bad_side_message, read_head, register, side_word

_COCO_KEYS = ('"images"', '"annotations"', '"categories"', '"info"', '"licenses"')


def load_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PoseFormatError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=path, line=exc.lineno,
                              fix="repair or re-export the file") from None


@register
class CocoReader(Reader):
    name = "coco"
    description = "COCO keypoints JSON: one category per side (garment, person), keypoints [x, y, v] x K"
    priority = 20

    def sniff(self, path: Path) -> bool:
        if not (path.is_file() and path.suffix.lower() == ".json"):
            return False
        head = read_head(path)
        return head.lstrip().startswith("{") and any(k in head for k in _COCO_KEYS) and '"item1"' not in head

    def read(self, path: Path, *, scheme: Optional[str] = None) -> pd.DataFrame:
        data = load_json(path)
        if not isinstance(data, dict) or "annotations" not in data:
            raise PoseFormatError("not a COCO keypoints file: no 'annotations' list", file=path,
                                  fix="use --from with the right format")
        images = {im["id"]: im for im in data.get("images", [])}
        cats = {}
        for c in data.get("categories", []):
            side = side_word(c.get("name"))
            if side is None:
                raise PoseFormatError(f"category {c.get('id')}: {bad_side_message(c.get('name'))}", file=path,
                                      fix="name the categories 'garment' and 'person'")
            sc = c.get("supercategory")
            sc = sc if sc in definition_names() else (scheme or (scheme_for_point_count(len(c["keypoints"]))
                                                                  if c.get("keypoints") else None))
            cats[c["id"]] = (side, sc)
        b = RecordBuilder(str(path))
        lut_cache = {}
        for a in data["annotations"]:
            rec = f"annotation id {a.get('id')}"
            if a.get("image_id") not in images:
                raise PoseFormatError(f"{rec}: image_id {a.get('image_id')!r} is not in 'images'", file=path,
                                      fix="add the image entry or drop the annotation")
            if a.get("category_id") not in cats:
                raise PoseFormatError(f"{rec}: category_id {a.get('category_id')!r} is not in 'categories'",
                                      file=path, fix="add the category (garment / person)")
            im = images[a["image_id"]]
            side, sc = cats[a["category_id"]]
            kp = np.asarray(a.get("keypoints", []), dtype=np.float64)
            n = len(kp) // 3
            sc = sc or scheme or scheme_for_point_count(n)
            kp = kp[: 3 * n].reshape(n, 3)
            if "attributes" in a:
                attr = np.asarray(a["attributes"], dtype=np.float64)[:n]
                attr = np.where(np.isfinite(attr), attr, -1).astype(np.int64)
                if len(attr) < n:
                    attr = np.concatenate([attr, -np.ones(n - len(attr), np.int64)])
            else:
                key = (sc, side)
                if key not in lut_cache:
                    lut_cache[key] = load_definition(sc).side(side).lut_from_coco()
                v = kp[:, 2].astype(np.int64)
                ok = (v >= 0) & (v <= 2)
                attr = np.where(ok, lut_cache[key][np.clip(v, 0, 2)], v)  # bad v stays visible to the checks
            xy = kp[:, :2].copy()
            xy[attr == 0] = np.nan
            b.add(image=im.get("file_name", str(a["image_id"])), side=side, scheme=sc,
                  record=f"{rec} ({im.get('file_name', a['image_id'])})", xy=xy, attribute=attr,
                  width=im.get("width"), height=im.get("height"), score=a.get("score"))
        return b.build()

