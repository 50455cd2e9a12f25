"""End to end: the SPG-VTON smoke bench on generated MPV (64x48) through the CLI -- three stages, the table
cells it fills (Tables II, IV, V; Table IV "w/ S_t" from the same checkpoint), region-masked metrics, training
beats initialisation, the conductible cycle warps a mask and back, and a second lambda3 run shares stage 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "spg_smoke", "mpv", n=40, size="64x48", seed=3)  # 30 train / 10 test triplets
    with kit.bench_env(d.home, d.results):
        res = kit.cli_ok(["bench", "--model", "spgvton", "--profile", "smoke", "--device", "cpu"])
    return {"home": d.home, "results": d.results, "output": res.output}


def test_record_fills_the_tables_cells_with_region_metrics(env, kit):
    (r,) = kit.read_records(env["results"], variant="full")
    assert r["model"] == "spgvton" and r["dataset"] == "mpv" and r["split"] == "test" and r["setting"] == "multi-pose"
    assert [s["stage"] for s in r["train_stats"]] == ["spm", "cwm_tsm", "joint"]
    assert r["comparable"] is False and "profile smoke" in r["not_comparable_because"]
    assert r["weights"]["model"]["sphereface_identity_loss"]["weights"] == "random"
    assert r["weights"]["model"]["vgg19_perceptual_loss"]["weights"] == "random"
    cells = {(c["table"], c["cell"]) for c in r["cells"]}
    assert ("spg_vton_table2_mpv_deepfashion", "spg-vton/full/mpv/multi-pose") in cells
    assert ("spg_vton_table4_ablation_mpv", "spg-vton/full/mpv/multi-pose") in cells
    assert ("spg_vton_table4_ablation_mpv", "spg-vton/w-s-t/mpv/multi-pose") in cells  # same run, same checkpoint
    assert ("spg_vton_table5_lambda_zero_mpv", "spg-vton/full/mpv/multi-pose") in cells
    keys = {"ssim", "is", "mask_ssim@face", "mask_ssim@clothes", "mask_is@face", "mask_is@clothes"}
    assert set(r["metrics"]) == keys | {k + ":gt-semantic" for k in keys}
    for k, m in r["metrics"].items():
        assert m.get("value") is not None, (k, m)
    assert r["metrics"]["mask_ssim@face"]["region"] == "face"
    assert r["metrics"]["ssim:gt-semantic"]["output"] == "tryon_gt_semantic"
    # a face region is a small part of the image: its masked SSIM is far closer to 1 than the whole image's
    assert r["metrics"]["mask_ssim@face"]["value"] > r["metrics"]["ssim"]["value"]
    out = Path(r["outputs"])
    assert len(list((out / "tryon").glob("*.png"))) == len(list((out / "tryon_gt_semantic").glob("*.png"))) == 10


def test_leaderboard_shows_w_st_from_the_full_run(env, kit):
    res = kit.cli_ok(["leaderboard", "show", "--table", "spg_vton_table4_ablation_mpv", "--format", "csv"])
    (r,) = kit.read_records(env["results"], variant="full")
    line = next(l for l in res.output.splitlines() if l.startswith("SPG-VTON,w/ S_t,") and ",Mask-SSIM (Face)," in l)
    assert line.split(",")[6].startswith(f"{r['metrics']['mask_ssim@face:gt-semantic']['value']:.3f} ± ")
    full = next(l for l in res.output.splitlines() if l.startswith("SPG-VTON,full,") and ",SSIM," in l)
    assert full.split(",")[6].startswith(f"{r['metrics']['ssim']['value']:.3f}")


def test_training_beats_initialisation_and_the_cycle_returns(env, kit):
    from bench.harness.registry import get_model
    from bench.harness.run import Request, plan
    from bench.metrics import build_metric

    p = plan(Request(model="spgvton", dataset="mpv", profile="smoke"), "mpv")
    model = get_model("spgvton")(p.config)
    batch = kit.full_batch(model, "mpv", "test", "multi-pose")

    def quality(nets):
        for n in nets.values():
            n.eval()
        with torch.no_grad():
            out = model.forward_all(nets, batch, erase=False)
            r = out["r"]
            ssim = build_metric("ssim", "pytorch-fid")
            ssim.update(((out["tryon"] + 1) / 2).clamp(0, 1), (r["i_t"] + 1) / 2)
            parse_acc = (out["s_hat"].argmax(1) == r["labels_t"]).float().mean().item()
            moved = (out["m_w"] - r["m_c"]).abs().mean().item()  # GMM1: in-shop mask -> target layout
            cycle = (out["m_hat"] - r["m_c"]).abs().mean().item()  # GMM2 brings it back
        return ssim.compute()["value"], parse_acc, (moved, cycle)

    torch.manual_seed(0)  # the run's initialisation (seed 0)
    nets = model.build()
    ssim0, acc0, cyc0 = quality(nets)
    ssim1, acc1, cyc1 = quality(kit.load_last(nets, p.run_dir))
    assert ssim1 > ssim0 + 0.05, (ssim0, ssim1)
    assert acc1 > acc0 + 0.2, (acc0, acc1)  # G1 learned the target parsing
    assert max(cyc0) < 1e-3, cyc0  # both TPS warps start as the identity
    moved, back = cyc1  # measured: 0.021 and 0.017 after 24 + 6 smoke steps
    assert moved > 0.01 and back < 0.9 * moved, cyc1  # T_θ1 moves the mask, T_θ2 brings it part of the way back


def test_lambda3_run_shares_stage1(env):
    from bench.harness import checkpoint as ckpt
    from bench.harness.run import Request, plan, run_bench

    req = Request(model="spgvton", variant="lambda_3 = 80", dataset="mpv", profile="smoke", device="cpu",
                  until="train", overrides=["stages.cwm_tsm.steps=1", "stages.joint.steps=1"])
    logs: list[str] = []
    run_bench(req, log=logs.append)
    assert any(l.startswith("stage spm: shared with spgvton-full_") for l in logs), logs
    stats = json.loads((plan(req, "mpv").run_dir / "train_stats.json").read_text())
    assert [s["stage"] for s in stats] == ["cwm_tsm", "joint"]  # stage 1 not trained again
    full = plan(Request(model="spgvton", dataset="mpv", profile="smoke"), "mpv")
    a = ckpt.load(full.run_dir / "checkpoints" / "spm.pt")["nets"]["g1"]
    b = ckpt.load(plan(req, "mpv").run_dir / "checkpoints" / "cwm_tsm.pt")["nets"]["g1"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # the shared G1, frozen in stage 2


def test_runs_on_deepfashion_pairs_with_the_source_garment(tmp_path, kit):
    with kit.bench_env(tmp_path / "home", tmp_path / "results"):
        # the 3dgcl layout ships parsing and keypoints
        kit.prepare_fixture(tmp_path / "home", tmp_path / "data", "deepfashion", n=12, size="64x48", seed=1,
                            layout="3dgcl")
        fast = [a for s in ("spm", "cwm_tsm", "joint") for a in ("--set", f"stages.{s}.steps=1")]
        kit.cli_ok(["bench", "--model", "spgvton", "--dataset", "deepfashion", "--setting", "pose-transfer",
                    "--profile", "smoke", "--device", "cpu", *fast])
    (r,) = kit.read_records(tmp_path / "results")
    assert r["dataset"] == "deepfashion" and r["setting"] == "pose-transfer"
    assert r["config"]["garment_source"] == "source_worn" and 0 < r["metrics"]["ssim"]["value"] < 1
