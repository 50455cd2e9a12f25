"""Exporters (COCO through pycocotools, CVAT, Label Studio, FiftyOne) and the landmark metrics."""

from __future__ import annotations

import contextlib
import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from annotate.landmarks import synth
from annotate.landmarks.checks import apply_policy, check_landmarks
from annotate.landmarks.definition import load_definition
from annotate.landmarks.exporters import export_table, to_coco, to_coco_results
from annotate.landmarks.exporters.cvat import cvat_labels, to_cvat_xml
from annotate.landmarks.exporters.labelstudio import label_config, to_tasks
from annotate.landmarks.metrics import evaluate, evaluate_files
from annotate.landmarks.readers import read_landmarks
from annotate.landmarks.table import from_arrays, normalise

THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _cocoeval(gt_path, results, sigmas, cat_ids=None):
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO(str(gt_path))
        cd = cg.loadRes(results)
        ev = COCOeval(cg, cd, iouType="keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        if cat_ids:
            ev.params.catIds = cat_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.fixture(scope="module")
def table():
    return synth.make_table(5, seed=11, p_absent=0.1, p_occluded=0.2)


@pytest.mark.parametrize("fmt", ["coco", "deepfashion2", "flat-csv", "canonical", "cvat"])
def test_format_to_coco_scores_itself_perfectly(fmt, table, tmp_path):
    src = synth.write_as(table, fmt, tmp_path / {"coco": "a.json", "deepfashion2": "d", "flat-csv": "f.csv",
                                                  "canonical": "c.csv", "cvat": "cv"}[fmt])
    checked, _ = apply_policy(check_landmarks(read_landmarks(src)), strict=True)
    gt = to_coco(normalise(checked))
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    results, missed = to_coco_results(normalise(checked), gt)
    assert missed == 0 and len(results) == 10
    stats = _cocoeval(tmp_path / "gt.json", results, load_definition().sigmas)
    assert stats[0] == pytest.approx(1.0) and stats[1] == pytest.approx(1.0)


def test_coco_structure_loads_in_pycocotools(table, tmp_path):
    path = export_table(table, "coco", tmp_path / "gt.json")[0]
    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO(str(path))
    cats = c.loadCats(c.getCatIds())
    assert [(x["name"], x["supercategory"]) for x in cats] == [("garment", "sal32"), ("person", "sal32")]
    assert all(len(x["keypoints"]) == 32 and min(min(e) for e in x["skeleton"]) == 1 for x in cats)
    ann = c.loadAnns(c.getAnnIds(catIds=[2]))[0]
    kp = np.array(ann["keypoints"]).reshape(32, 3)
    assert set(kp[:, 2]) <= {0, 1, 2} and ann["num_keypoints"] == int((kp[:, 2] > 0).sum())
    assert (kp[kp[:, 2] == 0, :2] == 0).all()
    lab = kp[kp[:, 2] > 0, :2]
    x0, y0, w, h = ann["bbox"]
    assert (x0, y0) == pytest.approx(tuple(lab.min(0)), abs=1e-3) and ann["area"] == pytest.approx(w * h, rel=1e-4)
    g = c.loadAnns(c.getAnnIds(catIds=[1]))[0]
    assert set(np.array(g["keypoints"])[2::3]) <= {0, 2}            # garment: absent or present


def _two_person_records(shift: float):
    d = load_definition()
    base = d.template * np.array([120.0, 200.0]) + np.array([36.0, 28.0])
    gxy = np.stack([base, base + [5.0, 3.0]])
    attr = np.full((2, 32), 2)
    gt = from_arrays(["a.jpg", "b.jpg"], ["person", "person"], gxy, attr, widths=[192, 192], heights=[256, 256])
    pxy = gxy.copy()
    pxy[1, :, 0] += shift
    pattr = attr.copy()
    pattr[0, :4] = 1                                               # 4 attribute mistakes on record a
    pred = from_arrays(["a.jpg", "b.jpg"], ["person", "person"], pxy, pattr, widths=[192, 192], heights=[256, 256],
                       scores=[0.9, 0.8])
    return gt, pred, gxy


def test_perturbed_prediction_matches_hand_computation(tmp_path):
    shift = 4.0
    gt, pred, gxy = _two_person_records(shift)
    sig = load_definition().sigmas
    b = gxy[1]
    area = (b[:, 0].max() - b[:, 0].min()) * (b[:, 1].max() - b[:, 1].min())
    oks_b = np.mean(np.exp(-shift ** 2 / (2 * area * (2 * sig) ** 2)))
    assert np.abs(THRESHOLDS - oks_b).min() > 0.01                  # not on a threshold edge
    n_pass = int((THRESHOLDS <= oks_b).sum())
    assert 0 < n_pass < 10
    # a passes every threshold; below OKS_b both match (AP 1), above it b is a false positive: 51/101
    expected_ap = (n_pass + (10 - n_pass) * 51 / 101) / 10

    gt_coco = to_coco(gt)
    (tmp_path / "gt.json").write_text(json.dumps(gt_coco))
    results, _ = to_coco_results(pred, gt_coco)
    stats = _cocoeval(tmp_path / "gt.json", results, sig)
    assert stats[0] == pytest.approx(expected_ap, abs=1e-9)

    rep = evaluate(gt, pred)["sal32"]["person"]
    assert rep["ap"] == pytest.approx(expected_ap, abs=1e-9)
    assert rep["ap50"] == pytest.approx(1.0) and rep["ap75"] == pytest.approx(1.0 if oks_b >= 0.75 else 51 / 101)
    diag = np.hypot(*(b.max(0) - b.min(0)))
    assert rep["pck@0.05"] == pytest.approx((32 + 32 * (shift <= 0.05 * diag)) / 64)
    assert rep["pck@0.1"] == pytest.approx(1.0 if shift <= 0.1 * diag else 0.5)
    assert rep["nme"] == pytest.approx((0 + shift / diag) / 2, rel=1e-6)
    assert rep["attribute_accuracy"] == pytest.approx(60 / 64)


def test_missing_prediction_counts_against_pck_and_recall():
    gt, pred, _ = _two_person_records(0.0)
    pred = pred[pred.image == "a.jpg"]
    rep = evaluate(gt, pred)["sal32"]["person"]
    assert rep["pck@0.1"] == pytest.approx(0.5) and rep["n_matched"] == 1
    assert rep["ap"] == pytest.approx(51 / 101, abs=1e-9)              # half the ground truth is never found


def test_eval_files_accepts_a_coco_results_list(tmp_path):
    gt, pred, _ = _two_person_records(0.0)
    gt_coco = to_coco(gt)
    (tmp_path / "gt.json").write_text(json.dumps(gt_coco))
    (tmp_path / "res.json").write_text(json.dumps(to_coco_results(pred, gt_coco)[0]))
    rep = evaluate_files(tmp_path / "gt.json", tmp_path / "res.json")["sal32"]["all"]
    assert rep["ap"] == pytest.approx(1.0) and rep["pck@0.05"] == 1.0 and rep["attribute_accuracy"] == pytest.approx(60 / 64)


def test_cvat_export(table):
    root = ET.fromstring(to_cvat_xml(table))
    assert root.findtext("version") == "1.1"
    names = [lab.findtext("name") for lab in root.iter("label")]
    assert names.count("garment") == 1 and names.count("back_tip") == 2       # one sub-label set per skeleton
    sk = [s for s in root.iter("skeleton")]
    assert len(sk) == 10 and all(len(s.findall("points")) == 32 for s in sk)
    t = normalise(table).set_index(["image", "side", "point"])
    for im in root.iter("image"):
        for s in im.iter("skeleton"):
            for k, p in enumerate(s.findall("points")):
                a = t.loc[(im.get("name"), s.get("label"), k), "attribute"]
                assert (p.get("outside") == "1") == (a == 0)
                assert (p.get("occluded") == "1") == (s.get("label") == "person" and a == 1)
    spec = cvat_labels(table)
    assert [x["name"] for x in spec] == ["garment", "person"]
    assert spec[0]["svg"].count("<circle") == 32 and spec[0]["svg"].count("<line") == len(load_definition().skeleton)


def test_label_studio_export(table):
    tasks = to_tasks(table, image_prefix="/data/")
    assert len(tasks) == 10
    t = normalise(table)
    task = next(x for x in tasks if x["data"]["side"] == "person")
    rec = t[(t.image == task["data"]["image"][len("/data/"):]) & (t.side == "person")]
    res = task["predictions"][0]["result"]
    kps = [r for r in res if r["type"] == "keypointlabels"]
    assert len(kps) == int((rec.attribute > 0).sum())
    first = kps[0]
    row = rec[rec.point == load_definition().names.index(first["value"]["keypointlabels"][0])].iloc[0]
    assert first["value"]["x"] == pytest.approx(100 * row.x / 192, abs=1e-3)
    assert first["value"]["y"] == pytest.approx(100 * row.y / 256, abs=1e-3)
    ch = {r["id"]: r["value"]["choices"][0] for r in res if r["type"] == "choices"}
    assert set(ch.values()) <= {"occluded", "visible"}
    cfg = ET.fromstring(label_config(table))
    assert len(cfg.find("KeyPointLabels").findall("Label")) == 32
    assert {c.get("value") for c in cfg.find("Choices")} == {"present", "occluded", "visible"}


def test_fiftyone_keypoints(table):
    from annotate.landmarks.exporters.fiftyone_keypoints import record_points, skeleton, to_fiftyone_keypoints

    kps = to_fiftyone_keypoints(table)
    assert len(kps) == 10
    t = normalise(table)
    img = t.image.iloc[0]
    kp = kps[img].keypoints[0]
    pts, attr = record_points(kp)
    rec = t[(t.image == img)].sort_values("point")
    np.testing.assert_allclose(pts[:, 0], rec.x / 192, atol=1e-6, equal_nan=True)
    assert np.isnan(pts[attr == 0]).all() and attr.tolist() == rec.attribute.tolist()
    sk = skeleton("sal32")
    assert len(sk.labels) == 32 and len(sk.edges) == len(load_definition().skeleton)
