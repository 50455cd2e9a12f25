"""The cache store: fingerprinted, chunked, checksummed, resumable and shardable.

Layout (``<out>`` is the prepared dataset's directory, ``$VTONDATA_HOME/<dataset>`` by default)::

    <out>/caches/<kind>/current.json                 {"fingerprint": ...}: what the loader reads by default
    <out>/caches/<kind>/<fingerprint>/meta.json      kind, producer, version, weights hash, params, arrays
    <out>/caches/<kind>/<fingerprint>/plan.json      chunks: name, split, keys (sorted)
    <out>/caches/<kind>/<fingerprint>/chunks/<split>-NNNNN.bin    arrays, raw C-order bytes (bool arrays
                                                                  bit-packed), each 64-byte aligned
    <out>/caches/<kind>/<fingerprint>/chunks/<split>-NNNNN.json   per key: offset, nbytes, dtype, shape, meta;
                                                                  BLAKE2b checksum of the .bin
    <out>/caches/<kind>/<fingerprint>/index.parquet  all chunks merged (finalize): key, array -> chunk, offset ...

Fingerprint = BLAKE2b-128 of (producer name, version, weights hash, parameters, and every key with the content
hashes of the assets it reads), as Hugging Face datasets fingerprints a transform: a changed file or parameter
gives a new directory; old ones stay until :func:`gc`.

Resume: a chunk is written as ``.bin`` then ``.json`` (each by temporary file + ``os.replace``); the ``.json`` is
the commit record. A killed build leaves only whole chunks, so a restart skips them and produces byte-identical
files (no timestamps, deterministic serialisation). Sharding: chunks are dealt round-robin to ``--shard i/n``
(or ``RANK`` / ``WORLD_SIZE`` under ``torchrun``); every shard finalizes under a file lock after its own chunks,
so the last one to finish writes the complete index. Reads memory-map the ``.bin`` and verify its checksum the
first time a process touches a chunk; a corrupt chunk is rebuilt from the manifest and read again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import VtonDataError
from ..manifest import Manifest, atomic_write_bytes, atomic_write_parquet
from .base import Producer, WorkItem, params_json

FORMAT = 1
DEFAULT_CHUNK = 64
ALIGN = 64
CURRENT = "current.json"


# ----------------------------------------------------------------------------- identity and plan


def fingerprint(identity: dict, items: list[WorkItem]) -> str:
    """BLAKE2b-128 hex of the producer identity and every key's input asset hashes."""
    h = hashlib.blake2b(digest_size=16)
    ident = {k: identity[k] for k in ("kind", "producer", "version", "weights_hash", "params")}
    h.update(params_json(ident).encode())
    for it in items:
        h.update(f"\n{it.key}\t{json.dumps(it.input_hash_list(), separators=(',', ':'))}".encode())
    return h.hexdigest()


def _inputs_hash(it: WorkItem) -> str:
    return hashlib.blake2b(json.dumps(it.input_hash_list(), separators=(",", ":")).encode(),
                           digest_size=8).hexdigest()


@dataclass
class Chunk:
    name: str
    split: str
    items: list


def plan(items: list[WorkItem], chunk_size: int = DEFAULT_CHUNK) -> list[Chunk]:
    """Chunks of ``chunk_size`` keys, per split (splits sorted, keys sorted)."""
    by: dict[str, list] = {}
    for it in items:
        by.setdefault(it.split, []).append(it)
    out = []
    for split in sorted(by):
        its = sorted(by[split], key=lambda w: w.key)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", split)
        for j in range(0, len(its), chunk_size):
            out.append(Chunk(f"{safe}-{j // chunk_size:05d}", split, its[j:j + chunk_size]))
    return out


def parse_shard(shard: Optional[str]) -> tuple[int, int]:
    """``"i/n"`` (0-based) -> (i, n); ``None`` -> torchrun's ``RANK`` / ``WORLD_SIZE`` or (0, 1)."""
    if shard:
        try:
            i, n = (int(v) for v in str(shard).split("/"))
        except ValueError:
            raise VtonDataError(f"bad --shard {shard!r}", fix="write i/n with 0 <= i < n, e.g. 0/4") from None
    else:
        n = int(os.environ.get("WORLD_SIZE", "1") or 1)
        i = int(os.environ.get("RANK", "0") or 0) if n > 1 else 0
    if n < 1 or not 0 <= i < n:
        raise VtonDataError(f"bad shard {i}/{n}", fix="0 <= i < n (shards are 0-based, like torchrun's RANK)")
    return i, n


def caches_dir(manifest: Manifest) -> Path:
    return manifest.out / "caches"


def cache_dir(manifest: Manifest, kind: str, fp: str) -> Path:
    return caches_dir(manifest) / kind / fp


# ----------------------------------------------------------------------------- chunk files


def _checksum(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def write_chunk(d: Path, chunk: Chunk, outputs: list[dict]) -> None:
    """Serialise one chunk's arrays (``.bin``) then its record (``.json``), each atomically."""
    parts: list[bytes] = []
    offset = 0
    entries = {}
    for it, out in zip(chunk.items, outputs):
        arrays = {}
        for name in sorted(k for k in out if not k.startswith("_")):
            a = np.ascontiguousarray(out[name])
            # boolean arrays (masks, discs) are bit-packed: 8x smaller, unpacked on read
            raw = np.packbits(a.reshape(-1)).tobytes() if a.dtype == bool else a.tobytes()
            arrays[name] = [offset, len(raw), a.dtype.str, list(a.shape)]
            pad = (-len(raw)) % ALIGN
            parts.append(raw + b"\0" * pad)
            offset += len(raw) + pad
        entries[it.key] = {"inputs": _inputs_hash(it), "arrays": arrays, "meta": out.get("_meta", {})}
    data = b"".join(parts)
    chunks = d / "chunks"
    atomic_write_bytes(chunks / f"{chunk.name}.bin", data)
    rec = {"chunk": chunk.name, "split": chunk.split, "format": FORMAT, "nbytes": len(data),
           "checksum": hashlib.blake2b(data, digest_size=16).hexdigest(),
           "keys": [it.key for it in chunk.items], "entries": entries}
    atomic_write_bytes(chunks / f"{chunk.name}.json", json.dumps(rec, sort_keys=True, indent=1).encode())


def read_chunk_record(d: Path, name: str) -> Optional[dict]:
    p = d / "chunks" / f"{name}.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def chunk_complete(d: Path, chunk: Chunk, verify: bool = True) -> bool:
    """True when the chunk's record matches its keys and inputs and (``verify``) its ``.bin`` checksum."""
    rec = read_chunk_record(d, chunk.name)
    if rec is None or rec.get("keys") != [it.key for it in chunk.items]:
        return False
    if any(rec["entries"].get(it.key, {}).get("inputs") != _inputs_hash(it) for it in chunk.items):
        return False
    b = d / "chunks" / f"{chunk.name}.bin"
    if not b.exists() or b.stat().st_size != rec["nbytes"]:
        return False
    return not verify or _checksum(b) == rec["checksum"]


@contextlib.contextmanager
def _locked(d: Path):
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- build


@dataclass
class BuildResult:
    kind: str
    dataset: str
    fingerprint: Optional[str] = None
    dir: Optional[Path] = None
    shard: tuple = (0, 1)
    keys: int = 0
    chunks_total: int = 0
    chunks_mine: int = 0
    chunks_skipped: int = 0
    chunks_built: int = 0
    samples_built: int = 0
    seconds: float = 0.0
    finalized: bool = False
    complete: bool = False
    dry_run: bool = False
    skipped: Optional[str] = None
    notes: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.samples_built / self.seconds if self.seconds > 0 else 0.0


def _write_meta(d: Path, producer: Producer, identity: dict, fp: str, manifest: Manifest, chunks: list[Chunk],
                chunk_size: int) -> None:
    meta = dict(identity, fingerprint=fp, format=FORMAT, dataset=manifest.dataset, unit=producer.unit,
                arrays=producer.arrays, chunk_size=chunk_size, keys=sum(len(c.items) for c in chunks),
                chunks=len(chunks))
    pl = {"chunks": [{"name": c.name, "split": c.split, "keys": [it.key for it in c.items]} for c in chunks]}
    for name, obj in (("meta.json", meta), ("plan.json", pl)):
        data = json.dumps(obj, sort_keys=True, indent=1, default=str).encode()
        p = d / name
        if not p.exists() or p.read_bytes() != data:
            atomic_write_bytes(p, data)


def build(manifest: Manifest, kind: str, params: Optional[dict] = None, *, split: Optional[str] = None,
          shard: Optional[str] = None, force: bool = False, dry_run: bool = False, chunk_size: int = DEFAULT_CHUNK,
          quiet: bool = False, finalize_after: bool = True) -> BuildResult:
    """Build (or resume) the cache of ``kind`` for a prepared dataset; returns what was done.

    ``split`` restricts to one split; ``shard`` ``"i/n"`` builds every n-th chunk (default: torchrun's env);
    ``force`` rebuilds this shard's chunks; ``dry_run`` only reports. Datasets lacking the roles a kind needs
    are skipped with ``result.skipped`` set (no error).
    """
    from . import make_producer
    from ..progress import progress_bar

    t0 = time.perf_counter()
    prod = make_producer(kind, **(params or {}))
    res = BuildResult(kind=kind, dataset=manifest.dataset, shard=parse_shard(shard), dry_run=dry_run)
    reason = prod.skip_reason(manifest)
    items = [] if reason else prod.items(manifest)
    if not reason and not items:
        reason = f"{kind}: no {prod.unit}s of {manifest.dataset} have the inputs it needs ({', '.join(prod.needs)})"
    if reason:
        res.skipped = reason
        return res
    if split is not None:
        splits = sorted({it.split for it in items})
        if split not in splits:
            raise VtonDataError(f"{kind}: split {split!r} has nothing to build in {manifest.dataset}",
                                fix=f"use one of {splits}")
    identity = prod.identity()
    fp = fingerprint(identity, items)
    d = cache_dir(manifest, kind, fp)
    chunks = plan(items, chunk_size)
    selected = [c for c in chunks if split is None or c.split == split]
    i, n = res.shard
    mine = [c for j, c in enumerate(selected) if j % n == i]
    res.fingerprint, res.dir, res.keys = fp, d, len(items)
    res.chunks_total, res.chunks_mine = len(selected), len(mine)
    todo = mine if force else [c for c in mine if not chunk_complete(d, c)]
    res.chunks_skipped = len(mine) - len(todo)
    if dry_run:
        res.samples_built = 0
        res.notes.append(f"would build {len(todo)} chunk(s), {sum(len(c.items) for c in todo)} {prod.unit}s")
        res.seconds = time.perf_counter() - t0
        return res
    d.mkdir(parents=True, exist_ok=True)
    _write_meta(d, prod, identity, fp, manifest, chunks, chunk_size)
    total = sum(len(c.items) for c in todo)
    tb = time.perf_counter()
    with progress_bar(total, f"cache {kind}" + (f" [{i}/{n}]" if n > 1 else ""), disable=quiet,
                      unit=prod.unit) as advance:
        for c in todo:
            outs = prod.produce(c.items, manifest.root)
            if len(outs) != len(c.items):
                raise VtonDataError(f"producer {prod.name} returned {len(outs)} results for {len(c.items)} keys")
            write_chunk(d, c, outs)
            res.chunks_built += 1
            res.samples_built += len(c.items)
            advance(len(c.items))
    res.seconds = time.perf_counter() - tb
    if finalize_after:
        state = finalize_dir(d, verify=False)
        res.finalized, res.complete = True, state["complete"]
        if state["complete"] and hasattr(prod, "after_build"):
            res.notes += prod.after_build(manifest, CacheReader(manifest, d))
    return res


# ----------------------------------------------------------------------------- finalize / status / gc


def finalize_dir(d: Path, verify: bool = True) -> dict:
    """Merge the committed chunk records into ``index.parquet`` and point ``current.json`` here (under a lock)."""
    d = Path(d)
    with _locked(d):
        pl = json.loads((d / "plan.json").read_text())
        meta = json.loads((d / "meta.json").read_text())
        rows = {c: [] for c in ("key", "split", "chunk", "array", "offset", "nbytes", "dtype", "shape", "meta")}
        done, splits_total, splits_done = 0, {}, {}
        for c in pl["chunks"]:
            splits_total[c["split"]] = splits_total.get(c["split"], 0) + 1
            rec = read_chunk_record(d, c["name"])
            b = d / "chunks" / f"{c['name']}.bin"
            if rec is None or rec.get("keys") != c["keys"] or not b.exists() or b.stat().st_size != rec["nbytes"]:
                continue
            if verify and _checksum(b) != rec["checksum"]:
                continue
            done += 1
            splits_done[c["split"]] = splits_done.get(c["split"], 0) + 1
            for key in rec["keys"]:
                e = rec["entries"][key]
                m = json.dumps(e.get("meta", {}), sort_keys=True)
                for name, (off, nb, dt, shape) in sorted(e["arrays"].items()):
                    for col, v in (("key", key), ("split", c["split"]), ("chunk", c["name"]), ("array", name),
                                   ("offset", off), ("nbytes", nb), ("dtype", dt), ("shape", json.dumps(shape)),
                                   ("meta", m)):
                        rows[col].append(v)
        table = pa.table({k: pa.array(v, type=pa.int64() if k in ("offset", "nbytes") else pa.string())
                          for k, v in rows.items()})
        atomic_write_parquet(d / "index.parquet", table)
        complete_splits = sorted(s for s, t in splits_total.items() if splits_done.get(s, 0) == t)
        state = {"chunks_done": done, "chunks_total": len(pl["chunks"]), "complete": done == len(pl["chunks"]),
                 "complete_splits": complete_splits}
        atomic_write_bytes(d / "state.json", json.dumps(state, sort_keys=True, indent=1).encode())
        cur = d.parent / CURRENT
        data = json.dumps({"fingerprint": meta["fingerprint"]}, indent=1).encode()
        if not cur.exists() or cur.read_bytes() != data:
            atomic_write_bytes(cur, data)
    return state


def current_fingerprint(manifest: Manifest, kind: str) -> Optional[str]:
    p = caches_dir(manifest) / kind / CURRENT
    try:
        return json.loads(p.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None


def finalize(manifest: Manifest, kind: str, fingerprint_: Optional[str] = None) -> dict:
    """Finalize the newest (or given) cache directory of ``kind``; returns its state."""
    kd = caches_dir(manifest) / kind
    fp = fingerprint_ or current_fingerprint(manifest, kind)
    if fp is None:
        cands = sorted((p for p in kd.glob("*/meta.json")), key=lambda p: p.stat().st_mtime) if kd.is_dir() else []
        if not cands:
            raise VtonDataError(f"no {kind} cache to finalize for {manifest.dataset}", file=kd,
                                fix=f"run `vtondata cache build --kind {kind} --dataset {manifest.dataset}` first")
        fp = cands[-1].parent.name
    d = kd / fp
    if not (d / "plan.json").exists():
        raise VtonDataError(f"{kind} cache {fp} has no plan.json", file=d, fix="rebuild it with `vtondata cache build`")
    return dict(finalize_dir(d), fingerprint=fp, kind=kind)


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def status(manifest: Manifest) -> list[dict]:
    """One row per cache directory: kind, fingerprint, current, producer, params, chunks done / total, bytes."""
    rows = []
    root = caches_dir(manifest)
    if not root.is_dir():
        return rows
    for kd in sorted(p for p in root.iterdir() if p.is_dir()):
        cur = current_fingerprint(manifest, kd.name)
        for d in sorted(p for p in kd.iterdir() if p.is_dir()):
            try:
                meta = json.loads((d / "meta.json").read_text())
                pl = json.loads((d / "plan.json").read_text())
            except (OSError, ValueError):
                rows.append({"kind": kd.name, "fingerprint": d.name, "current": d.name == cur, "state": "broken",
                             "bytes": _dir_bytes(d)})
                continue
            done = sum(1 for c in pl["chunks"] if (d / "chunks" / f"{c['name']}.json").exists())
            rows.append({"kind": kd.name, "fingerprint": d.name, "current": d.name == cur,
                         "producer": meta["producer"], "version": meta["version"],
                         "weights_hash": meta.get("weights_hash"), "params": params_json(meta["params"]),
                         "keys": meta["keys"], "chunks_done": done, "chunks_total": len(pl["chunks"]),
                         "state": "complete" if done == len(pl["chunks"]) else "partial",
                         "finalized": (d / "index.parquet").exists(), "bytes": _dir_bytes(d)})
    return rows


def gc(manifest: Manifest, dry_run: bool = False) -> list[Path]:
    """Delete cache directories no ``current.json`` points to, and leftover temporary files; returns them."""
    removed: list[Path] = []
    root = caches_dir(manifest)
    if not root.is_dir():
        return removed
    for kd in sorted(p for p in root.iterdir() if p.is_dir()):
        cur = current_fingerprint(manifest, kd.name)
        for d in sorted(p for p in kd.iterdir() if p.is_dir()):
            if d.name != cur:
                removed.append(d)
                if not dry_run:
                    shutil.rmtree(d, ignore_errors=True)
        for tmp in kd.rglob(".*.tmp"):
            removed.append(tmp)
            if not dry_run:
                tmp.unlink(missing_ok=True)
    return removed


# ----------------------------------------------------------------------------- reading


class CacheReader:
    """Random access to one cache directory: ``get(key, array) -> np.ndarray`` (read-only, memory-mapped)."""

    def __init__(self, manifest: Manifest, d: Path):
        self.manifest = manifest
        self.dir = Path(d)
        self.meta = json.loads((self.dir / "meta.json").read_text())
        self.kind = self.meta["kind"]
        idx = self.dir / "index.parquet"
        if not idx.exists():
            finalize_dir(self.dir, verify=False)
        df = pd.read_parquet(idx)
        self._loc: dict[tuple[str, str], tuple] = {}
        self._meta: dict[str, str] = {}
        for key, chunk, arr, off, nb, dt, shape, m in zip(df["key"], df["chunk"], df["array"], df["offset"],
                                                          df["nbytes"], df["dtype"], df["shape"], df["meta"]):
            self._loc[(key, arr)] = (chunk, int(off), int(nb), dt, tuple(json.loads(shape)))
            self._meta[key] = m
        self._maps: dict[str, np.ndarray] = {}

    def __getstate__(self):
        st = dict(self.__dict__)
        st["_maps"] = {}
        return st

    def __len__(self) -> int:
        return len(self._meta)

    def has(self, key: str, array: str) -> bool:
        return (key, array) in self._loc

    def key_meta(self, key: str) -> dict:
        return json.loads(self._meta.get(key, "{}"))

    def label_space(self, key: str, array: str) -> Optional[str]:
        return self.key_meta(key).get("label_space")

    def _chunk(self, name: str) -> np.ndarray:
        mm = self._maps.get(name)
        if mm is not None:
            return mm
        b = self.dir / "chunks" / f"{name}.bin"
        rec = read_chunk_record(self.dir, name)
        ok = rec is not None and b.exists() and b.stat().st_size == rec["nbytes"] and _checksum(b) == rec["checksum"]
        if not ok:
            warnings.warn(f"cache chunk {b} is corrupt or missing; rebuilding it", RuntimeWarning, stacklevel=3)
            rebuild_chunk(self.manifest, self.dir, name)
            rec = read_chunk_record(self.dir, name)
            if rec is None or _checksum(b) != rec["checksum"]:
                raise VtonDataError("cache chunk still corrupt after rebuilding", file=b,
                                    fix="check the disk; delete the cache directory and rebuild it")
        mm = np.memmap(b, dtype=np.uint8, mode="r") if rec["nbytes"] else np.zeros(0, np.uint8)
        self._maps[name] = mm
        return mm

    def get(self, key: str, array: str) -> Optional[np.ndarray]:
        loc = self._loc.get((key, array))
        if loc is None:
            return None
        chunk, off, nb, dt, shape = loc
        mm = self._chunk(chunk)
        n = int(np.prod(shape, dtype=np.int64))
        if dt == "|b1":
            bits = np.frombuffer(mm, dtype=np.uint8, count=nb, offset=off)
            return np.unpackbits(bits, count=n).view(bool).reshape(shape)
        return np.frombuffer(mm, dtype=np.dtype(dt), count=n, offset=off).reshape(shape)


def rebuild_chunk(manifest: Manifest, d: Path, name: str) -> None:
    """Recompute one chunk of a cache directory from the manifest (used when a read finds it corrupt)."""
    from . import make_producer

    meta = json.loads((d / "meta.json").read_text())
    prod = make_producer(meta["kind"], **meta["params"])
    items = prod.items(manifest)
    if fingerprint(meta, items) != meta["fingerprint"]:
        raise VtonDataError(f"the {meta['kind']} cache no longer matches the manifest (inputs changed)", file=d,
                            fix=f"rebuild: `vtondata cache build --kind {meta['kind']} --dataset {manifest.dataset}`")
    for c in plan(items, meta["chunk_size"]):
        if c.name == name:
            with _locked(d):
                write_chunk(d, c, prod.produce(c.items, manifest.root))
            return
    raise VtonDataError(f"chunk {name} is not in the cache plan", file=d, fix="rebuild the cache")


def open_reader(manifest: Manifest, kind: str, pin: Optional[str] = None) -> Optional[CacheReader]:
    """A reader of the current (or ``pin``-ned fingerprint) cache of ``kind``; None when not built or stale."""
    fp = pin or current_fingerprint(manifest, kind)
    if fp is None:
        return None
    from . import make_producer

    d = cache_dir(manifest, kind, fp)
    if not (d / "meta.json").exists():
        if pin:
            raise VtonDataError(f"no {kind} cache with fingerprint {fp}", file=d, fix="see `vtondata cache status`")
        return None
    meta = json.loads((d / "meta.json").read_text())
    try:
        items = make_producer(kind, **meta["params"]).items(manifest)
    except VtonDataError:
        return None
    if fingerprint(meta, items) != fp:
        warnings.warn(f"the {kind} cache {fp} is stale (the manifest's files changed); reading raw files. "
                      f"Rebuild: vtondata cache build --kind {kind} --dataset {manifest.dataset}", RuntimeWarning,
                      stacklevel=3)
        return None
    return CacheReader(manifest, d)
