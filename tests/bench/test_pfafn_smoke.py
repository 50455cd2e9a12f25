"""End to end: the PF-AFN smoke bench on generated VITON through the CLI (teacher stages -> student stages ->
infer -> score -> record) fills both PF-AFN cells of SAL-VTON Table 2, and training beats initialisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

STAGES = ["pb_warp", "pb_tryon", "pf_warp", "pf_tryon"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "pfafn_smoke", "viton", n=8, size="128x96", seed=3)
    with kit.one_thread(), kit.bench_env(d.home, d.results):
        res = kit.cli_ok(["bench", "--model", "pfafn", "--variant", "PF-AFN", "--dataset", "viton",
                          "--split", "test", "--profile", "smoke", "--device", "cpu"])
    return {"home": d.home, "results": d.results, "output": res.output}


def test_smoke_bench_fills_both_table2_cells(env, kit):
    recs = kit.read_records(env["results"], by="setting")
    assert set(recs) == {"paired", "unpaired"}
    assert recs["paired"]["cells"] == [{"table": "sal_vton_table2_viton", "cell": "pf-afn/viton/paired"}]
    assert recs["unpaired"]["cells"] == [{"table": "sal_vton_table2_viton", "cell": "pf-afn/viton/unpaired"}]
    assert {"ssim", "psnr"} <= set(recs["paired"]["metrics"]) and "fid" in recs["unpaired"]["metrics"]
    for r in recs.values():
        assert r["model"] == "pfafn" and r["variant"] == "PF-AFN" and r["comparable"] is False
        assert [s["stage"] for s in r["train_stats"]] == STAGES
    assert 0 < recs["paired"]["metrics"]["ssim"]["value"] < 1
    run = Path(recs["paired"]["run_dir"])
    assert all((run / "checkpoints" / f"{s}.pt").exists() for s in STAGES)
    pngs = list((Path(recs["paired"]["outputs"]) / "tryon").glob("*.png"))
    assert len(pngs) == recs["paired"]["data"]["n_eval"] > 0


def test_training_beats_initialisation(env, kit):
    from bench.harness import registry as reg

    rec = kit.read_records(env["results"], setting="paired")[0]
    model = reg.get_model("pfafn")(rec["config"])
    model.setup(torch.device("cpu"))
    torch.manual_seed(0)
    init = {k: v.eval() for k, v in model.build().items()}
    trained = {k: v.eval() for k, v in kit.load_last(model.build(), Path(rec["run_dir"])).items()}
    batch = kit.full_batch(model, "viton", "train", "paired", purpose="train")
    stages = {s.name: s for s in model.stages()}
    with torch.no_grad():
        for name, keys in (("pb_warp", ("l1", "mask")), ("pf_warp", ("l1", "mask")), ("pf_tryon", ("l1",))):
            before = model.losses(stages[name], init, batch)
            after = model.losses(stages[name], trained, batch)
            for key in keys:  # measured: 0.81x, 0.79x, 0.67x, 0.65x, 0.49x of the initial loss
                assert after[key].item() < 0.9 * before[key].item(), (name, key, before[key], after[key])
