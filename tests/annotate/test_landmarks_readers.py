"""Every reader: format -> canonical round trips, auto-detection, the registry and format errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annotate.landmarks import synth
from annotate.landmarks.readers import detect_format, read_landmarks, reader_names
from annotate.landmarks.readers.base import Reader, _READERS, register
from annotate.landmarks.table import normalise
from vtondata.errors import ListFileError, PoseFormatError

FILES = {"coco": "lm.json", "deepfashion2": "df2", "flat-csv": "lm_flat.csv", "canonical": "lm_long.csv", "cvat": "cvat"}


def _same(a: pd.DataFrame, b: pd.DataFrame, atol=1e-3):
    cols = ["image", "side", "point", "attribute", "scheme"]
    a, b = normalise(a), normalise(b)
    as_plain = {"image": str, "side": str, "scheme": str, "point": int, "attribute": int}   # categoricals -> values
    pd.testing.assert_frame_equal(a[cols].astype(as_plain).reset_index(drop=True),
                                  b[cols].astype(as_plain).reset_index(drop=True))
    np.testing.assert_allclose(a[["x", "y"]].to_numpy(np.float64), b[["x", "y"]].to_numpy(np.float64), atol=atol)


@pytest.fixture(scope="module")
def table():
    return synth.make_table(6, seed=3, p_absent=0.15, p_occluded=0.2)


@pytest.mark.parametrize("fmt", sorted(FILES))
def test_round_trip_and_detection(fmt, table, tmp_path):
    path = synth.write_as(table, fmt, tmp_path / FILES[fmt])
    assert detect_format(path) == fmt
    got = read_landmarks(path)
    _same(got, table, atol=5.1e-3 if fmt == "cvat" else 1e-3)  # CVAT stores 2 decimals
    assert {"source", "record"} <= set(got.columns)
    # all three person codes and both garment codes occur, so the attribute mapping is really exercised
    assert set(got.loc[got.side == "person", "attribute"]) == {0, 1, 2}
    assert set(got.loc[got.side == "garment", "attribute"]) == {0, 1}


def test_folder_of_cvat_and_df2_is_detected(table, tmp_path):
    synth.write_as(table, "cvat", tmp_path / "cv")
    assert detect_format(tmp_path / "cv") == "cvat"
    synth.write_as(table, "deepfashion2", tmp_path / "df")
    one = next((tmp_path / "df" / "person").glob("*.json"))
    assert detect_format(one) == "deepfashion2"
    assert set(read_landmarks(one)["side"]) == {"person"}


def test_coco_attributes_extension_is_lossless(table, tmp_path):
    path = synth.write_as(table, "coco", tmp_path / "a.json", with_attributes=True)
    doc = json.loads(path.read_text())
    assert all(len(a["attributes"]) == 32 for a in doc["annotations"])
    _same(read_landmarks(path), table)


def test_inshop_round_trip(tmp_path):
    t = synth.make_inshop_table(9, seed=2)
    path = synth.write_as(t, "inshop", tmp_path / "list_landmarks_inshop.txt")
    assert detect_format(path) == "inshop"
    _same(read_landmarks(path), t, atol=0.51)  # the list stores integer pixels


def test_inshop_readme_layout(tmp_path):
    p = tmp_path / "list_landmarks_inshop.txt"
    p.write_text("2\nimage_name clothes_type variation_type landmark_visibility_1 landmark_location_x_1 ...\n"
                 "img/WOMEN/Dresses/id_00000002/02_1_front.jpg 3 1 0 100 50 1 150 52 0 60 120 0 190 121 "
                 "0 95 140 0 160 141 2 0 0 0 170 250\n"
                 "img/MEN/Denim/id_00000080/01_7_additional.jpg 2 6 0 80 20 0 170 21 0 70 240 0 180 241\n")
    df = read_landmarks(p)
    full = df[df.image.str.contains("Dresses")].sort_values("point")
    assert set(full.scheme) == {"inshop-full"} and set(full.side) == {"person"}
    assert full.attribute.tolist() == [2, 1, 2, 2, 2, 2, 0, 2]          # raw 0 visible / 1 occluded / 2 truncated
    assert np.isnan(full.x.iloc[6]) and full.x.iloc[1] == 150
    lower = df[df.image.str.contains("Denim")]
    assert set(lower.scheme) == {"inshop-lower"} and set(lower.side) == {"garment"}  # variation 6 = flat


def test_inshop_errors_name_the_line(tmp_path):
    p = tmp_path / "list_landmarks_inshop.txt"
    p.write_text("1\nimage_name clothes_type\nimg/a.jpg 1 1 0 1 1 5 2 2 0 3 3 0 4 4 0 5 5 0 6 6\n")
    with pytest.raises(ListFileError, match=r"list_landmarks_inshop.txt:3: .*visibility 5"):
        read_landmarks(p)
    p.write_text("3\nimage_name clothes_type\nimg/a.jpg 1 1 0 1 1 0 2 2 0 3 3 0 4 4 0 5 5 0 6 6\n")
    with pytest.raises(ListFileError, match="3 images but 1 rows"):
        read_landmarks(p)


def test_fixture_sidecar_is_read(vitonhd_root):
    side = vitonhd_root / ".vtondata-fixture" / "landmarks.csv"
    assert detect_format(side) == "canonical"
    df = read_landmarks(side)
    assert set(df.side) == {"garment", "person"} and set(df.scheme) == {"sal32"}
    assert (df.groupby(["image", "side"]).size() == 32).all()


def test_unknown_content_is_a_clear_error(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello\n")
    with pytest.raises(PoseFormatError, match="--from"):
        detect_format(p)
    with pytest.raises(PoseFormatError, match="does not exist"):
        detect_format(tmp_path / "missing.json")


def test_coco_format_errors_name_the_record(table, tmp_path):
    doc = json.loads(synth.write_as(table, "coco", tmp_path / "c.json").read_text())
    doc["annotations"][3]["image_id"] = 999
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(PoseFormatError, match=r"bad.json: annotation id 4: image_id 999"):
        read_landmarks(bad)
    doc["annotations"][3]["image_id"] = 1
    doc["categories"][0]["name"] = "hat"
    bad.write_text(json.dumps(doc))
    with pytest.raises(PoseFormatError, match="garment"):
        read_landmarks(bad)
    bad.write_text('{"images": [],\n "annotations": [,]}')
    with pytest.raises(PoseFormatError, match=r"bad.json:2: invalid JSON"):
        read_landmarks(bad, "coco")


def test_flat_csv_missing_column_is_named(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("image,side,x0,y0,v0,x1,y1\na.jpg,garment,1,2,1,3,4\n")
    with pytest.raises(PoseFormatError, match=r"point 1: missing column\(s\) v1"):
        read_landmarks(p, "flat-csv")


def test_adding_a_reader_is_one_registration(tmp_path):
    @register
    class Dummy(Reader):
        name = "dummy-test"
        priority = 0

        def sniff(self, path: Path) -> bool:
            return path.suffix == ".dummy"

        def read(self, path, *, scheme=None):
            return synth.make_table(1)

    try:
        p = tmp_path / "x.dummy"
        p.write_text("")
        assert "dummy-test" in reader_names()
        assert detect_format(p) == "dummy-test"
        assert len(read_landmarks(p)) == 64
        with pytest.raises(ValueError):
            register(Dummy)
    finally:
        _READERS.pop("dummy-test", None)
