"""Thin adapter between landmark tables and a prepared ``vtondata`` manifest.

Takes the object returned by ``vtondata.manifest.open_manifest`` (``.assets``, ``.tuples``,
``.write_table``); nothing else of the data layer is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import pyarrow as pa

from vtondata.errors import VtonDataError

SCHEMA = pa.schema([("asset_id", pa.string()), ("side", pa.string()), ("point", pa.int16()),
                    ("x", pa.float32()), ("y", pa.float32()), ("attribute", pa.int8()), ("scheme", pa.string())])


def open_dataset(dataset: Optional[str] = None, manifest_dir: Optional[Path] = None):
    from vtondata.manifest import open_manifest

    return open_manifest(dataset, manifest_dir)


def catalog_from_manifest(m) -> pd.DataFrame:
    """Garment and person images of the manifest: ``image`` (path), ``role``, ``width``, ``height``, ``asset_id``."""
    a = m.assets
    a = a[a["role"].isin(["garment", "person"])]
    return pd.DataFrame({"image": a["path"].astype(str).to_numpy(), "role": a["role"].to_numpy(),
                         "width": a["width"].astype("float64").to_numpy(), "height": a["height"].astype("float64").to_numpy(),
                         "asset_id": a["asset_id"].astype(str).to_numpy()})


def pairs_from_manifest(m) -> pd.DataFrame:
    """``garment_image, person_image`` of the paired tuples (the person wears that garment)."""
    t = m.tuples
    if "setting" in t.columns:
        t = t[t["setting"] == "paired"]
    t = t.dropna(subset=["person", "garment"])
    a = m.assets
    person = a[a["role"] == "person"].drop_duplicates("sample_id").set_index("sample_id")["path"]
    garment = a[a["role"] == "garment"].drop_duplicates("sample_id").set_index("sample_id")["path"]
    out = pd.DataFrame({"garment_image": t["garment"].map(garment), "person_image": t["person"].map(person)})
    return out.dropna().drop_duplicates().reset_index(drop=True)


def write_landmarks(m, table: pd.DataFrame) -> Path:
    """Write ``landmarks.parquet`` (asset_id, side, point, x, y, attribute, scheme) into the manifest."""
    if "asset_id" not in table.columns or table["asset_id"].isna().any():
        raise VtonDataError("every landmark record must be joined to a manifest asset before it is stored",
                            fix="convert with --dataset / --manifest so records are matched to images")
    cols = [f.name for f in SCHEMA]
    out = table[cols].astype({"asset_id": str, "side": str, "scheme": str}).reset_index(drop=True)
    return m.write_table("landmarks", out, SCHEMA)


def read_manifest_landmarks(m) -> pd.DataFrame:
    """The manifest's landmarks as a canonical table (``image`` = asset path, with width and height)."""
    lm = m.table("landmarks")
    a = m.assets.set_index("asset_id")
    out = lm.copy()
    out["image"] = out["asset_id"].map(a["path"])
    out["width"] = out["asset_id"].map(a["width"]).astype("float64")
    out["height"] = out["asset_id"].map(a["height"]).astype("float64")
    return out
