"""``landmark-maps``: Gaussian heatmaps of annotated landmarks (the manifest's ``landmarks`` table).

The table (written by ``annotate``) has one row per (asset_id, side, point) with pixel ``x``, ``y`` and an
``attribute`` (0 = absent). Per sample whose image has landmarks: ``maps`` ``K x H x W`` float16 in [0, 1]
(``sigma`` px, default 6; absent points give zero channels), key meta ``side`` and ``points``. Parameters:
``sigma``, ``size``. Skipped for datasets without a ``landmarks`` table.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..manifest import Manifest
from .base import Producer, WorkItem, asset_records
from .heatmaps import gaussian_maps


class LandmarkMapsProducer(Producer):
    kind = "landmark-maps"
    name = "vtondata-landmark-maps"
    version = "1"
    unit = "sample"
    needs = ("landmarks table",)
    arrays = {"maps": "float16 K x H x W [0,1] (key meta: side, points)"}
    defaults = {"sigma": 6.0}

    def skip_reason(self, manifest: Manifest):
        if not manifest.has_table("landmarks"):
            return (f"landmark-maps: dataset {manifest.dataset} has no landmarks table "
                    "(annotate landmarks first; see `vtondata --help`)")
        return None

    def items(self, manifest: Manifest) -> list[WorkItem]:
        lm = manifest.table("landmarks")
        a = manifest.assets.set_index("asset_id")
        recs = asset_records(manifest)
        out = []
        for aid, g in lm.groupby("asset_id", sort=True):
            if aid not in a.index:
                continue
            row = a.loc[aid]
            sid, role = row["sample_id"], row["role"]
            rec = recs[sid][role]
            if rec.get("width") is None:
                continue
            g = g.sort_values("point")
            pts = np.c_[g["x"].to_numpy(np.float64), g["y"].to_numpy(np.float64), g["attribute"].to_numpy(np.float64)]
            h = hashlib.blake2b(np.ascontiguousarray(pts).tobytes(), digest_size=16).hexdigest()
            side = str(g["side"].iloc[0])
            out.append(WorkItem(sid, row["split"], {
                "image": rec,
                "landmarks": {"hash": h, "points": pts.tolist(), "side": side}}))
        return sorted(out, key=lambda w: w.key)

    def produce(self, items: list[WorkItem], root: Path) -> list[dict]:
        outs = []
        for it in items:
            rec = it.inputs["image"]
            h0, w0 = int(rec["height"]), int(rec["width"])
            h, w = self.size or (h0, w0)
            pts = np.asarray(it.inputs["landmarks"]["points"], np.float64).reshape(-1, 3)
            vis = (pts[:, 2] > 0) & np.isfinite(pts[:, :2]).all(1)
            xy = np.nan_to_num(pts[:, :2]) * [w / w0, h / h0]
            outs.append({"maps": gaussian_maps(xy, vis, h, w, float(self.params["sigma"])),
                         "_meta": {"side": it.inputs["landmarks"]["side"], "points": int(len(pts))}})
        return outs
