"""Flat CSV: one line per (image, side) record, ``image,side,x0,y0,v0,...,x31,y31,v31``.

``v`` is the SAL attribute code of that side (garment 0/1, person 0/1/2), not COCO visibility.
Column names ``x0`` / ``x_0`` (0- or 1-based) are accepted; optional columns: ``scheme``, ``width``,
``height``, ``score``. ``.tsv`` files are tab separated. Absent points may leave x, y empty.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from vtondata.errors import PoseFormatError

from ..definition import definition_names, scheme_for_point_count
from .base import Reader, bad_side_message, read_head, register, side_word
from ..table import from_arrays

_COL = re.compile(r"^([xyv])_?(\d+)$", re.IGNORECASE)


def _sep(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


@register
class FlatCsvReader(Reader):
    name = "flat-csv"
    description = "flat CSV: image, side, then x, y, v (SAL attribute code) for every point"
    priority = 40

    def sniff(self, path: Path) -> bool:
        if not (path.is_file() and path.suffix.lower() in (".csv", ".tsv")):
            return False
        header = [c.strip().lower() for c in read_head(path).splitlines()[0].split(_sep(path))] if path.stat().st_size else []
        return "image" in header and "side" in header and any(_COL.match(c) for c in header) and "point" not in header

    def read(self, path: Path, *, scheme: Optional[str] = None) -> pd.DataFrame:
        try:
            df = pd.read_csv(path, sep=_sep(path), dtype={"image": str, "side": str})
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise PoseFormatError(f"cannot parse CSV: {exc}", file=path) from None
        df.columns = [c.strip() for c in df.columns]
        for need in ("image", "side"):
            if need not in df.columns:
                raise PoseFormatError(f"missing column {need!r}", file=path, line=1,
                                      fix="header: image,side,x0,y0,v0,...")
        idx = {}
        for c in df.columns:
            m = _COL.match(c)
            if m:
                idx.setdefault(int(m.group(2)), {})[m.group(1).lower()] = c
        if not idx:
            raise PoseFormatError("no x/y/v point columns", file=path, line=1)
        base = min(idx)
        k = max(idx) - base + 1
        for i in range(base, base + k):
            miss = [a for a in "xyv" if a not in idx.get(i, {})]
            if miss:
                raise PoseFormatError(f"point {i}: missing column(s) {', '.join(a + str(i) for a in miss)}",
                                      file=path, line=1, fix="every point needs x, y and v columns")
        cols = [idx[i] for i in range(base, base + k)]
        xy = np.stack([df[[c["x"] for c in cols]].to_numpy(np.float64),
                       df[[c["y"] for c in cols]].to_numpy(np.float64)], axis=-1)
        v = df[[c["v"] for c in cols]].to_numpy(np.float64)
        attr = np.where(np.isfinite(v), v, -1).astype(np.int64)
        sides = df["side"].map(side_word)
        bad = sides.isna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise PoseFormatError(bad_side_message(df["side"].iloc[i]), file=path, line=i + 2)
        sc = scheme or scheme_for_point_count(k)
        out = []
        schemes = df["scheme"].astype(str) if "scheme" in df.columns else pd.Series(sc, index=df.index)
        for s, rows in schemes.groupby(schemes).groups.items():
            r = np.asarray(rows)
            use = s if s in definition_names() else sc
            out.append(from_arrays(
                df["image"].to_numpy()[r], sides.to_numpy()[r], xy[r], attr[r], use,
                widths=df["width"].to_numpy()[r] if "width" in df.columns else None,
                heights=df["height"].to_numpy()[r] if "height" in df.columns else None,
                scores=df["score"].to_numpy()[r] if "score" in df.columns else None,
                source=str(path), records=[f"line {i + 2}" for i in r]))
        res = pd.concat(out, ignore_index=True)
        res["attribute"] = res["attribute"].astype(np.int64)
        return res
