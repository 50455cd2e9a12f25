"""The ``real`` pseudo-model ("Real data" rows): no stages, no checkpoint, its output is the ground truth, so
through the harness pipeline (train -> infer -> score -> record) SSIM and mask-SSIM are exactly 1 and IS is
that of the real test images; one run fills the Real-data cells of every table that has one for the split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory, kit):
    from bench.harness.run import Request, plan

    d = kit.prepared(tmp_path_factory, "real_model", "mpv", n=40, size="64x48", seed=2, layout="detail_carving")
    with kit.bench_env(d.home, d.results):
        p = plan(Request(model="real", dataset="mpv", split="test", profile="smoke", device="cpu",
                         overrides=["size=[64,48]"]), "mpv")
        (ev,) = p.evaluations  # every table's Real-data cell on MPV test, one evaluation
        assert {"ssim", "mask_ssim", "is", "mask_is"} <= {m["metric"] for m in ev.metrics}
        # score the Tree-Block Table 1 metrics but one Inception pass (IS) to keep the test short
        paths = kit.execute_cpu(p, ("ssim", "mask_ssim", "is"))
    recs = [json.loads(path.read_text()) for path in paths]
    return {"home": d.home, "records": recs}


def test_real_data_scores_the_ground_truth(run):
    (rec,) = run["records"]
    assert rec["model"] == "real" and rec["variant"] == "ground-truth" and rec["train_stats"] == []
    assert rec["comparable"] is False and rec["data"]["n_eval"] == 10
    m = rec["metrics"]
    assert m["ssim"]["value"] == pytest.approx(1.0) and m["mask_ssim"]["value"] == pytest.approx(1.0)
    assert m["is"]["value"] >= 1.0 and "std" in m["is"] and m["is"]["n"] == 10
    assert {"table": "tree_block_table1_mpv", "cell": "real-data/mpv/multi-pose"} in rec["cells"]
    run_dir = Path(rec["run_dir"])
    assert not (run_dir / "checkpoints" / "last.pt").exists()  # zero stages: nothing trained, nothing saved
    assert json.loads((run_dir / "eval" / "mpv-test-multi-pose" / "done.json").read_text())["checkpoint"] \
        == "untrained-" + rec["config_hash"]


def test_real_outputs_are_the_target_images(run):
    from bench.harness.data import open_dataset
    from bench.harness.infer import key_of, read_png, to_uint8
    from bench.harness.registry import get_model, resolve_config

    (rec,) = run["records"]
    model = get_model("real")(resolve_config("real", "ground-truth", "mpv", "smoke", ["size=[64,48]"]))
    assert model.stages() == [] and model.build() == {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTONDATA_HOME", str(run["home"]))
        inp = model.inputs("eval", "multi-pose")
        assert inp.fields == ("target_person", "target_parse", "target_pose")
        ds = open_dataset("mpv", "test", "multi-pose", inp.fields, model.size, inp.label_space)
        item = torch.utils.data.default_collate([ds[0]])
    png = read_png(Path(rec["outputs"]) / "tryon" / f"{key_of(item['tuple_id'][0])}.png")
    assert torch.equal(png, to_uint8(item["target_person"])[0])
    assert torch.equal(model.infer({}, item)["tryon"], item["target_person"])
    assert model.inputs("eval", "paired").fields == ("person", "parse", "pose")
