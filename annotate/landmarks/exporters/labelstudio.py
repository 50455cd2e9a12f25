"""Label Studio import: ``tasks.json`` (one task per image and side, landmarks as pre-annotations)
and ``label_config.xml`` (the labelling interface: one ``KeyPointLabels`` with the K point names, and a
per-region ``Choices`` for the attribute).

Coordinates become percentages of the image size (Label Studio's convention); absent points are not
written (the labeller adds them when they appear). ``image_prefix`` is prepended to the image path in
``data.image`` (default: Label Studio local-files storage).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Union
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from vtondata.errors import VtonDataError

from ..definition import load_definition
from ..io import write_json, write_text
from ..table import to_arrays

FROM_NAME = "landmark"
ATTR_NAME = "attribute"


def label_config(df: pd.DataFrame) -> str:
    schemes = sorted(df["scheme"].unique()) if len(df) else ["sal32"]
    labels, attrs = [], []
    for sc in schemes:
        d = load_definition(sc)
        for name, col in zip(d.names, d.colors):
            v = name if len(schemes) == 1 else f"{sc}:{name}"
            labels.append(f'    <Label value={quoteattr(v)} background="#{col[0]:02x}{col[1]:02x}{col[2]:02x}"/>')
        for enc in d.sides.values():
            attrs += [m for c, m in sorted(enc.attributes.items()) if c > 0 and m not in attrs]
    choices = "\n".join(f"    <Choice value={quoteattr(a)}/>" for a in attrs)
    return ("<View>\n"
            '  <Header value="$side landmarks ($scheme): the same index means the same place on garment and person"/>\n'
            '  <Image name="image" value="$image" zoom="true" zoomControl="true"/>\n'
            f'  <KeyPointLabels name="{FROM_NAME}" toName="image" strokeWidth="2" opacity="0.9">\n'
            + "\n".join(labels) + "\n  </KeyPointLabels>\n"
            f'  <Choices name="{ATTR_NAME}" toName="image" perRegion="true" required="false">\n{choices}\n  </Choices>\n'
            "</View>\n")


def to_tasks(df: pd.DataFrame, *, image_prefix: str = "/data/local-files/?d=", as_annotations: bool = False,
             point_size: float = 0.6) -> List[dict]:
    multi = df["scheme"].nunique() > 1
    tasks = []
    for scheme, sub in df.groupby("scheme", sort=True):
        d = load_definition(scheme)
        keys, xy, attr = to_arrays(sub, d)
        if "width" not in keys.columns or keys["width"].isna().any():
            raise VtonDataError("Label Studio needs the image sizes (coordinates are stored as percentages)",
                                fix="convert with --dataset or --root first so width and height are known")
        for i, r in keys.iterrows():
            w, h = float(r["width"]), float(r["height"])
            enc = d.side(r["side"]).attributes
            result = []
            for k, name in enumerate(d.names):
                if attr[i, k] <= 0 or not np.all(np.isfinite(xy[i, k])):
                    continue
                geom = {"x": round(100.0 * xy[i, k, 0] / w, 4), "y": round(100.0 * xy[i, k, 1] / h, 4),
                        "width": point_size}
                rid = f"{r['side'][0]}{k:02d}"
                common = {"id": rid, "to_name": "image", "original_width": int(round(w)),
                          "original_height": int(round(h)), "image_rotation": 0}
                label = f"{scheme}:{name}" if multi else name
                result.append({**common, "from_name": FROM_NAME, "type": "keypointlabels",
                               "value": {**geom, "keypointlabels": [label]}})
                result.append({**common, "from_name": ATTR_NAME, "type": "choices",
                               "value": {**geom, "choices": [enc[int(attr[i, k])]]}})
            block = {"result": result}
            if "score" in keys.columns and np.isfinite(r["score"]):
                block["score"] = float(r["score"])
            task = {"data": {"image": image_prefix + str(r["image"]), "side": r["side"], "scheme": scheme}}
            if as_annotations:
                task["annotations"] = [block]
            else:
                task["predictions"] = [{"model_version": "vtondata-import", **block}]
            tasks.append(task)
    return tasks


def write_labelstudio(df: pd.DataFrame, out_dir: Union[str, Path], **kw) -> List[Path]:
    """Write ``tasks.json`` and ``label_config.xml`` into ``out_dir``."""
    out_dir = Path(out_dir)
    a = write_json(out_dir / "tasks.json", to_tasks(df, **kw), indent=1)
    b = write_text(out_dir / "label_config.xml", label_config(df))
    return [a, b]
