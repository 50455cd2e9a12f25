"""DeepFashion2-style per-image JSON: one file per image, items ``item1``, ``item2`` ... with ``landmarks``.

``landmarks`` is the flat list [x, y, v] x K (v: 0 not labelled, 1 occluded, 2 visible, as in COCO).
The side comes from a ``side`` field, else DeepFashion2's ``source`` (``shop`` -> garment, ``user`` ->
person), else the parent folder name (``garment/``, ``person/``). The image is ``image`` / ``file_name``,
else ``<json stem>.jpg``. Optional per item: ``scheme``, ``attributes`` (our K codes, kept exactly),
``score``; per file: ``width``, ``height``. Source: a folder (searched recursively) or one file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

import numpy as np
import pandas as pd
from tqdm import tqdm

from vtondata.errors import PoseFormatError

from ..definition import definition_names, load_definition, scheme_for_point_count
from .base import Reader, RecordBuilder, bad_side_message, read_head, register, side_word
from .coco import load_json

_ITEM = re.compile(r"^item\d+$")


def _files(path: Path) -> List[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*.json") if p.is_file())


@register
class DeepFashion2Reader(Reader):
    name = "deepfashion2"
    description = "DeepFashion2-style per-image JSON (item1.landmarks = flat x, y, v), a folder or one file"
    priority = 30

    def sniff(self, path: Path) -> bool:
        if path.is_file():
            return path.suffix.lower() == ".json" and '"item1"' in read_head(path)
        if path.is_dir():
            first = next((p for p in sorted(path.rglob("*.json"))), None)
            return first is not None and '"item1"' in read_head(first)
        return False

    def read(self, path: Path, *, scheme: Optional[str] = None) -> pd.DataFrame:
        files = _files(path)
        if not files:
            raise PoseFormatError("no .json files found", file=path, fix="point at the annotation folder")
        b = RecordBuilder(str(path))
        lut_cache = {}
        for f in tqdm(files, desc="deepfashion2", unit="file", disable=len(files) < 2000, leave=False):
            d = load_json(f)
            if not isinstance(d, dict):
                raise PoseFormatError("expected a JSON object with item1, item2 ...", file=f)
            raw_side = d.get("side", d.get("source"))
            side = side_word(raw_side) if raw_side is not None else side_word(f.parent.name)
            if side is None:
                raise PoseFormatError(bad_side_message(raw_side if raw_side is not None else f.parent.name), file=f,
                                      fix="add \"side\": \"garment\" | \"person\" (or \"source\": \"shop\" | \"user\")")
            image = d.get("image") or d.get("file_name") or f"{f.stem}.jpg"
            items = sorted((k for k in d if _ITEM.match(k)), key=lambda k: int(k[4:]))
            if not items:
                raise PoseFormatError("no item1 ... entries", file=f, fix="store the landmarks under item1.landmarks")
            for it in items:
                item = d[it]
                if "landmarks" not in item:
                    raise PoseFormatError(f"{it}: no 'landmarks' list", file=f)
                kp = np.asarray(item["landmarks"], dtype=np.float64)
                n = len(kp) // 3
                kp = kp[: 3 * n].reshape(n, 3)
                sc = item.get("scheme") or d.get("scheme")
                if sc not in definition_names():
                    sc = scheme or scheme_for_point_count(n)
                if "attributes" in item:
                    attr = np.asarray(item["attributes"], dtype=np.int64)[:n]
                else:
                    key = (sc, side)
                    if key not in lut_cache:
                        lut_cache[key] = load_definition(sc).side(side).lut_from_coco()
                    v = kp[:, 2].astype(np.int64)
                    attr = np.where((v >= 0) & (v <= 2), lut_cache[key][np.clip(v, 0, 2)], v)
                xy = kp[:, :2].copy()
                xy[attr == 0] = np.nan
                b.add(image=image, side=side, scheme=sc, record=f"{f.relative_to(path).as_posix() if path.is_dir() else f.name}:{it}", xy=xy, attribute=attr,
                      width=d.get("width"), height=d.get("height"), score=item.get("score"))
        return b.build()
