"""Significance test between two benchmarked methods over repeated runs (accessory paper, Supp. section 3).

The paper runs its method and CorrelNet ten times with random seeds 1-10 on STRAT-hat and applies Welch's
t-test (unequal variances) to the per-run metric values (LSSIM, IoU, Disp), reporting mean +- std per method.
Here each run is one ``vtondata bench`` record (one seed); :func:`compare` collects the records of two
``(model, variant)`` pairs on the same dataset / split / setting / profile, one value per seed (the newest
record of a seed), and computes per metric: mean, std (ddof = 1, the sample std), n, Welch's t and the
two-sided p-value (``scipy.stats.ttest_ind(equal_var=False)``) plus the one-sided p-value in the direction of
the metric (``higher_is_better``). The result is written as JSON to ``$VTONDATA_RESULTS/significance/``.

Command (runs the missing seeds of both, then tests)::

    vtondata bench significance --model accessory --variant Ours --compare accessory:row1 \\
        --dataset strat --setting hat --seeds 1-10

CorrelNet (the paper's comparison) has no public code, so the paper's pair cannot be regenerated; the reported
numbers stay in ``leaderboards/reported/accessory_supp_significance_strat_hat.csv``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

from vtondata.errors import VtonDataError

HIGHER_IS_BETTER = {"lssim": True, "iou": True, "disp": False, "ssim": True, "psnr": True, "lpips": False,
                    "fid": False, "kid": False, "is": True}


def parse_seeds(text: str) -> list[int]:
    """``"1-10"`` -> 1..10; ``"1,3,5"``; ``"2"``."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = (int(x) for x in part.split("-", 1))
            out += list(range(a, b + 1))
        else:
            out.append(int(part))
    if len(out) < 2:
        raise VtonDataError(f"need at least two seeds, got {text!r}", fix="e.g. --seeds 1-10")
    return out


def welch(a: Sequence[float], b: Sequence[float], higher_is_better: bool = True) -> dict:
    """Welch's t-test of ``a`` vs ``b``: t, two-sided p, one-sided p for "a better than b"."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        raise VtonDataError("Welch's t-test needs at least two values per method",
                            fix="run more seeds (--seeds 1-10)")
    res = stats.ttest_ind(list(a), list(b), equal_var=False)
    t, p = float(res.statistic), float(res.pvalue)
    if math.isnan(t):  # identical constant samples
        return {"t": t, "p_two_sided": p, "p_one_sided": float("nan"), "df": float("nan")}
    one = p / 2 if (t > 0) == higher_is_better else 1 - p / 2
    df = float(getattr(res, "df", float("nan")))
    return {"t": t, "p_two_sided": p, "p_one_sided": one, "df": df}


def _summary(values: Sequence[float]) -> dict:
    import numpy as np

    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"), "n": int(len(v)),
            "values": [float(x) for x in v]}


def seed_values(results, model: str, variant: str, dataset: str, split: str, setting: str, profile: str,
                seeds: Iterable[int], metrics: Optional[Sequence[str]] = None) -> dict[str, dict[int, float]]:
    """``{metric: {seed: value}}`` from the leaderboard's results frame (newest record per seed)."""
    if results.empty:
        return {}
    sel = results[(results["model"] == model) & (results["variant"] == variant) & (results["dataset"] == dataset)
                  & (results["split"] == split) & (results["setting"] == setting) & (results["profile"] == profile)
                  & (results["seed"].isin(list(seeds)))]
    sel = sel[sel["value"].notna()].sort_values("created")
    out: dict[str, dict[int, float]] = {}
    for r in sel.itertuples(index=False):
        if metrics is not None and r.metric not in metrics:
            continue
        out.setdefault(r.metric, {})[int(r.seed)] = float(r.value)  # later records overwrite earlier ones
    return out


def compare(a: tuple[str, str], b: tuple[str, str], dataset: str, setting: str, seeds: Sequence[int],
            split: str = "test", profile: str = "smoke", metrics: Optional[Sequence[str]] = None,
            results=None) -> dict:
    """Mean +- std of each method over ``seeds`` and Welch's t-test per metric (see the module docstring)."""
    if results is None:
        from bench.leaderboard import load_results

        results = load_results()
    va = seed_values(results, a[0], a[1], dataset, split, setting, profile, seeds, metrics)
    vb = seed_values(results, b[0], b[1], dataset, split, setting, profile, seeds, metrics)
    out = {"a": {"model": a[0], "variant": a[1]}, "b": {"model": b[0], "variant": b[1]}, "dataset": dataset,
           "split": split, "setting": setting, "profile": profile, "seeds": list(seeds), "test": "welch",
           "metrics": {}}
    for m in sorted(set(va) & set(vb)):
        xa, xb = [va[m][s] for s in sorted(va[m])], [vb[m][s] for s in sorted(vb[m])]
        hib = HIGHER_IS_BETTER.get(m, True)
        out["metrics"][m] = {"a": _summary(xa), "b": _summary(xb), "higher_is_better": hib,
                             **welch(xa, xb, hib)}
    if not out["metrics"]:
        raise VtonDataError("no metric has records for both methods over these seeds",
                            fix="run them first (vtondata bench significance runs missing seeds)")
    return out


def write(result: dict, directory: Optional[Path] = None) -> Path:
    from bench.harness.record import results_dir
    from vtondata.manifest import atomic_write_json

    d = Path(directory or results_dir()) / "significance"
    d.mkdir(parents=True, exist_ok=True)
    name = "__".join([f"{result['a']['model']}-{result['a']['variant']}", "vs",
                      f"{result['b']['model']}-{result['b']['variant']}", result["dataset"], result["setting"],
                      result["profile"]])
    name = "".join(c if c.isalnum() or c in "-_.+=" else "-" for c in name)
    path = d / f"{name}.json"
    atomic_write_json(path, result)
    return path


def to_markdown(result: dict) -> str:
    a, b = result["a"], result["b"]
    lines = [f"Welch's t-test, {result['dataset']}/{result['setting']} {result['split']}, seeds {result['seeds']}",
             "", f"| metric | {a['model']}:{a['variant']} | {b['model']}:{b['variant']} | t | p (two-sided) | "
                 f"p (one-sided, a better) |", "|---|---|---|---|---|---|"]
    for m, r in result["metrics"].items():
        lines.append(f"| {m} | {r['a']['mean']:.4f} ± {r['a']['std']:.4f} (n={r['a']['n']}) | "
                     f"{r['b']['mean']:.4f} ± {r['b']['std']:.4f} (n={r['b']['n']}) | {r['t']:.3f} | "
                     f"{r['p_two_sided']:.3g} | {r['p_one_sided']:.3g} |")
    return "\n".join(lines)


def run(model: str, variant: Optional[str], other: str, dataset: str, setting: str, seeds: Sequence[int],
        split: str = "test", profile: Optional[str] = None, device: Optional[str] = None,
        overrides: Sequence[str] = (), log: Callable[[str], None] = print) -> tuple[dict, Path]:
    """Bench both methods for every seed (the harness skips nothing: use --resume semantics of ``run_bench``),
    then :func:`compare` and :func:`write`. ``other`` = ``model`` or ``model:variant``."""
    from bench.harness import registry as reg
    from bench.harness.run import Request, default_profile, run_bench

    prof = profile or default_profile(device)
    m2, _, v2 = other.partition(":")
    pairs = [(model, reg.resolve_variant(model, dataset, variant)), (m2, reg.resolve_variant(m2, dataset, v2 or None))]
    for m, v in pairs:
        for s in seeds:
            log(f"significance: {m}:{v} seed {s}")
            run_bench(Request(model=m, variant=v, dataset=dataset, split=split, setting=setting, profile=prof,
                              seed=int(s), resume=True, device=device, overrides=list(overrides)), log=log)
    result = compare(pairs[0], pairs[1], dataset, setting, seeds, split, prof)
    path = write(result)
    log(to_markdown(result))
    log(f"written {path}")
    return result, path
