"""``decoded``: the raw files a loader reads (images, masks, poses) stored decoded, for fast training reads.

Per sample, one array per present role: images ``H x W x 3`` uint8, masks ``H x W`` bool (bit-packed), ``pose``
``K x 3`` float32 in native pixels (never resized: the loader scales keypoints). Parameters: ``size`` (HxW to
store images / masks at; default native), ``roles`` (comma-separated subset; default every image / mask / pose
role). Parses and DensePose have their own kinds.
"""

from __future__ import annotations

from pathlib import Path

from .. import decode
from ..errors import UnknownNameError
from ..manifest import Manifest
from .base import Producer, WorkItem, asset_records

DECODABLE = ("image", "mask", "pose")


class DecodedProducer(Producer):
    kind = "decoded"
    name = "vtondata-decode"
    version = "1"
    unit = "sample"
    needs = ()
    arrays = {"<role>": "uint8 H x W x 3 image / H x W {0,1} mask; pose: float32 K x 3 native pixels"}
    defaults = {"roles": None}

    def _roles(self, role: str) -> bool:
        want = self.params.get("roles")
        if want:
            return role in [r.strip() for r in str(want).split(",")]
        try:
            return decode.role_type(role) in DECODABLE
        except UnknownNameError:  # a role this version does not know how to decode
            return False

    def skip_reason(self, manifest: Manifest):
        if not any(self._roles(r) for r in manifest.assets["role"].unique()):
            return f"decoded: dataset {manifest.dataset} has no image, mask or pose files to decode"
        return None

    def items(self, manifest: Manifest) -> list[WorkItem]:
        recs = asset_records(manifest)
        s = manifest.samples
        out = []
        for sid, split in zip(s["sample_id"], s["split"]):
            inputs = {role: r for role, r in recs.get(sid, {}).items() if self._roles(role)}
            if inputs:
                out.append(WorkItem(sid, split, inputs))
        return sorted(out, key=lambda w: w.key)

    def produce(self, items: list[WorkItem], root: Path) -> list[dict]:
        hw = self.size
        outs = []
        for it in items:
            o = {}
            for role, rec in it.inputs.items():
                arr = decode.decode_asset(rec, root)
                t = decode.role_type(role)
                if t == "image":
                    arr = decode.resize_image(arr, hw)
                elif t == "mask":
                    arr = decode.resize_nearest(arr, hw).astype(bool)
                o[role] = arr
            outs.append(o)
        return outs
