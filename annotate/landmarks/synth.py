"""Synthetic landmark data for tests and benchmarks.

``make_table`` draws consistent garment/person landmark records (the same 32 semantic points on both
sides, VITON-HD or VITON file naming); ``write_as`` turns any canonical table (ours, or the fixture
sidecar ``<root>/.vtondata-fixture/landmarks.csv``) into each supported input format; ``write_images``
writes matching images (the garment outline filled) so a dataset root exists on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple, Union

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from vtondata.errors import UnknownNameError

from .definition import load_definition
from .exporters.coco import to_coco
from .exporters.cvat import write_cvat
from .io import write_csv, write_json, write_text
from .table import from_arrays, to_arrays

FORMATS = ("coco", "deepfashion2", "flat-csv", "canonical", "cvat", "inshop")


def image_names(n: int, dataset: str = "viton-hd", split: str = "test") -> Tuple[List[str], List[str]]:
    """(garment names, person names) in the dataset's layout, relative to its root."""
    if dataset == "viton":
        return ([f"{split}/cloth/{i:06d}_1.jpg" for i in range(n)], [f"{split}/image/{i:06d}_0.jpg" for i in range(n)])
    return ([f"{split}/cloth/{i:05d}_00.jpg" for i in range(n)], [f"{split}/image/{i:05d}_00.jpg" for i in range(n)])


def make_table(n: int, *, size: Tuple[int, int] = (256, 192), seed: int = 0, dataset: str = "viton-hd",
               scheme: str = "sal32", p_absent: float = 0.05, p_occluded: float = 0.1) -> pd.DataFrame:
    """``n`` garment and ``n`` person records; ``size`` = (H, W). Garment points are present unless
    absent (then absent on the person too); person points are visible, occluded or absent."""
    rng = np.random.default_rng(seed)
    d = load_definition(scheme)
    h, w = size
    tpl = d.template[None]                                                   # 1, K, 2
    g_org = np.stack([rng.uniform(0.10, 0.16, n) * w, rng.uniform(0.06, 0.12, n) * h], 1)[:, None]
    g_ext = np.stack([rng.uniform(0.68, 0.78, n) * w, rng.uniform(0.74, 0.84, n) * h], 1)[:, None]
    gxy = g_org + tpl * g_ext + rng.normal(0, 0.004 * w, (n, d.num_points, 2))
    p_org = np.stack([rng.uniform(0.18, 0.26, n) * w, rng.uniform(0.18, 0.26, n) * h], 1)[:, None]
    p_ext = np.stack([rng.uniform(0.48, 0.56, n) * w, rng.uniform(0.52, 0.60, n) * h], 1)[:, None]
    ptpl = tpl.copy()
    ptpl[..., 0] = 0.5 + (ptpl[..., 0] - 0.5) * np.where(np.abs(ptpl[..., 0] - 0.5) > 0.3, 0.8, 1.0)  # arms closer
    pxy = p_org + ptpl * p_ext + rng.normal(0, 0.004 * w, (n, d.num_points, 2))
    gxy = np.clip(gxy, 0, [w, h])
    pxy = np.clip(pxy, 0, [w, h])
    g_codes = d.side("garment").codes
    g_attr = np.where(rng.random((n, d.num_points)) < p_absent, 0, max(g_codes))
    p_attr = np.where(rng.random((n, d.num_points)) < p_occluded, 1, max(d.side("person").codes))
    p_attr = np.where((g_attr == 0) | (rng.random((n, d.num_points)) < p_absent), 0, p_attr)
    gxy[g_attr == 0] = np.nan
    pxy[p_attr == 0] = np.nan
    gn, pn = image_names(n, dataset)
    ws, hs = np.full(n, float(w)), np.full(n, float(h))
    return pd.concat([
        from_arrays(gn, ["garment"] * n, gxy, g_attr, scheme, widths=ws, heights=hs),
        from_arrays(pn, ["person"] * n, pxy, p_attr, scheme, widths=ws, heights=hs),
    ], ignore_index=True)


def make_inshop_table(n: int, *, size: Tuple[int, int] = (256, 256), seed: int = 0) -> pd.DataFrame:
    """In-shop style records: a mix of upper / lower / full clothes, person images and flat garments."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        scheme = ("inshop-upper", "inshop-lower", "inshop-full")[i % 3]
        d = load_definition(scheme)
        side = "garment" if i % 4 == 3 else "person"
        xy = (0.1 + 0.8 * d.template[None]) * np.array([size[1], size[0]]) + rng.normal(0, 2, (1, d.num_points, 2))
        attr = rng.choice([0, 1, 2], size=(1, d.num_points), p=[0.1, 0.2, 0.7])
        xy[attr == 0] = np.nan
        folder = "WOMEN/Dresses" if scheme == "inshop-full" else "MEN/Denim"
        view = "7_additional" if side == "garment" else "1_front"
        out.append(from_arrays([f"img/{folder}/id_{i:08d}/01_{view}.jpg"], [side], xy, attr, scheme,
                               widths=[float(size[1])], heights=[float(size[0])]))
    return pd.concat(out, ignore_index=True)


def _v(d, side: str, attr: np.ndarray) -> np.ndarray:
    return d.side(side).lut_to_coco()[attr]


def _deepfashion2(df: pd.DataFrame, out: Path, with_attributes: bool) -> Path:
    for scheme, sub in df.groupby("scheme"):
        d = load_definition(scheme)
        keys, xy, attr = to_arrays(sub, d)
        for i, r in keys.iterrows():
            v = _v(d, r["side"], attr[i])
            lm = np.concatenate([np.nan_to_num(xy[i], nan=0.0), v[:, None]], 1).round(3).reshape(-1).tolist()
            item = {"landmarks": lm, "category_name": scheme, "scheme": scheme}
            if with_attributes:
                item["attributes"] = attr[i].tolist()
            doc = {"source": "shop" if r["side"] == "garment" else "user", "image": str(r["image"]),
                   "item1": item}
            if "width" in keys.columns:
                doc["width"], doc["height"] = int(r["width"]), int(r["height"])
            stem = Path(str(r["image"])).stem
            write_json(out / r["side"] / f"{stem}.json", doc)
    return out


def _flat_csv(df: pd.DataFrame, out: Path) -> Path:
    parts = []
    for scheme, sub in df.groupby("scheme"):
        d = load_definition(scheme)
        keys, xy, attr = to_arrays(sub, d)
        cols = {"image": keys["image"], "side": keys["side"]}
        for k in range(d.num_points):
            cols[f"x{k}"] = np.round(xy[:, k, 0], 3)
            cols[f"y{k}"] = np.round(xy[:, k, 1], 3)
            cols[f"v{k}"] = attr[:, k]
        if df["scheme"].nunique() > 1:
            cols["scheme"] = scheme
        parts.append(pd.DataFrame(cols))
    return write_csv(out, pd.concat(parts, ignore_index=True))


def _inshop(df: pd.DataFrame, out: Path) -> Path:
    meta = load_definition("inshop-upper").extra
    to_raw = {v: int(k) for k, v in meta["raw_visibility_to_attribute"].items()}
    ctype = {v: k for k, v in meta["clothes_types"].items()}
    lines = []
    for scheme, sub in df.groupby("scheme"):
        if scheme not in ctype:
            raise UnknownNameError(f"scheme {scheme!r} has no In-shop clothes type", fix="use an inshop-* scheme")
        keys, xy, attr = to_arrays(sub, load_definition(scheme))
        for i, r in keys.iterrows():
            var = 6 if r["side"] == "garment" else 1
            vals = " ".join(f"{to_raw[int(a)]} {0 if a == 0 else int(round(x))} {0 if a == 0 else int(round(y))}"
                            for (x, y), a in zip(xy[i], attr[i]))
            lines.append(f"{r['image']} {ctype[scheme]} {var} {vals}")
    head = f"{len(lines)}\nimage_name clothes_type variation_type landmark_visibility_1 landmark_location_x_1 landmark_location_y_1 ...\n"
    return write_text(out, head + "\n".join(lines) + "\n")


def write_as(df: pd.DataFrame, fmt: str, out: Union[str, Path], *, with_attributes: bool = False) -> Path:
    """Write a canonical table in an input format; returns the path to give the reader."""
    out = Path(out)
    if fmt == "coco":
        coco = to_coco(df)
        if not with_attributes:
            for a in coco["annotations"]:
                a.pop("attributes")
        return write_json(out, coco)
    if fmt == "deepfashion2":
        return _deepfashion2(df, out, with_attributes)
    if fmt == "flat-csv":
        return _flat_csv(df, out)
    if fmt == "canonical":
        cols = [c for c in ("image", "side", "point", "x", "y", "attribute", "scheme") if c in df.columns]
        return write_csv(out, df[cols])
    if fmt == "cvat":
        write_cvat(df, out)
        return out / "annotations.xml"
    if fmt == "inshop":
        return _inshop(df, out)
    raise UnknownNameError(f"unknown synthetic format {fmt!r}", fix=f"use one of {FORMATS}")


def write_images(df: pd.DataFrame, root: Union[str, Path], *, sidecar: bool = True) -> Path:
    """Write one JPEG per record (garment outline filled on a light background) under ``root`` and,
    with ``sidecar``, the fixture sidecar ``<root>/.vtondata-fixture/landmarks.csv``."""
    root = Path(root)
    for scheme, sub in df.groupby("scheme"):
        d = load_definition(scheme)
        keys, xy, attr = to_arrays(sub, d)
        outline = list(d.outline) or list(range(d.num_points))
        for i, r in keys.iterrows():
            w, h = int(r["width"]), int(r["height"])
            im = Image.new("RGB", (w, h), (240, 240, 240))
            poly = [tuple(xy[i, k]) for k in outline if attr[i, k] > 0 and np.isfinite(xy[i, k]).all()]
            if len(poly) >= 3:
                ImageDraw.Draw(im).polygon(poly, fill=(60, 90, 160) if r["side"] == "garment" else (150, 80, 60))
            path = root / str(r["image"])
            path.parent.mkdir(parents=True, exist_ok=True)
            im.save(path, quality=90)
    if sidecar:
        cols = ["image", "side", "point", "x", "y", "attribute"]
        write_csv(root / ".vtondata-fixture" / "landmarks.csv", df[cols])
    return root
