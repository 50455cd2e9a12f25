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
def smoke(tmp_path_factory):
    from bench.harness.dist import Context
    from bench.harness.run import Evaluation, Request, execute, plan
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    base = tmp_path_factory.mktemp("tb_smoke")
    home, results = base / "home", base / "results"
    data = make_fixture("mpv", base / "data", n=16, size="128x96", seed=3, layout="detail_carving")
    prepare("mpv", data, out=home / "mpv", quiet=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTONDATA_HOME", str(home))
        mp.setenv("VTONDATA_RESULTS", str(results))
        p = plan(Request(model="treeblock", dataset="mpv", split="test", profile="smoke", device="cpu",
                         overrides=STEPS), "mpv")
        assert {c["table"] for e in p.evaluations for c in e.cells} == {"tree_block_table1_mpv",
                                                                        "tree_block_table2_ablation_mpv"}
        ev = p.evaluations[0]
        p.evaluations = [Evaluation(ev.setting, ev.preset, [m for m in ev.metrics if m["metric"] in
                                                            ("ssim", "mask_ssim")], ev.cells)]
        logs: list[str] = []
        paths = execute(p, Context(device=torch.device("cpu")), log=logs.append)
    assert len(paths) == 1
    return {"home": home, "plan": p, "record": json.loads(paths[0].read_text()), "logs": logs}


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


def test_training_beats_initialisation_on_the_test_split(smoke):
    from bench.harness import checkpoint as ckpt
    from bench.harness.data import open_dataset
    from bench.harness.registry import get_model
    from bench.metrics import build_metric

    p = smoke["plan"]
    model = get_model("treeblock")(p.config)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTONDATA_HOME", str(smoke["home"]))
        inp = model.inputs("eval", "multi-pose")
        ds = open_dataset("mpv", "test", "multi-pose", inp.fields, model.size, inp.label_space)
        batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])

    def quality(nets):
        for n in nets.values():
            n.eval()
        out, ref = model.infer(nets, batch), model.references(batch)
        ssim = build_metric("ssim", "pytorch-fid")
        ssim.update(((out["tryon"] + 1) / 2).clamp(0, 1), (ref["tryon"] + 1) / 2)
        return (out["warped_garment"] - ref["warped_garment"]).abs().mean().item(), ssim.compute()["value"]

    torch.manual_seed(0)  # the run's initialisation (seed 0)
    nets = model.build()
    l1_init, ssim_init = quality(nets)
    for k, sd in ckpt.load(p.run_dir / "checkpoints" / "last.pt")["nets"].items():
        nets[k].load_state_dict(sd)
    l1_trained, ssim_trained = quality(nets)
    assert l1_trained < 0.8 * l1_init, (l1_init, l1_trained)
    assert ssim_trained > ssim_init + 0.1, (ssim_init, ssim_trained)
