"""The 32-point SAL-HG scheme and the In-shop point sets as data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotate.landmarks.definition import DATA_DIR, definition_names, load_definition, scheme_for_point_count
from vtondata.errors import UnknownNameError


def test_sal32_names_follow_the_template():
    d = load_definition("sal32")
    assert d.num_points == 32
    assert d.names[0] == "back_tip"
    assert d.names[1:7] == tuple(f"neckline_{i}" for i in range(1, 7))
    assert (d.names[7], d.names[8], d.names[17], d.names[18]) == ("left_shoulder", "left_armpit", "right_shoulder", "right_armpit")
    sleeve = ["upper_arm_ext", "upper_arm_int", "elbow_ext", "elbow_int", "lower_arm_ext", "lower_arm_int",
              "sleeve_end_ext", "sleeve_end_int"]
    assert d.names[9:17] == tuple(f"left_sleeve_{s}" for s in sleeve)
    assert d.names[19:27] == tuple(f"right_sleeve_{s}" for s in sleeve)
    assert d.names[27:] == ("left_waist", "right_waist", "left_bottom", "middle_bottom", "right_bottom")


def test_flip_partners_swap_left_and_right():
    d = load_definition("sal32")
    assert np.array_equal(d.flip[d.flip], np.arange(32))
    for k, name in enumerate(d.names):
        partner = d.names[d.flip[k]]
        if name.startswith("left_"):
            assert partner == "right_" + name[5:]
        elif name.startswith("right_"):
            assert partner == "left_" + name[6:]
    assert d.flip[0] == 0 and d.flip[30] == 30
    assert [d.flip[k] for k in range(1, 7)] == [6, 5, 4, 3, 2, 1]
    # the illustrative template is mirror-symmetric under the partner map
    np.testing.assert_allclose(d.template[d.flip, 0], 1 - d.template[:, 0], atol=1e-3)
    np.testing.assert_allclose(d.template[d.flip, 1], d.template[:, 1], atol=1e-3)


def test_skeleton_sigmas_and_outline_are_valid():
    d = load_definition("sal32")
    e = np.array(d.skeleton)
    assert e.min() >= 0 and e.max() < 32 and len(set(map(tuple, e))) == len(e)
    assert sorted(d.outline + (0,)) == list(range(32))  # every point but the back tip is on the outline
    assert (d.sigmas > 0).all() and (d.sigmas < 0.2).all()
    np.testing.assert_allclose(d.sigmas, d.sigmas[d.flip])  # partners share a sigma


def test_attribute_encodings_and_coco_visibility():
    d = load_definition("sal32")
    g, p = d.side("garment"), d.side("person")
    assert g.attributes == {0: "absent", 1: "present"}
    assert p.attributes == {0: "absent", 1: "occluded", 2: "visible"}
    assert g.lut_to_coco().tolist() == [0, 2]
    assert p.lut_to_coco().tolist() == [0, 1, 2]
    assert g.lut_from_coco().tolist() == [0, 1, 1]
    assert p.lut_from_coco().tolist() == [0, 1, 2]
    with pytest.raises(UnknownNameError):
        d.side("accessory")


def test_inshop_point_sets_follow_the_readme():
    up, lo, full = (load_definition(f"inshop-{t}") for t in ("upper", "lower", "full"))
    assert up.names == ("left_collar", "right_collar", "left_sleeve", "right_sleeve", "left_hem", "right_hem")
    assert lo.names == ("left_waistline", "right_waistline", "left_hem", "right_hem")
    assert full.names == ("left_collar", "right_collar", "left_sleeve", "right_sleeve", "left_waistline",
                          "right_waistline", "left_hem", "right_hem")
    raw = json.loads((DATA_DIR / "inshop_landmarks.json").read_text())
    assert raw["raw_visibility_to_attribute"] == {"0": 2, "1": 1, "2": 0}
    assert scheme_for_point_count(6) == "inshop-upper" and scheme_for_point_count(32) == "sal32"
    assert set(definition_names()) == {"sal32", "inshop-upper", "inshop-lower", "inshop-full"}


def test_unknown_scheme_is_a_clear_error():
    with pytest.raises(UnknownNameError, match="sal32"):
        load_definition("sal33")
