"""DeepFashion: real split lists and Pose-with-Style files, every layout of the fixture, every fault kind."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from vtondata.datasets.deepfashion import (flatten_name, keypoints_from_row, parse_flat_name, parse_inshop_path,
                                           parse_keypoint_line, read_keypoint_csv, unflatten_name)
from vtondata.errors import ListFileError, ValidationFailedError
from vtondata.fixtures import make_fixture
from vtondata.manifest import open_manifest
from vtondata.pose import read_openpose, to_coco18
from vtondata.prepare import prepare, validate_root

SIZE = "96x64"
VIEW_NUMBERS = {"front": "1", "side": "2", "back": "3", "full": "4", "flat": "6", "additional": "7"}


# --------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def patn(realdata) -> Path:
    d = realdata / "deepfashion" / "patn_fashion_data"
    if not (d / "test.lst").is_file():
        pytest.skip(f"{d}/test.lst not found")
    return d


def _lines(p: Path) -> list[str]:
    return p.read_text().splitlines()


def test_real_test_lst_every_name_roundtrips(patn):
    names = _lines(patn / "test.lst")
    assert len(names) == 4038 and len(set(names)) == 4038
    persons = Counter()
    for name in names:
        path = unflatten_name(name)
        assert flatten_name(path) == name
        f, g = parse_flat_name(name), parse_inshop_path(path)
        assert f == g and f.ext == ".jpg" and f.gender in ("WOMEN", "MEN")
        assert path == f"img/{f.gender}/{f.category}/{f.item}/{f.pose}_{f.view_no}_{f.view}.jpg"
        assert f.item.startswith("id_") and len(f.item) == 11 and f.item[3:].isdigit()
        assert VIEW_NUMBERS[f.view] == f.view_no  # view names and numbers agree on every line
        persons[(f.gender, f.category, f.person)] += 1
    # the PATN test split: 1,000 persons (item + NN), mostly women
    assert len(persons) == 1000
    g = Counter(parse_flat_name(n).gender for n in names)
    assert g == {"WOMEN": 3448, "MEN": 590}
    first = parse_flat_name(names[0])
    assert (first.gender, first.category, first.item, first.pose, first.view_no, first.view) == (
        "MEN", "Shirts_Polos", "id_00001802", "02", "4", "full")
    assert unflatten_name(names[0]) == "img/MEN/Shirts_Polos/id_00001802/02_4_full.jpg"


def test_real_train_excerpt_roundtrips_and_is_held_out_from_test(patn):
    train = _lines(patn / "train.head300.lst")
    assert len(train) == 300
    for name in train:
        assert flatten_name(unflatten_name(name)) == name
    key = lambda n: (lambda f: (f.gender, f.category, f.person))(parse_flat_name(n))  # noqa: E731
    test = _lines(patn / "test.lst")
    assert not set(train) & set(test)
    assert not {key(n) for n in train} & {key(n) for n in test}
    # the garment item alone is NOT held out: the same item id appears in both with another NN
    assert {parse_flat_name(n).item for n in train} & {parse_flat_name(n).item for n in test}


def test_names_that_do_not_parse_are_refused():
    for bad in ("fashionKIDSDenimid0000008001_1front.jpg", "fashionMENDenimid000080_1front.jpg", "x.jpg"):
        assert parse_flat_name(bad) is None
        with pytest.raises(ListFileError):
            unflatten_name(bad)
    with pytest.raises(ListFileError):
        flatten_name("img/MEN/Denim/00000080/01_1_front.jpg")
    assert flatten_name("Img/img_highres/MEN/Denim/id_00000080/01_7_additional.jpg") == \
        "fashionMENDenimid0000008001_7additional.jpg"


def test_real_lists_prepare_end_to_end(patn, tmp_path):
    """The real test.lst and train excerpt drive a ``fashion`` root (images are hard links to one JPEG)."""
    root = tmp_path / "fashion_data"
    for split, lst in (("test", "test.lst"), ("train", "train.head300.lst")):
        (root / split).mkdir(parents=True)
        shutil.copy(patn / lst, root / f"{split}.lst")
        one = root / f".{split}.jpg"
        Image.new("RGB", (176, 256), (10, 20, 30) if split == "test" else (30, 20, 10)).save(one, quality=80)
        for name in _lines(patn / lst):
            os.link(one, root / split / name)
    res = prepare("deepfashion", root, out=tmp_path / "out", quiet=True)
    m = open_manifest(manifest_dir=res.manifest_dir)
    s = m.samples
    assert m.meta["layout"] == "fashion"
    assert (s.split == "test").sum() == 4038 and (s.split == "train").sum() == 300
    assert s.item[s.split == "test"].nunique() == 1000
    row = s.set_index("name").loc["fashionWOMENBlouses_Shirtsid0000069302_3back"]
    assert (row["gender"], row["category"], row["item"], row["view"], row["split"]) == (
        "WOMEN", "Blouses_Shirts", "id_00000693_02", "back", "test")
    assert len(m.tuples) == 0 and len(m.assets) == 4338
    sizes = {(f.severity, f.message) for f in res.report.findings if f.code == "split-size"}
    assert ("good", "test: 4038 person images as in the full release") in sizes
    assert ("warn", "train: 300 person images, the full release has 48674") in sizes


@pytest.fixture(scope="module")
def pws_real_root(pws_files, tmp_path_factory) -> Path:
    """A ``pws`` root built from the 3 real Pose-with-Style triples (PNG images, as in its data/ folder)."""
    root = tmp_path_factory.mktemp("pws_real") / "DATASET"
    for sub in ("DeepFashion_highres/test", "DeepFashion_highres/tools", "densepose/test", "silhouette/test"):
        (root / sub).mkdir(parents=True)
    for f in pws_files.iterdir():
        dst = {"_iuv.png": "densepose/test", "_sil.png": "silhouette/test"}.get(f.name[-8:], "DeepFashion_highres/test")
        shutil.copy(f, root / dst / f.name)
    return root


@pytest.fixture(scope="module")
def pws_files(realdata) -> Path:
    d = realdata / "deepfashion" / "pose_with_style_data"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d


def test_real_pose_with_style_files_prepare(pws_real_root, tmp_path):
    root = tmp_path / "DATASET"
    shutil.copytree(pws_real_root, root)
    a, b, c = ("fashionWOMENBlouses_Shirtsid0000635004_1front.png", "fashionWOMENDressesid0000262902_3back.png",
               "fashionWOMENSkirtsid0000177102_1front.png")
    (root / "DeepFashion_highres/tools/fashion-pairs-test.csv").write_text(f"from,to\n{a},{b}\n{b},{c}\n")
    res = prepare("deepfashion", root, out=tmp_path / "out", deep=True, quiet=True)
    m = open_manifest(manifest_dir=res.manifest_dir)
    assert m.meta["layout"] == "pws"
    assets = m.assets.set_index("asset_id")
    dp = assets.loc["test/densepose/fashionWOMENBlouses_Shirtsid0000635004_1front"]
    assert (dp.encoding, dp.width, dp.height, dp["mode"]) == ("pws_iuv", 348, 512, "RGB")
    sil = assets.loc["test/silhouette/fashionWOMENDressesid0000262902_3back"]
    assert (sil.label_space, sil["mode"]) == ("binary", "L")
    t = m.tuples
    assert len(t) == 2 and set(t.setting) == {"pose-transfer"} and list(t.line) == [2, 3]
    assert t.iloc[0].person == f"test/person/{a[:-4]}" and t.iloc[0].target_person == f"test/person/{b[:-4]}"
    # these real pairs join different persons: reported, not refused
    warn = [f for f in res.report.findings if f.code == "pair-not-same-person"]
    assert warn and warn[0].line == 2 and "2 pairs" in warn[0].message
    # a pair naming the front view of the dress, whose image is missing (only its _iuv.png is there)
    d1 = "fashionWOMENDressesid0000262902_1front.png"
    (root / "DeepFashion_highres/tools/fashion-pairs-test.csv").write_text(f"from,to\n{b},{d1}\n")
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "out2", quiet=True)
    assert any(f.code == "pair-unresolved" and f.line == 2 for f in e.value.findings)


# --------------------------------------------------------------------------- fixtures, every layout


@pytest.fixture(scope="module")
def df_roots(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("deepfashion")
    return {lay: make_fixture("deepfashion", base / lay, n=8, size=SIZE, seed=5, layout=lay)
            for lay in ("inshop", "fashion", "fashion-gfla", "pws", "3dgcl")}


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("layout,expect", [("inshop", "inshop"), ("fashion", "fashion"), ("fashion-gfla", "fashion"),
                                           ("pws", "pws"), ("3dgcl", "3dgcl")])
def test_every_layout_prepares(df_roots, tmp_path, layout, expect):
    res = prepare("deepfashion", df_roots[layout], out=tmp_path / "out", quiet=True)
    m = open_manifest(manifest_dir=res.manifest_dir)
    assert m.meta["layout"] == expect and res.report.n_fail == 0
    s, t = m.samples, m.tuples
    # 8 persons in two views each; the last quarter (2 persons) is test
    assert len(s) == 16 and (s.split == "test").sum() == 4 and s.item.nunique() == 8
    assert set(s.view) == {"front", "additional"} and set(s.gender) == {"WOMEN", "MEN"}
    # pairs: both orders of the two views of each person, never across persons
    assert len(t) == 16 and set(t.kind) == {"pair"} and set(t.setting) == {"pose-transfer"}
    item = s.set_index("sample_id").item
    assert (t.person.map(item) == t.target_person.map(item)).all() and (t.person != t.target_person).all()
    roles = Counter(m.assets.role)
    want = {"inshop": {"person": 16}, "fashion": {"person": 16}, "fashion-gfla": {"person": 16, "parse": 16},
            "pws": {"person": 16, "densepose": 16, "silhouette": 16},
            "3dgcl": {"person": 16, "pose": 16, "parse": 16}}[layout]
    assert dict(roles) == want


def test_layouts_share_sample_ids(df_roots, tmp_path):
    ids = {}
    for lay in ("inshop", "fashion", "pws"):
        m = open_manifest(manifest_dir=prepare("deepfashion", df_roots[lay], out=tmp_path / lay, quiet=True).manifest_dir)
        ids[lay] = set(m.samples.sample_id)
    assert ids["inshop"] == ids["fashion"] == ids["pws"]


def test_keypoint_table_matches_the_drawn_skeleton(df_roots, tmp_path):
    root = df_roots["fashion"]
    m = open_manifest(manifest_dir=prepare("deepfashion", root, out=tmp_path / "o", quiet=True).manifest_dir)
    kp = m.table("keypoints")
    assert len(kp) == 16 and set(kp.keypoint_format) == {"coco18"}
    csv_kp = read_keypoint_csv(root / "fasion-resize-annotation-train.csv")
    assert len(csv_kp) == 12
    row = kp[kp.source == "fasion-resize-annotation-train.csv"].iloc[0]
    name = row.sample_id.split("/")[-1] + ".jpg"
    arr = keypoints_from_row(row)
    np.testing.assert_array_equal(arr, csv_kp[name])
    # the 3dgcl fixture of the same seed wrote the same skeletons as OpenPose JSON (x, y, conf)
    pose, fmt = read_openpose(df_roots["3dgcl"] / "keypoints" / f"{name[:-4]}_keypoints.json")
    assert fmt == "coco18"
    vis = arr[:, 2] > 0
    np.testing.assert_allclose(arr[vis, :2], np.round(to_coco18(pose)[vis, :2]), atol=0)
    assert vis.sum() >= 14


def test_keypoint_line_parsing():
    name, kp = parse_keypoint_line("a.jpg: [10, -1, 30" + ", 0" * 15 + "]: [5, 6, -1" + ", 1" * 15 + "]")
    assert name == "a.jpg" and kp.shape == (18, 3) and kp.dtype == np.float32
    np.testing.assert_array_equal(kp[0], [5, 10, 1])  # x from keypoints_x, y from keypoints_y
    np.testing.assert_array_equal(kp[1], [0, 0, 0])   # y = -1: missing
    np.testing.assert_array_equal(kp[2], [0, 0, 0])   # x = -1: missing
    np.testing.assert_array_equal(kp[3], [1, 0, 1])
    for bad in ("a.jpg: [1, 2]: [1, 2]", "a.jpg: [1, 2", "a.jpg: [1]*18: x"):
        with pytest.raises(ListFileError):
            parse_keypoint_line(bad)


def test_read_keypoint_csv_names_the_bad_line(tmp_path):
    p = tmp_path / "k.csv"
    good = "x.jpg: " + str([1] * 18) + ": " + str([2] * 18)
    p.write_text("name:keypoints_y:keypoints_x\n" + good + "\n" + "y.jpg: [1, 2]: [3]\n")
    with pytest.raises(ListFileError) as e:
        read_keypoint_csv(p)
    assert e.value.line == 3 and e.value.file == str(p)


def test_inshop_annotations_and_partition(df_roots, tmp_path):
    root = df_roots["inshop"]
    m = open_manifest(manifest_dir=prepare("deepfashion", root, out=tmp_path / "o", quiet=True).manifest_dir)
    ann = m.table("inshop_annotations").set_index("sample_id")
    assert len(ann) == 16
    assert Counter(ann.evaluation_status) == {"train": 12, "query": 2, "gallery": 2}
    assert (ann.clothes_type == 1).all() and ann.landmark_vis.map(len).eq(6).all()
    # bbox values as written in Anno/list_bbox_inshop.txt, line 3 onwards
    line3 = (root / "Anno/list_bbox_inshop.txt").read_text().splitlines()[2].split()
    sid = "train/person/" + flatten_name(line3[0])[:-4]
    assert list(ann.loc[sid].bbox) == [int(v) for v in line3[3:]]
    assert ann.loc[sid]["item"] == parse_inshop_path(line3[0]).item
    assert m.meta["notes"]["image_dir"] == "Img/img"
    assets = m.assets
    assert assets.path.str.startswith("Img/img/").all()


# --------------------------------------------------------------------------- faults


def _fail_codes(exc) -> dict:
    return {(f.code, f.file, f.line) for f in exc.value.findings if f.severity == "fail"}


def test_missing_sibling_strict_and_lenient(df_roots, tmp_path):
    root = _copy(df_roots["pws"], tmp_path)
    victim = sorted((root / "silhouette" / "train").iterdir())[0]
    victim.unlink()
    stem = victim.name[: -len("_sil.png")]
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "s", quiet=True)
    assert ("missing-file", f"silhouette/train/{victim.name}", None) in _fail_codes(e)
    res = prepare("deepfashion", root, out=tmp_path / "l", strict=False, quiet=True)
    m = open_manifest(manifest_dir=res.manifest_dir)
    sid = f"train/person/{stem}"
    assert sid not in set(m.samples.sample_id) and len(m.samples) == 15
    assert not ((m.tuples.person == sid) | (m.tuples.target_person == sid)).any() and len(m.tuples) == 14
    assert res.report_file and res.report_file.exists()


def test_malformed_list_line_names_file_and_line(df_roots, tmp_path):
    root = _copy(df_roots["fashion"], tmp_path)
    lst = root / "train.lst"
    n = len(lst.read_text().splitlines())
    with open(lst, "a") as fh:
        fh.write("two columns\n")
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "s", quiet=True)
    assert ("malformed-line", "train.lst", n + 1) in _fail_codes(e)
    m = open_manifest(manifest_dir=prepare("deepfashion", root, out=tmp_path / "l", strict=False,
                                           quiet=True).manifest_dir)
    assert len(m.samples) == 16


def test_pair_csv_faults(df_roots, tmp_path):
    root = _copy(df_roots["fashion-gfla"], tmp_path)
    p = root / "fasion-pairs-test.csv"
    lines = p.read_text().splitlines()
    assert lines[0] == ",from,to" and lines[1].startswith("0,")
    lines += ["9,../../etc/passwd.jpg,x.jpg", "10,nobody.jpg," + lines[1].split(",")[2], "11,only-two"]
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "s", quiet=True)
    codes = _fail_codes(e)
    assert ("unsafe-path", "fasion-pairs-test.csv", 6) in codes
    assert ("pair-unresolved", "fasion-pairs-test.csv", 7) in codes
    assert ("malformed-line", "fasion-pairs-test.csv", 8) in codes
    res = prepare("deepfashion", root, out=tmp_path / "l", strict=False, quiet=True)
    assert len(open_manifest(manifest_dir=res.manifest_dir).tuples) == 16
    p.write_text("a,b\nx.jpg,y.jpg\n")
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "h", quiet=True)
    assert ("malformed-header", "fasion-pairs-test.csv", 1) in _fail_codes(e)


def test_corrupt_image(df_roots, tmp_path):
    root = _copy(df_roots["fashion"], tmp_path)
    victim = sorted((root / "test").iterdir())[0]
    victim.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "s", quiet=True)
    assert any(c in ("corrupt-image", "truncated-image") and f == f"test/{victim.name}" for c, f, _ in _fail_codes(e))
    m = open_manifest(manifest_dir=prepare("deepfashion", root, out=tmp_path / "l", strict=False,
                                           quiet=True).manifest_dir)
    assert len(m.samples) == 15 and len(m.tuples) == 14


def test_non_binary_silhouette(df_roots, tmp_path):
    root = _copy(df_roots["pws"], tmp_path)
    victim = sorted((root / "silhouette" / "test").iterdir())[0]
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (96, 1))
    Image.fromarray(ramp).save(victim)
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "s", quiet=True)
    assert ("mask-not-binary", f"silhouette/test/{victim.name}", None) in _fail_codes(e)


def test_parse_outside_label_space(df_roots, tmp_path):
    root = _copy(df_roots["fashion-gfla"], tmp_path)
    victim = sorted((root / "trainM_lip").iterdir())[0]
    ids = np.asarray(Image.open(victim)).copy()
    ids[:5, :5] = 23  # LIP has ids 0-19
    Image.fromarray(ids).save(victim)
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "s", quiet=True)
    assert ("parse-out-of-space", f"trainM_lip/{victim.name}", None) in _fail_codes(e)
    msg = next(f.message for f in e.value.findings if f.code == "parse-out-of-space")
    assert "25 pixels" in msg and "lip20" in msg and "23" in msg


def test_empty_keypoints(df_roots, tmp_path):
    root = _copy(df_roots["fashion"], tmp_path)
    p = root / "fasion-resize-annotation-train.csv"
    lines = p.read_text().splitlines()
    name = lines[3].split(":")[0]
    lines[3] = f"{name}: {[-1] * 18}: {[-1] * 18}"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "s", quiet=True)
    assert ("pose-empty", "fasion-resize-annotation-train.csv", 4) in _fail_codes(e)
    m = open_manifest(manifest_dir=prepare("deepfashion", root, out=tmp_path / "l", strict=False,
                                           quiet=True).manifest_dir)
    sid = f"train/person/{name[:-4]}"
    assert sid not in set(m.samples.sample_id) and len(m.tuples) == 14
    assert sid not in set(m.table("keypoints").sample_id)
    # the same row for an image no pair uses is only a warning
    for pair_csv in root.glob("fasion-resize-pairs-*.csv"):
        pair_csv.write_text("from,to\n")
    res = prepare("deepfashion", root, out=tmp_path / "w", quiet=True)
    w = [f for f in res.report.findings if f.code == "pose-empty"]
    assert w and w[0].severity == "warn" and w[0].line == 4


def test_inshop_list_faults(df_roots, tmp_path):
    root = _copy(df_roots["inshop"], tmp_path)
    p = root / "Eval" / "list_eval_partition.txt"
    lines = p.read_text().splitlines()
    lines[0] = "99"
    lines[4] = lines[4].rsplit(" ", 1)[0] + " validation"
    lines.append("img/../../secret.jpg id_00000001 train")
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "s", quiet=True)
    codes = _fail_codes(e)
    part = "Eval/list_eval_partition.txt"
    assert ("malformed-line", part, 5) in codes and ("unsafe-path", part, len(lines)) in codes
    warns = {(f.code, f.line) for f in e.value.findings if f.severity == "warn"}
    assert ("count-mismatch", 1) in warns
    res = prepare("deepfashion", root, out=tmp_path / "l", strict=False, quiet=True)
    assert len(open_manifest(manifest_dir=res.manifest_dir).samples) == 15
    lines[1] = "no header here"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "h", quiet=True)
    assert ("malformed-line", part, 2) in _fail_codes(e)


def test_validate_and_cli(df_roots, tmp_path):
    from cli import app

    rep = validate_root("deepfashion", df_roots["3dgcl"])
    assert rep.n_fail == 0
    r = CliRunner().invoke(app, ["prepare", "deepfashion", "--root", str(df_roots["pws"]), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "manifest" / "meta.json").exists()
    r = CliRunner().invoke(app, ["prepare", "deepfashion", "--root", str(tmp_path)])
    assert r.exit_code == 2 and "no known deepfashion layout" in r.output
