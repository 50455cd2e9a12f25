"""Prepare + header validation of a generated VITON-HD vs a naive full decode of every file with PIL.

Target: at least 5x the naive baseline on 2 cores, and linear in the number of files (files/s stays flat
from 500 to 2,000 persons). ``VTONDATA_PERF_QUICK=1`` uses 100 / 400 persons.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from PIL import Image


def naive_full_decode(root: Path) -> int:
    n = 0
    for p in sorted(root.rglob("*")):
        if not p.is_file() or ".vtondata-fixture" in p.parts:
            continue
        if p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix in (".jpg", ".png"):
            with Image.open(p) as im:
                im.load()
        n += 1
    return n


def main() -> None:
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    quick = os.environ.get("VTONDATA_PERF_QUICK") == "1"
    sizes = (100, 400) if quick else (500, 2000)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            root = make_fixture("viton-hd", Path(tmp) / f"vh{n}", n=n, size="256x192", seed=0)
            naive_full_decode(root)  # warm the page cache for both contenders
            t0 = time.perf_counter()
            files = naive_full_decode(root)
            t_naive = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = prepare("viton-hd", root, out=Path(tmp) / f"out{n}", quiet=True, force=True)
            t_ours = time.perf_counter() - t0
            assert res.meta["counts"]["assets"] + len(res.meta["list_files"]) >= files - 2
            rows.append((n, files, files / t_naive, files / t_ours, t_naive / t_ours))
    print(f"{'persons':>8} {'files':>7} {'naive files/s':>14} {'prepare files/s':>16} {'ratio':>6}")
    for n, files, fn, fo, r in rows:
        print(f"{n:>8} {files:>7} {fn:>14.0f} {fo:>16.0f} {r:>6.1f}x")
    lin = rows[-1][3] / rows[0][3]
    print(f"linearity: files/s at {rows[-1][0]} persons / at {rows[0][0]} = {lin:.2f} (1.0 = linear)")
    print(f"target >= 5x: {'met' if rows[-1][4] >= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
