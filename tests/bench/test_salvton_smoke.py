"""End to end: the SAL-VTON smoke bench on generated VITON with SAL landmarks, through the CLI (stage 0 teacher
-> landmark -> warp -> gen -> infer -> score -> record for the Table 3 cells), each stage beating its
initialisation, and landmark editing acting locally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

VARIANT = "w/ Deformable Patch"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "salvton_smoke", "viton", n=12, size="128x96", seed=3)
    with kit.bench_env(d.home, d.results):
        kit.cli_ok(["landmarks", "convert", str(d.data / ".vtondata-fixture" / "landmarks.csv"),
                    "--manifest", str(d.home / "viton"), "--out", str(d.base / "lm")])
        res = kit.cli_ok(["bench", "--model", "salvton", "--variant", VARIANT, "--dataset", "viton",
                          "--split", "test", "--profile", "smoke", "--device", "cpu"])
    return {"home": d.home, "results": d.results, "output": res.output}


def test_smoke_bench_fills_the_table3_cells(env, kit):
    recs = kit.read_records(env["results"], by="setting")
    assert set(recs) == {"paired", "unpaired"}
    assert set(recs["paired"]["metrics"]) == {"ssim", "psnr"} and set(recs["unpaired"]["metrics"]) == {"fid"}
    assert recs["paired"]["cells"] == [{"table": "sal_vton_table3_ablation_viton",
                                        "cell": "sal-vton/w-deformable-patch/viton/paired"}]
    for r in recs.values():
        assert r["model"] == "salvton" and r["variant"] == VARIANT and r["comparable"] is False
        assert [s["stage"] for s in r["train_stats"]] == ["landmark", "warp", "gen"]
    assert 0 < recs["paired"]["metrics"]["ssim"]["value"] < 1
    run = Path(recs["paired"]["run_dir"])
    assert all((run / "checkpoints" / f"{s}.pt").exists() for s in ("landmark", "warp", "gen"))
    pngs = list((Path(recs["paired"]["outputs"]) / "tryon").glob("*.png"))
    assert len(pngs) == recs["paired"]["data"]["n_eval"] == 3
    # stage 0: the teacher (CP-VTON) ran in its own run directory and P_o exists for every training tuple
    assert "stage 0: teacher cpvton" in env["output"]
    (cache,) = (run / "teacher").iterdir()
    n_train = recs["paired"]["data"]["n_train"]["landmark"]
    assert len(list((cache / "tryon").glob("*.png"))) == n_train == 9
    assert any(p.name.startswith("cpvton-single-pose") for p in (env["home"] / "runs").iterdir())


def _setup(env_):
    import glob

    from bench.harness import checkpoint as ckpt
    from bench.harness.data import open_dataset
    from bench.harness.registry import get_model
    from bench.harness.run import Request, plan
    from bench.models.salvton_teacher import landmark_lookup

    p = plan(Request(model="salvton", variant=VARIANT, dataset="viton", profile="smoke"), "viton")
    model = get_model("salvton")(p.config)
    model.setup(torch.device("cpu"))
    model.set_landmarks(landmark_lookup("viton", None, model.size))
    model.set_teacher_outputs(glob.glob(str(p.run_dir / "teacher" / "*"))[0])
    torch.manual_seed(0)
    init = {k: v.eval() for k, v in model.build().items()}
    trained = model.build()
    for k, sd in ckpt.load(p.run_dir / "checkpoints" / "last.pt")["nets"].items():
        trained[k].load_state_dict(sd)
    trained = {k: v.eval() for k, v in trained.items()}
    return model, init, trained, open_dataset


def _batch(model, open_dataset, split, purpose):
    inp = model.inputs(purpose, "paired")
    ds = open_dataset("viton", split, "paired", inp.fields, model.size, inp.label_space)
    return torch.utils.data.default_collate([ds[i] for i in range(len(ds))])


def test_every_stage_beats_its_initialisation(env):
    model, init, trained, open_dataset = _setup(env)
    batch = _batch(model, open_dataset, "train", "train")
    st = {s.name: s for s in model.stages()}
    with torch.no_grad():
        # stage 1: BCE + CE and the landmark metrics (annotate.landmarks PCK, attribute accuracy)
        l0 = sum(model.losses(st["landmark"], init, batch).values())
        l1 = sum(model.losses(st["landmark"], trained, batch).values())
        a0, a1 = model.landmark_accuracy(init, batch), model.landmark_accuracy(trained, batch)
        assert l1 < l0
        assert a1["garment"]["pck@0.1"] > a0["garment"]["pck@0.1"]
        assert a1["garment"]["attr_acc"] > a0["garment"]["attr_acc"] and a1["person"]["attr_acc"] > a0["person"]["attr_acc"]
        # stage 2: the fused warp is closer to the worn garment
        w0 = model.losses(st["warp"], init, batch)
        w1 = model.losses(st["warp"], trained, batch)
        assert w1["fused_l1"] < w0["fused_l1"] and w1["global_l1"] < w0["global_l1"]
        # stage 3: with the trained stages 1-2, the trained generator reconstructs P_gt better than its init
        mixed = dict(trained, gen=init["gen"])
        g0 = model.losses(st["gen"], mixed, batch)["gen_l1"]
        g1 = model.losses(st["gen"], trained, batch)["gen_l1"]
        assert g1 < g0


def test_landmark_editing_changes_the_output_only_near_the_landmark(env):
    model, _, nets, open_dataset = _setup(env)
    batch = _batch(model, open_dataset, "test", "eval")
    r = model.render(nets, batch)
    lm = r["landmarks"]
    k = 10
    edit = {"xy_p": lm["xy_p"].clone(), "attr_p": lm["attr_p"].clone()}
    edit["attr_p"][:, k] = 2
    edit["xy_p"][:, k] += torch.tensor([5.0, 5.0])
    r2 = model.render(nets, batch, edit)
    assert torch.equal(r2["landmarks"]["xy_g"], lm["xy_g"])  # only the person landmark moved
    diff = (r2["tryon"] - r["tryon"]).abs().mean(1)
    h, w = model.size
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for n in range(diff.shape[0]):
        c0, c1 = lm["xy_p"][n, k], edit["xy_p"][n, k]
        dist = torch.minimum(((xx - c0[0]) ** 2 + (yy - c0[1]) ** 2).sqrt(),
                             ((xx - c1[0]) ** 2 + (yy - c1[1]) ** 2).sqrt())
        near, far = diff[n][dist <= 8].mean(), diff[n][dist > 20].mean()
        assert near > 5 * far and near > 1e-3


def test_table3_variants_are_all_fillable():
    from bench.harness import registry as reg
    from bench.harness.run import evaluations

    table = reg.get_table("sal_vton_table3_ablation_viton")
    variants = {c["variant"] for c in table["cells"]}
    assert variants == {"w/ Fixed Patch", "w/ Deformable Patch", "w/o LASNL", "w/o Local Flow and LASNL"}
    for v in variants:
        evs = evaluations("salvton", v, "viton", "test", None)
        assert {e.setting for e in evs} == {"paired", "unpaired"}
        assert all(c["table"] == "sal_vton_table3_ablation_viton" for e in evs for c in e.cells)
    for tid in ("sal_vton_table1_vitonhd", "sal_vton_table2_viton"):
        cells = [c for c in reg.get_table(tid)["cells"] if c.get("model") == "salvton"]
        assert cells and all(reg.cell_fillable(c)[0] and c["variant"] == "full" for c in cells)


def test_edit_landmarks_cli_rerenders_from_the_file(env, kit, tmp_path):
    from PIL import Image

    rec = kit.read_records(env["results"], by="setting")["paired"]
    key = sorted((Path(rec["outputs"]) / "tryon").glob("*.png"))[0].stem
    edits = tmp_path / "moves.json"
    edits.write_text(json.dumps({"tuple": key, "person": {"10": [20, 30]}, "garment": {"3": {"attribute": 0}}}))
    out = tmp_path / "edit.png"
    kit.cli_ok(["bench", "edit-landmarks", "--variant", VARIANT, "--dataset", "viton", "--profile", "smoke",
                "--edits", str(edits), "--out", str(out)])
    with Image.open(out) as im:
        assert im.size == (4 * 48, 64)
    dump = json.loads(out.with_suffix(".json").read_text())
    assert dump["after"]["person"]["xy"][10] == [20.0, 30.0] and dump["after"]["person"]["attribute"][10] >= 1
    assert dump["after"]["garment"]["attribute"][3] == 0
    assert dump["after"]["person"]["xy"][0] == dump["before"]["person"]["xy"][0]


def test_saved_landmarks_are_scored_with_the_landmark_metrics(env, kit):
    import numpy as np

    from bench.models.salvton import evaluate_saved_landmarks

    rec = kit.read_records(env["results"], by="setting")["paired"]
    files = sorted((Path(rec["outputs"]) / "landmarks").glob("*.npy"))
    assert len(files) == 3 and np.load(files[0]).shape == (2, 32, 3)
    rep = evaluate_saved_landmarks(rec["outputs"], "viton", None, (64, 48))
    assert set(rep) == {"garment", "person"}
    for side in rep.values():
        assert side["n_images"] == 3 and side["n_points"] > 0 and 0 <= side["pck@0.1"] <= 1
        assert 0 <= side["attr_acc"] <= 1
