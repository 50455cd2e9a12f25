"""``densepose``: one canonical IUV per person sample from any of the three on-disk encodings, or a plugin.

Output ``iuv`` ``H x W x 3`` uint8 ``[I (0-24), round(U*255), round(V*255)]`` (the 8-bit precision of every
source encoding); key meta ``uv_valid`` (False for VITON-HD ``dp_segm`` pictures, which carry no UV: U = V = 0).
Parameters: ``cmap`` (colormap of ``vitonhd_dp_segm`` pictures: parula / viridis / vtondata-fixture), ``size``,
``plugin`` (an external DensePose run, e.g. detectron2 ``apply_net``; recorded by name and weights hash).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import decode
from ..errors import VtonDataError
from .base import Producer, WorkItem


class DensePoseProducer(Producer):
    kind = "densepose"
    name = "vtondata-densepose"
    version = "1"
    unit = "sample"
    accepts_plugin = True
    needs = ("densepose",)
    arrays = {"iuv": "uint8 H x W x 3 [I, U*255, V*255] (key meta: uv_valid)"}
    defaults = {"cmap": "parula", "batch": 8}

    def required_roles(self) -> tuple:
        return ("person",) if self.params.get("plugin") else ("densepose",)

    def produce(self, items: list[WorkItem], root: Path) -> list[dict]:
        hw = self.size
        outs = []
        if self.params.get("plugin"):
            plug = self.plugin
            if plug.task != "densepose":
                raise VtonDataError(f"plugin {plug.name} is a {plug.task} plugin, not DensePose",
                                    fix="use it with --kind parse")
            bs = int(self.params.get("batch") or 8)
            for j in range(0, len(items), bs):
                group = items[j:j + bs]
                images = [decode.read_image(Path(root) / it.inputs["person"]["path"]) for it in group]
                for res in plug.run(images):
                    if isinstance(res, (tuple, list)) and len(res) == 3:
                        iuv = decode.iuv_to_uint8(*res)
                    else:
                        iuv = decode.iuv_to_uint8(*decode.read_densepose(np.asarray(res, np.uint8), "pws_iuv"))
                    outs.append({"iuv": decode.resize_nearest(iuv, hw), "_meta": {"uv_valid": True}})
            return outs
        for it in items:
            rec = it.inputs["densepose"]
            I, U, V = decode.read_densepose(Path(root) / rec["path"], rec.get("encoding"),
                                            cmap=self.params.get("cmap") or "parula")
            valid = bool(np.isfinite(U).all())
            outs.append({"iuv": decode.resize_nearest(decode.iuv_to_uint8(I, U, V), hw),
                         "_meta": {"uv_valid": valid}})
        return outs
