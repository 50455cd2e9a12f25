"""Sample and tuple rows on disk while a streamed ``prepare`` scans (:class:`RowSpool`).

A scan emits one row dict per sample and per tuple. Held as Python dicts they cost about 0.7 KB each, the last
thing in ``prepare`` whose memory grew with the dataset. Under :func:`vtondata.probefeed.streaming` a
:class:`~vtondata.datasets.base.Scan` takes a :class:`RowSpool` instead of a list for ``samples`` and ``tuples``:
rows are appended as the ingester finds them, converted to Arrow every ``batch`` rows and written to an Arrow IPC
stream in the work directory. Reading (iteration, :meth:`RowSpool.batches`) streams the file back, so the
ingesters' own passes (``split_counts``, identity checks) and the doctor's lenient filter work unchanged, one
batch in memory at a time. Rows read back carry every column of the schema (absent keys as None).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa

from .schema import to_table


class RowSpool:
    """An append-only sequence of row dicts kept on disk (see the module docstring). ``len`` counts the rows;
    iterating yields them as dicts in append order; :meth:`batches` yields Arrow record batches."""

    def __init__(self, path: Path, schema: pa.Schema, batch: int = 4096):
        self.path, self.schema, self.batch = Path(path), schema, batch
        self._pending: list[dict] = []
        self._n = 0
        self._fh = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_stream(self._fh, schema)
        self._written = 0

    def append(self, row: dict) -> None:
        self._pending.append(row)
        self._n += 1
        if len(self._pending) >= self.batch:
            self._flush()

    def append_batch(self, batch: pa.RecordBatch) -> None:
        """Append a record batch of this schema (rows appended before it keep their place)."""
        self._flush()
        self._n += batch.num_rows
        self._write(batch)

    def _flush(self) -> None:
        if self._pending:
            rows, self._pending = self._pending, []
            self._write(to_table(rows, self.schema))

    def _write(self, data) -> None:
        if data.num_rows:
            self._writer.write(data)
            self._fh.flush()  # readable at once (batches() may be called while the scan goes on)
            self._written += data.num_rows

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows appended so far as record batches (more may be appended afterwards)."""
        self._flush()
        if not self._written:
            return
        with pa.OSFile(str(self.path), "rb") as fh:
            yield from pa.ipc.open_stream(fh)

    def rows_at(self, positions) -> list[dict]:
        """The rows at the given (sorted) positions, as dicts, in that order."""
        want, out, start = list(positions), [], 0
        k = 0
        for b in self.batches():
            end = start + b.num_rows
            while k < len(want) and want[k] < end:
                out.append(b.slice(want[k] - start, 1).to_pylist()[0])
                k += 1
            start = end
            if k == len(want):
                break
        return out

    def __iter__(self) -> Iterator[dict]:
        for b in self.batches():
            yield from b.to_pylist()

    def close(self) -> None:
        if not self._fh.closed:
            self._flush()
            self._writer.close()
            self._fh.close()


def column(rows, name: str) -> Iterator:
    """One column of a :class:`RowSpool` (read back batch by batch) or of a list of row dicts."""
    if isinstance(rows, RowSpool):
        for b in rows.batches():
            yield from b.column(name).to_pylist()
    else:
        for r in rows:
            yield r[name]


__all__ = ["RowSpool", "column"]
