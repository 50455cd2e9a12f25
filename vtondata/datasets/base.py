"""The ingester seam: one class per dataset that detects its layout and scans the release unchanged.

An ingester declares ``name``, ``layouts`` (variants it reads), ``expected_sizes`` (known split sizes,
checked as warnings) and implements :meth:`Ingester.detect` and :meth:`Ingester.scan`. ``scan`` never
decodes images: it lists files, reads list files and declares every asset (:class:`~vtondata.probe.AssetSpec`),
sample and tuple; the shared doctor (:mod:`vtondata.validate`) probes the files.
"""

from __future__ import annotations

import posixpath
from abc import ABC, abstractmethod
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterator, Optional

from ..errors import UnknownNameError
from ..findings import Report
from ..probe import AssetSpec

REGISTRY: dict[str, type["Ingester"]] = {}


def register(cls: type["Ingester"]) -> type["Ingester"]:
    if cls.name in REGISTRY:
        raise ValueError(f"ingester {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def get_ingester(name: str) -> "Ingester":
    from . import _load_all  # noqa: F401  (registers the built-in ingesters)

    key = name.lower().replace("_", "-")
    if key not in REGISTRY:
        raise UnknownNameError(f"unknown dataset {name!r}", fix=f"use one of {sorted(REGISTRY)}")
    return REGISTRY[key]()


def _assets_sink():
    """A plain list, or under :func:`vtondata.probefeed.streaming` the active feed (probes as the scan declares)."""
    from ..probefeed import ACTIVE

    feed = ACTIVE.get()
    return [] if feed is None else feed


def _rows_sink(kind: str):
    """A default factory: a plain list, or under :func:`vtondata.probefeed.streaming` with a probing feed a
    :class:`~vtondata.rowspool.RowSpool` (the rows go to disk as the scan appends them)."""

    def make():
        from ..probefeed import ACTIVE

        spool = getattr(ACTIVE.get(), "row_spool", None)
        return [] if spool is None else spool(kind)
    return make


@dataclass
class Scan:
    """Everything an ingester found, before probing.

    Ingesters only ever *append* to ``assets`` (never reassign, reorder or read it back): under ``prepare`` it is
    a :class:`~vtondata.probefeed.ProbeFeed` that probes each file as soon as it is declared and keeps no spec.
    They append to ``samples`` and ``tuples`` too (and may iterate them, never index or reassign them): under
    ``prepare`` those are :class:`~vtondata.rowspool.RowSpool` objects that keep the rows on disk.
    """

    layout: str
    assets: list[AssetSpec] = field(default_factory=_assets_sink)
    samples: list[dict] = field(default_factory=_rows_sink("samples"))
    tuples: list[dict] = field(default_factory=_rows_sink("tuples"))
    list_files: list[str] = field(default_factory=list)  # relative paths of the list / annotation files read
    notes: dict = field(default_factory=dict)  # layout facts worth recording in meta.json
    #: extra manifest tables ``{name: [row dict, ...]}`` (e.g. keypoints parsed from a CSV); rows carrying a
    #: ``tuple_id`` or ``sample_id`` column follow the lenient filter of that tuple / sample
    tables: dict = field(default_factory=dict)


class Ingester(ABC):
    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    layouts: ClassVar[tuple[str, ...]] = ()
    #: {split: count} of persons / pairs / triplets on the full release, per layout ("*" = any)
    expected_sizes: ClassVar[dict] = {}
    #: what the split size counts ("pairs", "triplets", ...)
    size_unit: ClassVar[str] = "tuples"

    @abstractmethod
    def detect(self, root: Path) -> Optional[str]:
        """The layout variant held by ``root``, or None."""

    @abstractmethod
    def scan(self, root: Path, layout: str, report: Report) -> Scan:
        """List the release (no decoding) into assets, samples and tuples; list-file faults go to ``report``."""

    def split_counts(self, scan: Scan) -> dict:
        """What the expected sizes are compared with; default: distinct tuples per split of the first setting."""
        counts: dict[str, int] = {}
        for t in scan.tuples:
            counts[t["split"]] = counts.get(t["split"], 0) + 1
        return counts


_UNSAFE = re.compile(r"(^[/\\])|(^[A-Za-z]:)|\\")


def safe_relpath(entry: str) -> Optional[str]:
    """Normalised relative POSIX path, or None when the entry escapes the root (``..``, absolute, backslash)."""
    if not entry or _UNSAFE.search(entry):
        return None
    if "//" not in entry and "/." not in "/" + entry and entry[-1] != "/":
        return entry  # no empty, "." or ".." segment: normpath would return it unchanged
    norm = posixpath.normpath(entry)
    if norm.startswith("..") or norm.startswith("/") or "/../" in f"/{norm}/":
        return None
    return norm


def read_list(root: Path, rel: str, report: Report, *, ncols: int | tuple[int, ...], sep: Optional[str] = None,
              skip: int = 0, path_cols: tuple[int, ...] = (), what: str = "") -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, columns)`` of a list file; bad lines become fail findings naming file and line.

    ``sep=None`` splits on any whitespace; ``path_cols`` are columns holding paths relative to the root, which
    are refused (never read) when they escape it. Blank lines are skipped; CRLF is accepted.
    """
    path = root / rel
    counts = (ncols,) if isinstance(ncols, int) else tuple(ncols)
    try:
        fh = open(path, encoding="utf-8-sig", newline=None)  # read line by line: the list is never held whole
    except FileNotFoundError:
        report.fail("missing-list", f"missing list file {rel}", file=rel,
                    fix=f"restore {rel} from the release ({what or 'list file'})")
        return
    i = 0
    with fh:
        try:
            for i, raw in enumerate(fh, start=1):
                line = raw.strip()
                if i <= skip or not line:
                    continue
                cols = [c.strip() for c in (line.split(sep) if sep is not None else line.split())]
                if len(cols) not in counts:
                    report.fail("malformed-line", f"expected {' or '.join(map(str, counts))} columns, found "
                                f"{len(cols)}: {line[:80]!r}", file=rel, line=i,
                                fix=f"each line must be {what}" if what else "fix or delete the line")
                    continue
                bad = [cols[c] for c in path_cols if c < len(cols) and safe_relpath(cols[c]) is None]
                if bad:
                    report.fail("unsafe-path", f"path {bad[0]!r} points outside the dataset root; refused, never "
                                "read", file=rel, line=i,
                                fix="list files must hold paths relative to the root without '..'")
                    continue
                for c in path_cols:
                    if c < len(cols):
                        cols[c] = safe_relpath(cols[c])
                yield i, cols
        except UnicodeDecodeError as exc:
            report.fail("bad-list-encoding", f"not UTF-8 text after line {i} ({exc})", file=rel, line=i + 1,
                        fix="re-download the list file")
