"""``parse``: human parsing as label ids, decoded from the shipped files or made by an external parser plugin.

Shipped parses are decoded by encoding (palette PNG, grey ids, RGB colour renderings of CP-VTON+, VITON
``.mat``) into ids of their declared label space; ``label_space=`` maps them (CIHP <-> LIP <-> ATR through
``vtondata/data/label_spaces.json``). With ``plugin=SPEC`` (:mod:`.plugins`) the person images go through
your parser instead; the cache records the plugin's name and weights hash. Output per person sample:
``parse`` ``H x W`` uint8 ids; key meta ``label_space``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import decode
from ..errors import VtonDataError
from ..labels import label_space as get_space, mapping
from .base import Producer, WorkItem


class ParseProducer(Producer):
    kind = "parse"
    name = "vtondata-parse"
    version = "1"
    unit = "sample"
    accepts_plugin = True
    needs = ("parse",)
    arrays = {"parse": "uint8 H x W label ids (key meta: label_space)"}
    defaults = {"label_space": None, "batch": 8}

    def required_roles(self) -> tuple:
        return ("person",) if self.params.get("plugin") else ("parse",)

    def _map(self, ids: np.ndarray, src: str, file) -> tuple[np.ndarray, str]:
        dst = self.params.get("label_space")
        if not dst or dst == src:
            return ids, src
        out = mapping(src, dst)[ids]
        if (out == 255).any():
            raise VtonDataError(f"ids outside {src} in a parse mapped to {dst}", file=file,
                                fix="check the declared label space of this dataset's parses")
        return out, dst

    def produce(self, items: list[WorkItem], root: Path) -> list[dict]:
        hw = self.size
        outs = []
        if self.params.get("plugin"):
            plug = self.plugin
            if plug.task != "parse":
                raise VtonDataError(f"plugin {plug.name} is a {plug.task} plugin, not a parser",
                                    fix="use it with --kind densepose")
            src = plug.label_space or "cihp20"
            get_space(src)
            bs = int(self.params.get("batch") or 8)
            for j in range(0, len(items), bs):
                group = items[j:j + bs]
                images = [decode.read_image(Path(root) / it.inputs["person"]["path"]) for it in group]
                for it, im, ids in zip(group, images, plug.run(images)):
                    ids = np.asarray(ids, np.uint8)
                    if ids.shape != im.shape[:2]:
                        raise VtonDataError(f"plugin {plug.name} returned {ids.shape} for a {im.shape[:2]} image",
                                            file=it.inputs["person"]["path"], fix="return one id per pixel")
                    ids, space = self._map(ids, src, it.inputs["person"]["path"])
                    outs.append({"parse": decode.resize_nearest(ids, hw), "_meta": {"label_space": space}})
            return outs
        for it in items:
            rec = it.inputs["parse"]
            ids = decode.decode_asset(rec, root)
            ids, space = self._map(ids, rec.get("label_space") or "cihp20", rec["path"])
            outs.append({"parse": decode.resize_nearest(np.ascontiguousarray(ids, np.uint8), hw),
                         "_meta": {"label_space": space}})
        return outs
