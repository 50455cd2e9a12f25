"""``vtondata prepare``: official files -> validated canonical manifest (re-used while the input is unchanged).

The input fingerprint hashes the ingester (name, version), the tool's schema version, the options that change
the result and, for every file the scan declared (in declaration order) and then every list file, its relative
path, size and modification time (the rsync rule). A second ``prepare`` with the same fingerprint re-uses the
manifest unless ``force``. Sizes and times come from a ``stat`` pass when there is a manifest to compare with, else
from the ``fstat`` the probe takes of each file as it reads it (no second pass over the files; same digest).

The scan is streamed into the probes (:mod:`vtondata.probefeed`): files are checked by worker processes while the
ingester is still declaring them, probed rows are spooled to disk and the assets table is written from the spool
in row groups, so memory holds no per-file Python objects. The scan's sample and tuple rows go to disk as well
(:mod:`vtondata.rowspool`); the lenient filter streams them into the manifest's tables, keeping only sets of ids.
"""

from __future__ import annotations

import csv
import gc
import io
import shutil
import tempfile
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
from .manifest import atomic_write_bytes, read_meta, work_dir, write_manifest
from .probefeed import StatFeed, streaming
from .progress import progress_bar
from .rowspool import RowSpool, column
from .validate import Validated, check_dataset, fails_as_text, start_feed


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


def fingerprint_header(ing: Ingester, layout: str, options: dict) -> str:
    return f"{ing.name}|{ing.version}|schema{schema.SCHEMA_VERSION}|{layout}|{sorted(options.items())}"


def fingerprint(ing: Ingester, root: Path, scan: Scan, options: dict) -> str:
    """The input fingerprint of a plain (list) scan by a ``stat`` pass: the digest a streamed prepare records."""
    feed = StatFeed(root)
    feed.extend(scan.assets)
    return feed.digest(fingerprint_header(ing, scan.layout, options), scan.list_files)


def validate_root(dataset: str, root: Path, *, layout: Optional[str] = None, deep: bool = False, workers: int = 0,
                  quiet: bool = False) -> Report:
    """Run every check on a root and return the report (writes nothing but a temporary spool)."""
    ing, root, layout = _resolve(dataset, root, layout)
    report = Report()
    report.good("layout", f"{ing.name} layout {layout!r} detected in {root}")
    with tempfile.TemporaryDirectory(prefix="vtondata-validate-") as tmp:
        _streamed_check(ing, root, layout, report, Path(tmp), deep=deep, workers=workers, quiet=quiet)
    return report


def _streamed_check(ing: Ingester, root: Path, layout: str, report: Report, work: Path, *, deep: bool,
                    workers: int, quiet: bool) -> Validated:
    """Scan with the probes running alongside (:mod:`vtondata.probefeed`), then the dataset-level checks."""
    with progress_bar(None, f"checking {ing.name} files", disable=quiet) as advance:
        feed = start_feed(ing, root, work / "probed.arrow", deep=deep, workers=workers, progress=advance)
        try:
            with streaming(feed):
                scan = ing.scan(root, layout, report)
            feed.finish()
        finally:
            feed.close()
    return check_dataset(ing, root, scan, report, deep=deep, workers=workers, quiet=quiet)


def _counts(v: Validated) -> dict:
    """Counts of the kept samples and tuples (the assets' are added once they are written)."""
    c: dict = {"assets": None, "samples": len(v.samples), "tuples": len(v.tuples)}
    by_s, by_t = _count_by(v.samples, schema.SAMPLES, "kind"), _count_by(v.tuples, schema.TUPLES, "setting")
    c["samples_by"] = {f"{k[0]}/{k[1]}": n for k, n in sorted(by_s.items())}
    c["assets_by_role"] = {}
    c["tuples_by"] = {f"{k[0]}/{k[1]}": n for k, n in sorted(by_t.items())}
    return c


def _count_by(rows, table_schema, by: str) -> Counter:
    """Rows per (split, ``by``), counted by Arrow batch by batch (no Python string per row)."""
    import pyarrow as pa

    out: Counter = Counter()
    batches = rows.batches() if isinstance(rows, RowSpool) else [schema.to_table(rows, table_schema)]
    for b in batches:
        t = pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
        for r in t.group_by(["split", by], use_threads=False).aggregate([([], "count_all")]).to_pylist():
            out[(r["split"], r[by])] += r["count_all"]
    return out


def _write_rows(rows, table_schema, path: Path) -> None:
    """Kept sample / tuple rows (a list of dicts, or a :class:`RowSpool` streamed batch by batch) -> Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pq.ParquetWriter(str(path), table_schema, compression="zstd") as writer:
        if isinstance(rows, RowSpool):
            for b in rows.batches():
                writer.write_table(pa.Table.from_batches([b], table_schema))
        else:
            writer.write_table(schema.to_table(rows, table_schema))


def _write_assets(v: Validated, path: Path, row_group: int = 16384) -> tuple[int, Counter]:
    """Stream the kept asset rows into one Parquet file (row groups of ``row_group`` rows); (rows, rows by role)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, roles, pending, held = 0, Counter(), [], 0
    with pq.ParquetWriter(str(path), schema.ASSETS, compression="zstd") as writer:
        for batch in v.asset_batches():
            if not batch.num_rows:
                continue
            n += batch.num_rows
            for r in batch.column("role").value_counts().to_pylist():
                roles[r["values"]] += r["counts"]
            pending.append(batch)
            held += batch.num_rows
            if held >= row_group:
                writer.write_table(pa.Table.from_batches(pending, schema.ASSETS), row_group_size=row_group)
                pending, held = [], 0
        if pending or not n:
            writer.write_table(pa.Table.from_batches(pending, schema.ASSETS), row_group_size=row_group)
    return n, roles


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

    if not scan.tables:
        return {}
    kept_t = set(column(v.tuples, "tuple_id"))
    kept_s = set(column(v.samples, "sample_id"))
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
    options = {"deep": deep, "strict": strict}
    header = fingerprint_header(ing, layout, options)
    old = read_meta(out / "manifest")
    if old and not force:  # a manifest to re-use: stat every file as the scan declares it (cheap) and compare
        stat = StatFeed(root)
        with streaming(stat):
            scan = ing.scan(root, layout, Report())
        if old.get("fingerprint") == stat.digest(header, scan.list_files):
            return PrepareResult(out / "manifest", old, True, None, seconds=time.perf_counter() - t0)
        del scan
    report = Report()
    report.good("layout", f"{ing.name} layout {layout!r} detected in {root}")
    work = work_dir(out, "prepare")  # the spool and the assets table being written
    try:
        v = _streamed_check(ing, root, layout, report, work, deep=deep, workers=workers, quiet=quiet)
        scan = v.scan
        fp = v.feed.digest(header, scan.list_files)
        report_file = None
        if report.n_fail or report.n_warn:
            report_file = write_report(out, report)
        if report.n_fail and strict:
            raise ValidationFailedError(
                f"{report.n_fail} check(s) failed; the manifest was not written. Report: {report_file}\n"
                + fails_as_text(report.findings), findings=report.findings,
                fix="repair the files named above, or run with --lenient to write the manifest without them")
        counts = _counts(v)
        files = {"assets": work / "assets.parquet", "samples": work / "samples.parquet",
                 "tuples": work / "tuples.parquet"}
        _write_rows(v.samples, schema.SAMPLES, files["samples"])
        _write_rows(v.tuples, schema.TUPLES, files["tuples"])
        tables = {"findings": schema.to_table([f.row() for f in report.findings], schema.FINDINGS)}
        tables.update(_extra_tables(scan, v, set(tables) | set(files)))
        # free the rows (plain scans hold dicts) before the assets are written
        v.samples = v.tuples = scan.samples = scan.tuples = []
        scan.tables = {}
        n_assets, roles = _write_assets(v, work / "assets.parquet")
        counts.update(assets=n_assets, assets_by_role=dict(sorted(roles.items())))
        v.dropped["assets"] = v.feed.n - n_assets
        meta = {
            "dataset": ing.name, "layout": layout, "root": str(root), "tool_version": __version__,
            "ingester_version": ing.version, "schema_version": schema.SCHEMA_VERSION, "fingerprint": fp,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "options": options,
            "counts": counts, "dropped": v.dropped, "validation": report.summary(),
            "image_size": list(v.image_size) if v.image_size else None, "notes": scan.notes,
            "report_file": str(report_file) if report_file else None, "list_files": scan.list_files,
        }
        mdir = write_manifest(out, tables, meta, files=files)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return PrepareResult(mdir, meta, False, report, report_file, time.perf_counter() - t0)


__all__ = ["prepare", "validate_root", "PrepareResult", "VtonDataError"]
