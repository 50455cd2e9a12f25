"""The functions behind ``vtondata landmarks convert | export | eval | draw`` (one call per command)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import pandas as pd

from vtondata.errors import VtonDataError

from . import manifest as mf
from .catalog import catalog_from_root
from .checks import Finding, apply_policy, check_landmarks
from .draw import draw_pair_from_table, save_png
from .exporters import export_table
from .io import write_csv, write_parquet
from .metrics import evaluate_files
from .readers import detect_format, read_landmarks
from .table import COLUMNS, normalise

KEEP = COLUMNS + ["width", "height", "asset_id", "score"]


@dataclass
class ConvertResult:
    source: Path
    format: str
    table: pd.DataFrame
    findings: List[Finding]
    files: List[Path] = field(default_factory=list)
    manifest_table: Optional[Path] = None
    seconds: float = 0.0
    checked_against: str = "nothing (no --dataset, --manifest or --root)"

    @property
    def n_records(self) -> int:
        return int(self.table.groupby(["scheme", "image", "side"]).ngroups) if len(self.table) else 0


def _context(dataset, manifest_dir, root):
    """(manifest or None, catalog or None, pairs or None, description)."""
    if dataset or manifest_dir:
        m = mf.open_dataset(dataset, manifest_dir)
        return m, mf.catalog_from_manifest(m), mf.pairs_from_manifest(m), f"manifest {m.dir}"
    if root:
        return None, catalog_from_root(root), None, f"images under {root}"
    return None, None, None, "nothing (no --dataset, --manifest or --root)"


def load_checked(src: Path, fmt: Optional[str] = None, *, dataset: Optional[str] = None,
                 manifest_dir: Optional[Path] = None, root: Optional[Path] = None, strict: bool = True,
                 scheme: Optional[str] = None):
    """Read, check and normalise; returns (table, findings, manifest, format, description)."""
    m, catalog, pairs, where = _context(dataset, manifest_dir, root)
    if src is None:
        if m is None:
            raise VtonDataError("give a landmark file or a prepared dataset (--dataset / --manifest)")
        raw, fmt = mf.read_manifest_landmarks(m).assign(source=str(m.dir / "landmarks.parquet")), "manifest"
        raw["record"] = "asset " + raw["asset_id"].astype(str)
    else:
        fmt = fmt or detect_format(src)
        raw = read_landmarks(src, fmt, scheme=scheme)
    res = check_landmarks(raw, catalog=catalog, pairs=pairs)
    table, findings = apply_policy(res, strict=strict)
    table = normalise(table[[c for c in KEEP if c in table.columns]])
    return table, findings, m, fmt, where


def convert(src: Path, fmt: Optional[str] = None, *, dataset: Optional[str] = None, manifest_dir: Optional[Path] = None,
            root: Optional[Path] = None, out: Optional[Path] = None, strict: bool = True, scheme: Optional[str] = None,
            write_manifest: bool = True) -> ConvertResult:
    """Any supported format -> checked canonical table, written to ``<out>/landmarks.parquet`` and,
    when a prepared dataset is given, to the manifest's ``landmarks.parquet``."""
    t0 = time.perf_counter()
    src = Path(src)
    table, findings, m, fmt, where = load_checked(src, fmt, dataset=dataset, manifest_dir=manifest_dir, root=root,
                                                  strict=strict, scheme=scheme)
    r = ConvertResult(source=src, format=fmt, table=table, findings=findings, checked_against=where)
    if out is not None:
        out = Path(out)
        r.files.append(write_parquet(out / "landmarks.parquet", table))
        if findings:
            r.files.append(write_csv(out / "landmark_findings.csv",
                                     pd.DataFrame([f.__dict__ for f in findings])))
    if m is not None and write_manifest:
        r.manifest_table = mf.write_landmarks(m, table)
    r.seconds = time.perf_counter() - t0
    return r


def export(src: Optional[Path], to: str, out: Path, *, fmt: Optional[str] = None, dataset: Optional[str] = None,
           manifest_dir: Optional[Path] = None, root: Optional[Path] = None, image_prefix: Optional[str] = None
           ) -> List[Path]:
    """Read ``src`` (any format; or the manifest's landmarks when ``src`` is None) and write it as ``to``."""
    table, _, _, _, _ = load_checked(None if src is None else Path(src), fmt, dataset=dataset,
                                     manifest_dir=manifest_dir, root=root, strict=True)
    kw = {} if image_prefix is None else {"image_prefix": image_prefix}
    return export_table(table, to, out, **kw)


def evaluate(gt: Path, pred: Path, *, gt_format: Optional[str] = None, pred_format: Optional[str] = None,
             out_json: Optional[Path] = None) -> dict:
    report = evaluate_files(gt, pred, gt_format=gt_format, pred_format=pred_format)
    if out_json is not None:
        from .io import write_json

        write_json(out_json, report, indent=2)
    return report


def draw(src: Path, garment: str, out: Path, *, person: Optional[str] = None, fmt: Optional[str] = None,
         root: Optional[Path] = None, dataset: Optional[str] = None, manifest_dir: Optional[Path] = None) -> Path:
    """Draw one garment record and its paired person side by side (pair by file name unless ``person``)."""
    from .checks import pairs_by_name

    table, _, m, _, _ = load_checked(Path(src), fmt, dataset=dataset, manifest_dir=manifest_dir, root=root, strict=False)
    img_root = Path(root) if root else (m.root if m is not None else None)
    gname = _find(table, garment, "garment")
    if person is None:
        pairs = mf.pairs_from_manifest(m) if m is not None else pairs_by_name(table)
        hit = pairs[pairs["garment_image"] == gname]["person_image"].dropna()
        if hit.empty:
            raise VtonDataError(f"no paired person found for {gname}", fix="pass --person NAME")
        person = hit.iloc[0]
    pname = _find(table, person, "person")
    img = draw_pair_from_table(table, gname, pname, root=img_root)
    return save_png(img, out)


def _find(table: pd.DataFrame, name: str, side: str) -> str:
    names = table.loc[table["side"] == side, "image"].astype(str).unique()
    hits = [n for n in names if n == name or n.endswith("/" + name)]
    if len(hits) != 1:
        raise VtonDataError(f"{len(hits)} {side} records match {name!r}", fix="give the path as in the table")
    return hits[0]
