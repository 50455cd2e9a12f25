"""Label spaces of human parsing and accessory backgrounds, as data (``data/label_spaces.json``).

``cihp20`` (VITON-HD, MPV; id 10 = neck / torso skin), ``lip20`` (VITON), ``atr18`` (Dress Code),
``face12`` / ``body8`` (STRAT backgrounds), ``binary`` (masks); plus the well-defined mappings between
them (``cihp20->lip20``, ``lip20->atr18``, ``cihp20->vitonhd13`` ...) as lookup tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from .errors import UnknownNameError


@dataclass(frozen=True)
class LabelSpace:
    name: str
    names: tuple[str, ...]
    colors: np.ndarray  # (K, 3) uint8
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def id_of(self, name: str) -> int:
        return self.names.index(name)

    def palette(self) -> list[int]:
        """A 768-entry PIL palette (unused entries black)."""
        pal = np.zeros((256, 3), np.uint8)
        pal[: self.num_classes] = self.colors
        return pal.reshape(-1).tolist()

    def colorize(self, ids: np.ndarray) -> np.ndarray:
        """(H, W) ids -> (H, W, 3) uint8 colours."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: self.num_classes] = self.colors
        return lut[ids]

    def ids_from_colors(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) colour rendering -> (H, W) ids; colours not in the space give 255."""
        key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
        ckey = (self.colors[:, 0].astype(np.int32) << 16) | (self.colors[:, 1].astype(np.int32) << 8) | self.colors[:, 2]
        order = np.argsort(ckey)
        sk = ckey[order]
        pos = np.clip(np.searchsorted(sk, key), 0, len(sk) - 1)
        hit = sk[pos] == key
        out = np.where(hit, order[pos], 255).astype(np.uint8)
        return out


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files("vtondata").joinpath("data/label_spaces.json").read_text())


def label_space(name: str) -> LabelSpace:
    spaces = _data()["spaces"]
    if name not in spaces:
        raise UnknownNameError(f"unknown label space {name!r}", fix=f"use one of {sorted(spaces)}")
    d = spaces[name]
    return LabelSpace(name, tuple(c["name"] for c in d["classes"]),
                      np.array([c["color"] for c in d["classes"]], np.uint8), d["source"])


def label_spaces() -> list[str]:
    return sorted(_data()["spaces"])


def mapping(src: str, dst: str) -> np.ndarray:
    """A 256-entry lookup table ``lut[src_id] = dst_id`` (255 for ids outside the source space)."""
    key = f"{src}->{dst}"
    maps = _data()["mappings"]
    if key not in maps:
        raise UnknownNameError(f"no well-defined mapping {key}", fix=f"available: {sorted(maps)}")
    lut = np.full(256, 255, np.uint8)
    for k, v in maps[key]["map"].items():
        lut[int(k)] = v
    return lut
