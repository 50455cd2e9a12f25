"""MPV: triplets in the original, detail_carving (nested and flat) and competition layouts; the real JDAI-CV
sample and pair-list excerpt; every fault kind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vtondata.datasets.base import read_list
from vtondata.datasets.mpv import parse_name
from vtondata.errors import LayoutNotFoundError, ValidationFailedError
from vtondata.findings import Report
from vtondata.fixtures import make_fixture
from vtondata.manifest import open_manifest
from vtondata.pose import read_openpose
from vtondata.prepare import prepare

SIZE = "128x96"
LAYOUTS = ("original", "detail_carving", "detail_carving_flat", "competition")


@pytest.fixture(scope="session")
def mpv_roots(tmp_path_factory) -> dict:
    """Generated MPV roots with 8 triplets (4 items: 3 train, 1 test); treat as read-only."""
    base = tmp_path_factory.mktemp("mpv")
    return {lay: make_fixture("mpv", base / lay, n=8, size=SIZE, seed=5, layout=lay) for lay in LAYOUTS}


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(src, dst)
    return dst


def _m(res):
    return open_manifest(manifest_dir=res.manifest_dir)


# --------------------------------------------------------------------------- names


def test_parse_name_reads_item_view_and_framing():
    d = parse_name("SC321E00D-O11@13=person_whole_front")
    assert (d["item"], d["colour"], d["k"], d["view"], d["framing"], d["is_person"]) == \
        ("SC321E00D", "O11", "13", "front", "whole", True)
    d = parse_name("SC321E00D-O11@12.1=cloth_front")
    assert (d["k"], d["view"], d["framing"], d["is_person"]) == ("12.1", "front", None, False)
    assert parse_name("FIE21D00C-A11@9=person_whole_back")["view"] == "back"
    assert parse_name("000001_0") is None


# --------------------------------------------------------------------------- generated layouts


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_gives_triplets(mpv_roots, tmp_path, layout):
    res = prepare("mpv", mpv_roots[layout], out=tmp_path / "o", quiet=True)
    m = _m(res)
    assert m.meta["layout"] == ("detail_carving" if layout.startswith("detail") else layout)
    t = m.tuples
    main = t[t.source != "demo/demo.txt"]
    assert len(main) == 8 and set(main.kind) == {"triplet"} and set(main.setting) == {"multi-pose"}
    assert main.groupby("split").size().to_dict() == {"train": 6, "test": 2}
    assert sorted(main.line) == list(range(1, 9))
    s = m.samples.set_index("sample_id")
    for _, row in main.iterrows():
        a, b, g = s.loc[row.person], s.loc[row.target_person], s.loc[row.garment]
        assert a["item"] == b["item"] == g["item"] and a["name"] != b["name"]  # one person, two poses, their garment
        assert (a.kind, b.kind, g.kind) == ("person", "person", "garment")
    persons = s[s.kind == "person"]
    assert set(persons.framing) == {"half", "whole"}
    a = m.assets
    if layout.startswith("detail"):
        assert set(persons.view) == {"front"}
        assert set(a.role) == {"person", "parse", "parse_vis", "pose", "garment", "garment_mask"}
        parse = a[a.role == "parse"]
        assert set(parse.encoding) == {"gray_ids"} and set(parse.label_space) == {"cihp20"}
        assert set(a[a.role == "parse_vis"].encoding) == {"rgb_colours"}
        assert set(a[a.role == "pose"].keypoint_format) == {"coco18"}
        assert m.meta["notes"]["nesting"] == ("flat" if layout.endswith("flat") else "nested <mode>/<ITEM>/")
    else:
        assert set(persons.view) == {"front", "back"}
    if layout == "detail_carving":
        assert any(p.startswith("images/val/") for p in a.path)
        assert any(p.startswith("parse_cihp/train/") for p in a.path)
        assert any(p.startswith("images/train/") and "cloth_front" in p for p in a[a.role == "garment"].path)
    if layout == "detail_carving_flat":
        assert all(p.startswith("cloth_image/") for p in a[a.role == "garment"].path)
        demo = t[t.source == "demo/demo.txt"]
        assert len(demo) == 2 and set(demo.split) == {"test"} and demo.tuple_id.str.startswith("test/demo/").all()
    if layout == "original":
        assert set(a.role) == {"person", "garment"} and a.path.str.startswith("MPV_192_256/").all()
    if layout == "competition":
        dp = a[a.role == "densepose"]
        assert set(dp.encoding) == {"detectron_iuv"} and dp.path.str.endswith("_IUV.png").all()
        assert set(a.role) == {"person", "parse", "pose", "densepose", "garment"}


def test_same_person_in_two_poses(mpv_roots):
    """Pose A and pose B: the same garment and body colours, other arm angles; the back view hides the face."""
    root = mpv_roots["competition"]
    line = (root / "all_poseA_poseB_clothes_0607.txt").read_text().splitlines()[1]
    a, b, c, _ = line.split()
    assert "whole_front" in a and "whole_back" in b
    ia, ib = (np.asarray(Image.open(root / "all" / x)).astype(int) for x in (a, b))
    pa, pb = (np.asarray(Image.open(root / "all_parsing" / x.replace(".jpg", ".png"))) for x in (a, b))
    for lab in (9,):  # the pants: same colour in both pictures
        np.testing.assert_allclose(ia[pa == lab].mean(0), ib[pb == lab].mean(0), atol=6)
    assert (pa == 13).sum() > 0 and (pb == 13).sum() == 0  # face visible from the front only
    ka, _ = read_openpose(root / "all_person_clothes_keypoints" / a.replace(".jpg", "_keypoints.json"))
    kb, _ = read_openpose(root / "all_person_clothes_keypoints" / b.replace(".jpg", "_keypoints.json"))
    assert ka[0, 2] > 0 and kb[0, 2] == 0  # the nose is not detected from behind
    # the elbows move between poses (arm angles change), the hips stay (same body)
    W = ia.shape[1]
    assert abs(ka[8, 1] - kb[8, 1]) < 1.0 and abs(ka[8, 0] - ((W - 1) - kb[8, 0])) < 1.0
    assert np.abs(ka[3, :2] - np.array([(W - 1) - kb[3, 0], kb[3, 1]])).max() > 1.5
    # the garment drawn in the cloth image is the one worn: its mean colour matches the worn upper clothes
    cloth = np.asarray(Image.open(root / "all" / c)).astype(int)
    worn = ia[pa == 5].mean(0)
    inshop = cloth[(cloth < 250).any(-1)].mean(0)
    assert np.abs(worn - inshop * 0.92).max() < 25


def test_fixture_pose_json_is_byte_compatible_with_the_release(mpv_roots, realdata):
    """One line, no breaks, the same keys in the same order as the real JDAI-CV files."""
    import json

    real = (realdata / "mpv" / "detail_carving_sample" / "pose_coco" /
            "4HI21D003-C11@10=person_half_front_keypoints.json")
    ours = next((mpv_roots["detail_carving_flat"] / "pose_coco").glob("*_keypoints.json"))
    for p in (real, ours):
        raw = p.read_bytes()
        assert b"\n" not in raw and raw.startswith(b'{"version":1.3,"people":[{"person_id":[-1],"pose_keypoints_2d":[')
    assert list(json.loads(real.read_text())["people"][0]) == list(json.loads(ours.read_text())["people"][0])


def test_competition_densepose_is_detectron_bgr(mpv_roots):
    root = mpv_roots["competition"]
    p = next((root / "all_densepose").rglob("*whole_front_IUV.png"))
    bgr = np.asarray(Image.open(p))
    parse = np.asarray(Image.open(str(p).replace("all_densepose", "all_parsing").replace("_IUV.png", ".png")))
    part = bgr[..., 2]  # OpenCV order: the part index is the file's blue channel
    assert part.max() <= 24 and set(np.unique(part[parse == 13])) == {23}  # head
    assert (part[parse == 0] == 0).all()


def test_no_layout_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutNotFoundError) as e:
        prepare("mpv", tmp_path / "empty", out=tmp_path / "o")
    assert "no known mpv layout" in str(e.value)


def test_split_sizes_compared_for_the_detail_carving_subset(mpv_roots, tmp_path):
    res = prepare("mpv", mpv_roots["detail_carving"], out=tmp_path / "o", quiet=True)
    warns = [f.message for f in res.report.warns if f.code == "split-size"]
    assert any("train: 6 triplets" in w and "12410" in w for w in warns)
    assert any("test: 2 triplets" in w and "2344" in w for w in warns)
    res = prepare("mpv", mpv_roots["original"], out=tmp_path / "o2", quiet=True)
    assert not [f for f in res.report.warns if f.code == "split-size"]  # counts of the original: unknown


# --------------------------------------------------------------------------- real files


def test_real_pair_list_excerpt(realdata):
    """data_pair.txt, first 300 lines: 4 TAB columns, 253 train / 47 test, front views only."""
    src = realdata / "mpv" / "detail_carving_sample"
    rep = Report()
    rows = list(read_list(src, "data_pair.head300.txt", rep, ncols=4, sep="\t", path_cols=(0, 1, 2)))
    assert rep.n_fail == 0 and len(rows) == 300
    assert sum(c[3] == "train" for _, c in rows) == 253 and sum(c[3] == "test" for _, c in rows) == 47
    assert rows[0] == (1, ["TW421D05Y/TW421D05Y-C11@9=person_whole_front.jpg",
                           "TW421D05Y/TW421D05Y-C11@8=person_half_front.jpg",
                           "TW421D05Y/TW421D05Y-C11@2=cloth_front.jpg", "train"])
    views = [parse_name(c[k].split("/")[1][:-4]) for _, c in rows for k in (0, 1)]
    assert all(v and v["is_person"] and v["view"] == "front" for v in views)
    pairs = pd.Series([f"{parse_name(c[0].split('/')[1][:-4])['framing']}->"
                       f"{parse_name(c[1].split('/')[1][:-4])['framing']}" for _, c in rows]).value_counts().to_dict()
    assert pairs == {"whole->half": 157, "half->whole": 132, "half->half": 9, "whole->whole": 2}
    assert all(c[0].split("/")[0] == c[2].split("/")[0] for _, c in rows)  # the worn garment (same item)


def test_real_sample_prepares_with_its_demo_list(realdata, tmp_path):
    """The shipped flat sample: read strictly from demo/demo.txt (no data_pair.txt, a warning)."""
    src = realdata / "mpv" / "detail_carving_sample"
    res = prepare("mpv", src, out=tmp_path / "o", quiet=True)
    m = _m(res)
    assert m.meta["layout"] == "detail_carving" and m.meta["notes"]["nesting"] == "flat"
    assert [f.code for f in res.report.warns if f.file == "data_pair.txt"] == ["missing-list"]
    t = m.tuples.sort_values("line")
    assert list(t.line) == [1, 2, 3, 4, 5] and set(t.source) == {"demo/demo.txt"} and set(t.split) == {"test"}
    first = t.iloc[0]
    assert first.person == "test/person/1LJ21D005-G11@10=person_half_front"
    assert first.target_person == "test/person/AD121D0G7-A11@10=person_half_front"
    assert first.garment == "test/garment/CO121D08G-O11@10=cloth_front"
    s = m.samples.set_index("sample_id")
    back = s.loc["test/person/FIE21D00C-A11@9=person_whole_back"]
    assert (back["view"], back.framing, back["item"]) == ("back", "whole", "FIE21D00C")
    assert (s.kind == "person").sum() == 10 and (s.kind == "garment").sum() == 5
    a = m.assets.set_index("asset_id")
    # the target of a demo line is a pose file only; the sources have all their files
    assert list(a[a.sample_id == first.target_person].role) == ["pose"]
    assert sorted(a[a.sample_id == first.person].role) == ["parse", "parse_vis", "person", "pose"]
    assert a.loc["test/garment/CO121D08G-O11@10=cloth_front", "path"] == "cloth_image/CO121D08G-O11@10=cloth_front.jpg"
    assert a.loc["test/garment_mask/CO121D08G-O11@10=cloth_front", "path"] == \
        "cloth_mask/CO121D08G-O11@10=cloth_front_mask.png"
    assert (a.loc["test/person/FIE21D00C-A11@9=person_whole_back", ["width", "height"]] == [192, 256]).all()
    # values behind the checks
    from vtondata.decode import read_mask, read_parse

    ids = read_parse(src / "parse_cihp" / "FIE21D00C-A11@9=person_whole_back.png")
    assert set(np.unique(ids)) == {0, 2, 5, 9, 10, 13, 14, 15, 18, 19}
    vis = np.asarray(Image.open(src / "parse_cihp" / "FIE21D00C-A11@9=person_whole_back_vis.png").convert("RGB"))
    from vtondata.labels import label_space

    np.testing.assert_array_equal(label_space("cihp20").ids_from_colors(vis), ids)  # the _vis twin renders it
    mask = np.asarray(Image.open(src / "cloth_mask" / "CO121D08G-O11@10=cloth_front_mask.png"))
    assert set(np.unique(mask)) == {0, 255} and read_mask(src / "cloth_mask" /
                                                          "CO121D08G-O11@10=cloth_front_mask.png").max() == 1
    kp, fmt = read_openpose(src / "pose_coco" / "4HI21D003-C11@10=person_half_front_keypoints.json")
    assert fmt == "coco18" and kp.shape == (18, 3)
    np.testing.assert_allclose(kp[0], [103.342, 39.9418, 0.797389], rtol=1e-6)
    np.testing.assert_allclose(kp[17], [121.674, 38.5257, 0.800195], rtol=1e-6)
    assert (kp[10] == 0).all() and (kp[12] == 0).all() and (kp[13] == 0).all()


def test_real_pair_list_against_the_sample_folders(realdata, tmp_path):
    """The excerpt as data_pair.txt next to the sample: none of its persons ships in the sample, so every line
    fails naming its line; lenient keeps the demo triplets."""
    src = realdata / "mpv" / "detail_carving_sample"
    root = _copy(src, tmp_path)
    shutil.copy(src / "data_pair.head300.txt", root / "data_pair.txt")
    with pytest.raises(ValidationFailedError) as e:
        prepare("mpv", root, out=tmp_path / "o", quiet=True)
    lines = sorted(f.line for f in e.value.findings if f.code == "triplet-unresolved" and f.file == "data_pair.txt")
    assert lines == list(range(1, 301))
    res = prepare("mpv", root, out=tmp_path / "o", quiet=True, strict=False)
    assert res.meta["counts"]["tuples"] == 5
    codes = res.meta["validation"]["codes"]
    assert codes["triplet-unresolved"] == 300 and codes["split-size"] == 2


# --------------------------------------------------------------------------- faults


def _inject(root: Path) -> dict:
    """One fault of each kind in a nested detail_carving root; returns {code: where it must be reported}."""
    faults = {}
    lines = (root / "data_pair.txt").read_text().split("\n")
    a1, b1, c1, _ = lines[0].split("\t")  # item 1
    a2, b2, c2, _ = lines[2].split("\t")  # item 2
    a3, _b3, c3, _ = lines[4].split("\t")  # item 3
    stem = lambda e: e.split("/")[1][:-4]  # noqa: E731
    pose = root / "pose_coco" / "train" / f"{stem(a1)}_keypoints.json"
    pose.unlink()
    faults["missing-file"] = f"pose_coco/train/{stem(a1)}_keypoints.json"
    lines += [f"{a1}\t{b1}\t{c1}",  # line 9: three columns
              f"../../etc/passwd\t{b1}\t{c1}\ttrain",  # line 10
              f"{a1}\t{b1}\t{c1}\tval",  # line 11: bad split word
              f"NOPE/NOPE-A11@1=person_half_front.jpg\t{b1}\t{c1}\ttrain"]  # line 12: unresolved
    (root / "data_pair.txt").write_text("\n".join(lines))
    faults["malformed-line"] = "data_pair.txt:9"
    faults["unsafe-path"] = "data_pair.txt:10"
    faults["triplet-unresolved"] = "data_pair.txt:12"
    img = root / "images" / "train" / a2.split("/")[0] / a2.split("/")[1]
    img.write_bytes(img.read_bytes()[:300])
    faults["truncated-image"] = f"images/train/{a2}"
    bad = root / "images" / "train" / c3.split("/")[0] / c3.split("/")[1]
    bad.write_bytes(b"GIF89a garbage")
    faults["corrupt-image"] = f"images/train/{c3}"
    m = root / "cloth_mask" / "train" / c2.split("/")[0] / f"{stem(c2)}_mask.png"
    arr = np.asarray(Image.open(m)).copy()
    arr[arr == 255] = 128
    Image.fromarray(arr).save(m)
    faults["mask-not-binary"] = f"cloth_mask/train/{c2.split('/')[0]}/{stem(c2)}_mask.png"
    pp = root / "parse_cihp" / "train" / f"{stem(a3)}.png"
    ids = np.asarray(Image.open(pp)).copy()
    ids[:5, :5] = 25
    Image.fromarray(ids).save(pp)
    faults["parse-out-of-space"] = f"parse_cihp/train/{stem(a3)}.png"
    (root / "pose_coco" / "train" / f"{stem(b2)}_keypoints.json").write_bytes(b"")
    faults["bad-json"] = f"pose_coco/train/{stem(b2)}_keypoints.json"
    return faults


def test_strict_names_every_fault(mpv_roots, tmp_path):
    root = _copy(mpv_roots["detail_carving"], tmp_path)
    faults = _inject(root)
    out = tmp_path / "o"
    with pytest.raises(ValidationFailedError) as e:
        prepare("mpv", root, out=out, quiet=True)
    found = {(f.code, f.where()) for f in e.value.findings if f.severity == "fail"}
    for code, where in faults.items():
        assert (code, where) in found, f"{code} at {where} not reported; got {sorted(found)}"
    assert ("malformed-line", "data_pair.txt:11") in found  # 'val' is not a split word
    assert not (out / "manifest").exists()
    report = pd.read_csv(next((out / "reports").glob("validation-*.csv")))
    assert set(faults) <= set(report.code)


def test_lenient_drops_the_bad_rows(mpv_roots, tmp_path):
    root = _copy(mpv_roots["detail_carving"], tmp_path)
    _inject(root)
    res = prepare("mpv", root, out=tmp_path / "o", strict=False, quiet=True)
    m = _m(res)
    # items 1, 2 and 3 each lost a file of a person or their garment: all their triplets are gone
    t = m.tuples
    assert len(t) == 2 and set(t.split) == {"test"} and not (t.line > 8).any()
    kept = set(m.samples.sample_id)
    for col in ("person", "target_person", "garment"):
        assert t[col].isin(kept).all()
    assert res.meta["dropped"]["tuples"] == 6
    assert (m.findings.severity == "fail").sum() >= 10


def test_whitespace_list_of_the_competition(mpv_roots, tmp_path):
    """The 0607 list is whitespace separated: tabs, runs of spaces and CRLF all parse."""
    root = _copy(mpv_roots["competition"], tmp_path)
    p = root / "all_poseA_poseB_clothes_0607.txt"
    lines = p.read_text().splitlines()
    lines[0] = lines[0].replace(" ", "\t", 1).replace(" ", "   ", 1)
    p.write_bytes("\r\n".join(lines).encode())
    res = prepare("mpv", root, out=tmp_path / "o", quiet=True)
    assert res.meta["counts"]["tuples"] == 8


def test_perf_builder_makes_a_valid_large_tree(mpv_roots, tmp_path):
    """bench/perf/perf_prepare_mpv.py's hard-linked tree is a valid MPV with the asked number of triplets."""
    from bench.perf.perf_prepare_mpv import build_mpv, naive_full_decode

    root = build_mpv(tmp_path / "big", 41, mpv_roots["detail_carving"])
    res = prepare("mpv", root, out=tmp_path / "o", quiet=True)
    c = res.meta["counts"]
    assert c["tuples"] == 41 and res.meta["validation"]["fail"] == 0
    assert c["tuples_by"] == {"test/multi-pose": 5, "train/multi-pose": 36}  # 3 of 21 items: the release's share
    assert naive_full_decode(root) == c["assets"]  # the baseline decodes exactly the files prepare checks
