"""A real (tiny) supplementary sweep end to end: ``vtondata bench sweep lambda 0.01,1`` on generated STRAT trains
and scores one ``Ours`` run per value through the harness (smoke profile, STRAT-hat only) and writes the PNG and
the JSON with one point per value, whose metrics are those of the bench records of that value."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "acc_sweep", "strat", n=8, size="64x64", seed=3)
    with kit.one_thread(), kit.bench_env(d.home, d.results):
        out = kit.cli_ok(["bench", "sweep", "lambda", "0.01,1", "--profile", "smoke", "--device", "cpu"]).output
        bad = kit.cli(["bench", "sweep", "beta", "1,2", "--profile", "smoke", "--device", "cpu"])
    return {"home": d.home, "results": d.results, "output": out, "bad": bad}


def test_one_point_per_value_from_the_bench_records(env, kit):
    png = env["results"] / "sweeps" / "accessory-lambda-hat.png"
    res = json.loads(png.with_suffix(".json").read_text())
    assert res["param"] == "lambda" and res["key"] == "stages.hat.losses.sm" and res["default"] == 0.1
    assert [p["value"] for p in res["points"]] == [0.01, 1.0]
    recs = kit.read_records(env["results"])
    assert len(recs) == 2 and {r["variant"] for r in recs} == {"Ours"}
    for p in res["points"]:
        rec = json.loads((env["results"] / p["record"]).read_text())
        assert rec["config"]["stages"]["hat"]["losses"]["sm"] == p["value"]
        assert [s["stage"] for s in rec["train_stats"]] == ["hat"] and rec["setting"] == "hat"
        assert {m: p[m] for m in ("lssim", "iou", "disp")} == {m: v["value"] for m, v in rec["metrics"].items()}
        assert p["comparable"] is False and all(p[m] is not None for m in ("lssim", "iou", "disp"))
    assert recs[0]["config_hash"] != recs[1]["config_hash"]
    assert str(png) in env["output"].replace("\n", "")


def test_the_png_has_one_panel_per_metric(env):
    from PIL import Image

    im = Image.open(env["results"] / "sweeps" / "accessory-lambda-hat.png")
    assert im.size[0] > 2 * im.size[1]  # three panels side by side
    assert len(set(im.convert("L").getdata())) > 10  # something was drawn


def test_an_unknown_parameter_is_refused(env):
    assert env["bad"].exit_code == 2 and "unknown sweep parameter 'beta'" in env["bad"].output
