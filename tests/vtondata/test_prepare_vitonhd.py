"""VITON-HD end to end: fixture -> prepare -> manifest; real pair lists and pose JSON; every fault kind."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from vtondata.errors import LayoutNotFoundError, PoseFormatError, ValidationFailedError
from vtondata.manifest import open_manifest
from vtondata.pose import read_openpose, to_coco18
from vtondata.prepare import prepare, validate_root


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "root"
    shutil.copytree(src, dst)
    return dst


def test_prepare_counts_and_tables(vitonhd_root, tmp_path):
    res = prepare("viton-hd", vitonhd_root, out=tmp_path / "out", quiet=True)
    m = open_manifest(manifest_dir=res.manifest_dir)
    assert m.meta["layout"] == "official"
    s = m.samples
    # 12 persons: the last quarter (3) is test
    assert (s.kind == "person").sum() == 12 and (s.kind == "garment").sum() == 12
    assert ((s.kind == "person") & (s.split == "test")).sum() == 3
    t = m.tuples
    assert len(t[(t.split == "train") & (t.setting == "paired")]) == 9
    assert len(t[(t.split == "test") & (t.setting == "paired")]) == 3
    unp = t[(t.split == "test") & (t.setting == "unpaired")]
    assert len(unp) == 3 and (unp.person.str.split("/").str[-1] != unp.garment.str.split("/").str[-1]).all()
    assert set(unp.line) == {1, 2, 3} and set(unp.source) == {"test_pairs.txt"}
    a = m.assets
    assert set(a.role) >= {"person", "garment", "garment_mask", "parse", "parse_agnostic", "agnostic", "pose",
                           "pose_render", "densepose"}
    pose = a[a.role == "pose"]
    assert set(pose.keypoint_format) == {"body25"}
    parse = a[a.role == "parse"]
    assert set(parse.label_space) == {"cihp20"} and set(parse.encoding) == {"palette_ids"}
    assert set(a[a.role == "densepose"].encoding) == {"vitonhd_dp_segm"}
    assert a.hash.str.len().eq(32).all() and (a.bytes > 0).all()
    person = a[a.role == "person"].iloc[0]
    assert (person.width, person.height) == (192, 256) and person.format == "JPEG"
    # every asset path is relative and inside the root
    assert not a.path.str.startswith("/").any() and not a.path.str.contains(r"\.\.").any()
    assert m.meta["image_size"] == [192, 256]
    assert m.meta["counts"]["tuples"] == len(t)


def test_second_prepare_reuses_then_force_rebuilds(vitonhd_root, tmp_path):
    out = tmp_path / "out"
    first = prepare("viton-hd", vitonhd_root, out=out, quiet=True)
    again = prepare("viton-hd", vitonhd_root, out=out, quiet=True)
    assert again.reused and again.meta["fingerprint"] == first.meta["fingerprint"]
    assert again.meta["created"] == first.meta["created"]
    forced = prepare("viton-hd", vitonhd_root, out=out, force=True, quiet=True)
    assert not forced.reused


def test_changed_input_changes_fingerprint(vitonhd_root, tmp_path):
    root = _copy(vitonhd_root, tmp_path)
    out = tmp_path / "out"
    first = prepare("viton-hd", root, out=out, quiet=True)
    p = root / "test" / "cloth" / "00011_00.jpg"
    Image.open(p).transpose(Image.FLIP_LEFT_RIGHT).save(p, quality=90)
    second = prepare("viton-hd", root, out=out, quiet=True)
    assert not second.reused and second.meta["fingerprint"] != first.meta["fingerprint"]


def test_default_out_is_the_data_home(vitonhd_root, monkeypatch, tmp_path):
    monkeypatch.setenv("VTONDATA_HOME", str(tmp_path / "home"))
    prepare("viton-hd", vitonhd_root, quiet=True)
    m = open_manifest("viton-hd")
    assert m.dir == tmp_path / "home" / "viton-hd" / "manifest"


def test_demo_layout_is_detected(tmp_path):
    from vtondata.fixtures import make_fixture

    root = make_fixture("viton-hd", tmp_path / "datasets", n=4, size="128x96", layout="demo")
    assert (root / "test" / "openpose-json").is_dir()
    res = prepare("viton-hd", root, out=tmp_path / "out", quiet=True)
    assert res.meta["layout"] == "demo"
    assert res.meta["counts"]["assets_by_role"]["pose"] == 4


def test_no_layout_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutNotFoundError) as e:
        prepare("viton-hd", tmp_path / "empty", out=tmp_path / "o")
    assert "no known viton-hd layout" in str(e.value) and "fix:" in str(e.value)


# --------------------------------------------------------------------------- faults


def _inject_faults(root: Path) -> dict:
    """One fault of each kind; returns {code: file that must be named}."""
    faults = {}
    (root / "train" / "cloth-mask" / "00001_00.jpg").unlink()
    faults["missing-file"] = "train/cloth-mask/00001_00.jpg"
    with open(root / "test_pairs.txt", "a") as fh:
        fh.write("00009_00.jpg\n")  # line 4: one column
        fh.write("../../etc/passwd 00010_00.jpg\n")  # line 5: escapes the root
        fh.write("99999_00.jpg 00010_00.jpg\n")  # line 6: unresolved
    faults["malformed-line"] = "test_pairs.txt:4"
    faults["unsafe-path"] = "test_pairs.txt:5"
    faults["pair-unresolved"] = "test_pairs.txt:6"
    p = root / "train" / "image" / "00002_00.jpg"
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    faults["truncated-image"] = "train/image/00002_00.jpg"
    (root / "train" / "image" / "00003_00.jpg").write_bytes(b"this is not a jpeg")
    faults["corrupt-image"] = "train/image/00003_00.jpg"
    Image.new("RGB", (100, 100), (255, 0, 0)).save(root / "train" / "cloth" / "00004_00.jpg")
    faults["wrong-size"] = "train/cloth/00004_00.jpg"
    grey = np.zeros((256, 192), np.uint8)
    grey[40:200, 30:160] = 128  # the grey-mask mirror
    Image.fromarray(grey).save(root / "train" / "cloth-mask" / "00005_00.jpg", quality=95)
    faults["mask-not-binary"] = "train/cloth-mask/00005_00.jpg"
    pp = root / "train" / "image-parse-v3" / "00006_00.png"
    ids = np.array(Image.open(pp))
    ids[:10, :10] = 42
    im = Image.fromarray(ids, mode="P")
    im.putpalette(Image.open(pp).getpalette())
    im.save(pp)
    faults["parse-out-of-space"] = "train/image-parse-v3/00006_00.png"
    (root / "train" / "openpose_json" / "00007_00_keypoints.json").write_text('{"version":1.3,"people":[]}')
    faults["pose-no-person"] = "train/openpose_json/00007_00_keypoints.json"
    j = root / "train" / "openpose_json" / "00008_00_keypoints.json"
    obj = json.loads(j.read_text())
    obj["people"][0]["pose_keypoints_2d"] = obj["people"][0]["pose_keypoints_2d"][:54]
    j.write_text(json.dumps(obj))
    faults["pose-wrong-count"] = "train/openpose_json/00008_00_keypoints.json"
    return faults


def test_strict_names_every_fault_and_writes_nothing(vitonhd_root, tmp_path):
    root = _copy(vitonhd_root, tmp_path)
    faults = _inject_faults(root)
    out = tmp_path / "out"
    with pytest.raises(ValidationFailedError) as e:
        prepare("viton-hd", root, out=out, quiet=True)
    found = {(f.code, f.where()) for f in e.value.findings if f.severity == "fail"}
    for code, where in faults.items():
        assert (code, where) in found, f"{code} at {where} not reported; got {sorted(found)}"
    assert not (out / "manifest").exists()
    assert not list(out.glob(".prepare.*")) and not list(out.glob(".manifest.*"))  # no spool left behind
    # the report file lists them too
    report = pd.read_csv(next((out / "reports").glob("validation-*.csv")))
    assert set(faults) <= set(report.code)


def test_lenient_writes_manifest_without_bad_rows(vitonhd_root, tmp_path):
    root = _copy(vitonhd_root, tmp_path)
    _inject_faults(root)
    res = prepare("viton-hd", root, out=tmp_path / "out", strict=False, quiet=True)
    m = open_manifest(manifest_dir=res.manifest_dir)
    persons = set(m.samples[m.samples.kind == "person"].name)
    garments = set(m.samples[m.samples.kind == "garment"].name)
    # persons with a bad own file are gone; garments with a bad file are gone
    assert not persons & {"00002_00", "00003_00", "00006_00", "00007_00", "00008_00"}
    assert not garments & {"00001_00", "00004_00", "00005_00"}
    assert "00000_00" in persons
    # no tuple references a dropped sample; the bad list lines produced no tuple
    kept = set(m.samples.sample_id)
    for col in ("person", "garment"):
        assert m.tuples[col].dropna().isin(kept).all()
    assert not (m.tuples.line >= 4).any()
    assert m.assets.sample_id.isin(kept).all() and m.assets.hash.notna().all()  # rows of dropped samples are gone
    assert res.meta["counts"]["assets"] == len(m.assets) == sum(res.meta["counts"]["assets_by_role"].values())
    assert res.meta["dropped"]["samples"] == 8
    assert (m.findings.severity == "fail").sum() >= 11
    assert Path(res.meta["report_file"]).exists()


def test_validate_cli_exit_codes(vitonhd_root, tmp_path):
    from cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "viton-hd", "--root", str(vitonhd_root)])
    assert ok.exit_code == 0, ok.output
    assert "summary:" in ok.output and "0 fail" in ok.output
    root = _copy(vitonhd_root, tmp_path)
    (root / "train" / "openpose_json" / "00007_00_keypoints.json").write_text('{"version":1.3,"people":[]}')
    bad = runner.invoke(app, ["validate", "viton-hd", "--root", str(root)])
    assert bad.exit_code == 1
    assert "00007_00_keypoints.json" in bad.output and "no person" in bad.output
    lenient = runner.invoke(app, ["validate", "viton-hd", "--root", str(root), "--lenient"])
    assert lenient.exit_code == 0


def test_prepare_and_info_cli(vitonhd_root, tmp_path):
    from cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["prepare", "viton-hd", "--root", str(vitonhd_root), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "tuples test/unpaired: 3" in r.output
    r = runner.invoke(app, ["info", "--manifest", str(tmp_path / "o")])
    assert r.exit_code == 0 and "unpaired" in r.output
    r = runner.invoke(app, ["info", "not-prepared"])
    assert r.exit_code == 2 and "not prepared" in r.output


# --------------------------------------------------------------------------- real files


def test_real_vitonhd_pair_lists(realdata, tmp_path):
    """The released pair lists: 2,032 unpaired test lines; 11,647 train lines with a shuffled column 2."""
    src = realdata / "vitonhd" / "stableviton_zalando-hd-resized"
    from vtondata.datasets.base import read_list
    from vtondata.findings import Report

    rep = Report()
    test = list(read_list(src, "test_pairs.txt", rep, ncols=2, path_cols=(0, 1)))
    train = list(read_list(src, "train_pairs.txt", rep, ncols=2, path_cols=(0, 1)))
    assert rep.n_fail == 0
    assert len(test) == 2032 and len(train) == 11647
    assert sum(p == c for _, (p, c) in test) == 0
    assert len({p for _, (p, _) in test}) == 2032 and len({c for _, (_, c) in test}) == 2032
    assert sum(p == c for _, (p, c) in train) == 1
    assert train[0] == (1, ["10224_00.jpg", "03195_00.jpg"])

    # the real lists drive a prepare: a root whose folders hold the listed test persons and cloths
    root = tmp_path / "zalando-hd-resized"
    from vtondata.fixtures.synth import draw_sample

    rng = np.random.default_rng(0)
    d = draw_sample(rng, 128, 96)
    names = [p for _, (p, _) in test[:5]] + [c for _, (_, c) in test[:5]]
    for sub, arr, ext in (("image", d.person, "jpg"), ("cloth", d.garment, "jpg"), ("cloth-mask", d.garment_mask, "jpg")):
        (root / "test" / sub).mkdir(parents=True)
        for n in names:
            Image.fromarray(arr).save(root / "test" / sub / n.replace(".jpg", f".{ext}"))
    (root / "test" / "image-parse-v3").mkdir()
    (root / "test" / "openpose_json").mkdir()
    pose_src = realdata / "vitonhd" / "official_sample_openpose-json" / "00891_00_keypoints.json"
    for n in names:
        stem = n[:-4]
        im = Image.fromarray(d.parse, mode="P")
        im.save(root / "test" / "image-parse-v3" / f"{stem}.png")
        shutil.copy(pose_src, root / "test" / "openpose_json" / f"{stem}_keypoints.json")
    (root / "test_pairs.txt").write_text("".join(f"{p} {c}\n" for _, (p, c) in test[:5]))
    res = prepare("viton-hd", root, out=tmp_path / "out", quiet=True, strict=False)
    t = open_manifest(manifest_dir=res.manifest_dir).tuples
    unp = t[t.setting == "unpaired"].sort_values("line")
    assert list(unp.person.str.split("/").str[-1]) == [p[:-4] for _, (p, _) in test[:5]]
    assert list(unp.garment.str.split("/").str[-1]) == [c[:-4] for _, (_, c) in test[:5]]


def test_real_vitonhd_pose_json(realdata):
    """OpenPose 1.3 BODY_25 + face + hands with CRLF line breaks (00891_00)."""
    p = realdata / "vitonhd" / "official_sample_openpose-json" / "00891_00_keypoints.json"
    raw = p.read_bytes()
    assert raw.count(b"\r\n") == 2 and len(raw) == 3068
    kp, fmt = read_openpose(p)
    assert fmt == "body25" and kp.shape == (25, 3)
    np.testing.assert_allclose(kp[0], [349.091, 147.821, 0.922318], rtol=1e-6)
    np.testing.assert_allclose(kp[1], [400.138, 317.836, 0.770555], rtol=1e-6)
    assert (kp[4] == 0).all()  # a missing joint is 0, 0, 0
    coco = to_coco18(kp)
    assert coco.shape == (18, 3)
    np.testing.assert_array_equal(coco[8], kp[9])  # COCO r_hip <- BODY_25 index 9
    assert kp[:, 0].max() < 768 and kp[:, 1].max() < 1024


def test_pose_writer_round_trips_the_release_format(tmp_path, realdata):
    from vtondata.pose import write_openpose

    src = realdata / "vitonhd" / "official_sample_openpose-json" / "00891_00_keypoints.json"
    kp, _ = read_openpose(src)
    face = np.asarray(json.loads(src.read_text())["people"][0]["face_keypoints_2d"]).reshape(-1, 3)
    out = tmp_path / "x_keypoints.json"
    write_openpose(out, kp, hands=True, crlf=True, face=face)
    assert out.read_bytes().count(b"\r\n") == 2
    assert json.loads(out.read_text()).keys() == json.loads(src.read_text()).keys()
    np.testing.assert_allclose(read_openpose(out)[0], kp, atol=1e-3)


def test_pose_reader_refuses_what_it_cannot_interpret(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text('{"people": [{"pose_keypoints_2d": [1, 2, 3, 4]}]}')
    with pytest.raises(PoseFormatError) as e:
        read_openpose(bad)
    assert "b.json" in str(e.value) and "found 4" in str(e.value)
    bad.write_text("[1, 2]")
    with pytest.raises(PoseFormatError):
        read_openpose(bad)


def test_work_left_by_a_killed_prepare_is_removed(vitonhd_root, tmp_path):
    """A prepare killed mid-way leaves its spool directory; the next prepare removes it (its pid is gone) and never
    touches the work of a live process."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "out"
    stale = out / f".prepare.{int(dead.stdout)}.x1"
    live = out / f".prepare.{os.getpid()}.x2"
    for d in (stale, live):
        d.mkdir(parents=True)
        (d / "probed.arrow").write_bytes(b"half")
    prepare("viton-hd", vitonhd_root, out=out, quiet=True)
    assert not stale.exists() and live.exists()
    assert (out / "manifest" / "assets.parquet").exists()
