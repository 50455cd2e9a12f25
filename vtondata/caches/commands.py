"""What the ``vtondata cache`` commands do (open the manifest, call the store, print a short report)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.table import Table

from ..errors import VtonDataError
from ..manifest import open_manifest
from . import KINDS
from .store import build, finalize, gc, status

class _Con:
    """A rich console created per call (wide when not a terminal, so tables are not cut)."""

    def print(self, *a, **kw):
        Console(width=None if sys.stdout.isatty() else 200).print(*a, **kw)


con = _Con()


def parse_params(params: list[str]) -> dict:
    """``["radius=6", "size=128x96"]`` -> dict with numbers / booleans / None parsed."""
    out = {}
    for p in params or []:
        if "=" not in p:
            raise VtonDataError(f"bad --param {p!r}", fix="write key=value, e.g. --param radius=6")
        k, v = p.split("=", 1)
        low = v.lower()
        if low in ("none", "null", ""):
            val = None
        elif low in ("true", "false"):
            val = low == "true"
        else:
            try:
                val = int(v)
            except ValueError:
                try:
                    val = float(v)
                except ValueError:
                    val = v
        out[k.strip()] = val
    return out


def build_cmd(kind: str, dataset: Optional[str], manifest: Optional[Path], split: Optional[str], shard: Optional[str],
              force: bool, dry_run: bool, params: list[str], plugin: Optional[str], size: Optional[str],
              quiet: bool = False) -> list:
    """Build one kind (or ``all``) and print one line per kind; returns the results."""
    m = open_manifest(dataset, manifest)
    p = parse_params(params)
    if plugin:
        p["plugin"] = plugin
    if size:
        p["size"] = size
    kinds = sorted(KINDS) if kind == "all" else [kind]
    results = []
    for k in kinds:
        r = build(m, k, p if kind != "all" else {kk: v for kk, v in p.items() if kk == "size"}, split=split,
                  shard=shard, force=force, dry_run=dry_run, quiet=quiet)
        results.append(r)
        if r.skipped:
            con.print(f"[yellow]skip[/] {r.skipped}")
            continue
        i, n = r.shard
        what = "dry run: " if dry_run else ""
        con.print(f"{what}[bold]{k}[/] {m.dataset} {r.fingerprint} shard {i}/{n}: {r.chunks_built} chunk(s) built "
                  f"({r.samples_built} keys, {r.rate:.1f}/s), {r.chunks_skipped} already done, "
                  f"{r.chunks_mine}/{r.chunks_total} chunk(s) in this shard"
                  + ("" if dry_run else f"; {'complete' if r.complete else 'partial (other shards pending)'}"))
        for note in r.notes:
            con.print(f"  {note}")
        if r.dir is not None and not dry_run:
            con.print(f"  [dim]{r.dir}[/]")
    return results


def status_cmd(dataset: Optional[str], manifest: Optional[Path]) -> list[dict]:
    m = open_manifest(dataset, manifest)
    rows = status(m)
    if not rows:
        con.print(f"no caches for {m.dataset} (build one: vtondata cache build --kind pose-maps --dataset {m.dataset})")
        return rows
    t = Table(title=f"caches of {m.dataset}")
    for c in ("kind", "fingerprint", "current", "producer", "params", "keys", "chunks", "state", "MiB"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["kind"], r["fingerprint"], "*" if r["current"] else "", str(r.get("producer", "")),
                  str(r.get("params", ""))[:60], str(r.get("keys", "")),
                  f"{r.get('chunks_done', '?')}/{r.get('chunks_total', '?')}", r["state"], f"{r['bytes'] / 2**20:.1f}")
    con.print(t)
    return rows


def gc_cmd(dataset: Optional[str], manifest: Optional[Path], dry_run: bool) -> list:
    m = open_manifest(dataset, manifest)
    removed = gc(m, dry_run=dry_run)
    for p in removed:
        con.print(f"{'would remove' if dry_run else 'removed'} {p}")
    if not removed:
        con.print("nothing to collect")
    return removed


def finalize_cmd(kind: str, dataset: Optional[str], manifest: Optional[Path], fingerprint: Optional[str]) -> dict:
    m = open_manifest(dataset, manifest)
    st = finalize(m, kind, fingerprint)
    con.print(f"{kind} {st['fingerprint']}: {st['chunks_done']}/{st['chunks_total']} chunks indexed, "
              f"{'complete' if st['complete'] else 'incomplete'} (complete splits: {', '.join(st['complete_splits']) or '-'})")
    return st
