"""``vtondata prepare``: official files -> validated canonical manifest (re-used while the input is unchanged).

The input fingerprint hashes the ingester (name, version), the tool's schema version, the options that change
the result and, for every file the scan declared plus every list file, its relative path, size and
modification time (the rsync rule). A second ``prepare`` with the same fingerprint re-uses the manifest
unless ``force``. Sizes and times come from a ``stat`` pass when there is a manifest to compare with, else from
the ``fstat`` the probe takes of each file as it reads it (no second pass over the files; same digest).
"""

from __future__ import annotations

import csv
import gc
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


def fingerprint(ing: Ingester, root: Path, scan: Scan, options: dict, stats=None) -> str:
    """The input fingerprint (see the module docstring).

    ``stats``: int64 ``(len(scan.assets), 2)`` (size, mtime_ns) per asset, -1 when missing, as taken while probing
    (``fstat`` of each file as it was read, :attr:`vtondata.validate.Validated.file_stats`); without it every file
    is ``stat``-ed here. Same digest either way.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{ing.name}|{ing.version}|schema{schema.SCHEMA_VERSION}|{scan.layout}|{sorted(options.items())}".encode())
    base = os.path.join(str(root), "")
    parts: list[str] = []

    def stat_line(rel: str) -> str:
        try:
            st = os.stat(base + rel)
            return f"{rel}|{st.st_size}|{st.st_mtime_ns}\n"
        except FileNotFoundError:
            return f"{rel}|missing\n"

    def flush() -> None:  # hash in blocks: the same digest as one update per file, far fewer calls
        h.update("".join(parts).encode())
        parts.clear()

    if stats is None:
        for rel in sorted({a.path for a in scan.assets}.union(scan.list_files)):
            parts.append(stat_line(rel))
            if len(parts) >= 4096:
                flush()
    else:
        paths = [a.path for a in scan.assets]
        order = sorted(range(len(paths)), key=paths.__getitem__)
        extra = sorted(set(scan.list_files).difference(paths))
        sizes, mtimes = stats[:, 0].tolist(), stats[:, 1].tolist()
        j, last = 0, None
        for i in order:
            rel = paths[i]
            if rel == last:  # the same file declared twice: hashed once, as the set above does
                continue
            while j < len(extra) and extra[j] < rel:
                parts.append(stat_line(extra[j]))
                j += 1
            last = rel
            parts.append(f"{rel}|{sizes[i]}|{mtimes[i]}\n" if sizes[i] >= 0 else f"{rel}|missing\n")
            if len(parts) >= 4096:
                flush()
        parts.extend(stat_line(x) for x in extra[j:])
    flush()
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
    c: dict = {"assets": v.assets.num_rows, "samples": len(v.samples), "tuples": len(v.tuples)}
    c["samples_by"] = {f"{k[0]}/{k[1]}": n for k, n in sorted(Counter((s["split"], s["kind"]) for s in v.samples).items())}
    roles = v.assets["role"].value_counts().to_pylist() if v.assets.num_rows else []
    c["assets_by_role"] = dict(sorted((r["values"], r["counts"]) for r in roles))
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
    import pyarrow as pa

    t0 = time.perf_counter()
    gc_was_on = gc.isenabled()
    gc.disable()  # many small acyclic objects (rows, specs): the cyclic collector only costs time here
    # Arrow's default mimalloc pool keeps the pages of the Parquet writer's transient buffers (peak RSS grew
    # ~0.8 KB per file with it); the system allocator returns them. Buffers remember their pool, so switching
    # back afterwards is safe.
    pool = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        return _prepare(dataset, root, out, layout, force, deep, strict, workers, quiet, t0)
    finally:
        pa.set_memory_pool(pool)
        if gc_was_on:
            gc.enable()


def _prepare(dataset, root, out, layout, force, deep, strict, workers, quiet, t0) -> PrepareResult:
    ing, root, layout = _resolve(dataset, root, layout)
    out = Path(out).expanduser().resolve() if out else dataset_dir(ing.name)
    report = Report()
    report.good("layout", f"{ing.name} layout {layout!r} detected in {root}")
    scan = ing.scan(root, layout, report)
    options = {"deep": deep, "strict": strict}
    old = read_meta(out / "manifest")
    fp = None
    if old and not force:  # a manifest to re-use: stat every file first (cheap) and compare
        fp = fingerprint(ing, root, scan, options)
        if old.get("fingerprint") == fp:
            return PrepareResult(out / "manifest", old, True, None, seconds=time.perf_counter() - t0)
    v = check_dataset(ing, root, scan, report, deep=deep, workers=workers, quiet=quiet)
    if fp is None:  # from the sizes / mtimes the probe took of each file as it read it (no second stat pass)
        fp = fingerprint(ing, root, scan, options, stats=v.file_stats)
    v.file_stats = None
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
        "assets": v.assets,
        "samples": schema.to_table(v.samples, schema.SAMPLES),
        "tuples": schema.to_table(v.tuples, schema.TUPLES),
        "findings": schema.to_table([f.row() for f in report.findings], schema.FINDINGS),
    }
    tables.update(_extra_tables(scan, v, set(tables)))
    mdir = write_manifest(out, tables, meta)
    return PrepareResult(mdir, meta, False, report, report_file, time.perf_counter() - t0)


__all__ = ["prepare", "validate_root", "PrepareResult", "VtonDataError"]
