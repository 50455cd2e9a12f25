"""CVAT for images 1.1 XML with skeleton labels (what ``landmarks export --to cvat`` writes, and what
CVAT exports after labelling): closes the labelling loop.

Skeleton label ``garment`` / ``person`` (or ``<scheme>-<side>``); element labels are the scheme's point
names. ``outside="1"`` -> absent (0); person ``occluded="1"`` -> occluded (1); otherwise garment present (1)
/ person visible (2).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from vtondata.errors import PoseFormatError

from ..definition import definition_names, load_definition
from .base import Reader, RecordBuilder, bad_side_message, read_head, register, side_word


def _label(name: str, scheme: Optional[str]):
    if "-" in name:
        sc, _, side = name.rpartition("-")
        if sc in definition_names():
            return sc, side_word(side)
    return scheme or "sal32", side_word(name)


@register
class CvatReader(Reader):
    name = "cvat"
    description = "CVAT for images 1.1 XML with one skeleton per side"
    priority = 25

    def sniff(self, path: Path) -> bool:
        if path.is_dir():
            path = path / "annotations.xml"
        if not (path.is_file() and path.suffix.lower() == ".xml"):
            return False
        head = read_head(path)
        return "<annotations>" in head and "<version>1.1</version>" in head

    def read(self, path: Path, *, scheme: Optional[str] = None) -> pd.DataFrame:
        if path.is_dir():
            path = path / "annotations.xml"
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise PoseFormatError(f"invalid XML: {exc}", file=path, line=exc.position[0]) from None
        b = RecordBuilder(str(path))
        for im in root.iter("image"):
            name = im.get("name")
            w, h = im.get("width"), im.get("height")
            for n_sk, sk in enumerate(im.iter("skeleton")):
                sc, side = _label(sk.get("label", ""), scheme)
                if side is None:
                    raise PoseFormatError(f"image {name!r}: skeleton label {sk.get('label')!r}: "
                                          + bad_side_message(sk.get("label")), file=path)
                d = load_definition(sc)
                index = {n: i for i, n in enumerate(d.names)}
                pts = list(sk.iter("points"))
                xy = np.full((len(pts), 2), np.nan)
                attr = np.zeros(len(pts), dtype=np.int64)
                order = np.zeros(len(pts), dtype=np.int64)
                for j, p in enumerate(pts):
                    lab = p.get("label")
                    if lab not in index:
                        raise PoseFormatError(f"image {name!r}: element {lab!r} is not a point of scheme {sc}",
                                              file=path, fix=f"element labels must be {d.names[0]} ... {d.names[-1]}")
                    order[j] = index[lab]
                    if p.get("outside") == "1":
                        continue
                    x, y = (float(v) for v in p.get("points", "nan,nan").split(";")[0].split(","))
                    xy[j] = (x, y)
                    attr[j] = 1 if side == "garment" else (1 if p.get("occluded") == "1" else 2)
                srt = np.argsort(order, kind="stable")
                b.add(image=name, side=side, scheme=sc, record=f"image {im.get('id')} skeleton {n_sk}",
                      xy=xy[srt], attribute=attr[srt], points=order[srt],
                      width=float(w) if w else None, height=float(h) if h else None)
        return b.build()
