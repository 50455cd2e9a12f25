"""Hyper-parameter sweeps of the accessory model (Supp. section 1, Figure 1): lambda (Eq. 8), the Gaussian radius
g and gamma (Eq. 3) on STRAT-hat, one command each; one bench run per value (``--set`` overrides of variant
``Ours``), then LSSIM / IoU / Disp against the value in a PNG like the paper's Figure 1 (default value marked by
a red dashed line) and a JSON of the points.

    python -m bench.acc_sweep lambda 0.001,0.01,0.1,1,10 [--profile smoke] [--device cpu] [--out sweep_lambda.png]
    python -m bench.acc_sweep g 10,15,20,25,30
    python -m bench.acc_sweep gamma 4,6,8,10,12
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
        raise ValueError(f"unknown sweep parameter {param!r}; use one of {sorted(PARAMS)}")
    others = [s for s in ("glasses", "hat", "tie") if s != subset]
    return [PARAMS[param][0].format(subset=subset) + f"={value}"] + [f"stages.{s}.enabled=false" for s in others]


def sweep(param: str, values: Sequence[float], subset: str = "hat", profile: Optional[str] = None,
          device: Optional[str] = None, seed: int = 0, out: Optional[Path] = None,
          log: Callable[[str], None] = print) -> dict:
    from bench.harness.run import Request, run_bench

    points = []
    for v in values:
        paths = run_bench(Request(model="accessory", variant="Ours", dataset="strat", setting=subset, profile=profile,
                                  device=device, seed=seed, resume=True, overrides=overrides(param, v, subset)), log=log)
        rec = json.loads(Path(paths[-1]).read_text())
        points.append({"value": float(v), **{m: rec["metrics"].get(m, {}).get("value") for m in METRICS}})
    result = {"param": param, "default": PARAMS[param][1], "subset": subset, "points": points}
    out = Path(out or f"sweep_{param}.png")
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
    a = ap.parse_args(argv)
    sweep(a.param, [float(v) for v in a.values.split(",")], a.subset, a.profile, a.device, a.seed, a.out)


if __name__ == "__main__":
    main()
