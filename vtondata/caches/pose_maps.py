"""``pose-maps``: keypoint maps of each person's OpenPose keypoints (converted to COCO-18).

Arrays per person sample (frame = the person image, or ``size``; keypoints scaled to it):

``disc``       ``18 x H x W`` bool: discs of ``radius`` px (default 4, SPG-VTON's pose input)
``gauss``      ``18 x H x W`` float16 in [0, 1]: Gaussians of ``sigma`` px (default 6)
``limb_mask``  ``H x W`` bool: PG2's mask-SSIM body mask -- bands of half-width ``limb_radius`` along the
               limbs of ``data/pose_maps.json`` plus discs at the joints, closed with a 5 x 5 square

``maps`` (default ``disc,limb_mask``) chooses what is stored: bool maps are bit-packed (18 discs at 1024 x 768
take 1.8 MB), while ``gauss`` costs 2 bytes per pixel and channel (28 MB per 1024 x 768 image: prefer ``size``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from skimage.draw import disk, polygon
from skimage.morphology import dilation, erosion

from .. import decode
from ..manifest import Manifest
from ..pose import to_coco18, visible
from .base import Producer, WorkItem, asset_records
from .heatmaps import disc_maps, gaussian_maps


@lru_cache(maxsize=1)
def pose_map_table() -> dict:
    return json.loads(resources.files("vtondata").joinpath("data/pose_maps.json").read_text())


def limb_mask(kp: np.ndarray, height: int, width: int, radius: float = 4.0) -> np.ndarray:
    """PG2 body mask ``H x W`` uint8 {0, 1} from COCO-18 keypoints ``18 x 2+`` (x, y; missing = 0, 0)."""
    t = pose_map_table()
    vis = visible(kp)
    m = np.zeros((height, width), bool)
    for f, to in t["pg2_mask_limbs"]:
        if not (vis[f] and vis[to]):
            continue
        a, b = kp[f, :2].astype(np.float64), kp[to, :2].astype(np.float64)
        d = a - b
        n = np.linalg.norm(d)
        if n == 0:
            continue
        nv = np.array([-d[1], d[0]]) * radius / n
        quad = np.array([a + nv, a - nv, b - nv, b + nv])
        rr, cc = polygon(quad[:, 1], quad[:, 0], shape=(height, width))
        m[rr, cc] = True
    for k in np.nonzero(vis)[0]:
        rr, cc = disk((kp[k, 1], kp[k, 0]), radius, shape=(height, width))
        m[rr, cc] = True
    k = t["closing_square"]
    fp = np.ones((k, k), bool)
    ys, xs = np.nonzero(m)
    if not len(ys):
        return m.astype(np.uint8)
    # close only the window around the mask (padded beyond the footprint's reach: same result, much less work)
    pad = k + 1
    y0, y1 = max(0, ys.min() - pad), min(height, ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(width, xs.max() + pad + 1)
    out = np.zeros((height, width), np.uint8)
    out[y0:y1, x0:x1] = erosion(dilation(m[y0:y1, x0:x1], fp), fp)
    return out


def frame_items(manifest: Manifest, roles: tuple, frame_role: str = "person", kinds=("person",)) -> list[WorkItem]:
    """Per-sample items with ``roles`` plus a pseudo-input ``frame`` (``WxH`` of the sample's image)."""
    recs = asset_records(manifest)
    s = manifest.samples
    s = s[s["kind"].isin(kinds)]
    out = []
    for sid, split in zip(s["sample_id"], s["split"]):
        r = recs.get(sid, {})
        fr = r.get(frame_role)
        if fr is None or fr.get("width") is None or not all(x in r for x in roles):
            continue
        inputs = {x: r[x] for x in roles}
        inputs["frame"] = {"hash": f"{int(fr['width'])}x{int(fr['height'])}", "width": int(fr["width"]),
                           "height": int(fr["height"])}
        out.append(WorkItem(sid, split, inputs))
    return sorted(out, key=lambda w: w.key)


class PoseMapsProducer(Producer):
    kind = "pose-maps"
    name = "vtondata-pose-maps"
    version = "1"
    unit = "sample"
    needs = ("pose",)
    arrays = {"disc": "bool 18 x H x W", "gauss": "float16 18 x H x W [0,1]", "limb_mask": "bool H x W"}
    defaults = {"radius": 4.0, "sigma": 6.0, "limb_radius": 4.0, "maps": "disc,limb_mask"}

    def items(self, manifest: Manifest) -> list[WorkItem]:
        return frame_items(manifest, ("pose",))

    def produce(self, items: list[WorkItem], root: Path) -> list[dict]:
        want = {m.strip() for m in str(self.params["maps"]).split(",")}
        bad = want - set(self.arrays)
        if bad:
            from ..errors import VtonDataError

            raise VtonDataError(f"pose-maps: unknown map(s) {sorted(bad)}", fix=f"--param maps= a subset of {sorted(self.arrays)}")
        outs = []
        for it in items:
            fr = it.inputs["frame"]
            h0, w0 = fr["height"], fr["width"]
            h, w = self.size or (h0, w0)
            kp = to_coco18(decode.decode_asset(it.inputs["pose"], root)).astype(np.float32).copy()
            vis = visible(kp)
            kp[:, 0] *= w / w0
            kp[:, 1] *= h / h0
            kp[~vis, :2] = 0
            o = {}
            if "disc" in want:
                o["disc"] = disc_maps(kp[:, :2], vis, h, w, float(self.params["radius"])).astype(bool)
            if "gauss" in want:
                o["gauss"] = gaussian_maps(kp[:, :2], vis, h, w, float(self.params["sigma"]))
            if "limb_mask" in want:
                o["limb_mask"] = limb_mask(kp, h, w, float(self.params["limb_radius"])).astype(bool)
            outs.append(o)
        return outs
