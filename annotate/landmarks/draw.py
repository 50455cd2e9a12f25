"""Draw garment and person landmarks side by side with the pair lines (landmark k <-> landmark k).

Filled dots: present (garment) / visible (person); hollow dots: occluded; absent points are not drawn.
Skeleton edges join points present on the same side; pair lines join point k on the garment to point k
on the person when both are drawn. The result is a PIL RGB image; ``save_png`` writes it atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from vtondata.errors import ImageReadError, VtonDataError

from .definition import LandmarkDefinition, load_definition
from .io import atomic_path

ImageLike = Union[None, str, Path, Image.Image]


def _open(img: ImageLike, size: Optional[Tuple[int, int]]) -> Image.Image:
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    if img is not None:
        try:
            with Image.open(img) as im:
                return im.convert("RGB")
        except OSError as exc:
            raise ImageReadError(f"cannot open image: {exc}", file=img) from None
    if size is None:
        raise VtonDataError("need an image or its (width, height) to draw on")
    return Image.new("RGB", (int(size[0]), int(size[1])), (235, 235, 235))


def _draw_side(dr: ImageDraw.ImageDraw, d: LandmarkDefinition, side: str, xy: np.ndarray, attr: np.ndarray,
               dx: float, radius: float, numbers: bool) -> None:
    hollow = [c for c, m in d.side(side).attributes.items() if m.startswith("occluded")]
    on = (attr > 0) & np.isfinite(xy).all(-1)
    for a, b in d.skeleton:
        if on[a] and on[b]:
            dr.line([(xy[a, 0] + dx, xy[a, 1]), (xy[b, 0] + dx, xy[b, 1])], fill=tuple(d.colors[a]), width=max(1, int(radius / 2)))
    for k in np.flatnonzero(on):
        x, y = xy[k, 0] + dx, xy[k, 1]
        box = [x - radius, y - radius, x + radius, y + radius]
        col = tuple(d.colors[k])
        if attr[k] in hollow:
            dr.ellipse(box, outline=col, width=max(1, int(radius / 2)))
        else:
            dr.ellipse(box, fill=col, outline=(0, 0, 0))
        if numbers:
            dr.text((x + radius + 1, y - radius - 1), str(k), fill=(0, 0, 0))


def draw_pair(garment_xy: np.ndarray, garment_attr: np.ndarray, person_xy: np.ndarray, person_attr: np.ndarray, *,
              scheme: str = "sal32", garment_image: ImageLike = None, person_image: ImageLike = None,
              garment_size: Optional[Tuple[int, int]] = None, person_size: Optional[Tuple[int, int]] = None,
              gap: int = 16, radius: Optional[float] = None, numbers: bool = True) -> Image.Image:
    """Side-by-side drawing. ``*_xy`` (K, 2) pixel coordinates, ``*_attr`` (K,) codes; sizes are (W, H)."""
    d = load_definition(scheme)
    g = _open(garment_image, garment_size)
    p = _open(person_image, person_size)
    canvas = Image.new("RGB", (g.width + gap + p.width, max(g.height, p.height)), (255, 255, 255))
    canvas.paste(g, (0, 0))
    canvas.paste(p, (g.width + gap, 0))
    r = radius if radius is not None else max(2.0, max(canvas.height, 256) / 128)
    gxy, pxy = np.asarray(garment_xy, np.float64), np.asarray(person_xy, np.float64)
    ga, pa = np.asarray(garment_attr), np.asarray(person_attr)
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    od = ImageDraw.Draw(overlay)
    both = (ga > 0) & (pa > 0) & np.isfinite(gxy).all(-1) & np.isfinite(pxy).all(-1)
    for k in np.flatnonzero(both):
        od.line([(gxy[k, 0], gxy[k, 1]), (pxy[k, 0] + g.width + gap, pxy[k, 1])], fill=tuple(d.colors[k]) + (110,), width=1)
    canvas = Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")
    dr = ImageDraw.Draw(canvas)
    _draw_side(dr, d, "garment", gxy, ga, 0.0, r, numbers)
    _draw_side(dr, d, "person", pxy, pa, float(g.width + gap), r, numbers)
    return canvas


def draw_pair_from_table(df: pd.DataFrame, garment: str, person: str, *, root: Optional[Path] = None,
                         scheme: str = "sal32", **kw) -> Image.Image:
    """Draw the records ``(garment, "garment")`` and ``(person, "person")`` of a canonical table; images
    are read from ``root`` when given and present, else blank canvases of the recorded size."""
    recs = {}
    for name, side in ((garment, "garment"), (person, "person")):
        sub = df[(df["image"] == name) & (df["side"] == side) & (df["scheme"] == scheme)].sort_values("point")
        if sub.empty:
            raise VtonDataError(f"no {side} landmarks for {name!r}", fix="check the image name (see the table's image column)")
        xy = sub[["x", "y"]].to_numpy(np.float64)
        size = (sub["width"].iloc[0], sub["height"].iloc[0]) if "width" in sub.columns and sub["width"].notna().all() else None
        path = Path(root) / name if root is not None and (Path(root) / name).is_file() else None
        if path is None and size is None:
            size = (int(np.nanmax(xy[:, 0]) + 10), int(np.nanmax(xy[:, 1]) + 10)) if np.isfinite(xy).any() else (192, 256)
        recs[side] = (xy, sub["attribute"].to_numpy(), path, size)
    (gxy, ga, gp, gs), (pxy, pa, pp, ps) = recs["garment"], recs["person"]
    return draw_pair(gxy, ga, pxy, pa, scheme=scheme, garment_image=gp, person_image=pp,
                     garment_size=gs, person_size=ps, **kw)


def save_png(img: Image.Image, path: Union[str, Path]) -> Path:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)
