"""Exporters of the canonical landmark table: COCO keypoints JSON, CVAT for images 1.1, Label Studio,
FiftyOne ``Keypoints`` (in memory, for the browse app), plus the canonical table itself."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Union

import pandas as pd

from vtondata.errors import UnknownNameError

from ..io import write_csv, write_json, write_parquet
from .coco import to_coco, to_coco_results
from .cvat import write_cvat
from .labelstudio import write_labelstudio


def _coco(df: pd.DataFrame, out: Path, **kw) -> List[Path]:
    path = out if out.suffix.lower() == ".json" else out / "landmarks_coco.json"
    return [write_json(path, to_coco(df))]


def _canonical(df: pd.DataFrame, out: Path, **kw) -> List[Path]:
    if out.suffix.lower() == ".csv":
        return [write_csv(out, df)]
    return [write_parquet(out if out.suffix.lower() == ".parquet" else out / "landmarks.parquet", df)]


EXPORTERS: Dict[str, Callable[..., List[Path]]] = {
    "coco": _coco,
    "cvat": lambda df, out, **kw: write_cvat(df, out),
    "labelstudio": lambda df, out, **kw: write_labelstudio(df, out, **kw),
    "canonical": _canonical,
}


def export_table(df: pd.DataFrame, to: str, out: Union[str, Path], **kw) -> List[Path]:
    """Write ``df`` in format ``to`` (``coco``, ``cvat``, ``labelstudio``, ``canonical``) under ``out``."""
    if to not in EXPORTERS:
        raise UnknownNameError(f"unknown export format {to!r}", fix=f"use one of {sorted(EXPORTERS)}")
    return EXPORTERS[to](df, Path(out), **kw)


__all__ = ["EXPORTERS", "export_table", "to_coco", "to_coco_results", "write_cvat", "write_labelstudio"]
