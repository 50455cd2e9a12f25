"""Leaderboards: the papers' reported numbers next to ours, per table cell, with deltas and flags.

``reported``: ``leaderboards/reported/<table>.csv`` (the papers' numbers, columns as in its README).
``ours``: every record under ``leaderboards/results/`` (see ``bench.harness.record``), aggregated with pandas.

A reported row (method, variant, dataset, split, setting, metric) is matched to our results through the
table's cell (``bench/tables/<table>.json``): same table and cell id, same metric, **same preset**
(values from another preset are never shown side by side). The newest comparable result wins, else the
newest result. ``ours`` is printed on the paper's scale (``display_scale``: KID x100 in the hr-viton
preset) with the reported number of decimals; ``delta = ours - reported`` is given only for comparable
results. Flags: ``smoke`` (profile), ``generated`` (synthetic data), ``random-weights`` (learned metric or
loss network initialised randomly), ``error`` (metric failed), ``n=K`` (number of runs recorded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pandas as pd

from vtondata.errors import VtonDataError

from bench.harness import registry as reg
from bench.harness.record import reported_dir, results_dir

COLUMNS = ["method", "variant", "dataset", "setting", "metric", "reported", "ours", "delta", "flags", "cell"]


def load_reported(table_id: str, directory: Optional[Path] = None) -> pd.DataFrame:
    path = Path(directory or reported_dir()) / f"{table_id}.csv"
    if not path.exists():
        raise VtonDataError("reported numbers not found", file=path,
                            fix="copy ../shared/reported/*.csv to leaderboards/reported/ (or set VTONDATA_REPORTED)")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def load_results(directory: Optional[Path] = None) -> pd.DataFrame:
    """One row per (record, metric, cell): the flat view the leaderboard aggregates."""
    d = Path(directory or results_dir())
    rows = []
    for path in sorted(d.glob("*.json")) if d.exists() else []:
        try:
            r = json.loads(path.read_text())
        except ValueError:
            continue
        data = r.get("data", {})
        flags = []
        if r.get("profile") != "full":
            flags.append(str(r.get("profile")))
        if data.get("generated") or data.get("train_generated"):
            flags.append("generated")
        if not r.get("weights", {}).get("all_real", False):
            flags.append("random-weights")
        cells = r.get("cells") or [{"table": None, "cell": None}]
        for name, m in r.get("metrics", {}).items():
            for c in cells:
                rows.append({
                    "file": path.name, "created": r.get("created", ""), "table": c["table"], "cell": c["cell"],
                    "model": r.get("model"), "variant": r.get("variant"), "dataset": r.get("dataset"),
                    "split": r.get("split"), "setting": r.get("setting"), "preset": m.get("preset", r.get("preset")),
                    "preset_fingerprint": m.get("preset_fingerprint"), "metric": name, "value": m.get("value"),
                    "std": m.get("std"), "display_scale": float(m.get("display_scale", 1.0) or 1.0),
                    "error": m.get("error"), "comparable": bool(r.get("comparable")) and bool(m.get("comparable")),
                    "flags": flags + (["error"] if m.get("error") else []), "profile": r.get("profile"),
                    "seed": r.get("seed"), "config_hash": r.get("config_hash"),
                    "source_hash": r.get("code", {}).get("source_hash"),
                    "manifest_fingerprint": data.get("manifest_fingerprint")})
    cols = ["file", "created", "table", "cell", "model", "variant", "dataset", "split", "setting", "preset",
            "preset_fingerprint", "metric", "value", "std", "display_scale", "error", "comparable", "flags", "profile",
            "seed", "config_hash", "source_hash", "manifest_fingerprint"]
    return pd.DataFrame(rows, columns=cols)


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def _match_cell(table: dict, row: pd.Series) -> Optional[dict]:
    for cell in table["cells"]:
        rep = cell["reported"]
        if all(str(rep.get(k, "")) == str(row[k]) for k in ("method", "variant", "dataset", "split", "setting")):
            return cell
    return None


def table_view(table_id: str, results: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """The table with reported, ours, delta and flags per reported row (columns :data:`COLUMNS`)."""
    table = reg.get_table(table_id)
    reported = load_reported(table_id)
    if "significance" in table:  # mean ± std over seeds and Welch's p from bench.significance's results
        from bench.significance import table_view as significance_view

        return significance_view(table, reported)
    res = load_results() if results is None else results
    res = res[res["table"] == table_id] if not res.empty else res
    out = []
    for _, row in reported.iterrows():
        cell = _match_cell(table, row)
        rep_text = row["value"] + (f" ± {row['std']}" if row.get("std") else "")
        line = {"method": row["method"], "variant": row["variant"], "dataset": row["dataset"],
                "setting": row["setting"], "metric": row["metric"], "reported": rep_text or "-", "ours": "",
                "delta": "", "flags": "", "cell": cell["id"] if cell else ""}
        if cell is None:
            line["flags"] = "no cell"
            out.append(line)
            continue
        ok, why = reg.cell_fillable(cell)
        metric = cell["metrics"].get(row["metric"])
        if isinstance(metric, dict):  # a metric with options: its record key (``mask_ssim@face``)
            from bench.harness.scoring import metric_key

            metric = metric_key(metric)
        if not ok or metric is None:
            line["flags"] = why or "metric not reproducible"
            out.append(line)
            continue
        mine = res[(res["cell"] == cell["id"]) & (res["metric"] == metric)] if not res.empty else res
        same = mine[mine["preset"] == cell.get("preset", "pytorch-fid")] if not mine.empty else mine
        if same.empty:
            line["flags"] = ("other preset only" if not mine.empty else "not run")
            out.append(line)
            continue
        same = same.sort_values("created")
        comp = same[same["comparable"]]
        best = (comp if not comp.empty else same).iloc[-1]
        flags = list(best["flags"])
        if len(same) > 1:
            flags.append(f"n={len(same)}")
        if best["value"] is not None and pd.notna(best["value"]):
            shown = float(best["value"]) * best["display_scale"]
            dec = max(_decimals(row["value"]), 2) if row["value"] else 3
            line["ours"] = f"{shown:.{dec}f}"
            if best["std"] is not None and pd.notna(best["std"]) and row.get("std"):
                line["ours"] += f" ± {float(best['std']) * best['display_scale']:.{dec}f}"
            if best["comparable"] and row["value"]:
                line["delta"] = f"{shown - float(row['value']):+.{dec}f}"
            elif row["value"]:
                line["delta"] = "n/c"
        line["flags"] = ", ".join(flags)
        out.append(line)
    return pd.DataFrame(out, columns=COLUMNS)


def to_markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)


def tables_with_results(results: pd.DataFrame) -> list[str]:
    if results.empty:
        return []
    return sorted(t for t in results["table"].dropna().unique() if t in reg.table_ids())


def plot(views: dict[str, pd.DataFrame], path: Path) -> Path:
    """Bar chart per (table, metric): reported vs ours for the rows where we have a value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for tid, df in views.items():
        have = df[df["ours"] != ""]
        for metric, g in have.groupby("metric", sort=False):
            panels.append((tid, metric, g))
    if not panels:
        raise VtonDataError("nothing to plot: no reproduced values in these tables",
                            fix="run `vtondata bench --table TABLE_ID` first")
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.0, 3.2 * len(panels)), 3.6), squeeze=False)
    for ax, (tid, metric, g) in zip(axes[0], panels):
        labels = [f"{m}\n{d}" if len(g["dataset"].unique()) > 1 else m for m, d in zip(g["method"], g["dataset"])]
        rep = [float(v.split("±")[0]) if v not in ("", "-") else float("nan") for v in g["reported"]]
        ours = [float(v.split("±")[0]) for v in g["ours"]]
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], rep, width=0.4, label="reported")
        bars = ax.bar([i + 0.2 for i in x], ours, width=0.4, label="ours")
        for bar, flags in zip(bars, g["flags"]):
            if flags:
                bar.set_hatch("//")
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title(f"{tid}\n{metric}", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.text(0.01, 0.01, "hatched: not comparable (smoke / generated data / random weights)", fontsize=6)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def show(table: Optional[str] = None, fmt: str = "md", plot_path: Optional[Path] = None,
         echo=print) -> dict[str, pd.DataFrame]:
    """Print one table (or every table with results, else every table) as Markdown or CSV; optional PNG."""
    if fmt not in ("md", "csv"):
        raise VtonDataError(f"unknown format {fmt!r}", fix="use md or csv")
    results = load_results()
    ids = [table] if table else (tables_with_results(results) or reg.table_ids())
    views = {tid: table_view(tid, results) for tid in ids}
    for tid, df in views.items():
        if fmt == "md":
            t = reg.get_table(tid)
            echo(f"\n### {tid} — {t['paper']}, {t['label']}\n")
            echo(to_markdown(df))
        else:
            echo(df.assign(table=tid).to_csv(index=False).rstrip("\n"))
    if plot_path is not None:
        echo(f"plot written to {plot(views, plot_path)}")
    return views
