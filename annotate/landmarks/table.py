"""The canonical landmark table: one row per (image, side, point).

Columns (long format, what readers produce and what the manifest stores):

====================  =========  ===============================================================
column                dtype      meaning
====================  =========  ===============================================================
image                 str        image path relative to the dataset root (or its file name)
side                  str        ``garment`` (in-shop garment image) or ``person``
point                 int16      landmark index 0..K-1 of ``scheme``
x, y                  float32    pixel coordinates in the image frame, in [0, width] x [0, height];
                                 NaN when the point is absent
attribute             int8       garment 0 absent / 1 present; person 0 absent / 1 occluded / 2 visible
scheme                str        landmark scheme (``sal32`` for SAL-HG)
====================  =========  ===============================================================

Optional columns: ``width``/``height`` (image size), ``score`` (prediction confidence per record),
``asset_id`` (after joining a manifest), ``source``/``record`` (provenance used in error messages).
A *record* is one (image, side) annotation: K rows.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .definition import LandmarkDefinition, load_definition

KEY = ["image", "side"]
COLUMNS = ["image", "side", "point", "x", "y", "attribute", "scheme"]
MANIFEST_COLUMNS = ["asset_id", "side", "point", "x", "y", "attribute"]


def categorical(values, counts=None) -> pd.Categorical:
    """Per-record values (one per record) repeated ``counts`` times, as a categorical column: building and
    grouping 1.9 M string rows costs seconds, 60,000 categories a few milliseconds."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    if counts is not None:
        codes = np.repeat(codes, counts)
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype=object))


def from_arrays(images: Sequence[str], sides: Sequence[str], xy: np.ndarray, attribute: np.ndarray,
                scheme: str = "sal32", *, widths=None, heights=None, scores=None,
                source: Optional[str] = None, records: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Long table from dense arrays: ``xy`` (N, K, 2) float, ``attribute`` (N, K) int."""
    xy = np.asarray(xy, dtype=np.float64)
    attribute = np.asarray(attribute)
    n, k = attribute.shape
    if xy.shape != (n, k, 2):
        raise ValueError(f"xy must be (N, K, 2) = ({n}, {k}, 2), got {xy.shape}")
    rep = lambda a: np.repeat(np.asarray(a), k)  # noqa: E731
    df = pd.DataFrame({
        "image": categorical(list(images), k),
        "side": categorical(list(sides), k),
        "point": np.tile(np.arange(k, dtype=np.int16), n),
        "x": xy[..., 0].reshape(-1).astype(np.float32),
        "y": xy[..., 1].reshape(-1).astype(np.float32),
        "attribute": attribute.reshape(-1).astype(np.int64),
        "scheme": categorical([scheme] * n, k),
    })
    if widths is not None:
        df["width"] = rep(widths).astype(np.float64)
        df["height"] = rep(heights).astype(np.float64)
    if scores is not None:
        df["score"] = rep(scores).astype(np.float64)
    if source is not None:
        df["source"] = categorical([source] * n, k)
    if records is not None:
        df["record"] = categorical(list(records), k)
    return df


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by (scheme, image, side, point), set canonical dtypes, blank coordinates of absent points."""
    out = df.copy()
    for c in ("image", "side", "scheme"):
        if isinstance(out[c].dtype, pd.CategoricalDtype):   # canonical order = lexical, not first appearance
            out[c] = out[c].cat.remove_unused_categories()
            out[c] = out[c].cat.reorder_categories(sorted(out[c].cat.categories, key=str))
    out["point"] = out["point"].astype(np.int16)
    out["attribute"] = out["attribute"].astype(np.int8)
    out["x"] = out["x"].astype(np.float32)
    out["y"] = out["y"].astype(np.float32)
    absent = out["attribute"].to_numpy() == 0
    out.loc[absent, ["x", "y"]] = np.nan
    out = out.sort_values(["scheme", "image", "side", "point"], kind="stable").reset_index(drop=True)
    return out


def to_arrays(df: pd.DataFrame, definition: Optional[LandmarkDefinition] = None
              ) -> Tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Dense view of complete records of one scheme.

    Returns ``(keys, xy, attribute)``: ``keys`` one row per record (image, side and any per-record
    columns such as width, height, score, asset_id), ``xy`` (N, K, 2) float64 with NaN for absent
    points, ``attribute`` (N, K) int64. Every record must hold exactly the points 0..K-1.
    """
    if definition is None:
        schemes = df["scheme"].unique() if len(df) else ["sal32"]
        if len(schemes) != 1:
            raise ValueError(f"to_arrays needs one scheme, got {sorted(schemes)}")
        definition = load_definition(schemes[0])
    k = definition.num_points
    d = df.sort_values(KEY + ["point"], kind="stable")
    n = len(d) // k
    if len(d) % k or not (d["point"].to_numpy().reshape(n, k) == np.arange(k)).all():
        raise ValueError("to_arrays needs complete records (points 0..K-1 once each); run the checks first")
    xy = np.stack([d["x"].to_numpy(np.float64), d["y"].to_numpy(np.float64)], axis=-1).reshape(n, k, 2)
    attr = d["attribute"].to_numpy(np.int64).reshape(n, k)
    per_record = [c for c in ("image", "side", "scheme", "width", "height", "score", "asset_id",
                              "source", "record") if c in d.columns]
    keys = d[per_record].iloc[::k].reset_index(drop=True)
    return keys, xy, attr


def flip_horizontal(df: pd.DataFrame, widths=None) -> pd.DataFrame:
    """Mirror landmarks left-right: ``x -> W - x`` and point ``k -> flip[k]`` (partner swap).

    ``widths`` defaults to the table's ``width`` column. Coordinates are continuous pixel positions in
    [0, W], so flipping twice is the identity.
    """
    out = df.copy()
    w = out["width"].to_numpy(np.float64) if widths is None else np.broadcast_to(np.asarray(widths, np.float64), len(out))
    out["x"] = (w - out["x"].to_numpy(np.float64)).astype(np.float32)
    new_point = out["point"].to_numpy().copy()
    for scheme, idx in out.groupby("scheme").indices.items():
        flip = load_definition(scheme).flip
        new_point[idx] = flip[new_point[idx]]
    out["point"] = new_point.astype(np.int16)
    return out.sort_values(["scheme", "image", "side", "point"], kind="stable").reset_index(drop=True)
