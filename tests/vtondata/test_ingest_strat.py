"""STRAT: fixture layouts, homography checks against OpenCV, the composite, every fault kind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vtondata.datasets.strat import (apply_homography, as_points, find_subsets, homography_error, key_lines)
from vtondata.errors import ValidationFailedError
from vtondata.fixtures import make_fixture
from vtondata.fixtures.strat import composite
from vtondata.labels import label_space
from vtondata.manifest import open_manifest
from vtondata.prepare import prepare

SIZE = "128x128"


@pytest.fixture(scope="module")
def strat_root(tmp_path_factory) -> Path:
    return make_fixture("strat", tmp_path_factory.mktemp("strat") / "STRAT", n=4, size=SIZE, seed=2)


@pytest.fixture(scope="module")
def strat_manifest(strat_root, tmp_path_factory):
    res = prepare("strat", strat_root, out=tmp_path_factory.mktemp("strat_out"), quiet=True)
    return res, open_manifest(manifest_dir=res.manifest_dir)


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(src, dst)
    return dst


def _fails(exc) -> set:
    return {(f.code, f.file, f.line) for f in exc.value.findings if f.severity == "fail"}


def test_prepare_counts_and_tables(strat_manifest):
    res, m = strat_manifest
    assert m.meta["layout"] == "face-names" and res.report.n_fail == 0
    assert m.meta["notes"]["subset_dirs"] == {"glasses": "face_glasses", "hat": "face_hat", "tie": "body_tie"}
    t = m.tuples
    # 4 per subset: 3 train + 1 test
    assert len(t) == 12 and set(t.kind) == {"accessory"} and set(t.setting) == {"glasses", "hat", "tie"}
    assert ((t.split == "test") & (t.setting == "tie")).sum() == 1
    row = t.set_index("tuple_id").loc["train/glasses/00000"]
    assert (row.foreground, row.background, row.composite) == (
        "train/foreground/glasses/00000", "train/background/glasses/00000", "train/composite/glasses/00000")
    assert row.source == "face_glasses/train/trans_params.json" and row.line == 2
    s = m.samples
    assert set(s.kind) == {"foreground", "background", "composite"} and len(s) == 36
    assert set(s.category) == {"glasses", "hat", "tie"}
    a = m.assets
    parse = a[a.role.isin(["background_parse", "composite_parse"])]
    spaces = parse.groupby(parse.asset_id.str.split("/").str[2]).label_space.agg(set).to_dict()
    assert spaces == {"glasses": {"face12"}, "hat": {"face12"}, "tie": {"body8"}}
    fg = a[a.role == "foreground"]
    assert set(fg["mode"]) == {"RGBA"} and set(fg.format) == {"PNG"}
    assert set(a[a.role == "foreground_mask"].label_space) == {"binary"}
    assert m.meta["notes"]["matrix_key"] == {"glasses/train": ["trans_matrix"], "glasses/test": ["trans_matrix"],
                                             "hat/train": ["trans_matrix"], "hat/test": ["trans_matrix"],
                                             "tie/train": ["trans_matri"], "tie/test": ["trans_matri"]}


def test_homographies_agree_with_opencv(strat_manifest):
    _, m = strat_manifest
    p = m.table("strat_params")
    assert len(p) == 12 and (p.reproj_error_px < 0.01).all()
    for _, r in p.iterrows():
        init = np.asarray(r.init_vertex, np.float64).reshape(4, 2)
        final = np.asarray(r.final_vertex, np.float64).reshape(4, 2)
        ref, _ = cv2.findHomography(init, final)  # the reference the README names
        h = np.asarray(r.homography).reshape(3, 3)
        np.testing.assert_allclose(h / h[2, 2], ref / ref[2, 2], rtol=1e-3, atol=1e-3)
        got = cv2.perspectiveTransform(init.reshape(1, 4, 2), h)[0]
        np.testing.assert_allclose(apply_homography(h, init), got, atol=1e-9)


def test_composite_is_the_warped_foreground(strat_root):
    d = strat_root / "face_glasses" / "train"
    params = json.loads((d / "trans_params.json").read_text())
    key, entry = next(iter(params.items()))
    fg = np.asarray(Image.open(d / "foreground" / f"{key}.png"))
    bg = np.asarray(Image.open(d / "background" / f"{key}.jpg"))
    comp = np.asarray(Image.open(d / "composite" / f"{key}.jpg")).astype(float)
    h = np.asarray(entry["trans_matrix"])
    # bcmi's composite_by_opencv: warpPerspective on the RGBA foreground, alpha blend
    warp = cv2.warpPerspective(fg, h, (fg.shape[1], fg.shape[0]))
    a = warp[..., 3:] / 255.0
    ref = a * warp[..., :3] + (1 - a) * bg
    assert np.abs(comp - ref).mean() < 3.0
    mine, alpha = composite(bg, fg, h)
    assert np.abs(mine.astype(float) - ref).max() <= 1.0
    # the warped accessory sits where final_vertex says and the composite parse labels it glasses
    final = as_points(entry["final_vertex"], 4)
    ys, xs = np.nonzero(alpha >= 128)
    assert final[:, 0].min() - 1 <= xs.min() and xs.max() <= final[:, 0].max() + 1
    pc = np.asarray(Image.open(d / "background_mask_comp" / f"{key}.png"))
    assert (pc[alpha >= 128] == label_space("face12").id_of("glasses")).all()
    bgp = np.asarray(Image.open(d / "background_mask" / f"{key}.png"))
    assert label_space("face12").id_of("glasses") not in np.unique(bgp) and bgp.max() < 12


def test_other_layouts(tmp_path):
    r1 = make_fixture("strat", tmp_path / "A", n=2, size="96x96", seed=4, layout="strat-names")
    assert find_subsets(r1) == {"glasses": "STRAT-glasses", "hat": "STRAT-hat", "tie": "STRAT-tie"}
    m = open_manifest(manifest_dir=prepare("strat", r1, out=tmp_path / "o1", quiet=True).manifest_dir)
    assert m.meta["layout"] == "strat-names" and len(m.tuples) == 6
    r2 = make_fixture("strat", tmp_path / "B" / "face_hat", n=2, size="96x96", seed=4, layout="single")
    m = open_manifest(manifest_dir=prepare("strat", r2, out=tmp_path / "o2", quiet=True).manifest_dir)
    assert m.meta["layout"] == "single" and set(m.tuples.setting) == {"hat"}
    assert set(m.assets[m.assets.role == "background_parse"].label_space) == {"face12"}
    assert m.assets.path.str.startswith("train/").sum() + m.assets.path.str.startswith("test/").sum() == len(m.assets)
    r3 = tmp_path / "C" / "mystery"
    shutil.copytree(r2, r3)
    with pytest.raises(ValidationFailedError) as e:
        prepare("strat", r3, out=tmp_path / "o3", quiet=True)
    assert any(f.code == "unknown-subset" for f in e.value.findings)


def test_helpers():
    h = np.array([[1.2, 0.1, 5], [0.05, 0.9, -3], [1e-3, 2e-4, 1]])
    init = np.array([[0, 0], [10, 0], [10, 20], [0, 20]], float)
    final = cv2.perspectiveTransform(init.reshape(1, 4, 2), h)[0]
    assert homography_error(init, final, h) < 1e-9
    assert homography_error(init.reshape(-1).tolist(), (final + [[0, 2], [0, 0], [0, 0], [0, 0]]).tolist(), h) == \
        pytest.approx(2.0)
    assert homography_error(init, final, np.zeros((3, 3))) == float("inf")
    with pytest.raises(ValueError):
        as_points([[1, 2], [3, 4]], 4)
    text = '{\n  "a": {"init_vertex": 1},\n\n  "b\\"c": 2\n}'
    assert key_lines(text) == {"a": 2, "init_vertex": 2, 'b\\"c': 4}


# --------------------------------------------------------------------------- faults


def _edit_params(root: Path, sub: str, split: str, fn) -> Path:
    p = root / sub / split / "trans_params.json"
    params = json.loads(p.read_text())
    fn(params)
    p.write_text(json.dumps(params, indent=2))
    return p


def test_bad_homography_names_file_line_and_key(strat_root, tmp_path):
    root = _copy(strat_root, tmp_path)

    def spoil(params):
        h = np.asarray(params["00001"]["trans_matrix"])
        h[0] += 7.5 * h[2]  # translation after the homography: every vertex lands 7.5 px to the right
        params["00001"]["trans_matrix"] = h.tolist()

    _edit_params(root, "face_hat", "train", spoil)
    with pytest.raises(ValidationFailedError) as e:
        prepare("strat", root, out=tmp_path / "s", quiet=True)
    bad = [f for f in e.value.findings if f.code == "homography-mismatch"]
    text = (root / "face_hat/train/trans_params.json").read_text().splitlines()
    line = next(i for i, ln in enumerate(text, 1) if ln.strip().startswith('"00001"'))
    assert len(bad) == 1 and bad[0].file == "face_hat/train/trans_params.json" and bad[0].line == line
    assert "'00001'" in bad[0].message and "7.50 px" in bad[0].message
    res = prepare("strat", root, out=tmp_path / "l", strict=False, quiet=True)
    m = open_manifest(manifest_dir=res.manifest_dir)
    assert "train/hat/00001" not in set(m.tuples.tuple_id) and len(m.tuples) == 11
    assert "train/hat/00001" not in set(m.table("strat_params").tuple_id)


def test_malformed_entries_unsafe_keys_and_json(strat_root, tmp_path):
    root = _copy(strat_root, tmp_path)

    def spoil(params):
        del params["00000"]["final_vertex"]
        params["00001"]["init_vertex"] = [[0, 0], [1, 1]]
        params["../../evil"] = params["00002"]

    _edit_params(root, "face_glasses", "train", spoil)
    with pytest.raises(ValidationFailedError) as e:
        prepare("strat", root, out=tmp_path / "s", quiet=True)
    tp = "face_glasses/train/trans_params.json"
    codes = {(c, f) for c, f, _ in _fails(e)}
    assert ("bad-trans-params", tp) in codes and ("unsafe-path", tp) in codes
    msgs = [f.message for f in e.value.findings if f.code == "bad-trans-params"]
    assert any("'00000'" in x for x in msgs) and any("'00001'" in x for x in msgs)
    m = open_manifest(manifest_dir=prepare("strat", root, out=tmp_path / "l", strict=False, quiet=True).manifest_dir)
    assert len(m.tuples) == 10
    (root / "face_hat/test/trans_params.json").write_text("{not json")
    with pytest.raises(ValidationFailedError) as e:
        prepare("strat", root, out=tmp_path / "j", quiet=True)
    assert ("bad-json", "face_hat/test/trans_params.json", None) in _fails(e)


def test_missing_sibling_and_corrupt_image(strat_root, tmp_path):
    root = _copy(strat_root, tmp_path)
    (root / "body_tie/train/foreground_mask/00002.png").unlink()
    (root / "face_glasses/test/background/00003.jpg").write_bytes(b"garbage")
    with pytest.raises(ValidationFailedError) as e:
        prepare("strat", root, out=tmp_path / "s", quiet=True)
    codes = _fails(e)
    assert ("missing-file", "body_tie/train/foreground_mask/00002.png", None) in codes
    assert ("corrupt-image", "face_glasses/test/background/00003.jpg", None) in codes
    m = open_manifest(manifest_dir=prepare("strat", root, out=tmp_path / "l", strict=False, quiet=True).manifest_dir)
    assert {"train/tie/00002", "test/glasses/00003"}.isdisjoint(set(m.tuples.tuple_id)) and len(m.tuples) == 10


def test_non_binary_mask_and_parse_outside_space(strat_root, tmp_path):
    root = _copy(strat_root, tmp_path)
    ramp = np.tile(np.linspace(0, 255, 128).astype(np.uint8), (128, 1))
    Image.fromarray(ramp).save(root / "face_hat/train/foreground_mask/00000.png")
    ids = np.asarray(Image.open(root / "body_tie/test/background_mask/00003.png")).copy()
    ids[:4, :4] = 9  # body-8 has ids 0-7
    Image.fromarray(ids).save(root / "body_tie/test/background_mask/00003.png")
    with pytest.raises(ValidationFailedError) as e:
        prepare("strat", root, out=tmp_path / "s", quiet=True)
    codes = _fails(e)
    assert ("mask-not-binary", "face_hat/train/foreground_mask/00000.png", None) in codes
    assert ("parse-out-of-space", "body_tie/test/background_mask/00003.png", None) in codes
    msg = next(f.message for f in e.value.findings if f.code == "parse-out-of-space")
    assert "body8" in msg and "16 pixels" in msg


def test_size_mismatch_within_a_sample(strat_root, tmp_path):
    root = _copy(strat_root, tmp_path)
    p = root / "face_glasses/train/composite/00001.jpg"
    Image.open(p).resize((100, 128)).save(p)
    with pytest.raises(ValidationFailedError) as e:
        prepare("strat", root, out=tmp_path / "s", quiet=True)
    assert ("wrong-size", "face_glasses/train/composite/00001.jpg", None) in _fails(e)
