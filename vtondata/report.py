"""Human-readable output of the data commands (rich): doctor lines, prepare summary, manifest info."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .findings import FAIL, GOOD, WARN, Report

_MARK = {GOOD: "[green]✔ good[/]", WARN: "[yellow]⚠ warn[/]", FAIL: "[red]✘ fail[/]"}


def print_findings(report: Report, console: Console | None = None, limit: int = 50) -> None:
    """spaCy ``debug data`` style: good / warn / fail lines, then a summary line."""
    con = console or Console()
    shown = 0
    for sev in (GOOD, WARN, FAIL):
        for f in report.findings:
            if f.severity != sev:
                continue
            if sev != GOOD and shown >= limit:
                continue
            con.print(f"{_MARK[sev]}  [dim]{f.code}[/]  {f.render()}", highlight=False, soft_wrap=True)
            shown += sev != GOOD
    s = report.summary()
    hidden = s["warn"] + s["fail"] - shown
    if hidden > 0:
        con.print(f"[dim]... {hidden} more findings not shown (see the report file)[/]")
    con.print(f"[bold]summary:[/] {s['good']} good, {s['warn']} warn, {s['fail']} fail")


def print_prepare_result(result) -> None:
    con = Console()
    meta = result.meta
    if result.reused:
        con.print(f"[green]unchanged input[/]: re-using {result.manifest_dir} (fingerprint {meta['fingerprint'][:12]}; "
                  "--force rebuilds)")
    elif result.report is not None:
        print_findings(result.report, con)
    c = meta["counts"]
    con.print(f"[bold]{meta['dataset']}[/] ({meta['layout']} layout) -> {result.manifest_dir}")
    con.print(f"  {c['assets']} assets, {c['samples']} samples, {c['tuples']} tuples; "
              f"image size {meta.get('image_size')}; dropped {meta.get('dropped')}")
    for k, n in c["tuples_by"].items():
        con.print(f"  tuples {k}: {n}")
    if meta.get("report_file"):
        con.print(f"  report: {meta['report_file']}")
    if result.seconds:
        con.print(f"  {result.seconds:.2f} s")


def print_manifest_info(m) -> None:
    con = Console()
    meta = m.meta
    con.print(f"[bold]{meta['dataset']}[/] layout={meta['layout']} root={meta['root']}")
    con.print(f"fingerprint {meta['fingerprint']}  created {meta['created']}  tool {meta['tool_version']}")
    t = Table("table", "group", "count")
    for group in ("samples_by", "assets_by_role", "tuples_by"):
        for k, n in meta["counts"][group].items():
            t.add_row(group.split("_")[0], k, str(n))
    con.print(t)
    v = meta["validation"]
    con.print(f"validation: {v['good']} good, {v['warn']} warn, {v['fail']} fail {v.get('codes') or ''}")
