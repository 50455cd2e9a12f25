"""Every check: the error or warning is raised, names the file and the record, and strict/lenient act on it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from annotate.landmarks import synth
from annotate.landmarks.catalog import catalog_from_root, resolve, role_of
from annotate.landmarks.checks import apply_policy, check_landmarks, pairs_by_name
from annotate.landmarks.readers import read_landmarks
from vtondata.errors import ValidationFailedError


@pytest.fixture()
def table():
    return synth.make_table(3, seed=5, p_absent=0.0, p_occluded=0.0)


def catalog_of(df: pd.DataFrame) -> pd.DataFrame:
    recs = df[["image", "side"]].drop_duplicates()
    return pd.DataFrame({"image": recs["image"], "role": recs["side"], "width": 192.0, "height": 256.0,
                         "asset_id": recs["image"].str.replace(".jpg", "", regex=False)})


def codes(findings):
    return sorted({f.code for f in findings})


def test_clean_table_has_no_findings(table):
    res = check_landmarks(table, catalog=catalog_of(table))
    assert res.findings == []
    assert res.table["asset_id"].notna().all()


def test_wrong_point_count_names_file_and_record(table, tmp_path):
    doc = json.loads(synth.write_as(table, "coco", tmp_path / "c.json").read_text())
    doc["annotations"][1]["keypoints"] = doc["annotations"][1]["keypoints"][:-3]   # 31 points
    p = tmp_path / "c31.json"
    p.write_text(json.dumps(doc))
    res = check_landmarks(read_landmarks(p))
    [f] = res.errors
    assert f.code == "point-count" and "has 31 landmarks" in f.message and "needs exactly 32" in f.message
    assert str(f).startswith(f"{p}: annotation id 2 (")
    with pytest.raises(ValidationFailedError, match=r"c31.json: annotation id 2 .*31 landmarks"):
        apply_policy(res, strict=True)


def test_repeated_point_index_is_caught(table):
    t = table.copy()
    t.loc[5, "point"] = 4
    [f] = check_landmarks(t).errors
    assert f.code == "point-count" and "0..31 once each" in f.message


def test_coordinates_outside_the_image(table):
    t = table.copy()
    i = t.index[(t.side == "person") & (t.point == 9)][0]
    t.loc[i, "x"] = 500.0
    [f] = check_landmarks(t, catalog=catalog_of(table)).errors
    assert f.code == "out-of-image" and "landmark 9 at (500.0" in f.message and "192x256" in f.message
    assert f.image == t.loc[i, "image"]


def test_attribute_outside_the_encoding(table):
    t = table.copy()
    t.loc[(t.side == "garment") & (t.point == 3), "attribute"] = 2          # garment has no 'visible'
    t.loc[(t.side == "person") & (t.point == 4) & (t.image.str.contains("00001")), "attribute"] = 7
    errs = check_landmarks(t).errors
    assert codes(errs) == ["attribute"] and len(errs) == 4
    assert any("attribute 2 is outside the garment encoding (0 absent, 1 present)" in f.message for f in errs)
    assert any("attribute 7 is outside the person encoding" in f.message for f in errs)


def test_present_point_without_coordinates(table):
    t = table.copy()
    t.loc[(t.side == "person") & (t.point == 12), "x"] = np.nan
    errs = check_landmarks(t).errors
    assert codes(errs) == ["no-coordinates"] and "landmark 12" in errs[0].message


def test_image_not_in_the_prepared_dataset(table):
    cat = catalog_of(table)
    cat = cat[~cat.image.str.endswith("00002_00.jpg") | (cat.role == "garment")]
    errs = check_landmarks(table, catalog=cat).errors
    [f] = errs
    assert f.code == "missing-image" and "test/image/00002_00.jpg (person) does not exist" in f.message
    kept, findings = apply_policy(check_landmarks(table, catalog=cat), strict=False)
    assert len(kept) == len(table) - 32 and not kept.image.str.contains("image/00002").any()


def test_join_by_file_name_within_the_side(table):
    t = table.copy()
    t["image"] = t["image"].str.rsplit("/", n=1).str[-1]          # "00000_00.jpg" for both sides (VITON-HD)
    res = check_landmarks(t, catalog=catalog_of(table))
    assert res.errors == []
    assert set(res.table.image) == set(table.image)                # resolved to the dataset's paths
    both = catalog_of(table)
    dup = both.assign(image=both.image.str.replace("test/", "train/"), asset_id=None)
    errs = check_landmarks(t, catalog=pd.concat([both, dup])).errors
    assert codes(errs) == ["ambiguous-image"]


def test_duplicate_record_and_frame_mismatch(table, tmp_path):
    p = synth.write_as(table, "flat-csv", tmp_path / "d.csv")
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:2] + lines[1:]) + "\n")                     # line 2 repeated as line 3
    errs = check_landmarks(read_landmarks(p)).errors
    assert codes(errs) == ["duplicate-record"] and "annotated 2 times: line 2, line 3" in errs[0].message
    t = table.assign(width=384.0, height=512.0)
    errs = check_landmarks(t, catalog=catalog_of(table)).errors
    assert set(codes(errs)) == {"frame-mismatch"} and "384x512 frame" in errs[0].message


def test_garment_without_its_person_is_a_warning(table):
    t = table[~((table.side == "person") & table.image.str.contains("00001"))]
    res = check_landmarks(t)
    assert res.errors == []
    [w] = res.warnings
    assert w.code == "pair-missing" and w.severity == "warn" and "test/cloth/00001_00.jpg" in w.message
    t2 = table.copy()
    t2.loc[(t2.side == "person") & (t2.point.isin([15, 16])) & t2.image.str.contains("00000"), ["attribute", "x", "y"]] = [0, np.nan, np.nan]
    [w] = check_landmarks(t2).warnings
    assert w.code == "pair-point-missing" and "landmark(s) 15, 16 present on garment" in w.message
    kept, _ = apply_policy(check_landmarks(t2), strict=True)                   # warnings never fail
    assert len(kept) == len(t2)


def test_pairs_by_name_handles_viton_and_vitonhd():
    df = pd.DataFrame({"image": ["c/000001_1.jpg", "i/000001_0.jpg", "cloth/00891_00.jpg", "image/00891_00.jpg", "cloth/x.jpg"],
                       "side": ["garment", "person", "garment", "person", "garment"]})
    p = pairs_by_name(df).set_index("garment_image")["person_image"]
    assert p["c/000001_1.jpg"] == "i/000001_0.jpg" and p["cloth/00891_00.jpg"] == "image/00891_00.jpg"
    assert p["cloth/x.jpg"] is None


def test_catalog_from_root_reads_roles_and_sizes(table, tmp_path):
    synth.write_images(table, tmp_path)
    cat = catalog_from_root(tmp_path)
    assert set(cat.role) == {"garment", "person"} and len(cat) == 6
    assert (cat.width == 192).all() and (cat.height == 256).all()
    assert role_of("train/cloth/a.jpg") == "garment" and role_of("x/parse/a.png") == "other"
    matched, unmatched = resolve(pd.DataFrame({"image": ["00000_00.jpg", "nope.jpg"], "side": ["person", "garment"]}), cat)
    assert matched.catalog_image.tolist() == ["test/image/00000_00.jpg"]
    assert unmatched.to_dict("records") == [{"image": "nope.jpg", "side": "garment", "reason": "missing"}]
