"""The image catalog landmarks are checked against, and the join of landmark records to it.

A catalog is a DataFrame with columns ``image`` (path relative to the dataset root, POSIX), ``role``
(``garment`` / ``person`` / other), ``width``, ``height`` and optionally ``asset_id``. It comes from a
prepared manifest (``manifest.py``) or from scanning a dataset root on disk (``catalog_from_root``).

Joining (``resolve``) is by exact relative path, else by asset id, else by file name within the images
of the record's side (VITON-HD uses the same file name for ``image/x.jpg`` and ``cloth/x.jpg``), with a
path-suffix tie-break when a name occurs in several splits.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Tuple, Union

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

#: Folder names that mark garment / person images in the official layouts (VITON, VITON-HD, MPV, Dress Code).
GARMENT_DIRS = {"cloth", "clothes", "cloth_image", "cloth-image", "garment", "garments", "images_cloth"}
PERSON_DIRS = {"image", "images", "person", "img", "images_person"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def role_of(rel: str) -> str:
    """``garment`` / ``person`` from the folder names of a relative path, else ``other``."""
    for part in reversed(PurePosixPath(rel).parts[:-1]):
        p = part.lower()
        if p in GARMENT_DIRS:
            return "garment"
        if p in PERSON_DIRS:
            return "person"
    return "other"


def catalog_from_root(root: Union[str, Path], *, read_sizes: bool = True) -> pd.DataFrame:
    """Scan ``root`` for images (hidden folders skipped); sizes from image headers (no decoding)."""
    root = Path(root)
    rels = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if Path(f).suffix.lower() in IMAGE_EXTS:
                rels.append(Path(dirpath, f).relative_to(root).as_posix())
    widths = np.full(len(rels), np.nan)
    heights = np.full(len(rels), np.nan)
    if read_sizes:
        for i, rel in enumerate(tqdm(rels, desc="image sizes", unit="img", disable=len(rels) < 5000, leave=False)):
            with Image.open(root / rel) as im:
                widths[i], heights[i] = im.size
    return pd.DataFrame({"image": rels, "role": [role_of(r) for r in rels], "width": widths, "height": heights})


def _norm(p: str) -> str:
    s = str(p).replace("\\", "/")
    while s.startswith("./"):
        s = s[2:]
    return s


def resolve(keys: pd.DataFrame, catalog: pd.DataFrame) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Match records to catalog images.

    ``keys``: one row per record with ``image`` and ``side``. Returns ``(matched, unmatched)``:
    ``matched`` has ``image`` (as given), ``side``, ``catalog_image``, ``width``, ``height`` and
    ``asset_id``; ``unmatched`` has ``image``, ``side`` and ``reason`` (``missing`` or ``ambiguous``).
    """
    cat = catalog.copy()
    cat["image"] = cat["image"].map(_norm)
    if "asset_id" not in cat.columns:
        cat["asset_id"] = None
    cat["base"] = cat["image"].map(lambda s: s.rsplit("/", 1)[-1])
    k = keys[["image", "side"]].drop_duplicates().copy()
    k["norm"] = k["image"].map(_norm)
    cols = ["catalog_image", "width", "height", "asset_id"]
    got = []

    # 1) exact relative path
    exact = k.merge(cat.rename(columns={"image": "catalog_image"})[["catalog_image", "width", "height", "asset_id"]],
                    left_on="norm", right_on="catalog_image", how="inner").drop_duplicates(["image", "side"])
    got.append(exact[["image", "side"] + cols])
    rest = k[~k.set_index(["image", "side"]).index.isin(exact.set_index(["image", "side"]).index)]

    # 2) asset id (a table read back from a manifest)
    if len(rest) and cat["asset_id"].notna().any():
        ids = cat.dropna(subset=["asset_id"]).assign(asset_key=lambda d: d["asset_id"].astype(str))
        by_id = rest.merge(ids.rename(columns={"image": "catalog_image"}), left_on="norm", right_on="asset_key")
        by_id = by_id.drop_duplicates(["image", "side"])
        got.append(by_id[["image", "side"] + cols])
        rest = rest[~rest.set_index(["image", "side"]).index.isin(by_id.set_index(["image", "side"]).index)]

    # 3) file name within the side's role, path-suffix tie-break
    unmatched = []
    if len(rest):
        rest = rest.assign(base=rest["norm"].map(lambda s: s.rsplit("/", 1)[-1]))
        cand = rest.merge(cat.rename(columns={"image": "catalog_image"}), on="base")
        cand = cand[cand["role"] == cand["side"]]
        n = cand.groupby(["image", "side"])["catalog_image"].transform("size")
        single = [cand[n == 1]]
        ambiguous = []
        for (img, side), g in cand[n > 1].groupby(["image", "side"], sort=False):
            norm = g["norm"].iloc[0]
            hit = g[[c == norm or c.endswith("/" + norm) for c in g["catalog_image"]]]
            if len(hit) == 1:
                single.append(hit)
            else:
                ambiguous.append((img, side))
        single = pd.concat(single)
        got.append(single[["image", "side"] + cols])
        if ambiguous:
            unmatched.append(pd.DataFrame(ambiguous, columns=["image", "side"]).assign(reason="ambiguous"))
        seen = pd.concat([single[["image", "side"]]] + [u[["image", "side"]] for u in unmatched])
        left = rest[~rest.set_index(["image", "side"]).index.isin(seen.set_index(["image", "side"]).index)]
        unmatched.append(left[["image", "side"]].assign(reason="missing"))
    matched = pd.concat(got, ignore_index=True) if got else pd.DataFrame(columns=["image", "side"] + cols)
    miss = (pd.concat(unmatched, ignore_index=True) if unmatched
            else pd.DataFrame({"image": pd.Series(dtype=object), "side": pd.Series(dtype=object),
                               "reason": pd.Series(dtype=object)}))
    return matched.reset_index(drop=True), miss
