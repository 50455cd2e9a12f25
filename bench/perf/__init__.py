"""Benchmarks (``make perf``): each ``perf_*.py`` module prints ratios measured in the same run."""


def two_core_projection(naive_cpu: float, prepare_cpu: float, workers_cpu: float) -> str:
    """What 2 idle cores would give ``prepare`` against the naive loop, from CPU seconds (a model, not a
    measurement): between no overlap of the scan (parent) with the probe workers and a full overlap."""
    parent = prepare_cpu - workers_cpu
    return (f"projection for 2 idle cores (not measured): no overlap, naive CPU / (parent CPU + workers CPU / 2) = "
            f"{naive_cpu:.2f} / ({parent:.2f} + {workers_cpu:.2f} / 2) = {naive_cpu / (parent + workers_cpu / 2):.1f}x; "
            f"full overlap, naive CPU / (all CPU / 2) = {naive_cpu / (prepare_cpu / 2):.1f}x")


def linear_fit(n1: int, t1: float, n2: int, t2: float, unit: str = "files") -> str:
    """Time = fixed + n / rate through two measured points: the fixed cost (process pool start, list reading) and
    the marginal rate. Linear scaling means the marginal rate holds at any size (files/s at small n understate it)."""
    per = (t2 - t1) / max(n2 - n1, 1)
    fixed = t1 - per * n1
    return (f"time = {fixed:.2f} s fixed + n / {1 / per if per > 0 else float('inf'):.0f} {unit}/s "
            f"(fit through {n1} and {n2} {unit})")
