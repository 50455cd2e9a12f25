"""SPG-VTON: forward + backward time per batch of 8 at 256x192 of each generator at the paper's width (G1 41 ->
20 channels, G2 44 -> 4, G3 24 -> 4; Table I) on CPU, and the saving of a lambda3 sweep that shares stage 1
(one G1 checkpoint for the seven Table VI runs) against the same sweep with ``share_stage1=false``, measured in
the same run on generated MPV with a short smoke schedule. Baseline of the ratio = the unshared sweep."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

SWEEP = ("lambda_3 = 0", "lambda_3 = 1", "lambda_3 = 5", "lambda_3 = 10", "lambda_3 = 20 (= full)", "lambda_3 = 40",
         "lambda_3 = 80")
SHORT = ["stages.spm.steps=12", "stages.cwm_tsm.steps=2", "stages.joint.steps=1"]


def generators(batch: int = 8, reps: int = 1) -> list[tuple[str, float]]:
    import torch

    from bench.models.blocks.spg_nets import SPGGenerator

    rows = []
    for name, cin, cout in (("G1", 41, 20), ("G2", 44, 4), ("G3", 24, 4)):
        torch.manual_seed(0)
        g = SPGGenerator(cin, cout, ngf=64)
        x = torch.randn(batch, cin, 256, 192)
        t = time.perf_counter()  # one step, no warm-up: a step takes tens of seconds on 2 CPU cores
        for _ in range(reps):
            g.zero_grad(set_to_none=True)
            g(x).mean().backward()
        rows.append((name, (time.perf_counter() - t) / reps))
    return rows


def sweep(home: Path, share: bool) -> float:
    from bench.harness.run import Request, run_bench

    os.environ["VTONDATA_HOME"] = str(home)
    t = time.perf_counter()
    for v in SWEEP:
        run_bench(Request(model="spgvton", variant=v, dataset="mpv", profile="smoke", device="cpu", until="train",
                          overrides=SHORT + [f"share_stage1={'true' if share else 'false'}"]), log=lambda s: None)
    return time.perf_counter() - t


def main() -> None:
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    for name, s in generators():
        print(f"{name} forward+backward, batch 8 at 256x192 (ngf 64), CPU: {s:.2f} s")
    old = os.environ.get("VTONDATA_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_fixture("mpv", tmp / "data", n=16, size="64x48", seed=0)
        for tag in ("unshared", "shared"):
            prepare("mpv", data, out=tmp / tag / "mpv", quiet=True)
        base = sweep(tmp / "unshared", share=False)
        shared = sweep(tmp / "shared", share=True)
    if old is None:
        os.environ.pop("VTONDATA_HOME", None)
    else:
        os.environ["VTONDATA_HOME"] = old
    print(f"lambda3 sweep (7 runs, smoke, stage 1 = 12 steps): unshared {base:.1f} s (baseline), "
          f"shared stage 1 {shared:.1f} s, ratio {base / shared:.2f}x, saving {100 * (1 - shared / base):.0f}%")


if __name__ == "__main__":
    main()
