"""VITON: the three layouts (original, CP-VTON, CP-VTON+), the real CP-VTON+ sample, every fault kind."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.io import savemat

from vtondata.errors import LayoutNotFoundError, PoseFormatError, ValidationFailedError
from vtondata.fixtures import make_fixture
from vtondata.manifest import open_manifest
from vtondata.pose import read_openpose
from vtondata.prepare import prepare

SIZE = "128x96"


@pytest.fixture(scope="session")
def viton_roots(tmp_path_factory) -> dict:
    """Generated VITON roots, 8 persons each (6 train, 2 test); treat as read-only."""
    base = tmp_path_factory.mktemp("viton")
    return {lay: make_fixture("viton", base / lay, n=8, size=SIZE, seed=3, layout=lay)
            for lay in ("original", "cpvton", "cpvtonplus")}


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(src, dst)
    return dst


def _m(res):
    return open_manifest(manifest_dir=res.manifest_dir)


# --------------------------------------------------------------------------- generated layouts


@pytest.mark.parametrize("layout", ["original", "cpvton", "cpvtonplus"])
def test_each_layout_is_detected_and_counted(viton_roots, tmp_path, layout):
    res = prepare("viton", viton_roots[layout], out=tmp_path / "o", quiet=True)
    m = _m(res)
    assert m.meta["layout"] == layout
    s, t = m.samples, m.tuples
    assert ((s.kind == "person") & (s.split == "train")).sum() == 6
    assert ((s.kind == "person") & (s.split == "test")).sum() == 2
    assert set(s.item[s.kind == "person"]) == {f"{i:06d}" for i in range(1, 9)}
    by = t.groupby(["split", "setting"]).size().to_dict()
    assert by == {("train", "paired"): 6, ("test", "unpaired"): 2, ("test", "paired"): 2}
    unp = t[t.setting == "unpaired"]
    assert (unp.person.str[-8:-2] != unp.garment.str[-8:-2]).all()  # a different top
    train_list = "viton_train_pairs.txt" if layout == "original" else "train_pairs.txt"
    assert set(t[t.split == "train"].source) == {train_list} and sorted(t[t.split == "train"].line) == list(range(1, 7))
    a = m.assets.set_index("asset_id")
    assert a.loc["train/person/000001_0", "width"] == 96 and a.loc["train/person/000001_0", "height"] == 128
    if layout == "original":
        assert a.loc["train/person/000001_0", "path"] == "women_top/000001_0.jpg"
        parse = a.loc["train/parse/000001_0"]
        assert parse.path == "segment/000001_0.mat" and parse.encoding == "viton_mat" and parse.label_space == "lip20"
        assert (parse.width, parse.height) == (96, 128)  # the person's size, needed to undo the padding
        assert a.loc["train/pose/000001_0", "encoding"] == "openpose_mat"
        assert m.meta["notes"]["native_size"] == [762, 1100]
        assert "non-native-size" in m.meta["validation"]["codes"]
    else:
        pose = a.loc["test/pose/000007_0"]
        assert pose.path == "test/pose/000007_0_keypoints.json" and pose.keypoint_format == "coco18_old"
        assert a.loc["train/garment_mask/000001_1", "label_space"] == "binary"
    if layout == "cpvton":
        p = a.loc["train/parse/000002_0"]
        assert (p.path, p["mode"], p.encoding, p.label_space) == ("train/image-parse/000002_0.png", "P", "palette_ids",
                                                               "lip20")
    if layout == "cpvtonplus":
        p, v = a.loc["train/parse/000002_0"], a.loc["train/parse_vis/000002_0"]
        assert (p.path, p.encoding, p.label_space) == ("train/image-parse-new/000002_0.png", "gray_ids", "cihp20")
        assert (v.path, v["mode"], v.encoding, v.label_space) == ("train/image-parse/000002_0.png", "RGB",
                                                               "rgb_colours", "lip20")
        assert a.loc["train/person_mask/000002_0", "path"] == "train/image-mask/000002_0.png"
        paired = t[(t.setting == "paired") & (t.split == "test")]
        assert set(paired.source) == {"test_pairs_same.txt"} and sorted(paired.line) == [1, 2]


def test_split_sizes_are_compared_with_the_full_release(viton_roots, tmp_path):
    res = prepare("viton", viton_roots["cpvton"], out=tmp_path / "o", quiet=True)
    warns = [f.message for f in res.report.warns if f.code == "split-size"]
    assert any("train: 6 pairs" in w and "14221" in w for w in warns)
    assert any("test: 2 pairs" in w and "2032" in w for w in warns)


def test_train_test_duplicates_are_named(viton_roots, tmp_path):
    """The fixture copies train person 000001 into test 000008, as VITON's train / test overlap; each is named."""
    root = viton_roots["cpvton"]
    truth = json.loads((root / ".vtondata-fixture" / "truth.json").read_text())
    assert truth["duplicates"] == [["test/image/000008_0.jpg", "train/image/000001_0.jpg"]]
    res = prepare("viton", root, out=tmp_path / "o", quiet=True)
    named = {(f.file, f.message) for f in res.report.warns if f.code == "train-test-duplicate"}
    assert any(file == "test/image/000008_0.jpg" and "train/image/000001_0.jpg" in msg for file, msg in named)
    assert any(file == "test/cloth/000008_1.jpg" and "train/cloth/000001_1.jpg" in msg for file, msg in named)
    assert len(named) == 2
    # and the report file lists them
    report = pd.read_csv(res.report_file)
    assert set(report[report.code == "train-test-duplicate"].file) == {"test/image/000008_0.jpg",
                                                                        "test/cloth/000008_1.jpg"}


def test_fixture_is_mutually_consistent(viton_roots):
    """Parse, pose and image of one person agree: the upper-clothes region is where the neck keypoint sits below."""
    root = viton_roots["cpvtonplus"]
    parse = np.asarray(Image.open(root / "train" / "image-parse-new" / "000003_0.png"))
    lip = np.asarray(Image.open(root / "train" / "image-parse" / "000003_0.png"))
    kp, fmt = read_openpose(root / "train" / "pose" / "000003_0_keypoints.json")
    assert fmt == "coco18_old" and kp.shape == (18, 3)
    x, y = int(kp[1, 0]), int(kp[1, 1])  # neck
    assert parse[y, x] in (5, 10)  # on the garment or the neck skin
    # the RGB LIP rendering is the grey CIHP map with the neck (10) as background
    from vtondata.labels import label_space

    ids = label_space("lip20").ids_from_colors(lip)
    np.testing.assert_array_equal(ids, np.where(parse == 10, 0, parse))
    mask = np.asarray(Image.open(root / "train" / "image-mask" / "000003_0.png"))
    assert set(np.unique(mask)) <= {0, 1, 254, 255}
    np.testing.assert_array_equal(mask >= 128, parse > 0)
    side = pd.read_csv(root / ".vtondata-fixture" / "landmarks.csv")
    assert set(side.image) >= {"train/image/000003_0.jpg", "train/cloth/000003_1.jpg"}
    assert len(side[side.image == "train/image/000003_0.jpg"]) == 32


def test_no_layout_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutNotFoundError) as e:
        prepare("viton", tmp_path / "empty", out=tmp_path / "o")
    assert "no known viton layout" in str(e.value)


# --------------------------------------------------------------------------- the original release's files


def test_read_segment_mat_undoes_transpose_and_padding(tmp_path):
    """build_viton.py: transpose, keep int(641*w/h) columns (portrait), nearest-resize to (h, w)."""
    from vtondata.datasets.viton import read_segment_mat

    w, h = 762, 1100  # the release's image size
    keep = int(641 * w / h)
    assert keep == 444
    stored_t = np.full((641, 641), 19, np.uint8)  # 19 marks the padding, which must vanish
    stored_t[:, :keep] = (np.arange(keep) * 4 // keep)[None, :] + 1  # four vertical bands, ids 1..4
    stored_t[:320, :keep] += 10  # top half 11..14
    savemat(tmp_path / "a.mat", {"segment": stored_t.T})  # stored transposed
    ids = read_segment_mat(tmp_path / "a.mat", w, h)
    assert ids.shape == (h, w) and ids.dtype == np.uint8
    assert 19 not in np.unique(ids)
    assert set(np.unique(ids)) == {1, 2, 3, 4, 11, 12, 13, 14}
    assert ids[0, 0] == 11 and ids[-1, -1] == 4 and ids[-1, 0] == 1 and ids[0, -1] == 14
    # landscape: rows are cropped instead
    stored_t = np.full((641, 641), 19, np.uint8)
    stored_t[: int(641 * 100 / 200), :] = 7
    savemat(tmp_path / "b.mat", {"segment": stored_t.T})
    ids = read_segment_mat(tmp_path / "b.mat", 200, 100)
    assert ids.shape == (100, 200) and set(np.unique(ids)) == {7}


def test_original_fixture_round_trips_parse_and_pose(viton_roots):
    from vtondata.datasets.viton import read_pose_mat, read_pose_pkl, read_segment_mat
    from vtondata.labels import label_space

    root = viton_roots["original"]
    img = Image.open(root / "women_top" / "000002_0.jpg")
    ids = read_segment_mat(root / "segment" / "000002_0.mat", *img.size)
    assert ids.shape == (img.size[1], img.size[0]) and ids.max() < label_space("lip20").num_classes
    # the person is where the parse says (not background): the image there differs from the light background
    rgb = np.asarray(img).astype(int)
    assert rgb[ids == 5].mean() < rgb[ids == 0].mean() - 20
    kp_mat = read_pose_mat(root / "pose" / "000002_0.mat")
    poses = read_pose_pkl(root / "pose.pkl")
    assert set(poses) == {f"{i:06d}_0" for i in range(1, 9)}
    np.testing.assert_allclose(poses["000002_0"], kp_mat)
    assert kp_mat.shape == (18, 3) and (kp_mat[1, 2] > 0)
    for j in (2, 5, 8, 11):  # shoulders and hips lie on the person (the neck is LIP background)
        x, y = kp_mat[j, :2].astype(int)
        assert ids[y, x] != 0


def test_pose_pkl_alone_and_missing_entries(viton_roots, tmp_path):
    """Without pose/ the poses come from pose.pkl; a person missing from it fails, naming pose.pkl."""
    root = _copy(viton_roots["original"], tmp_path)
    shutil.rmtree(root / "pose")
    res = prepare("viton", root, out=tmp_path / "o", quiet=True)
    assert res.meta["notes"]["pose_source"] == "pose.pkl" and "pose.pkl" in res.meta["list_files"]
    poses = pickle.loads((root / "pose.pkl").read_bytes())
    del poses["000003_0"]
    (root / "pose.pkl").write_bytes(pickle.dumps(poses, protocol=2))
    with pytest.raises(ValidationFailedError) as e:
        prepare("viton", root, out=tmp_path / "o2", quiet=True)
    assert any(f.code == "missing-pose" and f.file == "pose.pkl" and "000003_0" in f.message for f in e.value.findings)
    res = prepare("viton", root, out=tmp_path / "o3", quiet=True, strict=False)
    assert "train/person/000003_0" not in set(_m(res).samples.sample_id)


def test_pose_pickle_never_runs_code(tmp_path):
    from vtondata.datasets.viton import read_pose_pkl

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / "pose.pkl").write_bytes(pickle.dumps({"000001_0": Evil()}))
    with pytest.raises(PoseFormatError) as e:
        read_pose_pkl(tmp_path / "pose.pkl")
    assert "pose.pkl" in str(e.value) and not marker.exists()


# --------------------------------------------------------------------------- real CP-VTON+ files


REAL_PERSONS = {"000001_0", "000010_0", "000258_0", "000501_0", "003491_0", "019561_0"}
REAL_CLOTHS = {"002447_1", "003491_1", "004325_1", "005053_1", "019465_1"}


def test_real_cpvtonplus_sample(realdata, tmp_path):
    """The real files unchanged, with the sample's one-line pair list as test_pairs.txt."""
    src = realdata / "viton" / "cpvtonplus_sample"
    root = tmp_path / "VITON_PLUS"
    shutil.copytree(src / "test", root / "test")
    shutil.copy(src / "test_samples_pair.txt", root / "test_pairs.txt")
    res = prepare("viton", root, out=tmp_path / "o", quiet=True)  # strict: the real files pass every check
    m = _m(res)
    assert m.meta["layout"] == "cpvtonplus" and m.meta["image_size"] == [192, 256]
    s = m.samples
    assert set(s[s.kind == "person"].name) == REAL_PERSONS and set(s[s.kind == "garment"].name) == REAL_CLOTHS
    t = m.tuples.set_index("tuple_id")
    assert t.loc["test/unpaired/000001_0__004325_1", "source"] == "test_pairs.txt"
    assert t.loc["test/unpaired/000001_0__004325_1", "line"] == 1
    assert list(t[t.setting == "paired"].index) == ["test/paired/003491_0__003491_1"]  # the only own top present
    assert m.meta["notes"]["paired_test_without_own_top"] == 5
    a = m.assets.set_index("asset_id")
    vis = a.loc["test/parse_vis/000001_0"]
    assert (vis["mode"], vis.encoding, vis.label_space) == ("RGB", "rgb_colours", "lip20")
    assert (a.loc["test/parse/000001_0", "encoding"], a.loc["test/parse/000001_0", "mode"]) == ("gray_ids", "L")
    assert a.loc["test/person_mask/000001_0", "label_space"] == "binary"
    assert set(a[a.role == "pose"].keypoint_format) == {"coco18_old"}
    # the values behind those checks
    from vtondata.decode import read_parse
    from vtondata.labels import label_space

    ids = read_parse(root / "test" / "image-parse-new" / "000001_0.png")
    assert set(np.unique(ids)) == {0, 2, 5, 9, 10, 13, 14, 15}
    rgb_ids = label_space("lip20").ids_from_colors(np.asarray(Image.open(root / "test" / "image-parse" /
                                                                       "000001_0.png").convert("RGB")))
    assert set(np.unique(rgb_ids)) == {0, 2, 5, 9, 10, 13, 14, 15}
    body = np.asarray(Image.open(root / "test" / "image-mask" / "000001_0.png"))
    assert set(np.unique(body)) == {0, 1, 254, 255}  # accepted as binary
    cm = np.asarray(Image.open(root / "test" / "cloth-mask" / "004325_1.jpg"))
    assert cm.max() == 255 and ((cm > 7) & (cm < 248)).sum() == 0  # JPEG noise only, accepted
    kp, fmt = read_openpose(root / "test" / "pose" / "000001_0_keypoints.json")
    assert fmt == "coco18_old"
    np.testing.assert_allclose(kp[0], [111, 30, 0.7538856863975525])
    np.testing.assert_allclose(kp[1], [102, 80, 0.6609367728233337])
    assert (kp[10] == 0).all() and (kp[13] == 0).all()  # right and left ankle not detected


def test_real_sample_root_without_pair_list(realdata, tmp_path):
    """The sample as shipped has no test_pairs.txt: strict names the missing list; lenient still ingests."""
    src = realdata / "viton" / "cpvtonplus_sample"
    with pytest.raises(ValidationFailedError) as e:
        prepare("viton", src, out=tmp_path / "o", quiet=True)
    assert [(f.code, f.file) for f in e.value.findings if f.severity == "fail"] == [("missing-list", "test_pairs.txt")]
    res = prepare("viton", src, out=tmp_path / "o", quiet=True, strict=False)
    assert res.meta["counts"]["samples"] == 11 and res.meta["counts"]["tuples_by"] == {"test/paired": 1}


# --------------------------------------------------------------------------- faults


def _inject(root: Path) -> dict:
    """One fault of each kind in a CP-VTON+ root; returns {code: where it must be reported}."""
    faults = {}
    (root / "train" / "image-parse-new" / "000001_0.png").unlink()
    faults["missing-file"] = "train/image-parse-new/000001_0.png"
    with open(root / "train_pairs.txt", "a") as fh:
        fh.write("000002_0.jpg\n")  # line 7: one column
        fh.write("../../etc/passwd 000002_1.jpg\n")  # line 8
        fh.write("999999_0.jpg 000002_1.jpg\n")  # line 9
    faults["malformed-line"] = "train_pairs.txt:7"
    faults["unsafe-path"] = "train_pairs.txt:8"
    faults["pair-unresolved"] = "train_pairs.txt:9"
    p = root / "train" / "image" / "000002_0.jpg"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    faults["truncated-image"] = "train/image/000002_0.jpg"
    (root / "train" / "cloth" / "000003_1.jpg").write_bytes(b"\x89PNG not really")
    faults["corrupt-image"] = "train/cloth/000003_1.jpg"
    grey = np.zeros((128, 96), np.uint8)
    grey[20:110, 15:80] = 128
    Image.fromarray(grey).save(root / "train" / "cloth-mask" / "000004_1.jpg", quality=95)
    faults["mask-not-binary"] = "train/cloth-mask/000004_1.jpg"
    pp = root / "train" / "image-parse-new" / "000005_0.png"
    ids = np.array(Image.open(pp))
    ids[:6, :6] = 42
    Image.fromarray(ids).save(pp)
    faults["parse-out-of-space"] = "train/image-parse-new/000005_0.png"
    (root / "train" / "pose" / "000006_0_keypoints.json").write_bytes(b"")
    faults["bad-json"] = "train/pose/000006_0_keypoints.json"
    return faults


def test_strict_names_every_fault(viton_roots, tmp_path):
    root = _copy(viton_roots["cpvtonplus"], tmp_path)
    faults = _inject(root)
    # an RGB parse colour outside LIP is a second parse fault (the parse_vis of person 000001 is untouched)
    vp = root / "test" / "image-parse" / "000007_0.png"
    rgb = np.array(Image.open(vp))
    rgb[:4, :4] = (1, 2, 3)
    Image.fromarray(rgb).save(vp)
    out = tmp_path / "o"
    with pytest.raises(ValidationFailedError) as e:
        prepare("viton", root, out=out, quiet=True)
    found = {(f.code, f.where()) for f in e.value.findings if f.severity == "fail"}
    for code, where in faults.items():
        assert (code, where) in found, f"{code} at {where} not reported; got {sorted(found)}"
    assert ("parse-out-of-space", "test/image-parse/000007_0.png") in found
    assert not (out / "manifest").exists()
    assert "train_pairs.txt:7" in str(e.value)


def test_lenient_drops_the_bad_rows(viton_roots, tmp_path):
    root = _copy(viton_roots["cpvtonplus"], tmp_path)
    _inject(root)
    res = prepare("viton", root, out=tmp_path / "o", strict=False, quiet=True)
    m = _m(res)
    persons = set(m.samples[m.samples.kind == "person"].name)
    garments = set(m.samples[m.samples.kind == "garment"].name)
    assert not persons & {"000001_0", "000002_0", "000005_0", "000006_0"}
    assert not garments & {"000003_1", "000004_1"}
    assert "000007_0" in persons and "000008_1" in garments
    train = m.tuples[m.tuples.split == "train"]
    assert len(train) == 0  # every train pair lost its person or its top
    assert not (m.tuples.line >= 7).any()
    assert res.meta["dropped"]["samples"] == 6
    assert Path(res.meta["report_file"]).exists()


def test_fixture_cli_writes_each_layout(tmp_path):
    from typer.testing import CliRunner

    from cli import app

    r = CliRunner().invoke(app, ["fixtures", "make", "viton", str(tmp_path / "v"), "--n", "4", "--size", "128x96",
                                 "--layout", "original"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "v" / "viton_test_pairs.txt").read_text().count("\n") == 1
    assert (tmp_path / "v" / "pose.pkl").is_file() and len(list((tmp_path / "v" / "segment").glob("*.mat"))) == 4
    r = CliRunner().invoke(app, ["fixtures", "make", "viton", str(tmp_path / "w"), "--layout", "nope"])
    assert r.exit_code == 2 and "unknown viton layout" in r.output


def test_original_manifest_rows_decode(viton_roots, tmp_path):
    """The .mat parse row carries its person's size, so decode_asset undoes the padding; .mat poses decode too."""
    from vtondata.datasets.viton import read_pose_mat
    from vtondata.decode import decode_asset

    root = viton_roots["original"]
    m = _m(prepare("viton", root, out=tmp_path / "o", quiet=True))
    a = m.assets.set_index("asset_id")
    parse = decode_asset(a.loc["test/parse/000007_0"].to_dict() | {"path": "segment/000007_0.mat"}, root)
    assert parse.shape == (128, 96) and parse.max() < 20 and (parse == 5).sum() > 100
    pose = decode_asset(a.loc["test/pose/000007_0"].to_dict() | {"path": "pose/000007_0.mat"}, root)
    np.testing.assert_allclose(pose, read_pose_mat(root / "pose" / "000007_0.mat"))
    assert pose.shape == (18, 3)
