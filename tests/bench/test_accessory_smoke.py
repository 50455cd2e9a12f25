"""End to end on generated STRAT through the CLI: the accessory model (Table 2 row 1, STRAT-hat) trains,
infers, scores LSSIM / IoU / Disp and records; training lowers Disp versus initialisation; the two sanity
baselines run without training and the ground-truth homography scores IoU 1 and Disp 0 exactly (which also
checks the metrics and the vertex plumbing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def _bench(*args):
    from cli import app

    return CliRunner().invoke(app, ["bench", "--model", "accessory", "--dataset", "strat", "--setting", "hat",
                                    "--split", "test", "--profile", "smoke", "--device", "cpu", *args])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    base = tmp_path_factory.mktemp("acc_smoke")
    home, results = base / "home", base / "results"
    data = make_fixture("strat", base / "data", n=16, size="64x64", seed=7)
    prepare("strat", data, out=home / "strat", quiet=True)
    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core: no spinning second thread
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("VTONDATA_HOME", str(home))
            mp.setenv("VTONDATA_RESULTS", str(results))
            for variant in ("row1", "gt-homography", "mean-vertices"):
                res = _bench("--variant", variant)
                assert res.exit_code == 0, res.output
                out[variant] = res.output
    finally:
        torch.set_num_threads(threads)
    return {"home": home, "results": results, "output": out}


@pytest.fixture()
def env(smoke, monkeypatch):
    monkeypatch.setenv("VTONDATA_HOME", str(smoke["home"]))
    monkeypatch.setenv("VTONDATA_RESULTS", str(smoke["results"]))
    return smoke


def _records(results: Path) -> dict[str, dict]:
    recs = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    return {r["variant"]: r for r in recs}


def test_smoke_records_strat_metrics_with_provenance(env):
    recs = _records(env["results"])
    assert set(recs) == {"row1", "gt-homography", "mean-vertices"}
    r = recs["row1"]
    assert r["setting"] == "hat" and set(r["metrics"]) == {"lssim", "iou", "disp"}
    assert {c["table"] for c in r["cells"]} == {"accessory_table2_ablation_strat_hat"}
    assert r["comparable"] is False and r["weights"]["model"]["resnet18_encoders"]["weights"] == "random"
    assert [s["stage"] for s in r["train_stats"]] == ["hat"] and r["data"]["n_eval"] == 4
    out = Path(r["outputs"])
    assert len(list((out / "tryon").glob("*.png"))) == 4 and len(list((out / "vertices").glob("*.npy"))) == 4
    for m in r["metrics"].values():
        assert m["value"] is not None and m["preset"] == "pytorch-fid"
    assert 0 <= r["metrics"]["iou"]["value"] <= 1 and r["metrics"]["disp"]["value"] >= 0


def test_ground_truth_homography_scores_iou_one_and_disp_zero(env):
    r = _records(env["results"])["gt-homography"]
    assert r["train_stats"] == [] and r["cells"] == []
    assert r["metrics"]["iou"]["value"] == 1.0 and r["metrics"]["disp"]["value"] == 0.0
    assert r["metrics"]["lssim"]["value"] > 0.8  # our warp vs the fixture's OpenCV composite (JPEG)
    mean = _records(env["results"])["mean-vertices"]
    assert 0 < mean["metrics"]["disp"]["value"] < 0.2 and mean["metrics"]["iou"]["value"] < 1.0


def test_training_lowers_disp_versus_initialisation(env):
    from bench.harness import checkpoint as ckpt
    from bench.harness.data import open_dataset
    from bench.harness.registry import get_model
    from bench.harness.run import Request, plan
    from bench.metrics.disp import displacement

    p = plan(Request(model="accessory", variant="row1", dataset="strat", setting="hat", profile="smoke"), "strat")
    model = get_model("accessory")(p.config)
    torch.manual_seed(0)
    init = model.build()
    torch.manual_seed(0)
    trained = model.build()
    state = ckpt.load(p.run_dir / "checkpoints" / "last.pt")
    for k, sd in state["nets"].items():
        trained[k].load_state_dict(sd)
    ds = open_dataset("strat", "test", "hat", model.inputs("eval", "hat").fields, model.size_for("hat"), None)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=len(ds))))
    gt = model.verts.vertices(batch, (64, 64))[1]

    def disp(nets):
        for n in nets.values():
            n.eval()
        with torch.no_grad():
            return float(displacement(model.predict_vertices(nets, batch), gt, (64, 64)).mean())

    d_init, d_trained = disp(init), disp(trained)
    assert d_trained < 0.8 * d_init, (d_init, d_trained)
    rec = _records(env["results"])["row1"]
    assert rec["metrics"]["disp"]["value"] == pytest.approx(d_trained, rel=1e-3, abs=1e-4)


def test_leaderboard_shows_the_smoke_cell(env):
    from bench.leaderboard import table_view

    df = table_view("accessory_table2_ablation_strat_hat")
    row = df[df["cell"] == "t2-row1/hat"]
    assert len(row) == 3 and (row["ours"] != "").all() and row["flags"].str.contains("smoke|not comparable").all()
