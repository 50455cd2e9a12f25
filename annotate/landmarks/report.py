"""Console output of the landmark commands (rich tables); no computation here."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

_console = Console(soft_wrap=True)  # long paths stay on one line (greppable output)
if not _console.is_terminal:  # piped / captured: no terminal width to respect, keep tables whole
    _console = Console(soft_wrap=True, width=132)


def print_convert_result(r) -> None:
    t = r.table
    c = _console
    c.print(f"[bold]{r.source}[/] read as [cyan]{r.format}[/]; checked against {r.checked_against}")
    by = t.groupby(["scheme", "side"]).agg(records=("image", "nunique"), points=("point", "size")) if len(t) else None
    if by is not None:
        tab = Table("scheme", "side", "records", "landmark rows")
        for (sc, side), row in by.iterrows():
            tab.add_row(sc, side, str(row["records"]), str(row["points"]))
        c.print(tab)
    n = Counter(f.severity for f in r.findings)
    dropped = " (their records were dropped)" if n.get("error") else ""
    c.print(f"{n.get('error', 0)} error(s){dropped}, {n.get('warn', 0)} warning(s)")
    for f in [f for f in r.findings if f.severity == "warn"][:10]:
        c.print(f"  [yellow]warn[/] {f}")
    for f in [f for f in r.findings if f.severity == "error"][:10]:
        c.print(f"  [red]error[/] {f}")
    for p in r.files:
        c.print(f"wrote {p}")
    if r.manifest_table is not None:
        c.print(f"wrote {r.manifest_table}")
    c.print(f"{r.n_records} records in {r.seconds:.2f} s ({r.n_records / max(r.seconds, 1e-9):,.0f} records/s)")


_EVAL_COLS = (("pck@0.05", "PCK.05"), ("pck@0.1", "PCK.1"), ("nme", "NME"), ("ap", "AP"), ("ap50", "AP50"),
              ("ap75", "AP75"), ("attribute_accuracy", "attr acc"), ("n_records", "records"), ("n_matched", "matched"))


def print_eval_report(report: dict) -> None:
    for scheme, rep in report.items():
        tab = Table(title=f"{scheme}: landmark metrics (PCK of the bbox diagonal, OKS AP via pycocotools)")
        tab.add_column("side")
        for _, head in _EVAL_COLS:
            tab.add_column(head, justify="right")
        for side in ("garment", "person", "all"):
            if side in rep:
                r = rep[side]
                tab.add_row(side, *[f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k, _ in _EVAL_COLS])
        _console.print(tab)
        if rep.get("n_pred_unmatched"):
            _console.print(f"[yellow]{rep['n_pred_unmatched']} predicted record(s) have no ground truth[/]")


def print_paths(paths) -> None:
    for p in paths:
        _console.print(f"wrote {p}")
