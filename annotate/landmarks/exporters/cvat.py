"""CVAT for images 1.1 XML with one skeleton label per side (importable into a CVAT task).

Writes ``annotations.xml`` (upload with "CVAT 1.1") and ``cvat_labels.json`` (paste into the task's
label constructor, "Raw", before uploading, so the skeleton labels exist). A skeleton element is
``outside="1"`` when the point is absent and ``occluded="1"`` when a person point is occluded.
Label names: ``garment`` / ``person`` (prefixed ``<scheme>-`` when a file mixes schemes).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np
import pandas as pd

from ..definition import LandmarkDefinition, load_definition
from ..io import write_json, write_text
from ..table import to_arrays


def label_names(df: pd.DataFrame) -> Dict[Tuple[str, str], str]:
    pairs = sorted(set(zip(df["scheme"], df["side"])))
    mixed = len({s for s, _ in pairs}) > 1
    return {(sc, side): (f"{sc}-{side}" if mixed else side) for sc, side in pairs}


def skeleton_svg(d: LandmarkDefinition) -> str:
    """The skeleton drawing CVAT stores with a skeleton label (0-100 canvas, node ids 1-based)."""
    t = d.template * 80 + 10
    lines = [f'<line x1="{t[a, 0]:.2f}" y1="{t[a, 1]:.2f}" x2="{t[b, 0]:.2f}" y2="{t[b, 1]:.2f}" '
             f'stroke="black" data-type="edge" data-node-from="{a + 1}" stroke-width="0.5" data-node-to="{b + 1}"></line>'
             for a, b in d.skeleton]
    nodes = [f'<circle r="0.75" stroke="black" fill="#b3b3b3" cx="{t[i, 0]:.2f}" cy="{t[i, 1]:.2f}" stroke-width="0.1" '
             f'data-type="element node" data-element-id="{i + 1}" data-node-id="{i + 1}" data-label-name="{n}"></circle>'
             for i, n in enumerate(d.names)]
    return "".join(lines + nodes)


def cvat_labels(df: pd.DataFrame) -> List[dict]:
    """Label specification for CVAT's raw label constructor."""
    out = []
    for (scheme, side), name in label_names(df).items():
        d = load_definition(scheme)
        out.append({"name": name, "type": "skeleton", "attributes": [],
                    "sublabels": [{"name": n, "type": "points", "attributes": []} for n in d.names],
                    "svg": skeleton_svg(d)})
    return out


def to_cvat_xml(df: pd.DataFrame, *, task_name: str = "vtondata landmarks") -> str:
    names = label_names(df)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    ET.SubElement(task, "name").text = task_name
    images = sorted(df["image"].astype(str).unique())
    ET.SubElement(task, "size").text = str(len(images))
    ET.SubElement(task, "mode").text = "annotation"
    labels = ET.SubElement(task, "labels")
    for (scheme, side), name in names.items():
        d = load_definition(scheme)
        lab = ET.SubElement(labels, "label")
        ET.SubElement(lab, "name").text = name
        ET.SubElement(lab, "type").text = "skeleton"
        ET.SubElement(lab, "attributes")
        ET.SubElement(lab, "svg").text = skeleton_svg(d)
        for n in d.names:
            sub = ET.SubElement(labels, "label")
            ET.SubElement(sub, "name").text = n
            ET.SubElement(sub, "type").text = "points"
            ET.SubElement(sub, "attributes")
            ET.SubElement(sub, "parent").text = name
    per_image: Dict[str, list] = {}
    sizes: Dict[str, Tuple[float, float]] = {}
    for scheme, sub in df.groupby("scheme", sort=True):
        d = load_definition(scheme)
        keys, xy, attr = to_arrays(sub, d)
        w = keys["width"].to_numpy(np.float64) if "width" in keys.columns else np.full(len(keys), np.nan)
        h = keys["height"].to_numpy(np.float64) if "height" in keys.columns else np.full(len(keys), np.nan)
        for i, (img, side) in enumerate(zip(keys["image"].astype(str), keys["side"])):
            per_image.setdefault(img, []).append((d, names[(scheme, side)], side, xy[i], attr[i]))
            sizes[img] = (w[i], h[i])
    for idx, img in enumerate(images):
        w, h = sizes.get(img, (np.nan, np.nan))
        attrs = {"id": str(idx), "name": img}
        if np.isfinite(w):
            attrs.update(width=str(int(round(w))), height=str(int(round(h))))
        el = ET.SubElement(root, "image", attrs)
        for d, name, side, xy, at in per_image.get(img, []):
            sk = ET.SubElement(el, "skeleton", {"label": name, "source": "manual", "z_order": "0"})
            fill = d.template * np.array([w if np.isfinite(w) else 1.0, h if np.isfinite(h) else 1.0])
            for k, n in enumerate(d.names):
                absent = at[k] == 0 or not np.all(np.isfinite(xy[k]))
                px, py = fill[k] if absent else xy[k]
                ET.SubElement(sk, "points", {
                    "label": n, "source": "manual", "outside": "1" if absent else "0",
                    "occluded": "1" if (side == "person" and at[k] == 1) else "0",
                    "points": f"{px:.2f},{py:.2f}"})
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_cvat(df: pd.DataFrame, out_dir: Union[str, Path]) -> List[Path]:
    """Write ``annotations.xml`` and ``cvat_labels.json`` into ``out_dir``."""
    out_dir = Path(out_dir)
    a = write_text(out_dir / "annotations.xml", to_cvat_xml(df))
    b = write_json(out_dir / "cvat_labels.json", cvat_labels(df), indent=1)
    return [a, b]

