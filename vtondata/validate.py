"""The doctor: dataset-level checks on top of the per-file probes, and the lenient filter.

Checks (each a :class:`~vtondata.findings.Finding`): list-file faults (from the ingester), per-file faults
(:mod:`vtondata.probe`), files of one size group whose size differs from the group's (declared) size,
tuples whose members were dropped, duplicate content across train and test (warn), split sizes against
the known figures of the full release (warn).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import schema
from .datasets.base import Ingester, Scan
from .findings import FAIL, Finding, Report
from .probe import probe_table
from .progress import progress_bar


@dataclass
class Validated:
    scan: Scan
    report: Report
    #: the kept asset rows as an Arrow table with the :data:`vtondata.schema.ASSETS` schema (columnar: a few
    #: hundred bytes per file instead of a Python dict per file)
    assets: object
    samples: list[dict]
    tuples: list[dict]
    dropped: dict  # {"assets": n, "samples": n, "tuples": n}
    image_size: Optional[tuple[int, int]]
    #: int64 ``(N, 2)`` (size, mtime_ns) of each ``scan.assets`` file as read, -1 when missing (fingerprint input)
    file_stats: Optional[object] = None


def check_dataset(ingester: Ingester, root: Path, scan: Scan, report: Report, *, deep: bool = False,
                  workers: int = 0, quiet: bool = False) -> Validated:
    root = Path(root)
    specs = scan.assets
    with progress_bar(len(specs), f"checking {ingester.name} files", disable=quiet) as advance:
        probed = probe_table(root, specs, ingester.name, deep=deep, workers=workers, progress=advance)
    report.findings.extend(probed.findings)
    table = probed.table
    after_probe = getattr(ingester, "after_probe", None)  # optional ingester hook on the probed rows (dicts)
    if after_probe is not None:
        rows = table.to_pylist()
        after_probe(specs, rows, report)
        table = schema.to_table(rows, schema.ASSETS)
        del rows
    image_size = _check_sizes(ingester, specs, table, report)
    _check_duplicates(table, report)
    _check_split_sizes(ingester, scan, report)
    # lenient filter: failing assets drop their sample; tuples with a dropped member are dropped
    bad = report.dropped_ids()
    known_samples = {s["sample_id"] for s in scan.samples}
    bad_samples = bad & known_samples
    keep = pc.is_valid(table["hash"])
    if bad:
        bad_arr = pa.array(sorted(bad), pa.string())
        keep = pc.and_(keep, pc.invert(pc.is_in(table["asset_id"], value_set=bad_arr)))
    if bad_samples:
        bad_s = pa.array(sorted(bad_samples), pa.string())
        keep = pc.and_(keep, pc.invert(pc.is_in(table["sample_id"], value_set=bad_s)))
    assets = table if pc.all(keep).as_py() is not False else table.filter(keep)
    name = ingester.name
    samples = []
    for s in scan.samples:  # rows gain the dataset column in place (no copy of every row)
        if s["sample_id"] not in bad_samples:
            s["dataset"] = name
            samples.append(s)
    keep_samples = {s["sample_id"] for s in samples}
    members = ("person", "garment", "target_person", "foreground", "background", "composite")
    tuples = []
    for t in scan.tuples:
        ids = [t[m] for m in members if t.get(m)]
        unknown = [i for i in ids if i not in known_samples]
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
    dropped = {"assets": table.num_rows - assets.num_rows, "samples": len(scan.samples) - len(samples),
               "tuples": len(scan.tuples) - len(tuples)}
    n_ok = table.num_rows - len({f.file for f in report.fails if f.file})
    report.good("files", f"{n_ok} of {table.num_rows} files passed their checks")
    return Validated(scan, report, assets, samples, tuples, dropped, image_size, probed.stats)


def _check_sizes(ingester: Ingester, specs, table, report: Report) -> Optional[tuple[int, int]]:
    width = table["width"].to_numpy(zero_copy_only=False)
    height = table["height"].to_numpy(zero_copy_only=False)
    has = ~np.isnan(width) if width.dtype.kind == "f" else np.ones(len(width), bool)
    wh = np.where(has, np.nan_to_num(width).astype(np.int64) * (1 << 32) + np.nan_to_num(height).astype(np.int64), -1)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, spec in enumerate(specs):
        if spec.size_group and has[i] and width[i]:
            groups[spec.size_group].append(i)
    main_size = None
    for group, idx in groups.items():
        codes = wh[np.asarray(idx)]
        vals, first, counts = np.unique(codes, return_index=True, return_counts=True)
        # the mode; ties go to the size seen first (as collections.Counter.most_common does)
        best = max(range(len(vals)), key=lambda k: (counts[k], -first[k]))
        code, n = int(vals[best]), int(counts[best])
        mode = (code >> 32, code & 0xFFFFFFFF)
        if group == "image":
            main_size = mode
        for j in np.flatnonzero(codes != code):
            i = idx[j]
            spec = specs[i]
            sz = (int(width[i]), int(height[i]))
            report.fail("wrong-size", f"{spec.role} is {sz[0]}x{sz[1]} (WxH) but the dataset's {group} size is "
                        f"{mode[0]}x{mode[1]}", file=spec.path, drops=(spec.asset_id, spec.sample_id),
                        fix="replace the file with the release's version at the dataset's resolution")
        native = getattr(ingester, "native_size", None)
        if group == "image" and native and mode != tuple(native):
            report.warn("non-native-size", f"images are {mode[0]}x{mode[1]}, the release's size is "
                        f"{native[0]}x{native[1]} (a resized copy?)", fix="fine for resized copies; recorded in meta")
        elif group == "image":
            report.good("sizes", f"{n} images share the size {mode[0]}x{mode[1]}")
    return main_size


def _check_duplicates(table, report: Report) -> None:
    roles = pa.array(["person", "garment"], pa.string())
    sub = table.filter(pc.and_(pc.is_valid(table["hash"]), pc.is_in(table["role"], value_set=roles)))
    by_hash: dict[str, set] = defaultdict(set)
    paths: dict[str, list] = defaultdict(list)
    cols = [sub[c].to_pylist() for c in ("role", "hash", "split", "path")]
    for role, h, split, path in zip(*cols):
        by_hash[(role, h)].add(split)
        paths[(role, h)].append(path)
    dups = [k for k, splits in by_hash.items() if "train" in splits and "test" in splits]
    if dups:
        examples = "; ".join(" = ".join(sorted(paths[k])[:2]) for k in dups[:3])
        report.warn("train-test-duplicates", f"{len(dups)} images appear in both train and test (by content hash), "
                    f"e.g. {examples}", fix="exclude them from training when you report test scores")
        split_of = set(zip(cols[2], cols[3]))
        for k in dups:  # name every one (the report file lists them all): the test file and its train twins
            test = sorted({p for p in paths[k] if ("test", p) in split_of})
            train = sorted({p for p in paths[k] if ("train", p) in split_of})
            report.warn("train-test-duplicate", f"this test {k[0]} has the same bytes as train "
                        f"{', '.join(train[:3])}{' ...' if len(train) > 3 else ''}", file=test[0],
                        fix="exclude the train copy from training when you report test scores")
    else:
        report.good("duplicates", "no image appears in both train and test")


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
