"""End to end on generated STRAT through the CLI: the accessory model (Table 2 row 1, STRAT-hat) trains,
infers, scores LSSIM / IoU / Disp and records; the two sanity baselines run without training and the
ground-truth homography scores IoU 1 and Disp 0 exactly (which also checks the metrics and the vertex plumbing).

Training must beat initialisation and the mean-vertex baseline on both Disp and IoU. The smoke profile's 40
steps are too few for that (the heatmap peaks only form after ~150 steps at lr 2e-3), so this module trains
under its own small configuration: the smoke profile with 300 steps of batch 8 (linear decay after step 225),
on 24 training / 8 test tuples per subset (the fixture's placement follows the drawn face's position, size and
roll, see ``vtondata.fixtures.strat``). About 13 s of one CPU core."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

#: the module's training configuration (``--set`` on top of the smoke profile)
FIT = ["stages.hat.steps=300", "stages.hat.schedule.decay_after=225"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "acc_smoke", "strat", n=32, size="64x64", seed=7)
    out = {}
    with kit.one_thread(), kit.bench_env(d.home, d.results):
        for variant in ("row1", "gt-homography", "mean-vertices"):
            sets = [a for o in FIT for a in ("--set", o)] if variant == "row1" else []
            out[variant] = kit.cli_ok(["bench", "--model", "accessory", "--dataset", "strat", "--setting", "hat",
                                       "--split", "test", "--profile", "smoke", "--device", "cpu",
                                       "--variant", variant, *sets]).output
    return {"home": d.home, "results": d.results, "output": out}


def test_smoke_records_strat_metrics_with_provenance(env, kit):
    recs = kit.read_records(env["results"], by="variant")
    assert set(recs) == {"row1", "gt-homography", "mean-vertices"}
    r = recs["row1"]
    assert r["setting"] == "hat" and set(r["metrics"]) == {"lssim", "iou", "disp"}
    assert {c["table"] for c in r["cells"]} == {"accessory_table2_ablation_strat_hat"}
    assert r["comparable"] is False and r["weights"]["model"]["resnet18_encoders"]["weights"] == "random"
    assert "random weights" in r["not_comparable_because"]
    assert [(s["stage"], s["steps"]) for s in r["train_stats"]] == [("hat", 300)] and r["data"]["n_eval"] == 8
    out = Path(r["outputs"])
    assert len(list((out / "tryon").glob("*.png"))) == 8 and len(list((out / "vertices").glob("*.npy"))) == 8
    for m in r["metrics"].values():
        assert m["value"] is not None and m["preset"] == "pytorch-fid"
    assert 0 <= r["metrics"]["iou"]["value"] <= 1 and r["metrics"]["disp"]["value"] >= 0


def test_ground_truth_homography_scores_iou_one_and_disp_zero(env, kit):
    r = kit.read_records(env["results"], by="variant")["gt-homography"]
    assert r["train_stats"] == [] and r["cells"] == []
    assert r["metrics"]["iou"]["value"] == 1.0 and r["metrics"]["disp"]["value"] == 0.0
    assert r["metrics"]["lssim"]["value"] > 0.8  # our warp vs the fixture's OpenCV composite (JPEG)
    mean = kit.read_records(env["results"], by="variant")["mean-vertices"]
    assert 0 < mean["metrics"]["disp"]["value"] < 0.2 and mean["metrics"]["iou"]["value"] < 1.0


def test_training_beats_initialisation_and_the_mean_vertices_on_disp_and_iou(env, kit):
    from bench.harness.data import open_dataset
    from bench.harness.registry import get_model
    from bench.harness.run import Request, plan
    from bench.metrics.disp import displacement
    from bench.metrics.iou import mask_iou

    p = plan(Request(model="accessory", variant="row1", dataset="strat", setting="hat", profile="smoke",
                     overrides=FIT), "strat")
    model = get_model("accessory")(p.config)
    torch.manual_seed(0)
    init = model.build()
    torch.manual_seed(0)
    trained = kit.load_last(model.build(), p.run_dir)
    ds = open_dataset("strat", "test", "hat", model.inputs("eval", "hat").fields, model.size_for("hat"), None)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))
    first, gt = model.verts.vertices(batch, (64, 64))

    def disp_iou(nets):
        for n in nets.values():
            n.eval()
        with torch.no_grad():
            pv = model.predict_vertices(nets, batch)
        iou = mask_iou(*model.warped_masks(first, pv, gt, batch["foreground_mask"]))
        return float(displacement(pv, gt, (64, 64)).mean()), float(iou.mean())

    (d_init, i_init), (d_trained, i_trained) = disp_iou(init), disp_iou(trained)
    recs = kit.read_records(env["results"], by="variant")
    rec, mean = recs["row1"]["metrics"], recs["mean-vertices"]["metrics"]
    assert rec["disp"]["value"] == pytest.approx(d_trained, rel=1e-3, abs=1e-4)
    assert rec["iou"]["value"] == pytest.approx(i_trained, rel=1e-3, abs=1e-4)
    d_mean, i_mean = mean["disp"]["value"], mean["iou"]["value"]
    numbers = {"init": (d_init, i_init), "mean": (d_mean, i_mean), "trained": (d_trained, i_trained)}
    assert d_trained < 0.5 * d_init and i_trained > i_init + 0.3, numbers
    assert d_trained < 0.9 * d_mean and i_trained > i_mean + 0.02, numbers


def test_leaderboard_shows_the_smoke_cell(env):
    from bench.leaderboard import table_view

    df = table_view("accessory_table2_ablation_strat_hat")
    row = df[df["cell"] == "t2-row1/hat"]
    assert len(row) == 3 and (row["ours"] != "").all() and row["flags"].str.contains("smoke|not comparable").all()
