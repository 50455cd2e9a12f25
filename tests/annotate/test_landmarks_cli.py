"""`vtondata landmarks convert | export | eval | draw` end to end, and the manifest adapter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from annotate.landmarks import synth
from annotate.landmarks.manifest import catalog_from_manifest, pairs_from_manifest, read_manifest_landmarks
from annotate.landmarks.readers import read_landmarks
from cli import app

runner = CliRunner()


def run(*args, code=0):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == code, r.output
    return r


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    """A small VITON-HD-like root: images on disk and their landmarks."""
    root = tmp_path_factory.mktemp("synthroot")
    table = synth.make_table(4, seed=7, p_absent=0.05, p_occluded=0.2)
    synth.write_images(table, root)
    return root, table


@pytest.mark.parametrize("fmt,name", [("coco", "lm.json"), ("deepfashion2", "df2"), ("flat-csv", "lm.csv"),
                                      ("cvat", "cvat")])
def test_convert_every_format_against_a_root(fmt, name, synth_root, tmp_path):
    root, table = synth_root
    src = synth.write_as(table, fmt, tmp_path / name)
    args = ["landmarks", "convert", src, "--root", root, "--out", tmp_path / "out"]
    r = run(*args) if fmt == "cvat" else run(*args[:2], "--from", fmt, *args[2:])
    assert f"read as {fmt}" in r.output and "8 records" in r.output
    got = pd.read_parquet(tmp_path / "out" / "landmarks.parquet")
    assert len(got) == 256 and set(got.width) == {192.0}
    assert set(got.image) == set(table.image)


def test_convert_errors_exit_1_and_name_file_and_record(synth_root, tmp_path):
    root, table = synth_root
    src = synth.write_as(table, "flat-csv", tmp_path / "lm.csv")
    lines = src.read_text().splitlines()
    lines[3] = lines[3].replace("test/cloth/00002_00.jpg", "test/cloth/99999_00.jpg")
    src.write_text("\n".join(lines) + "\n")
    r = run("landmarks", "convert", src, "--root", root, code=1)
    assert "lm.csv: line 4: test/cloth/99999_00.jpg (garment) does not exist in the prepared dataset" in r.output
    r = run("landmarks", "convert", src, "--root", root, "--lenient", "--out", tmp_path / "o")
    assert "1 error(s)" in r.output and "7 records" in r.output
    findings = pd.read_csv(tmp_path / "o" / "landmark_findings.csv")
    assert "missing-image" in set(findings.code)


def test_manifest_join_and_round_trip(vitonhd_root, tmp_path):
    from vtondata.manifest import open_manifest
    from vtondata.prepare import prepare

    out = tmp_path / "prepared"
    prepare("viton-hd", vitonhd_root, out=out, quiet=True)
    sidecar = vitonhd_root / ".vtondata-fixture" / "landmarks.csv"
    r = run("landmarks", "convert", sidecar, "--manifest", out, "--out", tmp_path / "lm")
    assert "0 error(s)" in r.output
    m = open_manifest(manifest_dir=out)
    assert "landmarks" in m.meta["tables"]
    lm = m.table("landmarks")
    assert list(lm.columns) == ["asset_id", "side", "point", "x", "y", "attribute", "scheme"]
    assets = m.assets.set_index("asset_id")
    assert set(assets.loc[lm.asset_id.unique(), "role"]) == {"garment", "person"}
    assert (lm.groupby(["asset_id", "side"]).size() == 32).all()
    assert (assets.loc[lm.asset_id, "role"].to_numpy() == lm.side.to_numpy()).all()
    cat = catalog_from_manifest(m)
    assert set(cat.role) == {"garment", "person"} and cat.asset_id.notna().all()
    pairs = pairs_from_manifest(m)
    assert len(pairs) and all(g.rsplit("/", 1)[-1] == p.rsplit("/", 1)[-1] for g, p in zip(pairs.garment_image, pairs.person_image))
    back = read_manifest_landmarks(m)
    truth = read_landmarks(sidecar)
    merged = back.merge(truth, on=["image", "side", "point"], suffixes=("", "_t"))
    assert len(merged) == len(truth)
    present = merged.attribute > 0
    np.testing.assert_allclose(merged.loc[present, "x"], merged.loc[present, "x_t"], atol=1e-3)
    # export from the manifest, then evaluate it against the sidecar itself: AP 1.0
    run("landmarks", "export", "--manifest", out, "--to", "coco", "--out", tmp_path / "gt.json")
    r = run("landmarks", "eval", "--gt", tmp_path / "gt.json", "--pred", sidecar, "--json", tmp_path / "m.json")
    rep = json.loads((tmp_path / "m.json").read_text())["sal32"]
    assert rep["all"]["ap"] == pytest.approx(1.0) and rep["person"]["pck@0.05"] == 1.0
    assert "attr acc" in r.output and "1.000" in r.output
    png = tmp_path / "pair.png"
    run("landmarks", "draw", tmp_path / "lm" / "landmarks.parquet", "--garment", "00000_00.jpg", "--manifest", out,
        "--out", png)
    assert png.stat().st_size > 1000


def test_export_formats_and_draw(synth_root, tmp_path):
    root, table = synth_root
    src = synth.write_as(table, "coco", tmp_path / "lm.json")
    run("landmarks", "export", src, "--to", "cvat", "--out", tmp_path / "cvat")
    run("landmarks", "export", src, "--to", "labelstudio", "--out", tmp_path / "ls", "--image-prefix", "http://x/")
    run("landmarks", "export", src, "--to", "canonical", "--out", tmp_path / "c.parquet")
    assert (tmp_path / "cvat" / "annotations.xml").exists() and (tmp_path / "cvat" / "cvat_labels.json").exists()
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert len(tasks) == 8 and tasks[0]["data"]["image"].startswith("http://x/test/")
    assert len(pd.read_parquet(tmp_path / "c.parquet")) == 256
    r = run("landmarks", "export", src, "--to", "yaml", "--out", tmp_path / "y", code=2)
    assert "unknown export format" in r.output
    run("landmarks", "draw", src, "--garment", "test/cloth/00001_00.jpg", "--root", root, "--out", tmp_path / "p.png")
    assert (tmp_path / "p.png").exists()


def test_eval_perturbed_prediction_lowers_the_scores(synth_root, tmp_path):
    _, table = synth_root
    gt = synth.write_as(table, "coco", tmp_path / "gt.json")
    pred = table.copy()
    pred["x"] = pred["x"] + 15.0                                          # > 0.05 x the box diagonal
    src = synth.write_as(pred, "flat-csv", tmp_path / "pred.csv")
    run("landmarks", "eval", "--gt", gt, "--pred", src, "--json", tmp_path / "m.json")
    rep = json.loads((tmp_path / "m.json").read_text())["sal32"]["all"]
    assert rep["ap"] < 1.0 and rep["pck@0.05"] < 1.0 and rep["attribute_accuracy"] == 1.0


@pytest.fixture(scope="module")
def prepared(vitonhd_root, tmp_path_factory):
    from vtondata.prepare import prepare

    out = tmp_path_factory.mktemp("prepared_lm")
    prepare("viton-hd", vitonhd_root, out=out, quiet=True)
    return out


@pytest.mark.parametrize("fmt", ["coco", "deepfashion2", "flat-csv", "cvat"])
def test_fixture_landmarks_in_every_format_convert_into_the_manifest(fmt, vitonhd_root, prepared, tmp_path):
    """The generator's ground truth (sidecar) written in each format, converted against the prepared dataset
    with auto-detection, then scored against the sidecar itself: AP 1.0."""
    sidecar = vitonhd_root / ".vtondata-fixture" / "landmarks.csv"
    truth = read_landmarks(sidecar)
    truth = truth.assign(width=192.0, height=256.0)
    src = synth.write_as(truth, fmt, tmp_path / {"coco": "a.json", "deepfashion2": "df2", "flat-csv": "a.csv",
                                                  "cvat": "cvat"}[fmt])
    r = run("landmarks", "convert", src, "--manifest", prepared, "--out", tmp_path / "lm")
    assert f"read as {fmt}" in r.output and "0 error(s)" in r.output and "24 records" in r.output
    run("landmarks", "eval", "--gt", sidecar, "--pred", tmp_path / "lm" / "landmarks.parquet", "--json", tmp_path / "m.json")
    rep = json.loads((tmp_path / "m.json").read_text())["sal32"]["all"]
    assert rep["ap"] == pytest.approx(1.0) and rep["pck@0.05"] == 1.0 and rep["attribute_accuracy"] == 1.0
