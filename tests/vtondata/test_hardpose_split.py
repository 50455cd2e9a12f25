"""The ``hardpose`` split: the hardness score ranks constructed hard pairs (back views, crossed arms, scale
change) before easy ones, the selection is deterministic with the paper's per-dataset quota, the split file
is what the loader reads, an official list can replace it, and the CLI writes it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from vtondata import splits_hardpose as H


def _front(dx: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """A frontal COCO-18 pose (image x right, y down); the person's left side is on the image right."""
    kp = np.zeros((18, 3))
    pts = {H.NOSE: (50, 20), H.NECK: (50, 35), H.RSH: (38, 36), H.REL: (34, 55), H.RWR: (32, 72),
           H.LSH: (62, 36), H.LEL: (66, 55), H.LWR: (68, 72), H.RHIP: (43, 80), H.RKNE: (43, 105),
           H.RANK: (43, 130), H.LHIP: (57, 80), H.LKNE: (57, 105), H.LANK: (57, 130), H.REYE: (47, 18),
           H.LEYE: (53, 18)}
    for i, (x, y) in pts.items():
        kp[i] = (50 + (x - 50) * scale + dx, 20 + (y - 20) * scale, 0.9)
    return kp


def _back() -> np.ndarray:
    kp = _front()
    kp[[H.RSH, H.REL, H.RWR, H.RHIP, H.RKNE, H.RANK]], kp[[H.LSH, H.LEL, H.LWR, H.LHIP, H.LKNE, H.LANK]] = \
        kp[[H.LSH, H.LEL, H.LWR, H.LHIP, H.LKNE, H.LANK]].copy(), kp[[H.RSH, H.REL, H.RWR, H.RHIP, H.RKNE, H.RANK]].copy()
    kp[[H.NOSE, H.REYE, H.LEYE]] = 0  # no face: facing away
    return kp


def _crossed() -> np.ndarray:
    kp = _front()
    kp[H.REL], kp[H.RWR] = (45, 58, 0.9), (60, 62, 0.9)  # right forearm across the body
    kp[H.LEL], kp[H.LWR] = (56, 58, 0.9), (41, 64, 0.9)
    return kp


def test_views_and_occlusion_are_detected():
    assert H.analyse_pose(_front()).view == "front"
    assert H.analyse_pose(_back()).view == "back"
    side = _front()
    side[H.LSH, 0], side[H.RSH, 0] = 52, 48
    assert H.analyse_pose(side).view == "side"
    assert H.analyse_pose(_crossed()).occlusion == 1.0 and H.analyse_pose(_front()).occlusion == 0.0
    assert H.analyse_pose(np.zeros((18, 3))) is None


def test_constructed_hard_pairs_rank_before_easy_ones():
    easy = _front()
    easy[H.RWR, :2] += (2, -3)
    s = {name: H.pair_components(_front(), tgt)["hardness"]
         for name, tgt in {"easy": easy, "back": _back(), "crossed": _crossed(), "scale": _front(scale=0.5)}.items()}
    assert min(s["back"], s["crossed"], s["scale"]) > 5 * s["easy"]
    c = H.pair_components(_front(), _back())
    assert c["view"] > 0.7 and (c["view_source"], c["view_target"]) == ("front", "back")
    scores = pd.DataFrame([{"tuple_id": f"test/x/{k}", "hardness": v} for k, v in s.items()]
                          + [{"tuple_id": "test/x/easy2", "hardness": s["easy"]}])
    sel = H.select(scores, "deepfashion")
    hardest = max(("back", "crossed"), key=s.get)
    assert sel["tuple_id"].tolist() == [f"test/x/{hardest}"]  # quota: ceil(5 * 2406 / 19108) = 1
    big = pd.concat([scores] * 3, ignore_index=True)
    big["tuple_id"] = [f"test/x/{i:02d}" for i in range(len(big))]
    a, b = H.select(big, "mpv"), H.select(big.sample(frac=1, random_state=0), "mpv")
    assert a.equals(b) and a["rank"].tolist() == [1, 2]  # deterministic: order-free, ties by tuple id


def test_quota_is_the_paper_size_in_proportion():
    assert H.quota("deepfashion", 8564) + H.quota("mpv", 10544) == 2406
    assert H.quota("deepfashion", 8564) == 1078 and H.quota("mpv", 40) == 6
    with pytest.raises(Exception, match="hardpose is defined"):
        H.quota("viton", 10)


@pytest.fixture(scope="module")
def mpv(tmp_path_factory):
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    base = tmp_path_factory.mktemp("hardpose")
    data = make_fixture("mpv", base / "data", n=16, size="64x48", seed=2, layout="competition")
    return prepare("mpv", data, out=base / "mpv", quiet=True).manifest_dir


def test_make_writes_a_deterministic_split_the_loader_reads(mpv, tmp_path):
    from vtondata.loader import load
    from vtondata.manifest import open_manifest

    res = H.make(manifest_dir=mpv)
    first = pd.read_parquet(res.path)
    assert res.n_selected == len(first) == H.quota("mpv", res.n_test_pairs) >= 1
    scores = pd.read_parquet(res.path.parent / "hardpose_scores.parquet")
    assert len(scores) == res.n_test_pairs and scores["hardness"].notna().all()
    assert first["hardness"].min() >= scores["hardness"].median()  # the hardest pairs were kept
    assert set(res.report) >= {"quantiles", "histogram", "views_selected"} and sum(res.report["histogram"]["counts"]) == len(scores)
    assert pd.read_parquet(H.make(manifest_dir=mpv).path).equals(first)
    ds = load(None, "hardpose", "multi-pose", fields=("pose",), manifest=mpv, caches=False)
    assert sorted(ds[i]["tuple_id"] for i in range(len(ds))) == sorted(first["tuple_id"])
    # an official list replaces the derived one: tuple ids or "source,target" names
    t = open_manifest(manifest_dir=mpv).tuples
    test = t[t.split == "test"].sort_values("tuple_id")
    row = test.iloc[0]
    lst = tmp_path / "hard.txt"
    lst.write_text(f"from,to\n{row.person.split('/')[-1]}.jpg,{row.target_person.split('/')[-1]}.jpg\n")
    got = pd.read_parquet(H.make(manifest_dir=mpv, split_file=lst).path)
    assert got["tuple_id"].tolist() == [row.tuple_id] and got["source"].iloc[0] == "file hard.txt"
    lst.write_text("no,such\n")
    with pytest.raises(Exception, match="match no pair"):
        H.make(manifest_dir=mpv, split_file=lst)
    assert H.ensure(None, "test", mpv) is None


def test_cli_splits_make(mpv, tmp_path):
    from cli import app

    (mpv.parent / "splits" / "hardpose.parquet").unlink(missing_ok=True)
    res = CliRunner().invoke(app, ["splits", "make", "hardpose", "--manifest", str(mpv)])
    assert res.exit_code == 0, res.output
    assert "hardpose:" in res.output and "quantiles" in res.output
    assert (mpv.parent / "splits" / "hardpose.parquet").exists()
    bad = CliRunner().invoke(app, ["splits", "make", "easy", "--manifest", str(mpv)])
    assert bad.exit_code == 2
