"""``vtondata prepare``: official files -> validated canonical manifest (re-used while the input is unchanged).

The input fingerprint hashes the ingester (name, version), the tool's schema version, the options that change
the result and, for every file the scan declared plus every list file, its relative path, size and
modification time (the rsync rule). A second ``prepare`` with the same fingerprint re-uses the manifest
unless ``force``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from . import __version__, schema
from .datasets import get_ingester
from .datasets.base import Ingester, Scan
from .errors import LayoutNotFoundError, UnknownNameError, ValidationFailedError, VtonDataError
from .findings import Report
from .home import dataset_dir
from .manifest import atomic_write_bytes, read_meta, write_manifest
from .validate import Validated, check_dataset, fails_as_text


@dataclass
class PrepareResult:
    manifest_dir: Path
    meta: dict
    reused: bool
    report: Optional[Report]
    report_file: Optional[Path] = None
    seconds: float = 0.0


def _resolve(dataset: str, root: Path, layout: Optional[str]) -> tuple[Ingester, Path, str]:
    ing = get_ingester(dataset)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise LayoutNotFoundError("dataset root does not exist or is not a directory", file=root,
                                  fix="pass --root the folder that holds the release as extracted")
    if layout:
        if layout not in ing.layouts:
            raise UnknownNameError(f"unknown {ing.name} layout {layout!r}", fix=f"use one of {list(ing.layouts)}")
        return ing, root, layout
    found = ing.detect(root)
    if not found:
        raise LayoutNotFoundError(f"no known {ing.name} layout here (looked for: {', '.join(ing.layouts)})", file=root,
                                  fix=f"point --root at the extracted release; see `vtondata prepare --help` and the "
                                      f"README section on {ing.name}")
    return ing, root, found


def fingerprint(ing: Ingester, root: Path, scan: Scan, options: dict) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{ing.name}|{ing.version}|schema{schema.SCHEMA_VERSION}|{scan.layout}|{sorted(options.items())}".encode())
    for rel in sorted({a.path for a in scan.assets} | set(scan.list_files)):
        try:
            st = os.stat(root / rel)
            h.update(f"{rel}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{rel}|missing\n".encode())
    return h.hexdigest()


def validate_root(dataset: str, root: Path, *, layout: Optional[str] = None, deep: bool = False, workers: int = 0,
                  quiet: bool = False) -> Report:
    """Run every check on a root and return the report (writes nothing)."""
    ing, root, layout = _resolve(dataset, root, layout)
    report = Report()
    report.good("layout", f"{ing.name} layout {layout!r} detected in {root}")
    scan = ing.scan(root, layout, report)
    check_dataset(ing, root, scan, report, deep=deep, workers=workers, quiet=quiet)
    return report


def _counts(v: Validated) -> dict:
    c: dict = {"assets": len(v.assets), "samples": len(v.samples), "tuples": len(v.tuples)}
    c["samples_by"] = {f"{k[0]}/{k[1]}": n for k, n in sorted(Counter((s["split"], s["kind"]) for s in v.samples).items())}
    c["assets_by_role"] = dict(sorted(Counter(a["role"] for a in v.assets).items()))
    c["tuples_by"] = {f"{k[0]}/{k[1]}": n for k, n in sorted(Counter((t["split"], t["setting"]) for t in v.tuples).items())}
    return c


def write_report(out: Path, report: Report) -> Path:
    """Write all warn / fail findings as CSV to ``<out>/reports/validation-<UTC time>.csv`` atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["severity", "code", "file", "line", "message", "fix"])
    w.writeheader()
    for f in report.findings:
        if f.severity != "good":
            w.writerow(f.row())
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = Path(out) / "reports" / f"validation-{stamp}.csv"
    atomic_write_bytes(path, buf.getvalue().encode())
    return path


def _extra_tables(scan: Scan, v: Validated, taken: set) -> dict:
    """The ingester's extra tables, filtered like the core ones (rows of dropped tuples / samples go)."""
    import pyarrow as pa

    kept_t = {t["tuple_id"] for t in v.tuples}
    kept_s = {s["sample_id"] for s in v.samples}
    out = {}
    for name, rows in scan.tables.items():
        if name in taken:
            raise ValueError(f"extra table {name!r} clashes with a core manifest table")
        keep = [r for r in rows if ("tuple_id" not in r or r["tuple_id"] in kept_t)
                and ("tuple_id" in r or "sample_id" not in r or r["sample_id"] in kept_s)]
        if keep:
            out[name] = pa.Table.from_pylist(keep)
    return out


def prepare(dataset: str, root: Path, *, out: Optional[Path] = None, layout: Optional[str] = None,
            force: bool = False, deep: bool = False, strict: bool = True, workers: int = 0,
            quiet: bool = False) -> PrepareResult:
    """Ingest ``root`` into ``out/manifest`` (default ``$VTONDATA_HOME/<dataset>``)."""
    t0 = time.perf_counter()
    ing, root, layout = _resolve(dataset, root, layout)
    out = Path(out).expanduser().resolve() if out else dataset_dir(ing.name)
    report = Report()
    report.good("layout", f"{ing.name} layout {layout!r} detected in {root}")
    scan = ing.scan(root, layout, report)
    options = {"deep": deep, "strict": strict}
    fp = fingerprint(ing, root, scan, options)
    old = read_meta(out / "manifest")
    if old and not force and old.get("fingerprint") == fp:
        return PrepareResult(out / "manifest", old, True, None, seconds=time.perf_counter() - t0)
    v = check_dataset(ing, root, scan, report, deep=deep, workers=workers, quiet=quiet)
    report_file = None
    if report.n_fail or report.n_warn:
        report_file = write_report(out, report)
    if report.n_fail and strict:
        raise ValidationFailedError(
            f"{report.n_fail} check(s) failed; the manifest was not written. Report: {report_file}\n"
            + fails_as_text(report.findings), findings=report.findings,
            fix="repair the files named above, or run with --lenient to write the manifest without them")
    summary = report.summary()
    meta = {
        "dataset": ing.name, "layout": layout, "root": str(root), "tool_version": __version__,
        "ingester_version": ing.version, "schema_version": schema.SCHEMA_VERSION, "fingerprint": fp,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "options": options,
        "counts": _counts(v), "dropped": v.dropped, "validation": summary,
        "image_size": list(v.image_size) if v.image_size else None, "notes": scan.notes,
        "report_file": str(report_file) if report_file else None, "list_files": scan.list_files,
    }
    tables = {
        "assets": schema.to_table(v.assets, schema.ASSETS),
        "samples": schema.to_table(v.samples, schema.SAMPLES),
        "tuples": schema.to_table(v.tuples, schema.TUPLES),
        "findings": schema.to_table([f.row() for f in report.findings], schema.FINDINGS),
    }
    tables.update(_extra_tables(scan, v, set(tables)))
    mdir = write_manifest(out, tables, meta)
    return PrepareResult(mdir, meta, False, report, report_file, time.perf_counter() - t0)


__all__ = ["prepare", "validate_root", "PrepareResult", "VtonDataError"]
