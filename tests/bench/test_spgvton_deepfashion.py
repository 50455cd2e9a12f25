"""End to end: SPG-VTON's DeepFashion cell of Table II (IS) in the smoke profile -- trained on generated MPV
(the catalog's ``train_dataset`` of split ``spg-deepfashion``), evaluated on generated DeepFashion test pairs
with MPV test clothes (the split is made on first use), and the Real-data cell on the same split."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

CELL = ("spg_vton_table2_mpv_deepfashion", "spg-vton/full/deepfashion/multi-pose")
FAST = [a for s in ("spm", "cwm_tsm", "joint") for a in ("--set", f"stages.{s}.steps=1")]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    # 10 DeepFashion test pairs (IS needs 10 images; the 3dgcl layout ships parsing and keypoints), 3 MPV test garments
    d = kit.prepared(tmp_path_factory, "spg_df", "deepfashion", n=20, size="64x48", seed=1, layout="3dgcl")
    kit.prepare_fixture(d.home, d.base / "data_mpv", "mpv", n=24, size="64x48", seed=2)
    with kit.bench_env(d.home, d.results):
        res = kit.cli_ok(["bench", "--model", "spgvton", "--dataset", "deepfashion", "--split", "spg-deepfashion",
                          "--profile", "smoke", "--device", "cpu", *FAST])
    return {"home": d.home, "results": d.results, "output": res.output}


def test_spg_trains_on_mpv_and_fills_the_deepfashion_is_cell(env, kit):
    (r,) = kit.read_records(env["results"], model="spgvton")
    assert (r["dataset"], r["split"], r["setting"]) == ("deepfashion", "spg-deepfashion", "pose-transfer")
    assert (r["train_dataset"], r["train_split"]) == ("mpv", "train")
    assert r["config"]["garment_source"] == "dataset"  # MPV's in-shop clothes, not the source-worn stand-in
    assert {(c["table"], c["cell"]) for c in r["cells"]} == {CELL}
    assert set(r["metrics"]) == {"is"} and r["metrics"]["is"]["value"] >= 1.0
    assert r["comparable"] is False and "profile smoke" in r["not_comparable_because"]
    split = pd.read_parquet(env["home"] / "deepfashion" / "splits" / "spg-deepfashion.parquet")
    assert r["data"]["n_eval"] == len(split) == 10 and (split["seed"] == 0).all()
    assert r["data"]["train_manifest_fingerprint"] != r["data"]["manifest_fingerprint"]  # two datasets
    # the very run of the MPV column (same run directory): with --resume the DeepFashion cell reuses its checkpoint
    from bench.harness.run import Request, plan

    with kit.bench_env(env["home"], env["results"]):
        mpv = plan(Request(model="spgvton", dataset="mpv", profile="smoke", overrides=FAST[1::2]), "mpv")
    assert str(mpv.run_dir) == r["run_dir"]
    out = env["home"] / "runs"
    assert len(list(out.glob("*/*/eval/deepfashion-spg-deepfashion-pose-transfer/tryon/*.png"))) == 10
    res = kit.cli_ok(["leaderboard", "show", "--table", CELL[0], "--format", "csv"])
    line = next(l for l in res.output.splitlines() if l.startswith("SPG-VTON,full,DeepFashion,") and ",IS," in l)
    assert line.split(",")[6].startswith(f"{r['metrics']['is']['value']:.3f} ± ")  # ours, next to 3.124


def test_real_data_fills_its_deepfashion_cell(env, kit):
    kit.cli_ok(["bench", "--model", "real", "--dataset", "deepfashion", "--split", "spg-deepfashion",
                "--profile", "smoke", "--device", "cpu"])
    (r,) = kit.read_records(env["results"], model="real")
    assert [c["cell"] for c in r["cells"]] == ["real-data/deepfashion/multi-pose"]
    assert r["metrics"]["is"]["value"] >= 1.0 and r["data"]["n_eval"] == 10


def test_cpvton_multi_pose_fills_its_deepfashion_cell(env, kit):
    kit.cli_ok(["bench", "--model", "cpvton", "--dataset", "deepfashion", "--split", "spg-deepfashion",
                "--profile", "smoke", "--device", "cpu", "--set", "stages.gmm.steps=2", "--set", "stages.tom.steps=2"])
    (r,) = kit.read_records(env["results"], model="cpvton")
    assert (r["variant"], r["train_dataset"], r["split"]) == ("multi-pose", "mpv", "spg-deepfashion")
    assert [c["cell"] for c in r["cells"]] == ["cp-vton/adapted-target-pose-added-to-input/deepfashion/multi-pose"]
    assert set(r["metrics"]) == {"is"} and r["data"]["n_eval"] == 10 and r["comparable"] is False
