"""``vtondata bench list``: models with their variants and datasets, tables with the cells each can fill."""

from __future__ import annotations

from . import registry as reg


def describe() -> dict:
    models = []
    for name in reg.model_names():
        spec = reg.get_model(name).spec()
        models.append({"model": name, "title": spec.get("title", ""), "datasets": spec["datasets"],
                       "variants": {k: v.get("_doc", "") for k, v in reg.variants(name).items()}})
    tables = []
    for tid in reg.table_ids():
        t = reg.get_table(tid)
        cells = []
        for c in t["cells"]:
            ok, why = reg.cell_fillable(c)
            cells.append({"id": c["id"], "model": c.get("model"), "variant": c.get("variant"),
                          "dataset": c["dataset"], "split": c["split"], "setting": c["setting"],
                          "preset": c.get("preset"), "metrics": list(c["metrics"]), "fillable": ok, "why": why})
        tables.append({"table": tid, "paper": t["paper"], "label": t["label"], "cells": cells})
    return {"models": models, "tables": tables, "datasets": sorted(reg.catalog()["datasets"]),
            "profiles": list(reg.PROFILES)}


def print_catalog() -> dict:
    from rich.console import Console
    from rich.table import Table

    d = describe()
    con = Console()
    mt = Table(title="models")
    for col in ("model", "variant", "datasets", "what"):
        mt.add_column(col, overflow="fold")
    for m in d["models"]:
        for v, doc in m["variants"].items():
            mt.add_row(m["model"], v, ", ".join(m["datasets"]), doc.split(" (")[0].split(": ")[0])
    con.print(mt)
    for t in d["tables"]:
        tt = Table(title=f"{t['table']}  ({t['paper']}, {t['label']})")
        for col in ("cell", "model / variant", "data", "metrics (preset)", "fillable"):
            tt.add_column(col, overflow="fold")
        for c in t["cells"]:
            tt.add_row(c["id"], f"{c['model'] or '-'} / {c['variant'] or '-'}",
                       f"{c['dataset']} {c['split']} {c['setting']}", f"{', '.join(c['metrics'])} ({c['preset']})",
                       "[green]yes[/]" if c["fillable"] else f"[yellow]no[/]: {c['why']}")
        con.print(tt)
    return d
