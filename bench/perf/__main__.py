"""Run every ``bench/perf/perf_*.py`` benchmark (or those named on the command line)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench.perf as pkg


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.startswith("perf_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            importlib.import_module(f"bench.perf.{name}").main()
        except Exception as exc:  # report and continue with the other benchmarks
            failed.append(name)
            print(f"{name} failed: {type(exc).__name__}: {exc}", flush=True)
        print(f"({name}: {time.perf_counter() - t0:.1f} s)", flush=True)
    if failed:
        print(f"\nfailed benchmarks: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
