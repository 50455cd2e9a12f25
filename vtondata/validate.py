"""The doctor: dataset-level checks on top of the per-file probes, and the lenient filter.

Checks (each a :class:`~vtondata.findings.Finding`): list-file faults (from the ingester), per-file faults
(:mod:`vtondata.probe`), files of one size group whose size differs from the group's (declared) size,
tuples whose members were dropped, duplicate content across train and test (warn), split sizes against
the known figures of the full release (warn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import schema
from .datasets.base import Ingester, Scan
from .findings import FAIL, Finding, Report
from .probefeed import ProbeFeed
from .rowspool import RowSpool, column
from .progress import progress_bar


@dataclass
class Validated:
    scan: Scan
    report: Report
    #: the probed files (spooled on disk); :meth:`asset_batches` yields the kept rows
    feed: ProbeFeed
    samples: list[dict]
    tuples: list[dict]
    dropped: dict  # {"assets": n, "samples": n, "tuples": n}
    image_size: Optional[tuple[int, int]]
    #: asset ids and sample ids whose rows the lenient filter drops
    bad_assets: set = field(default_factory=set)
    bad_samples: set = field(default_factory=set)
    #: rows changed by the ingester's ``after_probe`` hook (then read from here instead of the spool)
    patched: Optional[pa.Table] = None

    def asset_batches(self) -> Iterator[pa.RecordBatch]:
        """The kept asset rows (:data:`vtondata.schema.ASSETS`), batch by batch: files that were read, minus the
        assets and samples the lenient filter drops."""
        bad_a = pa.array(sorted(self.bad_assets), pa.string()) if self.bad_assets else None
        bad_s = pa.array(sorted(self.bad_samples), pa.string()) if self.bad_samples else None
        source = self.patched.to_batches() if self.patched is not None else self.feed.batches()
        for batch in source:
            keep = pc.is_valid(batch.column("hash"))
            if bad_a is not None:
                keep = pc.and_(keep, pc.invert(pc.is_in(batch.column("asset_id"), value_set=bad_a)))
            if bad_s is not None:
                keep = pc.and_(keep, pc.invert(pc.is_in(batch.column("sample_id"), value_set=bad_s)))
            yield batch if pc.all(keep).as_py() is not False else batch.filter(keep)


def start_feed(ingester: Ingester, root: Path, spool: Path, *, deep: bool = False, workers: int = 0,
               progress=None) -> ProbeFeed:
    """The feed a streamed scan of ``root`` appends to (see :mod:`vtondata.probefeed`)."""
    return ProbeFeed(root, ingester.name, spool, deep=deep, workers=workers, progress=progress)


def check_dataset(ingester: Ingester, root: Path, scan: Scan, report: Report, *, deep: bool = False,
                  workers: int = 0, quiet: bool = False, spool: Optional[Path] = None) -> Validated:
    """All checks of a scanned dataset. A streamed scan (``scan.assets`` a :class:`ProbeFeed`) has probed its
    files already; a plain scan's specs are probed here (their rows spooled to the file ``spool``)."""
    root = Path(root)
    feed = scan.assets
    if not isinstance(feed, ProbeFeed):
        if spool is None:
            raise ValueError("check_dataset of a plain scan needs a spool path for the probed rows")
        specs = scan.assets
        with progress_bar(len(specs), f"checking {ingester.name} files", disable=quiet) as advance:
            feed = start_feed(ingester, root, spool, deep=deep, workers=workers, progress=advance)
            try:
                feed.extend(specs)
            finally:
                feed.finish()
    else:
        feed.finish()
    report.findings.extend(feed.findings)
    sizes = feed.sizes
    patched = None
    after_probe = getattr(ingester, "after_probe", None)  # optional ingester hook on the probed rows (dicts)
    if after_probe is not None:
        rows = [r for b in feed.batches() for r in b.to_pylist()]
        after_probe(rows, report)
        patched = schema.to_table(rows, schema.ASSETS)
        del rows
        sizes = np.stack([pc.fill_null(patched[c], -1).to_numpy().astype(np.int32) for c in ("width", "height")], 1)
    image_size = _check_sizes(ingester, feed, sizes, report)
    _check_duplicates(feed, report)
    scan.tuples = _dedupe_tuples(scan.tuples, report, feed)
    _check_split_sizes(ingester, scan, report)
    # lenient filter: failing assets drop their sample; tuples with a dropped member are dropped
    bad = report.dropped_ids()
    samples, tuples, bad_samples = _kept_rows(ingester.name, scan, report, bad, feed)
    dropped = {"assets": None, "samples": len(scan.samples) - len(samples), "tuples": len(scan.tuples) - len(tuples)}
    n_ok = feed.n - len({f.file for f in report.fails if f.file})
    report.good("files", f"{n_ok} of {feed.n} files passed their checks")
    return Validated(scan, report, feed, samples, tuples, dropped, image_size, bad, bad_samples, patched)


_MEMBERS = ("person", "garment", "target_person", "foreground", "background", "composite")


def _dedupe_tuples(tuples, report: Report, feed: ProbeFeed):
    """Tuples listed more than once keep their first row; a repeat that comes from a list line is a warning naming
    that line and the first one (repeats the ingester derived itself go silently). Spooled tuples are checked on
    their ``tuple_id`` column alone (one Arrow array, no Python string per row) and rewritten only when some repeat."""
    if not isinstance(tuples, RowSpool):
        seen: dict = {}
        out = []
        for t in tuples:
            first = seen.setdefault(t["tuple_id"], t)
            if first is t:
                out.append(t)
            else:
                _warn_repeat(report, t, first)
        return out
    if not len(tuples):
        return tuples
    ids = pa.chunked_array([b.column("tuple_id") for b in tuples.batches()], pa.string()).combine_chunks()
    codes = pc.dictionary_encode(ids).indices.to_numpy(zero_copy_only=False)
    del ids
    _, first_at, inverse = np.unique(codes, return_index=True, return_inverse=True)
    keep = np.zeros(len(codes), bool)
    keep[first_at] = True
    if keep.all():
        return tuples
    repeats = np.flatnonzero(~keep)
    firsts = first_at[inverse[repeats]]  # the first row of each repeat's tuple id
    wanted = sorted(set(repeats.tolist()) | set(firsts.tolist()))
    rows = dict(zip(wanted, tuples.rows_at(wanted)))
    for r, f in zip(repeats.tolist(), firsts.tolist()):
        _warn_repeat(report, rows[r], rows[f])
    out = RowSpool(feed.spool.with_name(f"{feed.spool.stem}.tuples.unique.arrow"), schema.TUPLES)
    start = 0
    for b in tuples.batches():
        out.append_batch(b.filter(pa.array(keep[start:start + b.num_rows])))
        start += b.num_rows
    out.close()
    return out


def _warn_repeat(report: Report, row: dict, first: dict) -> None:
    if row.get("source"):
        where = f"{first['source']}:{first['line']}" if first.get("source") else "derived by the ingester"
        report.warn("duplicate-line", f"tuple {row['tuple_id']} is listed twice (first: {where}); the repeat is "
                    "ignored", file=row["source"], line=row.get("line"), fix="delete the repeated line")


def _kept_rows(name: str, scan: Scan, report: Report, bad: set, feed: ProbeFeed):
    """The lenient filter: (kept samples, kept tuples, dropped sample ids). Kept rows gain the ``dataset`` column.
    Spooled scan rows (:class:`RowSpool`) are filtered batch by batch into new spools beside the probe spool, so
    only the id sets stay in memory; plain lists give lists."""
    keep_samples = set(column(scan.samples, "sample_id"))  # all known ones, then the dropped ones taken out
    bad_samples = bad & keep_samples
    keep_samples -= bad_samples
    spooled = isinstance(scan.samples, RowSpool)
    if spooled:
        samples = RowSpool(feed.spool.with_name(f"{feed.spool.stem}.samples.kept.arrow"), schema.SAMPLES)
        tuples = RowSpool(feed.spool.with_name(f"{feed.spool.stem}.tuples.kept.arrow"), schema.TUPLES)
        bad_s = pa.array(sorted(bad_samples), pa.string())
        for b in scan.samples.batches():
            if len(bad_s):
                b = b.filter(pc.invert(pc.is_in(b.column("sample_id"), value_set=bad_s)))
            samples.append_batch(b.set_column(b.schema.get_field_index("dataset"), "dataset",
                                              pa.array([name] * b.num_rows, pa.string())))
    else:
        samples, tuples = [], []
        for s in scan.samples:  # rows gain the dataset column in place (no copy of every row)
            if s["sample_id"] not in bad_samples:
                s["dataset"] = name
                samples.append(s)
    for t in scan.tuples:
        ids = [t[m] for m in _MEMBERS if t.get(m)]
        unknown = [i for i in ids if i not in keep_samples and i not in bad_samples]
        if unknown:
            report.fail("tuple-unresolved", f"tuple {t['tuple_id']} names unknown sample {unknown[0]}",
                        file=t.get("source"), line=t.get("line"), drops=(t["tuple_id"],),
                        fix="the list file and the folders must come from the same release")
            continue
        if t["tuple_id"] in bad:
            continue
        if all(i in keep_samples for i in ids):
            t["dataset"] = name
            tuples.append(t)
    if spooled:
        samples.close()
        tuples.close()
    return samples, tuples, bad_samples


def _check_sizes(ingester: Ingester, feed: ProbeFeed, sizes: np.ndarray, report: Report) -> Optional[tuple[int, int]]:
    """Files of one size group must share the group's size (its mode); returns the "image" group's size."""
    groups = feed.size_groups
    wh = sizes[:, 0].astype(np.int64) * (1 << 32) + sizes[:, 1].astype(np.int64)
    sel = np.flatnonzero((sizes[:, 0] > 0) & (groups > 0))
    sel = sel[np.argsort(groups[sel], kind="stable")]  # files of each group together, in declaration order
    bounds = np.flatnonzero(np.diff(groups[sel])) + 1
    main_size = None
    wrong: list[tuple[int, tuple, str]] = []
    for idx in np.split(sel, bounds) if len(sel) else []:
        group = feed.group_names[int(groups[idx[0]]) - 1]
        codes = wh[idx]
        vals, first, counts = np.unique(codes, return_index=True, return_counts=True)
        # the mode; ties go to the size seen first (as collections.Counter.most_common does)
        best = max(range(len(vals)), key=lambda k: (counts[k], -first[k]))
        size_code, n = int(vals[best]), int(counts[best])
        mode = (size_code >> 32, size_code & 0xFFFFFFFF)
        if group == "image":
            main_size = mode
        wrong.extend((int(i), mode, group) for i in idx[codes != size_code])
        native = getattr(ingester, "native_size", None)
        if group == "image" and native and mode != tuple(native):
            report.warn("non-native-size", f"images are {mode[0]}x{mode[1]}, the release's size is "
                        f"{native[0]}x{native[1]} (a resized copy?)", fix="fine for resized copies; recorded in meta")
        elif group == "image":
            report.good("sizes", f"{n} images share the size {mode[0]}x{mode[1]}")
    wrong.sort()
    for (i, mode, group), row in zip(wrong, feed.rows_at([w[0] for w in wrong])):
        w, h = (int(x) for x in sizes[i])
        report.fail("wrong-size", f"{row['role']} is {w}x{h} (WxH) but the dataset's {group} size is "
                    f"{mode[0]}x{mode[1]}", file=row["path"], drops=(row["asset_id"], row["sample_id"]),
                    fix="replace the file with the release's version at the dataset's resolution")
    return main_size


def _check_duplicates(feed: ProbeFeed, report: Report) -> None:
    """Person / garment images whose bytes appear in both train and test (grouped by role and content hash)."""
    index, code, h64 = feed.duplicate_keys()
    groups: list[list[dict]] = []
    if len(index):
        # candidates: (role, 64-bit hash prefix) groups holding both splits, found with numpy; their rows are
        # then read back from the spool and grouped by the full hash (usually there are none)
        role, split = code >> 1, code & 1
        order = np.lexsort((split, h64, role))
        r, h, sp = role[order], h64[order], split[order]
        starts = np.flatnonzero(np.r_[True, (r[1:] != r[:-1]) | (h[1:] != h[:-1])])
        both = np.flatnonzero(np.minimum.reduceat(sp, starts) != np.maximum.reduceat(sp, starts))
        if len(both):
            ends = np.r_[starts[1:], len(order)]
            wanted = sorted(int(i) for g in both for i in index[order[starts[g]:ends[g]]])
            full: dict = {}
            for row in feed.rows_at(wanted):
                full.setdefault((row["role"], row["hash"]), []).append(row)
            groups = [g for g in full.values() if {x["split"] for x in g} == {"train", "test"}]
    if not groups:
        report.good("duplicates", "no image appears in both train and test")
        return
    groups = sorted(groups, key=lambda g: sorted(r["path"] for r in g))
    examples = "; ".join(" = ".join(sorted(r["path"] for r in g)[:2]) for g in groups[:3])
    report.warn("train-test-duplicates", f"{len(groups)} images appear in both train and test (by content hash), "
                f"e.g. {examples}", fix="exclude them from training when you report test scores")
    for g in groups:  # name every one (the report file lists them all): the test file and its train twins
        test = sorted(r["path"] for r in g if r["split"] == "test")
        train = sorted(r["path"] for r in g if r["split"] == "train")
        report.warn("train-test-duplicate", f"this test {g[0]['role']} has the same bytes as train "
                    f"{', '.join(train[:3])}{' ...' if len(train) > 3 else ''}", file=test[0],
                    fix="exclude the train copy from training when you report test scores")


def _check_split_sizes(ingester: Ingester, scan: Scan, report: Report) -> None:
    exp = ingester.expected_sizes.get(scan.layout) or ingester.expected_sizes.get("*")
    if not exp:
        return
    got = ingester.split_counts(scan)
    for split, n in exp.items():
        have = got.get(split, 0)
        if have != n:
            report.warn("split-size", f"{split}: {have} {ingester.size_unit}, the full release has {n}",
                        fix="expected for subsets and fixtures; otherwise check the download is complete")
        else:
            report.good("split-size", f"{split}: {have} {ingester.size_unit} as in the full release")


def fails_as_text(findings: list[Finding], limit: int = 20) -> str:
    lines = [f"  - {f.render()}" for f in findings if f.severity == FAIL][:limit]
    more = sum(f.severity == FAIL for f in findings) - len(lines)
    if more > 0:
        lines.append(f"  ... and {more} more (see the report)")
    return "\n".join(lines)
