"""Landmark schemes as data: load ``annotate/data/*.json`` into :class:`LandmarkDefinition`.

A scheme names K points (with flip partners, skeleton edges, OKS sigmas, colours and an illustrative
template shape) and, per image side (``garment`` / ``person``), the attribute encoding and its mapping
to COCO visibility. ``sal32`` is the SAL-HG scheme; ``inshop-upper|lower|full`` are DeepFashion In-shop's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from vtondata.errors import UnknownNameError

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SIDES = ("garment", "person")


@dataclass(frozen=True)
class SideEncoding:
    """Attribute codes of one side: ``{code: meaning}`` plus the COCO visibility mappings."""

    attributes: Dict[int, str]
    to_coco: Dict[int, int]
    from_coco: Dict[int, int]

    @property
    def codes(self) -> Tuple[int, ...]:
        return tuple(sorted(self.attributes))

    def lut_to_coco(self) -> np.ndarray:
        """Lookup table ``attribute -> COCO v`` (index = attribute code)."""
        lut = np.zeros(max(self.attributes) + 1, dtype=np.int64)
        for a, v in self.to_coco.items():
            lut[a] = v
        return lut

    def lut_from_coco(self) -> np.ndarray:
        """Lookup table ``COCO v (0/1/2) -> attribute``."""
        lut = np.zeros(3, dtype=np.int64)
        for v, a in self.from_coco.items():
            lut[v] = a
        return lut


@dataclass(frozen=True)
class LandmarkDefinition:
    """One keypoint scheme. Point ids are 0-based; ``skeleton`` edges are 0-based pairs."""

    name: str
    title: str
    names: Tuple[str, ...]
    labels: Tuple[str, ...]
    parts: Tuple[str, ...]
    flip: np.ndarray = field(repr=False)          # (K,) int: partner index under a horizontal flip
    sigmas: np.ndarray = field(repr=False)        # (K,) float: OKS sigmas (COCO convention, k = 2 sigma)
    colors: Tuple[Tuple[int, int, int], ...] = field(repr=False)
    template: np.ndarray = field(repr=False)      # (K, 2) float in [0, 1]: illustrative mean shape
    skeleton: Tuple[Tuple[int, int], ...] = ()
    outline: Tuple[int, ...] = ()
    sides: Dict[str, SideEncoding] = field(default_factory=dict, repr=False)
    family: str = ""                              # the data file it came from ("sal32", "inshop")
    extra: Dict = field(default_factory=dict, repr=False)

    @property
    def num_points(self) -> int:
        return len(self.names)

    def side(self, side: str) -> SideEncoding:
        try:
            return self.sides[side]
        except KeyError:
            raise UnknownNameError(f"side {side!r} is not defined for landmark scheme {self.name!r}",
                                   fix=f"use one of {sorted(self.sides)}") from None


def _parse_points(name: str, title: str, d: dict, sides: dict, family: str, extra: dict) -> LandmarkDefinition:
    pts = sorted(d["points"], key=lambda p: p["id"])
    if [p["id"] for p in pts] != list(range(len(pts))):
        raise ValueError(f"{name}: point ids must be 0..K-1")
    k = len(pts)
    flip = np.array([p["flip"] for p in pts], dtype=np.int64)
    if not np.array_equal(flip[flip], np.arange(k)):
        raise ValueError(f"{name}: flip partners are not an involution")
    enc = {
        s: SideEncoding(
            attributes={int(a): m for a, m in e["attributes"].items()},
            to_coco={int(a): int(v) for a, v in e["coco_visibility"].items()},
            from_coco={int(v): int(a) for v, a in e["from_coco_visibility"].items()},
        )
        for s, e in sides.items()
    }
    return LandmarkDefinition(
        name=name,
        title=title,
        names=tuple(p["name"] for p in pts),
        labels=tuple(p.get("label", p["name"]) for p in pts),
        parts=tuple(p.get("part", "") for p in pts),
        flip=flip,
        sigmas=np.array([p["sigma"] for p in pts], dtype=np.float64),
        colors=tuple(tuple(p.get("color", (255, 255, 255))) for p in pts),
        template=np.array([p.get("template", (0.5, 0.5)) for p in pts], dtype=np.float64),
        skeleton=tuple(tuple(e) for e in d.get("skeleton", ())),
        outline=tuple(d.get("outline", ())),
        sides=enc,
        family=family,
        extra=extra,
    )


@lru_cache(maxsize=None)
def _registry() -> Dict[str, LandmarkDefinition]:
    out: Dict[str, LandmarkDefinition] = {}
    for path in sorted(DATA_DIR.glob("*.json")):
        d = json.loads(path.read_text())
        if "points" not in d and "schemes" not in d:
            continue  # another kind of data file
        family = d.get("name", path.stem)
        extra = {k: v for k, v in d.items() if k not in ("points", "schemes", "skeleton", "outline")}
        if "schemes" in d:
            for name, sd in d["schemes"].items():
                out[name] = _parse_points(name, d.get("title", name), sd, d["sides"], family, extra)
        else:
            out[family] = _parse_points(family, d.get("title", family), d, d["sides"], family, extra)
    return out


def definition_names() -> List[str]:
    """Names of every landmark scheme found in ``annotate/data``."""
    return sorted(_registry())


def load_definition(name: str = "sal32") -> LandmarkDefinition:
    """The scheme called ``name`` (``sal32``, ``inshop-upper``, ``inshop-lower``, ``inshop-full``)."""
    reg = _registry()
    if name not in reg:
        raise UnknownNameError(f"unknown landmark scheme {name!r}", fix=f"use one of {sorted(reg)}")
    return reg[name]


def scheme_for_point_count(k: int) -> str:
    """The only scheme with ``k`` points, else ``sal32`` (used when a file does not name its scheme)."""
    hits = [n for n, d in _registry().items() if d.num_points == k]
    return hits[0] if len(hits) == 1 else "sal32"
