"""The synthetic generator is consistent (parse, pose, landmarks, garment) and deterministic; label spaces."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vtondata.errors import UnknownNameError, VtonDataError
from vtondata.fixtures import make_fixture, parse_size
from vtondata.fixtures.synth import FACE, NECK, UPPER, draw_sample
from vtondata.labels import label_space, mapping
from vtondata.manifest import atomic_write_bytes


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_fixture_is_deterministic(tmp_path):
    a = make_fixture("viton-hd", tmp_path / "a", n=3, size="128x96", seed=5)
    b = make_fixture("viton-hd", tmp_path / "b", n=3, size="128x96", seed=5)
    c = make_fixture("viton-hd", tmp_path / "c", n=3, size="128x96", seed=6)
    assert _tree_hash(a) == _tree_hash(b) != _tree_hash(c)


@pytest.mark.parametrize("seed", range(6))
def test_drawing_is_mutually_consistent(seed):
    d = draw_sample(np.random.default_rng(seed), 256, 192)
    kp = d.body25
    H, W = d.parse.shape
    # neck and shoulders sit on the drawn body; the nose on the face
    nose = kp[0, :2].round().astype(int)
    assert d.parse[nose[1], nose[0]] == FACE
    for j in (2, 5):  # shoulders lie on the garment or the arms
        x, y = kp[j, :2].round().astype(int)
        assert d.parse[y, x] in (UPPER, 14, 15, NECK)
    # the worn garment is where the in-shop garment's landmarks say, on both sides
    pres = d.lm_garment[:, 2] > 0
    gm = d.garment_mask > 127
    inside_g = [gm[min(H - 1, int(y)), min(W - 1, int(x))] for x, y, _ in d.lm_garment[pres]]
    assert np.mean(inside_g) > 0.6  # outline points: on or next to the mask boundary
    # person landmarks: present exactly where garment landmarks are present; tip of back occluded
    np.testing.assert_array_equal(d.lm_person[:, 2] > 0, pres)
    assert d.lm_person[0, 2] == 1 and set(np.unique(d.lm_person[pres, 2])) <= {1, 2}
    # the person's upper-clothes region carries the garment colours (texture mapped, not random)
    worn = d.person[d.parse == UPPER].reshape(-1, 3).mean(0)
    shop = d.garment[gm].reshape(-1, 3).mean(0) * 0.92
    assert np.abs(worn - shop).max() < 25
    # mask and garment image agree: white outside the mask
    assert (d.garment[~gm] > 240).all(axis=-1).mean() > 0.97
    # IUV: U, V zero where there is no part
    assert (d.iuv[d.iuv[..., 0] == 0][:, 1:] == 0).all()


def test_fixture_layout_and_sidecar(tmp_path):
    root = make_fixture("viton-hd", tmp_path / "z", n=4, size="256x192", seed=0)
    assert (root / "train_pairs.txt").read_text().count("\n") == 3
    assert (root / "test_pairs.txt").read_text() == "00003_00.jpg 00003_00.jpg\n"  # a single test pair
    raw = (root / "train" / "openpose_json" / "00000_00_keypoints.json").read_bytes()
    assert raw.count(b"\r\n") == 2
    parse = Image.open(root / "train" / "image-parse-v3" / "00000_00.png")
    assert parse.mode == "P" and parse.size == (192, 256)
    lm = pd.read_csv(root / ".vtondata-fixture" / "landmarks.csv")
    assert len(lm) == 4 * 2 * 32 and set(lm.side) == {"garment", "person"}


def test_bad_fixture_arguments():
    with pytest.raises(UnknownNameError):
        make_fixture("nope", Path("/tmp/x"))
    with pytest.raises(VtonDataError, match="HxW"):
        parse_size("big", (1, 1))
    assert parse_size("256x192", (1, 1)) == (256, 192)


def test_label_spaces_and_mappings():
    cihp, lip = label_space("cihp20"), label_space("lip20")
    assert cihp.names[10] == "Torso-skin" and lip.names[10] == "Jumpsuits"
    assert cihp.num_classes == lip.num_classes == 20 and label_space("atr18").num_classes == 18
    assert label_space("face12").names[4] == "glasses" and label_space("body8").names[-1] == "bags"
    ids = np.arange(20, dtype=np.uint8).reshape(4, 5)
    np.testing.assert_array_equal(lip.ids_from_colors(lip.colorize(ids)), ids)
    assert lip.ids_from_colors(np.array([[[1, 2, 3]]], np.uint8))[0, 0] == 255
    lut = mapping("cihp20", "vitonhd13")
    assert lut[10] == 0 and lut[13] == 2 and lut[5] == lut[6] == lut[7] == 3
    assert mapping("lip20", "atr18")[5] == 4  # upper clothes
    with pytest.raises(UnknownNameError):
        mapping("atr18", "face12")


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")

    import os

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"old" and [x.name for x in tmp_path.iterdir()] == ["f.bin"]
