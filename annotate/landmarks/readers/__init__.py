"""Landmark readers: one module per format, registered by name, auto-detected.

Adding a format is a one-file change: drop ``readers/<format>.py`` defining a ``Reader`` subclass
decorated with ``@register``; every module of this package is imported here, so it is found.

Formats shipped: ``coco`` (COCO keypoints JSON), ``deepfashion2`` (per-image JSON, ``item1.landmarks``),
``flat-csv`` (image, side, x0, y0, v0, ...), ``canonical`` (our long table, CSV or Parquet, also the
fixture sidecar), ``inshop`` (DeepFashion In-shop ``list_landmarks_inshop.txt``).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import List, Optional, Union

import pandas as pd

from vtondata.errors import PoseFormatError

from .base import Reader, get_reader, register, registry

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base" and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")


def reader_names() -> List[str]:
    return sorted(registry())


def detect_format(path: Union[str, Path]) -> str:
    """Name of the first reader (by priority) whose ``sniff`` accepts ``path``."""
    path = Path(path)
    if not path.exists():
        raise PoseFormatError("landmark source does not exist", file=path, fix="check the path")
    for r in sorted(registry().values(), key=lambda r: (r.priority, r.name)):
        if r.sniff(path):
            return r.name
    raise PoseFormatError("could not recognise the landmark format", file=path,
                          fix=f"pass --from with one of {reader_names()}")


def read_landmarks(path: Union[str, Path], fmt: Optional[str] = None, *, scheme: Optional[str] = None) -> pd.DataFrame:
    """Read any supported source into the canonical long table (with ``source``/``record`` columns)."""
    path = Path(path)
    name = fmt or detect_format(path)
    if not path.exists():
        raise PoseFormatError("landmark source does not exist", file=path, fix="check the path")
    return get_reader(name).read(path, scheme=scheme)


__all__ = ["Reader", "register", "registry", "get_reader", "reader_names", "detect_format", "read_landmarks"]
