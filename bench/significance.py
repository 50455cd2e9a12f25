"""Significance test between two benchmarked methods over repeated runs (accessory paper, Supp. section 3).

The paper runs its method and CorrelNet ten times with random seeds 1-10 on STRAT-hat and applies Welch's
t-test (unequal variances) to the per-run metric values (LSSIM, IoU, Disp), reporting mean +- std per method.
Here each run is one ``vtondata bench`` record (one seed); :func:`compare` collects the records of two
``(model, variant)`` pairs on the same dataset / split / setting / profile, one value per seed (the newest
record of a seed), and computes per metric: mean, std (ddof = 1, the sample std), n, Welch's t and the
two-sided p-value (``scipy.stats.ttest_ind(equal_var=False)``) plus the one-sided p-value in the direction of
the metric (``higher_is_better``). Two constant samples with different means give t = +-inf and p = 0 (scipy);
equal constants give NaN. The result (with the records' non-comparability flags) is written as JSON to
``$VTONDATA_RESULTS/significance/``; the leaderboard shows it for tables whose JSON has a ``significance`` block
(:func:`table_view`: ours = mean ± std over the seeds x the block's ``scale``, plus the p-value and the partner).

Commands (both run only the seeds not yet recorded for the same code, config and data, then test)::

    vtondata bench --model accessory --variant Ours --seeds 1-10 --compare accessory:row1 --dataset strat --setting hat
    vtondata bench significance --model accessory --variant Ours --compare accessory:row1 --setting hat --seeds 1-10
    vtondata bench --table accessory_supp_significance_strat_hat   # the table's own pair and seeds

Without ``--compare`` the seeds run and only mean ± std is reported. Without ``--setting`` every setting the
records of the first method hold is compared. CorrelNet (the paper's comparison) has no public code, so the
paper's pair cannot be regenerated; its rows stay reported-only.
"""

from __future__ import annotations

import math
import warnings
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
    with warnings.catch_warnings():  # constant samples (deterministic baselines): scipy warns, t = +-inf / NaN
        warnings.simplefilter("ignore", RuntimeWarning)
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


def _select(results, model: str, variant: str, dataset: str, split: str, setting: str, profile: str,
            seeds: Iterable[int]):
    sel = results[(results["model"] == model) & (results["variant"] == variant) & (results["dataset"] == dataset)
                  & (results["split"] == split) & (results["setting"] == setting) & (results["profile"] == profile)
                  & (results["seed"].isin(list(seeds)))]
    return sel[sel["value"].notna()].sort_values("created")


def seed_values(results, model: str, variant: str, dataset: str, split: str, setting: str, profile: str,
                seeds: Iterable[int], metrics: Optional[Sequence[str]] = None) -> dict[str, dict[int, float]]:
    """``{metric: {seed: value}}`` from the leaderboard's results frame (newest record per seed)."""
    if results.empty:
        return {}
    out: dict[str, dict[int, float]] = {}
    for r in _select(results, model, variant, dataset, split, setting, profile, seeds).itertuples(index=False):
        if metrics is not None and r.metric not in metrics:
            continue
        out.setdefault(r.metric, {})[int(r.seed)] = float(r.value)  # later records overwrite earlier ones
    return out


def _flags(results, pairs, dataset, split, setting, profile, seeds) -> tuple[bool, list[str]]:
    """(every selected record comparable, the union of their leaderboard flags)."""
    if "comparable" not in results or "flags" not in results:
        return False, []
    comparable, flags = True, set()
    for m, v in pairs:
        sel = _select(results, m, v, dataset, split, setting, profile, seeds) if not results.empty else results
        comparable &= bool(len(sel)) and bool(sel["comparable"].all())
        for f in sel["flags"]:
            flags.update(f)
    return comparable, sorted(flags)


def compare(a: tuple[str, str], b: Optional[tuple[str, str]], dataset: str, setting: str, seeds: Sequence[int],
            split: str = "test", profile: str = "smoke", metrics: Optional[Sequence[str]] = None,
            results=None) -> dict:
    """Mean +- std of each method over ``seeds`` and Welch's t-test per metric (see the module docstring).
    ``b`` None: the summary of ``a`` only (no test)."""
    if results is None:
        from bench.leaderboard import load_results

        results = load_results()
    pairs = [a] + ([b] if b else [])
    vals = [seed_values(results, m, v, dataset, split, setting, profile, seeds, metrics) for m, v in pairs]
    comparable, flags = _flags(results, pairs, dataset, split, setting, profile, seeds)
    out = {"a": {"model": a[0], "variant": a[1]}, "b": {"model": b[0], "variant": b[1]} if b else None,
           "dataset": dataset, "split": split, "setting": setting, "profile": profile, "seeds": list(seeds),
           "test": "welch" if b else None, "comparable": comparable, "flags": flags, "metrics": {}}
    for m in sorted(set.intersection(*(set(v) for v in vals))):
        xs = [[v[m][s] for s in sorted(v[m])] for v in vals]
        hib = HIGHER_IS_BETTER.get(m, True)
        r = {"a": _summary(xs[0]), "higher_is_better": hib}
        if b:
            r.update({"b": _summary(xs[1]), **welch(xs[0], xs[1], hib)})
        out["metrics"][m] = r
    if not out["metrics"]:
        raise VtonDataError("no metric has records for both methods over these seeds",
                            fix="run them first (vtondata bench --model M --seeds 1-10 --compare M2)")
    return out


def write(result: dict, directory: Optional[Path] = None) -> Path:
    from bench.harness.record import results_dir
    from vtondata.manifest import atomic_write_json

    d = Path(directory or results_dir()) / "significance"
    d.mkdir(parents=True, exist_ok=True)
    b = result["b"]
    name = "__".join([f"{result['a']['model']}-{result['a']['variant']}", "vs",
                      f"{b['model']}-{b['variant']}" if b else "none", result["dataset"], result["split"],
                      result["setting"], result["profile"]])
    name = "".join(c if c.isalnum() or c in "-_.+=" else "-" for c in name)
    path = d / f"{name}.json"
    atomic_write_json(path, result)
    return path


def _ms(s: dict, scale: float = 1.0, dec: int = 4) -> str:
    return f"{s['mean'] * scale:.{dec}f} ± {s['std'] * scale:.{dec}f}"


def to_markdown(result: dict) -> str:
    a, b = result["a"], result["b"]
    head = f"{result['dataset']}/{result['setting']} {result['split']} ({result['profile']}), seeds {result['seeds']}"
    if not b:
        lines = [f"Mean ± std over seeds, {head}", "", f"| metric | {a['model']}:{a['variant']} |", "|---|---|"]
        lines += [f"| {m} | {_ms(r['a'])} (n={r['a']['n']}) |" for m, r in result["metrics"].items()]
        return "\n".join(lines)
    lines = [f"Welch's t-test, {head}", "", f"| metric | {a['model']}:{a['variant']} | {b['model']}:{b['variant']} "
             f"| t | p (two-sided) | p (one-sided, a better) |", "|---|---|---|---|---|---|"]
    for m, r in result["metrics"].items():
        lines.append(f"| {m} | {_ms(r['a'])} (n={r['a']['n']}) | {_ms(r['b'])} (n={r['b']['n']}) | {r['t']:.3f} | "
                     f"{r['p_two_sided']:.3g} | {r['p_one_sided']:.3g} |")
    return "\n".join(lines)


def _run_seeds(model: str, variant: str, dataset: str, split: str, setting: Optional[str], seeds: Sequence[int],
               profile: str, device: Optional[str], overrides: Sequence[str], log: Callable[[str], None]) -> None:
    """Bench ``model:variant`` for every seed not yet recorded for this code, config and data (resuming)."""
    from bench.harness.run import Request, _recorded, plan, run_bench
    from bench.leaderboard import load_results

    results = load_results()
    for s in seeds:
        req = Request(model=model, variant=variant, dataset=dataset, split=split, setting=setting, profile=profile,
                      seed=int(s), resume=True, device=device, overrides=list(overrides))
        if _recorded(plan(req, dataset), results):
            log(f"significance: {model}:{variant} seed {s} already recorded")
            continue
        log(f"significance: {model}:{variant} seed {s}")
        run_bench(req, log=log)


def run(model: str, variant: Optional[str], other: Optional[str], dataset: Optional[str], setting: Optional[str],
        seeds: Sequence[int], split: str = "test", profile: Optional[str] = None, device: Optional[str] = None,
        overrides: Sequence[str] = (), log: Callable[[str], None] = print) -> list[tuple[dict, Path]]:
    """Bench both methods for every seed (see :func:`_run_seeds`), then :func:`compare` and :func:`write` per
    setting (``setting`` None: every setting recorded for the first method). ``other`` = ``model`` or
    ``model:variant`` or None (summary only). Returns ``[(result, path)]``."""
    from bench.harness import registry as reg
    from bench.harness.run import default_profile
    from bench.leaderboard import load_results

    prof = reg.check_profile(profile or default_profile(device))
    dataset = dataset or reg.get_model(model).spec()["default_dataset"]
    pairs = [(model, reg.resolve_variant(model, dataset, variant))]
    if other:
        m2, _, v2 = other.partition(":")
        pairs.append((m2, reg.resolve_variant(m2, dataset, v2 or None)))
    for m, v in pairs:
        _run_seeds(m, v, dataset, split, setting, seeds, prof, device, overrides, log)
    results = load_results()
    if setting:
        settings = [setting]
    else:
        sel = results[(results["model"] == pairs[0][0]) & (results["variant"] == pairs[0][1])
                      & (results["dataset"] == dataset) & (results["split"] == split)]
        settings = sorted(sel["setting"].dropna().unique())
    out = []
    for st in settings:
        result = compare(pairs[0], pairs[1] if other else None, dataset, st, seeds, split, prof, results=results)
        path = write(result)
        log(to_markdown(result))
        log(f"written {path}")
        out.append((result, path))
    return out


# ----------------------------------------------------------------------------- significance tables


def run_table(table_id: str, profile: Optional[str] = None, device: Optional[str] = None,
              overrides: Sequence[str] = (), log: Callable[[str], None] = print) -> list[tuple[dict, Path]]:
    """``vtondata bench --table T`` for a table with a ``significance`` block: every fillable cell against the
    block's ``compare`` method over its ``seeds``."""
    from bench.harness import registry as reg

    table = reg.get_table(table_id)
    sig = table["significance"]
    out = []
    for cell in table["cells"]:
        ok, why = reg.cell_fillable(cell)
        if not ok:
            log(f"skip {cell['id']}: {why}")
            continue
        out += run(cell["model"], cell["variant"], sig.get("compare"), cell["dataset"], cell["setting"],
                   parse_seeds(sig.get("seeds", "1-10")), cell["split"], profile, device, overrides, log)
    return out


def load_written(directory: Optional[Path] = None) -> list[dict]:
    """Every significance result under ``$VTONDATA_RESULTS/significance/`` (oldest file first)."""
    import json

    from bench.harness.record import results_dir

    d = Path(directory or results_dir()) / "significance"
    files = sorted(d.glob("*.json"), key=lambda p: p.stat().st_mtime) if d.exists() else []
    return [json.loads(p.read_text()) for p in files]


def _pick(written: list[dict], cell: dict, compare_with: Optional[str]) -> Optional[tuple[dict, str]]:
    """The newest result whose first (or second) method is the cell's; a result against the table's
    ``compare`` method wins over one against another. ``(result, side)``."""
    found = []
    for r in written:
        for side in ("a", "b"):
            m = r.get(side)
            if m and (m["model"], m["variant"], r["dataset"], r["split"], r["setting"]) == \
                    (cell["model"], cell["variant"], cell["dataset"], cell["split"], cell["setting"]):
                other = r.get("b" if side == "a" else "a")
                named = bool(other) and compare_with in (other["model"], f"{other['model']}:{other['variant']}")
                found.append((named, r.get("profile") == "full", len(found), r, side))
                break
    if not found:
        return None
    best = max(found, key=lambda x: x[:3])
    return best[3], best[4]


def table_view(table: dict, reported, written: Optional[list[dict]] = None):
    """The leaderboard view of a significance table: per reported row, ours = mean ± std over the seeds (x the
    block's ``scale``), ``p`` = Welch's two-sided p-value against the partner named in ``flags``."""
    import pandas as pd

    from bench.harness import registry as reg
    from bench.leaderboard import COLUMNS, _decimals, _match_cell

    sig = table["significance"]
    scale = float(sig.get("scale", 1.0))
    written = load_written() if written is None else written
    out = []
    for _, row in reported.iterrows():
        cell = _match_cell(table, row)
        line = {"method": row["method"], "variant": row["variant"], "dataset": row["dataset"],
                "setting": row["setting"], "metric": row["metric"],
                "reported": row["value"] + (f" ± {row['std']}" if row.get("std") else ""), "ours": "", "p": "",
                "delta": "", "flags": "", "cell": cell["id"] if cell else ""}
        ok, why = reg.cell_fillable(cell) if cell else (False, "no cell")
        metric = cell["metrics"].get(row["metric"]) if ok else None
        hit = _pick(written, cell, sig.get("compare")) if metric else None
        if not ok or metric is None or hit is None or metric not in hit[0]["metrics"]:
            line["flags"] = why or ("metric not reproducible" if metric is None else
                                    f"not run (vtondata bench --table {table['table']})")
            out.append(line)
            continue
        res, side = hit
        r = res["metrics"][metric]
        dec = max(_decimals(row["value"]), 2) if row["value"] else 4
        line["ours"] = _ms(r[side], scale, dec)
        other = res["b" if side == "a" else "a"]
        flags = list(res.get("flags", [])) + [f"n={r[side]['n']}"]
        if other:
            line["p"] = f"{r['p_two_sided']:.3g}"
            flags.append(f"vs {other['model']}:{other['variant']}")
        if res.get("comparable") and row["value"]:
            line["delta"] = f"{r[side]['mean'] * scale - float(row['value']):+.{dec}f}"
        elif row["value"]:
            line["delta"] = "n/c"
        line["flags"] = ", ".join(flags)
        out.append(line)
    cols = COLUMNS[:7] + ["p"] + COLUMNS[7:]
    return pd.DataFrame(out, columns=cols)
