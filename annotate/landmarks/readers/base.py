"""What every landmark reader shares: the :class:`Reader` interface, the registry and a record builder.

A reader turns one source (file or folder) into the canonical long table (see ``table.py``) plus the
provenance columns ``source`` (file) and ``record`` (e.g. ``annotation id 7``, ``line 12``) that the
checks quote in their messages. Readers never judge content (point counts, ranges): ``checks.py`` does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from vtondata.errors import UnknownNameError

from ..definition import SIDES
from ..table import categorical

_READERS: Dict[str, "Reader"] = {}

#: Words accepted for the two sides (lower case). DeepFashion2 says "shop" / "user" for the same idea.
SIDE_WORDS = {"garment": "garment", "cloth": "garment", "clothes": "garment", "shop": "garment",
              "person": "person", "user": "person", "model": "person"}


class Reader(ABC):
    """Base class. Subclasses set ``name``, ``description``, ``priority`` and implement both methods."""

    name: str = ""
    description: str = ""
    priority: int = 50  # lower is sniffed first

    @abstractmethod
    def sniff(self, path: Path) -> bool:
        """Cheap test (reads at most a few KiB) that ``path`` is in this format."""

    @abstractmethod
    def read(self, path: Path, *, scheme: Optional[str] = None) -> pd.DataFrame:
        """Read ``path`` into the canonical long table with ``source`` and ``record`` columns."""


def register(cls):
    """Class decorator: add a reader to the registry under ``cls.name`` (names must be unique)."""
    inst = cls()
    if not inst.name or inst.name in _READERS:
        raise ValueError(f"reader name {inst.name!r} is empty or already registered")
    _READERS[inst.name] = inst
    return cls


def registry() -> Dict[str, Reader]:
    return dict(_READERS)


def get_reader(name: str) -> Reader:
    if name not in _READERS:
        raise UnknownNameError(f"unknown landmark format {name!r}", fix=f"use one of {sorted(_READERS)}")
    return _READERS[name]


def read_head(path: Path, n: int = 4096) -> str:
    with open(path, "rb") as fh:
        return fh.read(n).decode("utf-8", errors="replace")


def side_word(word) -> Optional[str]:
    """Map a side word (``garment``, ``cloth``, ``shop``, ``person``, ``user`` ...) to a side, else None."""
    if word is None:
        return None
    return SIDE_WORDS.get(str(word).strip().lower())


class RecordBuilder:
    """Collects records (one per image and side) and builds the long table in one concatenation."""

    def __init__(self, source: str):
        self.source = source
        self.meta: Dict[str, List] = {k: [] for k in ("image", "side", "scheme", "record", "width", "height", "score")}
        self.xy: List[np.ndarray] = []
        self.attr: List[np.ndarray] = []
        self.points: List[np.ndarray] = []

    def add(self, *, image: str, side: str, scheme: str, record: str, xy: np.ndarray, attribute: np.ndarray,
            width=None, height=None, score=None, points=None) -> None:
        """``xy`` (n, 2) float, NaN allowed; ``attribute`` (n,) int; ``points`` (n,) indices (default 0..n-1)."""
        for k, v in (("image", image), ("side", side), ("scheme", scheme), ("record", record),
                     ("width", width), ("height", height), ("score", score)):
            self.meta[k].append(v)
        self.xy.append(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        self.attr.append(np.asarray(attribute, dtype=np.int64).reshape(-1))
        self.points.append(np.arange(len(self.attr[-1])) if points is None else np.asarray(points, np.int64))

    def build(self) -> pd.DataFrame:
        if not self.xy:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in (
                ("image", object), ("side", object), ("point", np.int16), ("x", np.float32), ("y", np.float32),
                ("attribute", np.int64), ("scheme", object), ("source", object), ("record", object))})
        counts = np.array([len(a) for a in self.attr])
        xy = np.concatenate(self.xy)
        attr = np.concatenate(self.attr)
        df = pd.DataFrame({
            "image": categorical(self.meta["image"], counts),
            "side": categorical(self.meta["side"], counts),
            "point": np.concatenate(self.points).astype(np.int16),
            "x": xy[:, 0].astype(np.float32),
            "y": xy[:, 1].astype(np.float32),
            "attribute": attr,
            "scheme": categorical(self.meta["scheme"], counts),
        })
        for k in ("width", "height", "score"):
            vals = self.meta[k]
            if any(v is not None for v in vals):
                df[k] = np.repeat(np.array([np.nan if v is None else float(v) for v in vals]), counts)
        df["source"] = categorical([self.source] * len(counts), counts)
        df["record"] = categorical(self.meta["record"], counts)
        return df


def bad_side_message(value) -> str:
    return f"side {value!r} is not one of {list(SIDES)} (also accepted: {sorted(SIDE_WORDS)})"
