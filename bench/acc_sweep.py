"""Hyper-parameter sweeps of the accessory model (Supp. section 1, Figure 1): lambda (Eq. 8), the Gaussian radius
g and gamma (Eq. 3) on STRAT-hat, one command each; one bench run per value (``--set`` overrides of variant
``Ours``, only the subset's network trained; a value already trained resumes from its finished checkpoint and is
only scored and recorded again), then LSSIM / IoU / Disp of each run's record against the value in a PNG like the
paper's Figure 1 (default value marked by a red dashed line) and a JSON of the points (value, metrics, record
file, comparable).

    vtondata bench sweep lambda 0.001,0.01,0.1,1,10 [--subset hat] [--profile smoke] [--device cpu] [--out F.png]
    vtondata bench sweep g 10,15,20,25,30
    vtondata bench sweep gamma 4,6,8,10,12
    python -m bench.acc_sweep lambda 0.001,0.01,0.1,1,10     # the same without the CLI

Default output: ``$VTONDATA_RESULTS/sweeps/accessory-<param>-<subset>.png`` and ``.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Optional, Sequence

PARAMS = {"lambda": ("stages.{subset}.losses.sm", 0.1), "g": ("heatmap.radius", 20.0),
          "gamma": ("heatmap.gamma", 10.0)}
METRICS = ("lssim", "iou", "disp")


def overrides(param: str, value: float, subset: str = "hat") -> list[str]:
    """``--set`` overrides for one sweep point (only the subset's stage is trained)."""
    if param not in PARAMS:
        from vtondata.errors import UnknownNameError

        raise UnknownNameError(f"unknown sweep parameter {param!r}", fix=f"use one of {sorted(PARAMS)}")
    others = [s for s in ("glasses", "hat", "tie") if s != subset]
    return [PARAMS[param][0].format(subset=subset) + f"={value}"] + [f"stages.{s}.enabled=false" for s in others]


def default_out(param: str, subset: str) -> Path:
    from bench.harness.record import results_dir

    return results_dir() / "sweeps" / f"accessory-{param}-{subset}.png"


def sweep(param: str, values: Sequence[float], subset: str = "hat", profile: Optional[str] = None,
          device: Optional[str] = None, seed: int = 0, out: Optional[Path] = None, extra: Sequence[str] = (),
          log: Callable[[str], None] = print) -> dict:
    """Runs (or reuses) one bench run per value and writes ``out`` (PNG) and ``out.with_suffix(".json")``;
    ``extra``: further ``--set`` overrides applied to every point. Returns the JSON's content."""
    from bench.harness.run import Request, run_bench

    points = []
    for v in values:
        paths = run_bench(Request(model="accessory", variant="Ours", dataset="strat", setting=subset, profile=profile,
                                  device=device, seed=seed, resume=True,
                                  overrides=[*overrides(param, v, subset), *extra]), log=log)
        rec = json.loads(Path(paths[-1]).read_text())
        points.append({"value": float(v), **{m: rec["metrics"].get(m, {}).get("value") for m in METRICS},
                       "record": Path(paths[-1]).name, "comparable": rec.get("comparable")})
    result = {"model": "accessory", "variant": "Ours", "param": param, "key": PARAMS[param][0].format(subset=subset),
              "default": PARAMS[param][1], "subset": subset, "points": points}
    out = Path(out) if out else default_out(param, subset)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(result, out)
    log(f"written {out} and {out.with_suffix('.json')}")
    return result


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["value"] for p in result["points"]]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3))
    for ax, m in zip(axes, METRICS):
        ax.plot(xs, [p[m] for p in result["points"]], "o-")
        ax.axvline(result["default"], color="red", linestyle="--")
        ax.set_xlabel(result["param"])
        ax.set_title(m)
        if result["param"] == "lambda":
            ax.set_xscale("log")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("param", choices=sorted(PARAMS))
    ap.add_argument("values", help="comma-separated values")
    ap.add_argument("--subset", default="hat")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--set", dest="extra", action="append", default=[], help="further override key=value")
    a = ap.parse_args(argv)
    sweep(a.param, parse_values(a.values), a.subset, a.profile, a.device, a.seed, a.out, a.extra)


def parse_values(text: str) -> list[float]:
    """``"0.01,0.1"`` -> ``[0.01, 0.1]``."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        from vtondata.errors import VtonDataError

        raise VtonDataError(f"sweep values must be comma-separated numbers, got {text!r}",
                            fix="e.g. 0.01,0.1,1") from exc


if __name__ == "__main__":
    main()
