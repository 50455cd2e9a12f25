"""Reading and writing the canonical manifest (see :mod:`vtondata.schema`) atomically.

A manifest is written into a temporary sibling directory and swapped in with ``os.replace``, so a
reader never sees a half-written manifest and a killed ``prepare`` leaves the previous one intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import schema
from .errors import ManifestNotFoundError
from .home import dataset_dir, home

META = "meta.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass
class Manifest:
    """A prepared dataset: the tables as pandas DataFrames and the meta record."""

    dir: Path
    meta: dict
    _tables: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        """The prepared dataset's directory (parent of ``manifest/``): caches, splits, reports live here."""
        return self.dir.parent

    @property
    def root(self) -> Path:
        """The dataset root as distributed."""
        return Path(self.meta["root"])

    @property
    def dataset(self) -> str:
        return self.meta["dataset"]

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            p = self.dir / f"{name}.parquet"
            if not p.exists():
                raise ManifestNotFoundError(f"table {name!r} is not in this manifest", file=p,
                                            fix="run the command that produces it (see `vtondata --help`)")
            self._tables[name] = pq.read_table(p).to_pandas()
        return self._tables[name]

    @property
    def assets(self) -> pd.DataFrame:
        return self.table("assets")

    @property
    def samples(self) -> pd.DataFrame:
        return self.table("samples")

    @property
    def tuples(self) -> pd.DataFrame:
        return self.table("tuples")

    @property
    def findings(self) -> pd.DataFrame:
        return self.table("findings")

    def has_table(self, name: str) -> bool:
        return (self.dir / f"{name}.parquet").exists()

    def write_table(self, name: str, df: pd.DataFrame, schema_: Optional[pa.Schema] = None) -> Path:
        """Add or replace one table atomically (used by later stages, e.g. landmarks)."""
        table = pa.Table.from_pandas(df, schema=schema_, preserve_index=False)
        p = self.dir / f"{name}.parquet"
        atomic_write_parquet(p, table)
        self._tables.pop(name, None)
        tables = set(self.meta.get("tables", []))
        tables.add(name)
        self.meta["tables"] = sorted(tables)
        atomic_write_json(self.dir / META, self.meta)
        return p

    def asset_path(self, asset_id_or_row) -> Path:
        """Absolute path of an asset given its id or its row."""
        if isinstance(asset_id_or_row, str):
            row = self.assets.set_index("asset_id").loc[asset_id_or_row]
            rel = row["path"]
        else:
            rel = asset_id_or_row["path"]
        return self.root / rel

    def assets_by_role(self, role: str) -> pd.DataFrame:
        a = self.assets
        return a[a["role"] == role]


def work_dir(out: Path, kind: str) -> Path:
    """A new temporary directory ``<out>/.<kind>.<pid>.<random>`` for work that is renamed into place when done.

    Directories of the same kind left by a killed process (its pid no longer runs) are removed first, so a kill
    at any moment leaves nothing behind for long."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for d in out.glob(f".{kind}.*"):
        parts = d.name.split(".")
        if len(parts) > 3 and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            shutil.rmtree(d, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".{kind}.{os.getpid()}.", dir=out))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def write_manifest(out: Path, tables: dict[str, pa.Table], meta: dict, files: Optional[dict[str, Path]] = None) -> Path:
    """Write all tables and meta.json into ``<out>/manifest`` atomically (directory swap).

    ``files``: tables already written as Parquet files on the same file system (``{name: path}``), moved in.
    """
    out = Path(out)
    final = out / "manifest"
    tmp = work_dir(out, "manifest")
    files = files or {}
    try:
        for name, table in tables.items():
            pq.write_table(table, tmp / f"{name}.parquet", compression="zstd")
        for name, path in files.items():
            os.replace(path, tmp / f"{name}.parquet")
        meta = dict(meta, tables=sorted(set(tables) | set(files)))
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
        old = None
        if final.exists():
            old = out / f".manifest.old.{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_meta(manifest_dir: Path) -> Optional[dict]:
    p = Path(manifest_dir) / META
    if not p.exists():
        return None
    return json.loads(p.read_text())


def resolve_manifest_dir(dataset: Optional[str] = None, manifest_dir: Optional[Path] = None) -> Path:
    """Find a manifest directory: explicit ``--manifest`` (the dir or its parent), else the home by name."""
    if manifest_dir is not None:
        p = Path(manifest_dir).expanduser()
        for cand in (p, p / "manifest"):
            if (cand / META).exists():
                return cand
        raise ManifestNotFoundError("no manifest (meta.json) here", file=p,
                                    fix="pass the directory written by `vtondata prepare` (or its manifest/ folder)")
    if not dataset:
        raise ManifestNotFoundError("give a dataset name or --manifest DIR",
                                    fix="e.g. `vtondata info viton-hd` after `vtondata prepare viton-hd --root DIR`")
    p = dataset_dir(dataset) / "manifest"
    if not (p / META).exists():
        raise ManifestNotFoundError(f"dataset {dataset!r} is not prepared in {home()}", file=p,
                                    fix=f"run `vtondata prepare {dataset} --root DIR` or pass --manifest DIR")
    return p


def open_manifest(dataset: Optional[str] = None, manifest_dir: Optional[Path] = None) -> Manifest:
    """Open a prepared dataset by name (in ``$VTONDATA_HOME``) or by directory."""
    d = resolve_manifest_dir(dataset, manifest_dir)
    return Manifest(dir=d, meta=read_meta(d))


def empty_table(name: str) -> pa.Table:
    return schema.TABLES[name].empty_table()
