"""Streaming the scan into the probes: files are checked while the ingester is still declaring them.

An ingester appends each :class:`~vtondata.probe.AssetSpec` to ``scan.assets``. Under :func:`streaming` that
list is a :class:`ProbeFeed`: every ``chunk`` specs go to a worker process (as plain tuples, which pickle faster
than the dataclass) while the scan goes on, and each probed chunk comes back as an Arrow record batch that is
appended to a spool file on disk (Arrow IPC). The parent keeps no Python object per file: only a few bytes of
columns per file (size-group code, width, height) and, for person / garment files, what the train / test
duplicate check needs (hash, role, split). The input fingerprint is hashed as the chunks come back, in the order
the scan declared the files (see :func:`fingerprint_line`). So peak memory does not grow with the number of files
beyond those columns, and the probing overlaps the scan.

:class:`StatFeed` is the same sink for the "is the manifest still current?" question: it ``stat``-s each file as
it is declared and hashes the same fingerprint lines, keeping nothing.

Chunks finish in any order but are spooled in declaration order (futures are taken oldest first); at most
``4 x workers`` chunks are in flight, so a fast scan waits for the workers instead of queueing the whole dataset.
Jobs below ``inline_below`` files, or ``workers=1``, are probed in this process (no pool start-up).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import os
from array import array
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .probe import AssetSpec, probe
from .schema import ASSETS

#: the feed ``Scan`` objects created under :func:`streaming` take as their ``assets``
ACTIVE: contextvars.ContextVar = contextvars.ContextVar("vtondata_asset_feed", default=None)

_VALUE_COLS = ("width", "height", "format", "mode", "bytes", "hash", "label_space", "keypoint_format", "encoding")
_DUP_ROLES = ("person", "garment")
_DUP_SPLITS = ("train", "test")


def fingerprint_line(path: str, stat: Optional[tuple[int, int]]) -> str:
    """One file's line of the input fingerprint: ``path|size|mtime_ns`` or ``path|missing``."""
    return f"{path}|{stat[0]}|{stat[1]}\n" if stat is not None else f"{path}|missing\n"


def stat_of(full: str) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(full)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def probe_specs(root: str, deep: bool, dataset: str, specs: list) -> tuple:
    """Probe ``specs`` in order -> (record batch with the :data:`~vtondata.schema.ASSETS` schema, findings,
    int64 ``(N, 2)`` (size, mtime_ns) of each file as read, ``-1`` rows for missing files)."""
    findings: list = []
    stats: list = []
    values = []
    for spec in specs:
        pr = probe(root, spec, deep, stats)
        if pr.findings:
            findings.extend(pr.findings)
        row = pr.row
        values.append([row.get(c) for c in _VALUE_COLS])
    vals = dict(zip(_VALUE_COLS, map(list, zip(*values)))) if values else {c: [] for c in _VALUE_COLS}
    n = len(specs)
    cols = {"asset_id": [s.asset_id for s in specs], "dataset": [dataset] * n, "split": [s.split for s in specs],
            "role": [s.role for s in specs], "sample_id": [s.sample_id for s in specs],
            "path": [s.path for s in specs], **vals}
    batch = pa.RecordBatch.from_pydict({k: cols[k] for k in ASSETS.names}, schema=ASSETS)
    st = np.array([x if x is not None else (-1, -1) for x in stats], np.int64).reshape(-1, 2)
    return batch, findings, st


_FIELDS = ("asset_id", "split", "role", "sample_id", "path", "check", "size", "size_group", "label_space",
           "keypoint_format", "encoding", "required")
assert tuple(f.name for f in dataclasses.fields(AssetSpec)) == _FIELDS, "keep _spec_tuple in AssetSpec's field order"


def _spec_tuple(s: AssetSpec) -> tuple:
    return (s.asset_id, s.split, s.role, s.sample_id, s.path, s.check, s.size, s.size_group, s.label_space,
            s.keypoint_format, s.encoding, s.required)


def _probe_payload(args) -> tuple:
    """Worker: probe one chunk sent as spec tuples."""
    root, deep, dataset, rows = args
    return probe_specs(root, deep, dataset, [AssetSpec(*r) for r in rows])


class _Feed:
    """What both feeds share: list-like appends, the running fingerprint digest, no per-file objects kept."""

    def __init__(self, root: Path):
        self.root = os.path.join(str(root), "")
        self.n = 0
        self._fp = hashlib.blake2b(digest_size=16)
        self._fp_parts: list[str] = []

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        raise TypeError("a streamed scan keeps no specs: read the probed rows (ProbeFeed.batches) instead")

    def extend(self, specs) -> None:
        for s in specs:
            self.append(s)

    def _hash_lines(self, paths: list, stats) -> None:
        parts = self._fp_parts
        parts.extend(map(fingerprint_line, paths, stats))
        if len(parts) >= 4096:
            self._fp.update("".join(parts).encode())
            parts.clear()

    def digest(self, header: str, list_files: list[str]) -> str:
        """The input fingerprint: ``header``, every declared file in declaration order, then the list files."""
        h = hashlib.blake2b(digest_size=16)
        h.update(header.encode())
        self._fp.update("".join(self._fp_parts).encode())
        self._fp_parts.clear()
        h.update(self._fp.digest())
        h.update("".join(fingerprint_line(rel, stat_of(self.root + rel)) for rel in list_files).encode())
        return h.hexdigest()


class StatFeed(_Feed):
    """``stat`` each declared file and hash its fingerprint line; keeps nothing (the re-use check)."""

    def append(self, spec: AssetSpec) -> None:
        self.n += 1
        self._hash_lines([spec.path], [stat_of(self.root + spec.path)])


class ProbeFeed(_Feed):
    """Probe specs as they are appended (see the module docstring); :meth:`finish` once the scan is done."""

    def __init__(self, root: Path, dataset: str, spool: Path, *, deep: bool = False, workers: int = 0,
                 progress: Optional[Callable[[int], None]] = None, chunk: int = 512, inline_below: int = 1000):
        super().__init__(root)
        self.dataset, self.deep, self.progress = dataset, deep, progress
        self.workers = workers or (os.cpu_count() or 1)
        self.chunk, self.inline_below = chunk, inline_below
        self.spool = Path(spool)
        self._writer = pa.ipc.new_file(str(self.spool), ASSETS)
        self._buf: list[AssetSpec] = []
        self._pending: deque = deque()
        self._ex: Optional[ProcessPoolExecutor] = None
        self.findings: list = []
        #: per file: code of its size group (0 = none; ``group_names[code - 1]`` otherwise), width, height (-1 = none)
        self.group_names: list[str] = []
        self._group_code: dict = {None: 0}
        self._groups = array("I")  # uint32: some ingesters make a group per tuple (STRAT: per accessory)
        self._wh: list[np.ndarray] = []
        #: per person / garment file with a hash: (row index, role, split, hash) chunks for the duplicate check
        self._dup: list[tuple] = []
        self.batch_rows: list[int] = []  # rows of each spooled batch, in order
        self.finished = False
        self._row_spools: list = []

    def row_spool(self, kind: str):
        """A :class:`~vtondata.rowspool.RowSpool` for the scan's ``"samples"`` or ``"tuples"`` rows, beside the
        probe spool (what a :class:`~vtondata.datasets.base.Scan` made under :func:`streaming` takes)."""
        from .rowspool import RowSpool
        from .schema import SAMPLES, TUPLES

        path = self.spool.with_name(f"{self.spool.stem}.{kind}.{len(self._row_spools)}.arrow")
        self._row_spools.append(RowSpool(path, {"samples": SAMPLES, "tuples": TUPLES}[kind]))
        return self._row_spools[-1]

    # ------------------------------------------------------------------ feeding
    def append(self, spec: AssetSpec) -> None:
        code = self._group_code.get(spec.size_group)
        if code is None:
            self.group_names.append(spec.size_group)
            code = self._group_code[spec.size_group] = len(self.group_names)
        self._groups.append(code)
        self._buf.append(spec)
        self.n += 1
        if len(self._buf) >= self.chunk and (self._ex is not None or self.n >= self.inline_below):
            self._submit()

    def _submit(self, inline: bool = False) -> None:
        buf, self._buf = self._buf, []
        if inline or self.workers <= 1:
            for i in range(0, len(buf), self.chunk):
                self._take(probe_specs(self.root, self.deep, self.dataset, buf[i:i + self.chunk]))
            return
        if self._ex is None:
            import multiprocessing as mp

            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            self._ex = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        for i in range(0, len(buf), self.chunk):
            rows = [_spec_tuple(s) for s in buf[i:i + self.chunk]]
            self._pending.append(self._ex.submit(_probe_payload, (self.root, self.deep, self.dataset, rows)))
        while len(self._pending) > 4 * self.workers or (self._pending and self._pending[0].done()):
            self._take(self._pending.popleft().result())

    def _take(self, result: tuple) -> None:
        batch, findings, stats = result
        offset = sum(self.batch_rows)
        self._writer.write_batch(batch)
        self.batch_rows.append(batch.num_rows)
        if findings:
            self.findings.extend(findings)
        self._hash_lines(batch.column("path").to_pylist(),
                         [None if s < 0 else (s, m) for s, m in stats.tolist()])
        w = pc.fill_null(batch.column("width"), -1).to_numpy(zero_copy_only=False).astype(np.int32)
        h = pc.fill_null(batch.column("height"), -1).to_numpy(zero_copy_only=False).astype(np.int32)
        self._wh.append(np.stack([w, h], 1))
        sel = pc.and_(pc.and_(pc.is_valid(batch.column("hash")),
                              pc.is_in(batch.column("role"), value_set=pa.array(_DUP_ROLES, pa.string()))),
                      pc.is_in(batch.column("split"), value_set=pa.array(_DUP_SPLITS, pa.string())))
        idx = np.flatnonzero(pc.fill_null(sel, False).to_numpy(zero_copy_only=False))
        if len(idx):
            take = pa.array(idx)
            role = pc.index_in(batch.column("role").take(take), value_set=pa.array(_DUP_ROLES, pa.string()))
            split = pc.index_in(batch.column("split").take(take), value_set=pa.array(_DUP_SPLITS, pa.string()))
            code = (role.to_numpy(zero_copy_only=False) * 2 + split.to_numpy(zero_copy_only=False)).astype(np.uint8)
            h64 = np.fromiter((int(x[:16], 16) for x in batch.column("hash").take(take).to_pylist()), np.uint64,
                              len(idx))
            self._dup.append((idx + offset, code, h64))
        if self.progress:
            self.progress(batch.num_rows)

    def finish(self) -> "ProbeFeed":
        """Probe what is left, wait for the workers, close the spool."""
        if self.finished:
            return self
        try:
            if self._buf:
                self._submit(inline=self._ex is None and self.n < self.inline_below)
            while self._pending:
                self._take(self._pending.popleft().result())
        finally:
            self.close()
        self.finished = True
        return self

    def close(self) -> None:
        """Stop the workers and close the spool (also after an error)."""
        for f in self._pending:
            f.cancel()
        self._pending.clear()
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)
            self._ex = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for sp in self._row_spools:  # still readable
            sp.close()

    # ------------------------------------------------------------------ reading back
    @property
    def sizes(self) -> np.ndarray:
        """int32 ``(N, 2)`` width, height of every file (-1 when unknown), in declaration order."""
        return np.concatenate(self._wh) if self._wh else np.zeros((0, 2), np.int32)

    @property
    def size_groups(self) -> np.ndarray:
        return np.frombuffer(self._groups, np.uint32) if len(self._groups) else np.zeros(0, np.uint32)

    def duplicate_keys(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The train / test person and garment files with a hash: their row ``index`` (int64), ``code`` (uint8,
        ``2 * role + split`` over :data:`_DUP_ROLES` and :data:`_DUP_SPLITS`) and the first 64 bits of their
        content hash (uint64): 17 bytes per file for the duplicate check, the full hash stays in the spool."""
        if not self._dup:
            return np.zeros(0, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.uint64)
        return tuple(np.concatenate([d[k] for d in self._dup]) for k in range(3))

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The probed rows, batch by batch, read from the spool (one batch in memory at a time)."""
        with pa.OSFile(str(self.spool), "rb") as fh:
            reader = pa.ipc.open_file(fh)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)

    def rows_at(self, indices) -> list[dict]:
        """The probed rows at the given positions (declaration order), as dicts, in the order given."""
        want = sorted(set(int(i) for i in indices))
        if not want:
            return []
        starts = np.cumsum([0] + self.batch_rows)
        found: dict[int, dict] = {}
        with pa.OSFile(str(self.spool), "rb") as fh:
            reader = pa.ipc.open_file(fh)
            for b in sorted(set(np.searchsorted(starts, want, side="right") - 1)):
                batch = reader.get_batch(int(b))
                for i in want:
                    if starts[b] <= i < starts[b + 1]:
                        found[i] = {k: v[0] for k, v in batch.slice(i - starts[b], 1).to_pydict().items()}
        return [found[int(i)] for i in indices]


@contextlib.contextmanager
def streaming(feed: _Feed):
    """``Scan`` objects created inside take ``feed`` as their ``assets`` (see :class:`vtondata.datasets.base.Scan`)."""
    token = ACTIVE.set(feed)
    try:
        yield feed
    finally:
        ACTIVE.reset(token)


__all__ = ["ProbeFeed", "StatFeed", "streaming", "probe_specs", "fingerprint_line", "ACTIVE"]
