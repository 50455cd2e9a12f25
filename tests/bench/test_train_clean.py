"""The reviewed ``train-clean`` split end to end: `vtondata review splits` writes it, `vtondata bench --split
train-clean` trains on it (and evaluates on the test split), the record says so and the training tuple count is
the clean count; SPG-VTON's ``w/o Noise`` variant plans its training on it."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

FAST = [a for s, n in (("spm", 2), ("cwm_tsm", 2), ("joint", 1))
        for a in ("--set", f"stages.{s}.steps={n}", "--set", f"stages.{s}.batch_size=2")]


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "train_clean", "mpv", n=16, size="64x48", seed=2)
    with kit.bench_env(d.home, d.results):
        from vtondata.manifest import open_manifest

        t = open_manifest("mpv").tuples
        train = sorted(t[t["split"] == "train"]["tuple_id"])
        noisy = train[:3]
        dec = d.base / "decisions.csv"
        pd.DataFrame({"dataset": "mpv", "tuple_id": noisy, "decision": "noisy", "kind": "accessory",
                      "reviewer": "test", "time": "2026-01-01T00:00:00", "source": "test"}).to_csv(dec, index=False)
        res = kit.cli_ok(["review", "splits", "mpv", "--decisions", str(dec)])
        # "w/ S_t" has no table cells: the default multi-pose metrics (SSIM, PSNR, LPIPS), no Inception passes
        kit.cli_ok(["bench", "--model", "spgvton", "--variant", "w/ S_t", "--split", "train-clean",
                    "--profile", "smoke", "--device", "cpu", *FAST])
    return {"home": d.home, "results": d.results, "train": train, "noisy": noisy, "output": res.output}


def test_review_splits_writes_the_clean_split(reviewed):
    clean = pd.read_parquet(reviewed["home"] / "mpv" / "splits" / "train-clean.parquet")
    assert sorted(clean["tuple_id"]) == sorted(set(reviewed["train"]) - set(reviewed["noisy"]))
    assert f"train-clean: {len(clean)} tuples" in reviewed["output"]


def test_bench_trains_on_train_clean_and_evaluates_on_test(reviewed, kit):
    recs = kit.read_records(reviewed["results"])
    assert len(recs) == 1
    r = recs[0]
    n_clean = len(reviewed["train"]) - len(reviewed["noisy"])
    assert r["train_split"] == "train-clean" and r["split"] == "test" and r["dataset"] == "mpv"
    assert r["variant"] == "w/ S_t" and set(r["metrics"]) == {"ssim", "psnr", "lpips"}
    assert r["config"]["train_split"] == "train-clean"
    assert r["data"]["n_train"] == {"spm": n_clean, "cwm_tsm": n_clean, "joint": n_clean}
    assert "mpv-train-clean" in r["run_dir"]
    assert 0 < r["metrics"]["ssim"]["value"] < 1 and r["comparable"] is False


def test_wo_noise_variant_plans_training_on_train_clean(reviewed, monkeypatch):
    from bench.harness.run import Request, plan

    monkeypatch.setenv("VTONDATA_HOME", str(reviewed["home"]))
    p = plan(Request(model="spgvton", variant="w/o Noise", dataset="mpv", profile="smoke"), "mpv")
    assert p.config["train_split"] == "train-clean" and p.request.split == "test"
    full = plan(Request(model="spgvton", variant="full", dataset="mpv", profile="smoke"), "mpv")
    assert full.config["train_split"] == "train" and full.run_dir != p.run_dir
    # --split train-clean on the full variant is the same training data as the w/o Noise variant
    via_split = plan(Request(model="spgvton", variant="full", split="train-clean", profile="smoke"), "mpv")
    assert via_split.config["train_split"] == "train-clean" and via_split.request.split == "test"
