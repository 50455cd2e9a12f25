"""The doctor: dataset-level checks on top of the per-file probes, and the lenient filter.

Checks (each a :class:`~vtondata.findings.Finding`): list-file faults (from the ingester), per-file faults
(:mod:`vtondata.probe`), files of one size group whose size differs from the group's (declared) size,
tuples whose members were dropped, duplicate content across train and test (warn), split sizes against
the known figures of the full release (warn).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .datasets.base import Ingester, Scan
from .findings import FAIL, Finding, Report
from .probe import probe_all
from .progress import progress_bar


@dataclass
class Validated:
    scan: Scan
    report: Report
    assets: list[dict]
    samples: list[dict]
    tuples: list[dict]
    dropped: dict  # {"assets": n, "samples": n, "tuples": n}
    image_size: Optional[tuple[int, int]]


def check_dataset(ingester: Ingester, root: Path, scan: Scan, report: Report, *, deep: bool = False,
                  workers: int = 0, quiet: bool = False) -> Validated:
    root = Path(root)
    specs = scan.assets
    with progress_bar(len(specs), f"checking {ingester.name} files", disable=quiet) as advance:
        probed = probe_all(root, specs, deep=deep, workers=workers, progress=advance)
    rows = []
    for spec, pr in zip(specs, probed):
        row = pr.row
        row["dataset"] = ingester.name
        for f in pr.findings:
            report.findings.append(f)
        rows.append(row)
    after_probe = getattr(ingester, "after_probe", None)  # optional ingester hook on the probed rows
    if after_probe is not None:
        after_probe(specs, rows, report)
    image_size = _check_sizes(ingester, specs, rows, report)
    _check_duplicates(rows, report)
    _check_split_sizes(ingester, scan, report)
    # lenient filter: failing assets drop their sample; tuples with a dropped member are dropped
    bad = report.dropped_ids()
    known_samples = {s["sample_id"] for s in scan.samples}
    bad_samples = bad & known_samples
    assets = [r for r in rows if r["asset_id"] not in bad and r["sample_id"] not in bad_samples and r.get("hash")]
    samples = [dict(s, dataset=ingester.name) for s in scan.samples if s["sample_id"] not in bad_samples]
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
            tuples.append(dict(t, dataset=ingester.name))
    dropped = {"assets": len(rows) - len(assets), "samples": len(scan.samples) - len(samples),
               "tuples": len(scan.tuples) - len(tuples)}
    n_ok = len(rows) - len({f.file for f in report.fails if f.file})
    report.good("files", f"{n_ok} of {len(rows)} files passed their checks")
    return Validated(scan, report, assets, samples, tuples, dropped, image_size)


def _check_sizes(ingester: Ingester, specs, rows, report: Report) -> Optional[tuple[int, int]]:
    groups: dict[str, list[tuple]] = defaultdict(list)
    for spec, row in zip(specs, rows):
        if spec.size_group and row.get("width"):
            groups[spec.size_group].append((spec, (row["width"], row["height"])))
    main_size = None
    for group, items in groups.items():
        mode, n = Counter(sz for _, sz in items).most_common(1)[0]
        if group == "image":
            main_size = mode
        for spec, sz in items:
            if sz != mode:
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


def _check_duplicates(rows, report: Report) -> None:
    by_hash: dict[str, set] = defaultdict(set)
    paths: dict[str, list] = defaultdict(list)
    for r in rows:
        if r.get("hash") and r["role"] in ("person", "garment"):
            by_hash[(r["role"], r["hash"])].add(r["split"])
            paths[(r["role"], r["hash"])].append(r["path"])
    dups = [k for k, splits in by_hash.items() if "train" in splits and "test" in splits]
    if dups:
        examples = "; ".join(" = ".join(sorted(paths[k])[:2]) for k in dups[:3])
        report.warn("train-test-duplicates", f"{len(dups)} images appear in both train and test (by content hash), "
                    f"e.g. {examples}", fix="exclude them from training when you report test scores")
        split_of = {(r["split"], r["path"]) for r in rows if r.get("hash") and r["role"] in ("person", "garment")}
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
