"""Our canonical long table (``image, side, point, x, y, attribute[, scheme]``) as CSV or Parquet.

Also reads the fixture sidecar ``<root>/.vtondata-fixture/landmarks.csv`` and the manifest's
``landmarks.parquet`` (which has ``asset_id`` instead of ``image``; the id is then used as image key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from vtondata.errors import PoseFormatError

from ..definition import definition_names
from .base import Reader, bad_side_message, read_head, register, side_word

_NEED = {"side", "point", "x", "y", "attribute"}


def _columns(path: Path):
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return [c.lower() for c in pq.read_schema(path).names]
    return [c.strip().lower() for c in read_head(path).splitlines()[0].split(",")] if path.stat().st_size else []


@register
class CanonicalReader(Reader):
    name = "canonical"
    description = "canonical long table (image, side, point, x, y, attribute[, scheme]) as CSV or Parquet"
    priority = 10

    def sniff(self, path: Path) -> bool:
        if not (path.is_file() and path.suffix.lower() in (".csv", ".parquet")):
            return False
        cols = set(_columns(path))
        return _NEED <= cols and ("image" in cols or "asset_id" in cols)

    def read(self, path: Path, *, scheme: Optional[str] = None) -> pd.DataFrame:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
            lines = None
        else:
            try:
                df = pd.read_csv(path, dtype={"image": str, "side": str, "asset_id": str})
            except (pd.errors.ParserError, UnicodeDecodeError) as exc:
                raise PoseFormatError(f"cannot parse CSV: {exc}", file=path) from None
            lines = np.arange(len(df)) + 2
        df.columns = [c.strip() for c in df.columns]
        missing = _NEED - set(df.columns)
        if missing or not ({"image", "asset_id"} & set(df.columns)):
            raise PoseFormatError(f"missing column(s) {sorted(missing) or ['image']}", file=path, line=1,
                                  fix="columns: image, side, point, x, y, attribute[, scheme]")
        if "image" not in df.columns:
            df["image"] = df["asset_id"].astype(str)
        codes, raw_sides = pd.factorize(df["side"].astype(str))         # map the few distinct words, not every row
        mapped = [side_word(v) for v in raw_sides]
        if None in mapped:
            bad = mapped.index(None)
            i = int(np.flatnonzero(codes == bad)[0])
            raise PoseFormatError(bad_side_message(raw_sides[bad]), file=path, line=None if lines is None else int(lines[i]))
        df["side"] = np.asarray(mapped, dtype=object)[codes]
        if "scheme" not in df.columns:
            df["scheme"] = scheme or "sal32"
        else:
            df["scheme"] = df["scheme"].where(df["scheme"].isin(definition_names()), scheme or "sal32")
        att = pd.to_numeric(df["attribute"], errors="coerce").to_numpy(np.float64)
        df["attribute"] = np.where(np.isfinite(att), att, -1).astype(np.int64)
        df["point"] = pd.to_numeric(df["point"], errors="coerce").fillna(-1).astype(np.int64)
        df["image"] = df["image"].astype(str)
        for c in ("image", "side", "scheme"):
            df[c] = df[c].astype("category")
        # one record = one (image, side); labelled by its first line (CSV) or row (Parquet)
        gid = df.groupby(["image", "side"], sort=False, observed=True).ngroup().to_numpy()
        first_row = pd.Series(np.arange(len(df))).groupby(gid).min().to_numpy()
        labels = [f"line {lines[i]}" for i in first_row] if lines is not None else [f"row {i}" for i in first_row]
        df["record"] = pd.Categorical.from_codes(gid, categories=pd.Index(labels, dtype=object))
        df["source"] = pd.Categorical.from_codes(np.zeros(len(df), np.int64), categories=pd.Index([str(path)], dtype=object))
        return df
