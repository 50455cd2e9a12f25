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
from ..table import from_arrays
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
        # pass 1 (Python, cheap): validate ids and group annotations by (keypoint count, scheme)
        groups = {}
        for a in data["annotations"]:
            rec = f"annotation id {a.get('id')}"
            if a.get("image_id") not in images:
                raise PoseFormatError(f"{rec}: image_id {a.get('image_id')!r} is not in 'images'", file=path,
                                      fix="add the image entry or drop the annotation")
            if a.get("category_id") not in cats:
                raise PoseFormatError(f"{rec}: category_id {a.get('category_id')!r} is not in 'categories'",
                                      file=path, fix="add the category (garment / person)")
            n = len(a.get("keypoints", [])) // 3
            sc = cats[a["category_id"]][1] or scheme or scheme_for_point_count(n)
            groups.setdefault((n, sc), []).append(a)
        # pass 2 (NumPy): one dense array per group
        parts = []
        for (n, sc), anns in groups.items():
            kp = np.asarray([a["keypoints"][: 3 * n] for a in anns], dtype=np.float64).reshape(len(anns), n, 3)
            sides = np.array([cats[a["category_id"]][0] for a in anns], dtype=object)
            v = kp[..., 2].astype(np.int64)
            attr = np.empty_like(v)
            for side in ("garment", "person"):
                m = sides == side
                if m.any():
                    lut = load_definition(sc).side(side).lut_from_coco()
                    vv = v[m]
                    attr[m] = np.where((vv >= 0) & (vv <= 2), lut[np.clip(vv, 0, 2)], vv)  # bad v stays visible
            for i, a in enumerate(anns):                      # our lossless extension wins when present
                if "attributes" in a:
                    ext = np.full(n, -1.0)
                    vals = np.asarray(a["attributes"], dtype=np.float64)[:n]
                    ext[: len(vals)] = vals
                    attr[i] = np.where(np.isfinite(ext), ext, -1).astype(np.int64)
            xy = kp[..., :2].copy()
            xy[attr == 0] = np.nan
            ims = [images[a["image_id"]] for a in anns]
            names = [im.get("file_name", str(a["image_id"])) for im, a in zip(ims, anns)]
            has_size = any("width" in im for im in ims)
            scores = [a.get("score", np.nan) for a in anns]
            parts.append(from_arrays(
                names, sides, xy, attr, sc,
                widths=[im.get("width", np.nan) for im in ims] if has_size else None,
                heights=[im.get("height", np.nan) for im in ims] if has_size else None,
                scores=scores if any(np.isfinite(scores)) else None, source=str(path),
                records=[f"annotation id {a.get('id')} ({nm})" for a, nm in zip(anns, names)]))
        if not parts:
            return RecordBuilder(str(path)).build()
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
