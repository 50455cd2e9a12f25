"""DeepFashion In-shop ``Anno/list_landmarks_inshop.txt`` (a second landmark source, its own point sets).

Layout (In-shop README): row 1 the number of images, row 2 the entry names, then
``<image name> <clothes type 1|2|3> <variation type> [<visibility> <x> <y>] x 6 | 4 | 8``.
Clothes type picks the scheme (``inshop-upper`` / ``inshop-lower`` / ``inshop-full``, see
``annotate/data/inshop_landmarks.json``); visibility 0 visible / 1 occluded / 2 truncated becomes our
attribute 2 / 1 / 0. Variation type 6 (flat, no person) is read as a garment image, the rest as persons.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from vtondata.errors import ListFileError

from ..definition import load_definition
from .base import Reader, RecordBuilder, read_head, register


@lru_cache(maxsize=1)
def _meta():
    d = load_definition("inshop-upper").extra
    lut = {int(k): v for k, v in d["raw_visibility_to_attribute"].items()}
    return ({int(k): v for k, v in d["clothes_types"].items()}, lut, set(d["garment_variation_types"]))


@register
class InshopReader(Reader):
    name = "inshop"
    description = "DeepFashion In-shop list_landmarks_inshop.txt (6/4/8 points for upper/lower/full body)"
    priority = 50

    def sniff(self, path: Path) -> bool:
        if not (path.is_file() and path.suffix.lower() == ".txt"):
            return False
        lines = read_head(path).splitlines()
        return len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].split()[:1] == ["image_name"]

    def read(self, path: Path, *, scheme: Optional[str] = None) -> pd.DataFrame:
        types, vis_lut, garment_variations = _meta()
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        if len(lines) < 2 or not lines[0].strip().isdigit():
            raise ListFileError("row 1 must be the number of images", file=path, line=1,
                                fix="keep the two header rows of list_landmarks_inshop.txt")
        b = RecordBuilder(str(path))
        declared = int(lines[0].strip())
        n_rows = 0
        for ln, raw in enumerate(lines[2:], start=3):
            tok = raw.split()
            if not tok:
                continue
            n_rows += 1
            try:
                ctype, var = int(tok[1]), int(tok[2])
                vals = np.asarray([float(t) for t in tok[3:]], dtype=np.float64)
            except (IndexError, ValueError):
                raise ListFileError(f"expected '<image> <clothes type> <variation type> [vis x y]...', got {raw[:80]!r}",
                                    file=path, line=ln) from None
            if ctype not in types:
                raise ListFileError(f"clothes type {ctype} is not 1, 2 or 3", file=path, line=ln)
            n = len(vals) // 3
            trip = vals[: 3 * n].reshape(n, 3)
            vis = trip[:, 0].astype(np.int64)
            bad = [int(v) for v in vis if int(v) not in vis_lut]
            if bad:
                raise ListFileError(f"{tok[0]}: landmark visibility {bad[0]} is not 0 (visible), 1 (occluded) "
                                    "or 2 (truncated)", file=path, line=ln)
            attr = np.array([vis_lut[int(v)] for v in vis], dtype=np.int64)
            xy = trip[:, 1:3].copy()
            xy[attr == 0] = np.nan
            b.add(image=tok[0], side="garment" if var in garment_variations else "person", scheme=types[ctype],
                  record=f"line {ln}", xy=xy, attribute=attr)
        if declared != n_rows:
            raise ListFileError(f"row 1 says {declared} images but {n_rows} rows follow", file=path, line=1,
                                fix="the file looks truncated; download it again")
        return b.build()
