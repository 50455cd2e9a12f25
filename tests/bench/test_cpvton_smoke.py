"""End to end: the CP-VTON smoke bench on generated VITON-HD through the CLI (train -> infer -> score ->
record), its provenance, that training measurably beats initialisation on the generated test split, the
leaderboard, and ``--table`` skipping cells already recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "bench_smoke", "viton-hd", n=24, size="128x96", seed=3)
    with kit.bench_env(d.home, d.results):
        res = kit.cli_ok(["bench", "--model", "cpvton", "--dataset", "viton-hd", "--split", "test",
                          "--profile", "smoke", "--device", "cpu"])
    return {"home": d.home, "results": d.results, "output": res.output}


def test_smoke_bench_writes_records_with_provenance(env, kit):
    recs = kit.read_records(env["results"], by="setting")
    assert set(recs) == {"paired", "unpaired"}
    paired = recs["paired"]
    assert set(paired["metrics"]) == {"lpips", "ssim", "psnr"} and set(recs["unpaired"]["metrics"]) == {"fid", "kid"}
    for r in recs.values():
        assert r["preset"] == "hr-viton" and all(m["preset"] == "hr-viton" for m in r["metrics"].values())
        assert r["model"] == "cpvton" and r["variant"] == "single-pose" and r["profile"] == "smoke" and r["seed"] == 0
        assert r["data"]["generated"] is True and len(r["data"]["manifest_fingerprint"]) >= 16
        assert r["weights"]["metrics"] == "random" and r["weights"]["model"]["vgg19_perceptual_loss"]["weights"] == "random"
        assert r["comparable"] is False and "profile smoke" in r["not_comparable_because"]
        assert len(r["code"]["source_hash"]) == 16 and "git_dirty" in r["code"]
        assert r["hardware"]["device"] == "cpu" and r["wall_s"]["total"] > 0 and len(r["config_hash"]) == 12
        assert r["run_name"] == "cpvton-single-pose_4x100+24_viton-hd-test_128x96_smoke"
        assert [s["stage"] for s in r["train_stats"]] == ["gmm", "tom"]
    assert {c["table"] for c in paired["cells"]} == {"sal_vton_table1_vitonhd"}
    assert 0 < paired["metrics"]["ssim"]["value"] < 1 and paired["metrics"]["psnr"]["value"] > 5
    run_dir = Path(paired["run_dir"])
    assert (run_dir / "checkpoints" / "gmm.pt").exists() and (run_dir / "checkpoints" / "tom.pt").exists()
    header = (run_dir / "scalars.csv").read_text().splitlines()[0]
    assert header == "stage,step,tag,value,wall_s"
    pngs = sorted((Path(paired["outputs"]) / "tryon").glob("*.png"))
    assert len(pngs) == paired["data"]["n_eval"] == 6


def test_training_beats_initialisation_on_the_test_split(env, kit):
    from bench.harness.registry import get_model
    from bench.harness.run import Request, plan

    p = plan(Request(model="cpvton", dataset="viton-hd", profile="smoke"), "viton-hd")
    model = get_model("cpvton")(p.config)
    batch = kit.full_batch(model, "viton-hd", "test", "paired")
    torch.manual_seed(0)  # the same initialisation as the run (seed 0)
    nets = model.build()
    l1_init, ssim_init = kit.warp_l1_and_ssim(model, nets, batch, "hr-viton")
    l1_trained, ssim_trained = kit.warp_l1_and_ssim(model, kit.load_last(nets, p.run_dir), batch, "hr-viton")
    assert l1_trained < 0.7 * l1_init, (l1_init, l1_trained)
    assert ssim_trained > ssim_init + 0.1, (ssim_init, ssim_trained)


def test_leaderboard_shows_reported_and_reproduced_columns(env, kit, tmp_path):
    res = kit.cli_ok(["leaderboard", "show", "--table", "sal_vton_table1_vitonhd", "--plot", str(tmp_path / "t1.png")])
    line = next(l for l in res.output.splitlines() if l.startswith("| CP-VTON") and "| SSIM |" in l)
    cols = [c.strip() for c in line.strip("|").split("|")]
    assert cols[5] == "0.786"  # reported, as printed
    mine = kit.read_records(env["results"], setting="paired")[0]["metrics"]["ssim"]["value"]
    assert cols[6] == f"{mine:.3f}" and cols[7] == "n/c" and "smoke" in cols[8] and "generated" in cols[8]
    assert "| HR-VITON |" in res.output and "not implemented" in res.output
    assert (tmp_path / "t1.png").stat().st_size > 1000
    csv = kit.cli(["leaderboard", "show", "--table", "sal_vton_table1_vitonhd", "--format", "csv"])
    assert csv.output.splitlines()[0].startswith("method,variant,dataset,setting,metric,reported,ours,delta")
    kid = next(l for l in csv.output.splitlines() if l.startswith("CP-VTON") and ",KID," in l)
    raw = kit.read_records(env["results"], setting="unpaired")[0]["metrics"]["kid"]["value"]
    assert kid.split(",")[6] == f"{raw * 100:.3f}"  # KID on the table's x100 scale


def test_table_run_skips_cells_already_recorded(env):
    from bench.harness.run import run_table

    logs: list[str] = []
    before = len(list(env["results"].glob("*.json")))
    paths = run_table("sal_vton_table1_vitonhd", profile="smoke", device="cpu", log=logs.append)
    assert paths == [] and len(list(env["results"].glob("*.json"))) == before
    assert any("already recorded" in l for l in logs)
    assert any(l.startswith("skip acgpn/viton-hd/paired") for l in logs)


def test_bench_list_and_errors(env, kit):
    res = kit.cli(["bench", "list"])
    assert res.exit_code == 0 and "cpvton" in res.output and "sal_vton_table1_vitonhd" in res.output
    bad = kit.cli(["bench", "--model", "cpvtn", "--profile", "smoke"])
    assert bad.exit_code == 2 and "did you mean 'cpvton'" in bad.output


def test_full_profile_without_weights_stops_before_training(env, tmp_path, monkeypatch):
    from bench.harness.run import Request, run_bench
    from vtondata.errors import WeightsMissingError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    monkeypatch.setenv("VTONDATA_HOME", str(tmp_path / "home"))
    manifest = env["home"] / "viton-hd" / "manifest"
    with pytest.raises(WeightsMissingError, match="hub/checkpoints"):
        run_bench(Request(model="cpvton", dataset="viton-hd", profile="full", device="cpu", manifest=str(manifest)))
    assert not list((tmp_path / "home").glob("runs/*/*/checkpoints/*.pt"))
