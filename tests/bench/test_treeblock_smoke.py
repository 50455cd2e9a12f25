"""End to end: the Tree-Block smoke bench on generated MPV triplets (train the five stages of Algorithm 1 ->
infer -> score -> record), that the staged training beats initialisation on SSIM of the try-on and on the GMM
warp, and the checkpoints / scalars of every stage. Scoring is restricted to SSIM and mask-SSIM here to keep
the test short (the IS metrics of the table cells are exercised by the metrics and real-model tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

STEPS = ["stages.gmm.steps=60", "stages.parsing.steps=10", "stages.appearance.steps=20", "stages.face.steps=4",
         "stages.joint.steps=4", "stages.parsing.batch_size=2",
         "stages.appearance.batch_size=2", "stages.face.batch_size=2", "stages.joint.batch_size=2"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    from bench.harness.run import Request, plan

    d = kit.prepared(tmp_path_factory, "tb_smoke", "mpv", n=16, size="128x96", seed=3, layout="detail_carving")
    with kit.bench_env(d.home, d.results):
        p = plan(Request(model="treeblock", dataset="mpv", split="test", profile="smoke", device="cpu",
                         overrides=STEPS), "mpv")
        assert {c["table"] for e in p.evaluations for c in e.cells} == {"tree_block_table1_mpv",
                                                                        "tree_block_table2_ablation_mpv"}
        logs: list[str] = []
        paths = kit.execute_cpu(p, ("ssim", "mask_ssim"), log=logs.append)
    assert len(paths) == 1
    return {"home": d.home, "plan": p, "record": json.loads(paths[0].read_text()), "logs": logs}


def test_smoke_run_trains_every_stage_and_records(smoke):
    r = smoke["record"]
    assert r["model"] == "treeblock" and r["variant"] == "full" and r["profile"] == "smoke"
    assert [s["stage"] for s in r["train_stats"]] == ["gmm", "parsing", "appearance", "face", "joint"]
    assert r["run_name"] == "treeblock-full_4x60+10+20+4+4_mpv-test_128x96_smoke"
    assert r["comparable"] is False and r["weights"]["model"]["vgg19_perceptual_style_loss"]["weights"] == "random"
    assert 0 < r["metrics"]["ssim"]["value"] < 1 and 0 < r["metrics"]["mask_ssim"]["value"] < 1
    run_dir = Path(r["run_dir"])
    for stage in ("gmm", "parsing", "appearance", "face", "joint"):
        assert (run_dir / "checkpoints" / f"{stage}.pt").exists()
    scalars = (run_dir / "scalars.csv").read_text()
    for tag in ("warp_l1", "ce", "atten", "face_l1", "parse_ce"):
        assert f",{tag}," in scalars
    out = Path(r["outputs"])
    assert len(list((out / "tryon").glob("*.png"))) == len(list((out / "tryon_coarse").glob("*.png"))) \
        == r["data"]["n_eval"] == 4


def test_training_beats_initialisation_on_the_test_split(smoke, kit):
    from bench.harness.registry import get_model

    p = smoke["plan"]
    model = get_model("treeblock")(p.config)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTONDATA_HOME", str(smoke["home"]))
        batch = kit.full_batch(model, "mpv", "test", "multi-pose")
    torch.manual_seed(0)  # the run's initialisation (seed 0)
    nets = model.build()
    l1_init, ssim_init = kit.warp_l1_and_ssim(model, nets, batch, "pytorch-fid")
    l1_trained, ssim_trained = kit.warp_l1_and_ssim(model, kit.load_last(nets, p.run_dir), batch, "pytorch-fid")
    assert l1_trained < 0.8 * l1_init, (l1_init, l1_trained)
    assert ssim_trained > ssim_init + 0.1, (ssim_init, ssim_trained)
