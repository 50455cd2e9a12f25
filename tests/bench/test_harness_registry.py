"""Registry, configs, schedules, the step sampler, checkpoints and the table files of the bench harness."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.harness import checkpoint as ckpt
from bench.harness import registry as reg
from bench.harness.config import apply_overrides, config_hash, merge, run_name
from bench.harness.data import StepBatches
from bench.harness.model import Model, Stage
from bench.harness.run import evaluations
from vtondata.errors import UnknownNameError, VtonDataError

REPO = Path(__file__).resolve().parents[2]


def test_unknown_names_are_refused_with_a_suggestion():
    with pytest.raises(UnknownNameError, match="did you mean 'cpvton'"):
        reg.get_model("cpvtn")
    with pytest.raises(UnknownNameError, match="single-pose"):
        reg.resolve_variant("cpvton", "viton", "single")
    with pytest.raises(UnknownNameError, match="sal_vton_table1_vitonhd"):
        reg.get_table("sal_vton_table1_vitonh")
    with pytest.raises(UnknownNameError):
        reg.check_profile("quick")
    with pytest.raises(UnknownNameError):
        reg.resolve_config("cpvton", "single-pose", "strat", "smoke")


def test_register_model_refuses_duplicates_and_bad_names():
    cls = reg.get_model("cpvton")
    clone = type("Clone", (cls,), {})
    with pytest.raises(VtonDataError, match="registered twice"):
        reg.register_model(clone)
    bad = type("Bad", (cls,), {"name": "Bad Name"})
    with pytest.raises(VtonDataError, match="bad model name"):
        reg.register_model(bad)
    with pytest.raises(TypeError):
        reg.register_model(object)
    assert reg.register_model(cls) is cls  # re-registering the same class is harmless


def test_variant_defaults_and_config_layers():
    assert reg.resolve_variant("cpvton", "mpv", None) == "multi-pose"
    assert reg.resolve_variant("cpvton", "viton-hd", None) == "single-pose"
    full = reg.resolve_config("cpvton", "single-pose", "viton", "full")
    assert full["size"] == [256, 192] and full["stages"]["gmm"]["steps"] == 200000
    assert full["stages"]["tom"]["optimizer"] == {"name": "adam", "lr": 0.0001, "betas": [0.5, 0.999]}
    hd = reg.resolve_config("cpvton", "single-pose", "viton-hd", "full")
    assert hd["size"] == [1024, 768] and hd["tom"]["num_downs"] == 8
    smoke = reg.resolve_config("cpvton", "multi-pose", "mpv", "smoke", ["gmm.ngf=8"])
    assert smoke["gmm"]["ngf"] == 8 and smoke["person_repr"]["pose_from"] == "target"
    assert smoke["vgg"]["weights"] == "random"  # smoke never loads pretrained weights


def test_overrides_refuse_unknown_keys_and_hash_ignores_comments():
    cfg = {"a": {"b": 1}, "_doc": "x"}
    assert apply_overrides(cfg, ["a.b=2"])["a"]["b"] == 2
    assert apply_overrides(cfg, ["a.b=abc"])["a"]["b"] == "abc"
    with pytest.raises(VtonDataError, match="unknown key"):
        apply_overrides(cfg, ["a.c=1"])
    with pytest.raises(VtonDataError, match="not a config section"):
        apply_overrides(cfg, ["a.b.c=1"])
    assert config_hash(cfg) == config_hash({"a": {"b": 1}, "_doc": "other"})
    assert config_hash(cfg) != config_hash({"a": {"b": 2}})
    assert merge({"x": {"y": 1, "z": 2}}, {"x": {"y": 3}}) == {"x": {"y": 3, "z": 2}}


def test_run_name_follows_the_convention():
    assert run_name("cpvton", "single-pose", 4, [200000, 200000], "viton-hd", "test", (1024, 768), "full") == \
        "cpvton-single-pose_4x200k+200k_viton-hd-test_1024x768_full"


def test_stage_schedule_is_constant_then_linear():
    st = Stage("gmm", ("gmm",), (), 200, 4, {"name": "adam", "lr": 1e-4}, {"decay_after": 100}, {"l1": 1.0})
    assert st.lr(0) == st.lr(99) == 1e-4
    assert st.lr(100) == pytest.approx(1e-4)
    assert st.lr(150) == pytest.approx(1e-4 * (1 - 50 / 101))
    assert 0 < st.lr(199) < 2e-6
    with pytest.raises(VtonDataError, match="unknown optimiser"):
        Stage("s", ("a",), (), 1, 1, {"name": "sgdx", "lr": 1}, {}, {}).make_optimizer([torch.zeros(1)])


def test_step_batches_are_a_function_of_the_step_and_split_over_ranks():
    one = list(StepBatches(10, 4, seed=3, start=0, end=7))
    assert all(len(b) == 4 for b in one)
    flat = [i for b in one for i in b]
    assert sorted(flat[:10]) == list(range(10))  # epoch 0 is a permutation
    assert list(StepBatches(10, 4, seed=3, start=4, end=7)) == one[4:]  # resume sees the same batches
    r0 = list(StepBatches(10, 4, seed=3, start=0, end=7, rank=0, world=2))
    r1 = list(StepBatches(10, 4, seed=3, start=0, end=7, rank=1, world=2))
    assert [a + b for a, b in zip(r0, r1)] == one  # two ranks together = one process with the same batch
    assert list(StepBatches(10, 4, seed=4, start=0, end=7)) != one
    with pytest.raises(VtonDataError, match="not divisible"):
        StepBatches(10, 4, 0, 0, 1, 0, 3)


def test_checkpoints_are_atomic_and_weights_only(tmp_path):
    state = {"stage": "gmm", "step": 3, "nets": {"a": {"w": torch.arange(3.0)}}, "rng": ckpt.rng_state()}
    p = tmp_path / "c" / "last.pt"
    ckpt.save(p, state)
    back = ckpt.load(p)
    assert torch.equal(back["nets"]["a"]["w"], torch.arange(3.0)) and back["step"] == 3
    assert [f.name for f in p.parent.iterdir()] == ["last.pt"]  # no temporary left behind

    import datetime

    buf = io.BytesIO()
    torch.save({"format": 1, "x": datetime.datetime(2020, 1, 1)}, buf)  # not an allowed global
    (tmp_path / "evil.pt").write_bytes(buf.getvalue())
    with pytest.raises(VtonDataError, match="unreadable checkpoint"):
        ckpt.load(tmp_path / "evil.pt")  # weights_only refuses arbitrary objects
    torch.save({"w": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(VtonDataError, match="not a vtondata bench checkpoint"):
        ckpt.load(tmp_path / "other.pt")


def test_every_table_cell_names_reported_rows_and_every_row_has_a_cell():
    for tid in reg.table_ids():
        table = reg.get_table(tid)
        csv = pd.read_csv(REPO / "leaderboards" / "reported" / table["reported"], dtype=str, keep_default_na=False)
        shared = pd.read_csv(REPO.parent / "shared" / "reported" / table["reported"], dtype=str,
                             keep_default_na=False) if (REPO.parent / "shared" / "reported").is_dir() else csv
        assert csv.equals(shared), f"{tid}: leaderboards/reported differs from shared/reported"
        covered = set()
        ids = [c["id"] for c in table["cells"]]
        assert len(ids) == len(set(ids)), tid
        for cell in table["cells"]:
            sel = cell["reported"]
            rows = csv[(csv["method"] == sel["method"]) & (csv["variant"] == sel["variant"])
                       & (csv["dataset"] == sel["dataset"]) & (csv["split"] == sel["split"])
                       & (csv["setting"] == sel["setting"])]
            assert not rows.empty, (tid, cell["id"])
            assert set(cell["metrics"]) == set(rows["metric"]), (tid, cell["id"])
            assert cell["dataset"] in reg.catalog()["datasets"]
            covered |= set(rows.index)
        assert covered == set(csv.index), f"{tid}: rows without a cell"


def test_cpvton_fills_its_cells_in_the_four_tables():
    need = {"sal_vton_table1_vitonhd": 2, "sal_vton_table2_viton": 2, "tree_block_table1_mpv": 1,
            "spg_vton_table2_mpv_deepfashion": 2}
    for tid, n in need.items():
        cells = [c for c in reg.get_table(tid)["cells"] if c.get("model") == "cpvton" and reg.cell_fillable(c)[0]]
        assert len(cells) == n, tid
    (df,) = [c for c in reg.get_table("spg_vton_table2_mpv_deepfashion")["cells"] if c["dataset"] == "deepfashion"
             and c.get("model") == "cpvton"]
    # DeepFashion persons wearing MPV garments: only through the derived split, trained on MPV
    assert df["split"] == "spg-deepfashion" and reg.cell_fillable(df)[0]


def test_evaluations_come_from_the_tables():
    evs = {(e.setting, e.preset): e for e in evaluations("cpvton", "single-pose", "viton-hd", "test", None)}
    assert set(evs) == {("paired", "hr-viton"), ("unpaired", "hr-viton")}
    assert {m["metric"] for m in evs[("paired", "hr-viton")].metrics} == {"lpips", "ssim", "psnr"}
    assert {m["metric"] for m in evs[("unpaired", "hr-viton")].metrics} == {"fid", "kid"}
    mpv = evaluations("cpvton", "multi-pose", "mpv", "test", None)
    assert len(mpv) == 1 and {m["metric"] for m in mpv[0].metrics} == {"ssim", "is", "mask_ssim", "mask_is"}
    assert {c["table"] for c in mpv[0].cells} == {"tree_block_table1_mpv", "spg_vton_table2_mpv_deepfashion"}
    # no table cell: the dataset's settings with the default preset
    dflt = evaluations("cpvton", "single-pose", "viton-hd", "hardpose", None)
    assert {(e.setting, e.preset) for e in dflt} == {("paired", "pytorch-fid"), ("unpaired", "pytorch-fid")}


def test_model_interface_is_abstract():
    with pytest.raises(TypeError):
        Model({})  # the abstract methods must be implemented by every model
    assert json.loads(json.dumps(reg.get_model("cpvton").spec()))["model"] == "cpvton"
