"""End to end: ``vtondata bench --model pbafn --split hardpose --profile smoke`` on generated DeepFashion (3D-GCL
layout: parsing + keypoints) and MPV (competition layout: DensePose) fills PBAFN's Table 2 HardPose cells with
unpaired FID. The hardness ranking keeps one pair of so few test pairs and FID needs two images, so the HardPose
lists are given as files holding every test pair (the ``splits make hardpose --split-file`` path). The try-on
stage keeps the stage-1 AFWM weights unchanged, and the trained generator beats its initialisation on the
try-on L1 over the test split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "pbafn_smoke", "deepfashion", n=12, size="64x48", seed=3, layout="3dgcl",
                     data_dir="df")
    kit.prepare_fixture(d.home, d.base / "mpv", "mpv", n=12, size="64x48", seed=3, layout="competition")
    with kit.one_thread(), kit.bench_env(d.home, d.results):
        from vtondata.manifest import open_manifest

        for ds in ("deepfashion", "mpv"):
            t = open_manifest(ds).tuples
            ids = t.loc[(t["split"] == "test") & t["target_person"].notna(), "tuple_id"]
            (d.base / f"{ds}_hardpose.txt").write_text("\n".join(ids) + "\n")
            kit.cli_ok(["splits", "make", "hardpose", "--dataset", ds,
                        "--split-file", str(d.base / f"{ds}_hardpose.txt")])
        res = kit.cli_ok(["bench", "--model", "pbafn", "--split", "hardpose", "--profile", "smoke", "--device", "cpu"])
    return {"home": d.home, "results": d.results, "output": res.output}


def test_hardpose_bench_fills_the_pbafn_cells_of_table2(smoke, kit):
    recs = kit.read_records(smoke["results"], by="dataset", model="pbafn")
    assert set(recs) == {"deepfashion", "mpv"}
    for ds, setting in (("deepfashion", "pose-transfer"), ("mpv", "multi-pose")):
        r = recs[ds]
        assert r["variant"] == "default" and r["split"] == "hardpose" and r["setting"] == setting
        assert r["profile"] == "smoke" and r["comparable"] is False
        cell = ("3d_gcl_table2_tryon", f"pbafn/default/{ds}/hardpose")
        assert [(c["table"], c["cell"]) for c in r["cells"]] == [cell]
        assert set(r["metrics"]) == {"fid"} and r["metrics"]["fid"]["output"] == "tryon"
        assert 0 < r["metrics"]["fid"]["value"] < float("inf")
        assert [s["stage"] for s in r["train_stats"]] == ["warping", "tryon"]
        n = len(pd.read_parquet(smoke["home"] / ds / "splits" / "hardpose.parquet"))
        assert r["data"]["n_eval"] == n >= 2 and len(list((Path(r["outputs"]) / "tryon").glob("*.png"))) == n


def _plan(dataset):
    from bench.harness.run import Request, plan

    return plan(Request(model="pbafn", dataset=dataset, split="test", profile="smoke"), dataset)


@pytest.mark.parametrize("dataset", ["deepfashion", "mpv"])
def test_tryon_stage_keeps_afwm_frozen_and_beats_initialisation(smoke, kit, monkeypatch, dataset):
    from bench.harness import checkpoint as ckpt
    from bench.harness.registry import get_model
    from bench.models.blocks.pbafn_gen import composite

    monkeypatch.setenv("VTONDATA_HOME", str(smoke["home"]))
    p = _plan(dataset)
    saved = {s: ckpt.load(p.run_dir / "checkpoints" / f"{s}.pt")["nets"] for s in ("warping", "tryon")}
    assert all(torch.equal(v, saved["tryon"]["afwm"][k]) for k, v in saved["warping"]["afwm"].items())
    assert any(not torch.equal(v, saved["tryon"]["generator"][k]) for k, v in saved["warping"]["generator"].items())

    model = get_model("pbafn")(p.config)
    nets = kit.load_last(model.build(), p.run_dir)
    init = model.build()["generator"]
    init.load_state_dict(saved["warping"]["generator"])  # untouched by stage 1: the initialisation
    for n in (*nets.values(), init):
        n.eval()
    batch = kit.full_batch(model, dataset, "test", model.stages()[-1].setting)
    real = batch["target_person"]
    with torch.no_grad():
        x, garment, mask = model.generator_inputs(nets["afwm"], batch)  # the trained, frozen warper for both
        l1 = {k: float((composite(g(x), garment, mask)[0] - real).abs().mean())
              for k, g in (("trained", nets["generator"]), ("init", init))}
    assert l1["trained"] < 0.8 * l1["init"]
