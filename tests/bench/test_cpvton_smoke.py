"""End to end: the CP-VTON smoke bench on generated VITON-HD through the CLI (train -> infer -> score ->
record), its provenance, that training measurably beats initialisation on the generated test split, the
leaderboard, and ``--table`` skipping cells already recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from cli import app
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    base = tmp_path_factory.mktemp("bench_smoke")
    home, results = base / "home", base / "results"
    data = make_fixture("viton-hd", base / "data", n=24, size="128x96", seed=3)
    prepare("viton-hd", data, out=home / "viton-hd", quiet=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTONDATA_HOME", str(home))
        mp.setenv("VTONDATA_RESULTS", str(results))
        res = CliRunner().invoke(app, ["bench", "--model", "cpvton", "--dataset", "viton-hd", "--split", "test",
                                       "--profile", "smoke", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    return {"home": home, "results": results, "output": res.output}


@pytest.fixture()
def env(smoke, monkeypatch):
    monkeypatch.setenv("VTONDATA_HOME", str(smoke["home"]))
    monkeypatch.setenv("VTONDATA_RESULTS", str(smoke["results"]))
    return smoke


def _records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]


def test_smoke_bench_writes_records_with_provenance(env):
    recs = {r["setting"]: r for r in _records(env["results"])}
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


def test_training_beats_initialisation_on_the_test_split(env):
    from bench.harness import checkpoint as ckpt
    from bench.harness.data import open_dataset
    from bench.harness.registry import get_model
    from bench.harness.run import Request, plan
    from bench.metrics import build_metric

    p = plan(Request(model="cpvton", dataset="viton-hd", profile="smoke"), "viton-hd")
    model = get_model("cpvton")(p.config)
    inp = model.inputs("eval", "paired")
    ds = open_dataset("viton-hd", "test", "paired", inp.fields, model.size, inp.label_space)
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])

    def quality(nets):
        for n in nets.values():
            n.eval()
        out, ref = model.infer(nets, batch), model.references(batch)
        ssim = build_metric("ssim", "hr-viton")
        ssim.update(((out["tryon"] + 1) / 2).clamp(0, 1), (ref["tryon"] + 1) / 2)
        return (out["warped_garment"] - ref["warped_garment"]).abs().mean().item(), ssim.compute()["value"]

    torch.manual_seed(0)  # the same initialisation as the run (seed 0)
    nets = model.build()
    l1_init, ssim_init = quality(nets)
    for k, sd in ckpt.load(p.run_dir / "checkpoints" / "last.pt")["nets"].items():
        nets[k].load_state_dict(sd)
    l1_trained, ssim_trained = quality(nets)
    assert l1_trained < 0.7 * l1_init, (l1_init, l1_trained)
    assert ssim_trained > ssim_init + 0.1, (ssim_init, ssim_trained)


def test_leaderboard_shows_reported_and_reproduced_columns(env, tmp_path):
    from cli import app

    res = CliRunner().invoke(app, ["leaderboard", "show", "--table", "sal_vton_table1_vitonhd",
                                   "--plot", str(tmp_path / "t1.png")])
    assert res.exit_code == 0, res.output
    line = next(l for l in res.output.splitlines() if l.startswith("| CP-VTON") and "| SSIM |" in l)
    cols = [c.strip() for c in line.strip("|").split("|")]
    assert cols[5] == "0.786"  # reported, as printed
    mine = [r for r in _records(env["results"]) if r["setting"] == "paired"][0]["metrics"]["ssim"]["value"]
    assert cols[6] == f"{mine:.3f}" and cols[7] == "n/c" and "smoke" in cols[8] and "generated" in cols[8]
    assert "| HR-VITON |" in res.output and "not implemented" in res.output
    assert (tmp_path / "t1.png").stat().st_size > 1000
    csv = CliRunner().invoke(app, ["leaderboard", "show", "--table", "sal_vton_table1_vitonhd", "--format", "csv"])
    assert csv.output.splitlines()[0].startswith("method,variant,dataset,setting,metric,reported,ours,delta")
    kid = next(l for l in csv.output.splitlines() if l.startswith("CP-VTON") and ",KID," in l)
    raw = [r for r in _records(env["results"]) if r["setting"] == "unpaired"][0]["metrics"]["kid"]["value"]
    assert kid.split(",")[6] == f"{raw * 100:.3f}"  # KID on the table's x100 scale


def test_table_run_skips_cells_already_recorded(env):
    from bench.harness.run import run_table

    logs: list[str] = []
    before = len(list(env["results"].glob("*.json")))
    paths = run_table("sal_vton_table1_vitonhd", profile="smoke", device="cpu", log=logs.append)
    assert paths == [] and len(list(env["results"].glob("*.json"))) == before
    assert any("already recorded" in l for l in logs)
    assert any(l.startswith("skip acgpn/viton-hd/paired") for l in logs)


def test_bench_list_and_errors(env):
    from cli import app

    res = CliRunner().invoke(app, ["bench", "list"])
    assert res.exit_code == 0 and "cpvton" in res.output and "sal_vton_table1_vitonhd" in res.output
    bad = CliRunner().invoke(app, ["bench", "--model", "cpvtn", "--profile", "smoke"])
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
