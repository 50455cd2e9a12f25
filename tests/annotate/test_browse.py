"""``annotate.browse``: the grouped FiftyOne dataset built from a manifest (embedded database in a temp dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]



def _name() -> str:
    return f"vtondata-test-{uuid.uuid4().hex[:8]}"


def _prepared(tmp_path_factory, dataset: str, n: int, size: str, seed: int = 0, **kw) -> Path:
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    base = tmp_path_factory.mktemp(dataset)
    root = make_fixture(dataset, base / "root", n=n, size=size, seed=seed, **kw)
    return prepare(dataset, root, out=base / "out", quiet=True).manifest_dir


@pytest.fixture(scope="session")
def vhd(tmp_path_factory, vitonhd_root) -> Path:
    from vtondata.prepare import prepare

    return prepare("viton-hd", vitonhd_root, out=tmp_path_factory.mktemp("vhd-out"), quiet=True).manifest_dir


@pytest.fixture(scope="session")
def mpv(tmp_path_factory) -> Path:
    return _prepared(tmp_path_factory, "mpv", 8, "256x192", seed=2)


def test_pairs_become_groups_with_labels(fo, vhd):
    from annotate import browse
    from vtondata import decode
    from vtondata.labels import label_space
    from vtondata.manifest import open_manifest
    from vtondata.pose import read_openpose, to_coco18

    m = open_manifest(manifest_dir=vhd)
    name = _name()
    res = browse.build(manifest_dir=vhd, name=name, quiet=True)
    ds = fo.load_dataset(name)
    assert ds.media_type == "group" and set(ds.group_slices) == {"person", "garment"}
    assert ds.default_group_slice == "person"
    assert res.groups == len(m.tuples) and res.added == 2 * len(m.tuples)
    assert len(ds.select_group_slices()) == 2 * len(m.tuples)
    cihp = label_space("cihp20")
    assert ds.mask_targets["parse"] == {i: n for i, n in enumerate(cihp.names) if i > 0}
    colours = {f["path"]: f for f in ds.app_config.color_scheme.fields}
    hat = next(c for c in colours["parse"]["maskTargetsColors"] if c["intTarget"] == 1)
    assert hat["color"] == "#%02x%02x%02x" % tuple(cihp.colors[1])
    assert ds.skeletons["pose"].labels[1] == "neck"

    a = m.assets.set_index("asset_id")
    for s in ds.select_group_slices("person").iter_samples():
        stem = s.sample_id.rsplit("/", 1)[1]
        split = s.split
        assert s.filepath == str(m.root / a.loc[f"{split}/person/{stem}", "path"])
        assert (s.metadata.width, s.metadata.height) == (192, 256)
        assert s.view == "front" and s.category == "upper_body" and s.tuple_kind == "pair"
        # palette parse decoded to grey ids: the App and get_mask() read the same ids as vtondata.decode
        want = decode.read_parse(m.root / a.loc[f"{split}/parse/{stem}", "path"])
        got = s.parse.get_mask()
        assert got.shape == want.shape and np.array_equal(got, want)
        assert Image.open(s.parse.mask_path).mode == "L"
        kp = to_coco18(read_openpose(m.root / a.loc[f"{split}/pose/{stem}", "path"])[0])
        pts = np.asarray(s.pose.keypoints[0].points, float)
        ok = kp[:, 2] > 0
        assert np.allclose(pts[ok], kp[ok, :2] / [192, 256], atol=1e-6)
        assert np.isnan(pts[~ok]).all()
        assert s.densepose is not None and s.densepose.get_mask().max() <= 24
    g = ds.select_group_slices("garment").first()
    gm = g.garment_mask.get_mask()
    assert set(np.unique(gm)) <= {0, 255} and gm.max() == 255  # JPEG mask thresholded into a PNG
    assert "category upper_body" in ds.list_saved_views()
    fo.delete_dataset(name)


def test_triplets_mpv_slices(fo, mpv):
    from annotate import browse
    from vtondata.manifest import open_manifest

    m = open_manifest(manifest_dir=mpv)
    name = _name()
    browse.build(manifest_dir=mpv, name=name, quiet=True)
    ds = fo.load_dataset(name)
    assert ds.group_slices == ["pose_a", "pose_b", "cloth"]
    a = m.assets
    img = a[a["role"] == "person"].set_index("sample_id")["path"]
    mask = a[a["role"] == "garment_mask"].set_index("sample_id")["path"]
    t = m.tuples.set_index("tuple_id")
    for g in ds.iter_groups():
        tid = g["pose_a"].tuple_id
        assert g["pose_a"].filepath == str(m.root / img[t.at[tid, "person"]])
        assert g["pose_b"].filepath == str(m.root / img[t.at[tid, "target_person"]])
        # grey 0/255 PNG masks are shown as they are (no copy)
        assert g["cloth"].garment_mask.mask_path == str(m.root / mask[t.at[tid, "garment"]])
        assert g["pose_b"].framing in ("half", "whole") and g["pose_a"].setting == "multi-pose"
    assert ds.mask_targets["garment_mask"] == {1: "garment", 255: "garment"}
    fo.delete_dataset(name)


def test_incremental_update_adds_only_new_and_removes_gone(fo, vhd, tmp_path):
    """A smaller manifest first, then the full one: only the difference is inserted, ids of the rest kept."""
    from annotate import browse
    from vtondata.manifest import open_manifest, write_manifest

    full = open_manifest(manifest_dir=vhd)
    out = tmp_path / "ds"
    keep = full.tuples.iloc[: len(full.tuples) - 3]

    def write(tuples):
        tables = {n: pa.Table.from_pandas(full.table(n), preserve_index=False) for n in ("assets", "samples", "findings")}
        tables["tuples"] = pa.Table.from_pandas(tuples, preserve_index=False)
        write_manifest(out, tables, dict(full.meta))

    write(keep)
    name = _name()
    r1 = browse.build(manifest_dir=out, name=name, quiet=True)
    assert r1.added == 2 * len(keep)
    ds = fo.load_dataset(name)
    ids_before = dict(zip(*browse._all_slices(ds).values([browse.KEY, "id"])))
    write(full.tuples)
    r2 = browse.build(manifest_dir=out, name=name, quiet=True)
    assert (r2.added, r2.removed, r2.kept) == (6, 0, 2 * len(keep))
    ds.reload()
    keys = browse._all_slices(ds).values(browse.KEY)
    assert len(keys) == len(set(keys)) == 2 * len(full.tuples)
    ids_after = dict(zip(*browse._all_slices(ds).values([browse.KEY, "id"])))
    assert all(ids_after[k] == v for k, v in ids_before.items())
    r3 = browse.build(manifest_dir=out, name=name, quiet=True)
    assert (r3.added, r3.removed) == (0, 0)
    write(keep.iloc[:-2])
    r4 = browse.build(manifest_dir=out, name=name, quiet=True)
    assert r4.removed == 2 * 5 and r4.groups == len(keep) - 2
    fo.delete_dataset(name)


def test_killed_build_completes_without_duplicates(fo, mpv, monkeypatch):
    from annotate import browse

    name = _name()
    real = browse._insert
    calls = {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(*a, **k)

    monkeypatch.setattr(browse, "_insert", dying)
    with pytest.raises(KeyboardInterrupt):
        browse.build(manifest_dir=mpv, name=name, batch_size=2, quiet=True)
    monkeypatch.setattr(browse, "_insert", real)
    ds = fo.load_dataset(name)
    partial = len(browse._all_slices(ds))
    assert 0 < partial < 24
    # a group cut in the middle (one slice missing) is completed with the same group id
    victim = ds.select_group_slices("pose_b").first()
    gid, tid = victim.group.id, victim.tuple_id
    ds.delete_samples([victim.id])
    res = browse.build(manifest_dir=mpv, name=name, quiet=True)
    ds.reload()
    keys = browse._all_slices(ds).values(browse.KEY)
    assert len(keys) == len(set(keys)) == 24 and res.added == 24 - partial + 1
    g = ds.get_group(gid)
    assert set(g) == {"pose_a", "pose_b", "cloth"} and g["pose_b"].tuple_id == tid
    fo.delete_dataset(name)


def test_findings_become_tags_and_reviewer_tags_survive(fo, mpv, tmp_path):
    import shutil

    from annotate import browse
    from vtondata.manifest import open_manifest

    out = tmp_path / "m"
    shutil.copytree(Path(mpv), out / "manifest")
    m = open_manifest(manifest_dir=out)
    person = m.assets[m.assets["role"] == "person"].iloc[0]
    src, line = m.tuples.iloc[0]["source"], int(m.tuples.iloc[0]["line"])

    def findings(rows):
        m.write_table("findings", pd.DataFrame(rows, columns=["severity", "code", "file", "line", "message", "fix"]))

    findings([("warn", "odd-size", person["path"], None, "m", "f"), ("fail", "malformed-line", src, line, "m", "f")])
    name = _name()
    browse.build(manifest_dir=out, name=name, quiet=True)
    ds = fo.load_dataset(name)
    allv = browse._all_slices(ds)
    warned = allv.match_tags("warn:odd-size")
    assert set(warned.values("sample_id")) == {person["sample_id"]}
    failed = allv.match_tags("fail:malformed-line")
    assert set(failed.values("tuple_id")) == {m.tuples.iloc[0]["tuple_id"]} and len(failed) == 3
    assert "failed or warned" in ds.list_saved_views()
    warned.tag_samples("noisy")
    n_noisy = len(warned)
    findings([("warn", "other", person["path"], None, "m", "f")])
    browse.build(manifest_dir=out, name=name, quiet=True)
    ds.reload()
    allv = browse._all_slices(ds)
    assert len(allv.match_tags("warn:odd-size")) == 0 and len(allv.match_tags("fail:malformed-line")) == 0
    assert set(allv.match_tags("warn:other").values("sample_id")) == {person["sample_id"]}
    assert len(allv.match_tags("noisy")) == n_noisy == 2
    fo.delete_dataset(name)


def test_split_option_and_saved_hardpose_view(fo, vhd, tmp_path):
    import shutil

    from annotate import browse
    from vtondata.manifest import open_manifest

    out = tmp_path / "m"
    shutil.copytree(Path(vhd), out / "manifest")
    m = open_manifest(manifest_dir=out)
    test = m.tuples[m.tuples["split"] == "test"]
    (out / "splits").mkdir()
    test.iloc[:2][["tuple_id"]].to_parquet(out / "splits" / "hardpose.parquet")
    name = _name()
    r = browse.build(manifest_dir=out, name=name, split="test", quiet=True)
    assert r.groups == len(test)
    ds = fo.load_dataset(name)
    assert set(browse._all_slices(ds).distinct("split")) == {"test"}
    assert set(ds.load_saved_view("hard pose").values("tuple_id")) == set(test["tuple_id"].iloc[:2])
    r2 = browse.build(manifest_dir=out, name=name, quiet=True)
    assert r2.added == 2 * (len(m.tuples) - len(test)) and r2.kept == 2 * len(test)
    with pytest.raises(Exception, match="no split"):
        browse.build(manifest_dir=out, name=name, split="val", quiet=True)
    fo.delete_dataset(name)


@pytest.mark.parametrize("dataset,n,size", [("viton", 4, "256x192"), ("deepfashion", 4, "256x176"),
                                            ("strat", 3, "128x128")])
def test_other_datasets_build(fo, tmp_path_factory, dataset, n, size):
    from annotate import browse
    from vtondata.manifest import open_manifest

    d = _prepared(tmp_path_factory, dataset, n, size)
    m = open_manifest(manifest_dir=d)
    name = _name()
    r = browse.build(manifest_dir=d, name=name, quiet=True)
    assert r.groups == len(m.tuples) and not r.skipped
    ds = fo.load_dataset(name)
    schema = ds.get_field_schema()
    if dataset == "viton":
        assert {"parse", "pose", "person_mask"} <= set(schema)
    elif dataset == "deepfashion":
        assert ds.group_slices == ["person", "target_person"]
        s = ds.first()
        assert len(s.pose.keypoints[0].points) == 18  # from the keypoint CSV table
    else:
        assert ds.group_slices == ["foreground", "background", "composite"]
        g = next(ds.iter_groups())
        params = m.table("strat_params").set_index("tuple_id")
        fin = np.asarray(params.at[g["composite"].tuple_id, "final_vertex"], float).reshape(-1, 2)
        got = np.asarray(g["composite"].vertices.polylines[0].points[0]) * [g["composite"].metadata.width,
                                                                               g["composite"].metadata.height]
        assert np.allclose(got, fin, atol=1e-3)
        assert g["background"].parse is not None and "parse" in ds.mask_targets
    fo.delete_dataset(name)


def test_landmarks_table_shown_as_keypoints(fo, vhd, tmp_path):
    import shutil

    from annotate import browse
    from annotate.landmarks.manifest import write_landmarks
    from vtondata.manifest import open_manifest

    out = tmp_path / "m"
    shutil.copytree(Path(vhd), out / "manifest")
    m = open_manifest(manifest_dir=out)
    person = m.assets[m.assets["role"] == "person"].iloc[0]
    xy = np.stack([np.linspace(10, 150, 32), np.linspace(20, 200, 32)], 1)
    attr = np.where(np.arange(32) % 5 == 0, 0, 2)
    write_landmarks(m, pd.DataFrame({"asset_id": person["asset_id"], "side": "person", "point": np.arange(32),
                                     "x": xy[:, 0], "y": xy[:, 1], "attribute": attr, "scheme": "sal32"}))
    name = _name()
    browse.build(manifest_dir=out, name=name, quiet=True)
    ds = fo.load_dataset(name)
    assert "landmarks" in ds.skeletons
    s = browse._all_slices(ds).match(browse.fiftyone().ViewField("sample_id") == person["sample_id"]).first()
    pts = np.asarray(s.landmarks.keypoints[0].points, float)
    vis = attr > 0
    assert np.allclose(pts[vis], xy[vis] / [192, 256], atol=1e-4) and np.isnan(pts[~vis]).all()
    fo.delete_dataset(name)


def test_cli_no_launch(fo, mpv):
    from typer.testing import CliRunner

    import cli

    name = _name()
    r = CliRunner().invoke(cli.app, ["browse", "mpv", "--manifest", str(mpv), "--name", name, "--no-launch"])
    assert r.exit_code == 0, r.output
    assert f"{name}: 8 groups (pose_a, pose_b, cloth), +24 samples" in r.output
    assert len(fo.load_dataset(name).select_group_slices()) == 24
    r = CliRunner().invoke(cli.app, ["browse", "mpv", "--manifest", str(mpv), "--split", "nope", "--no-launch"])
    assert r.exit_code == 2 and "no split 'nope'" in r.output
    fo.delete_dataset(name)


def test_unreachable_database_is_one_clear_error(tmp_path):
    env = dict(os.environ, FIFTYONE_DATABASE_URI="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300",
               FIFTYONE_DO_NOT_TRACK="true", FIFTYONE_DATABASE_VALIDATION="false")
    env.pop("FIFTYONE_PRIVATE_DATABASE_PORT", None)
    code = "from annotate import browse\ntry:\n    browse.connect()\nexcept browse.BrowseError as e:\n    print('ERR', e)\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "ERR cannot reach the MongoDB server of FIFTYONE_DATABASE_URI" in r.stdout, r.stdout + r.stderr
    assert "fix: check FIFTYONE_DATABASE_URI" in r.stdout


def test_perf_replication_keeps_labels(fo, mpv, tmp_path):
    """The perf benchmark's replicated manifest is a valid manifest whose groups carry the labels."""
    from annotate import browse
    from bench.perf.perf_browse import _replicate
    from vtondata.manifest import open_manifest

    big = _replicate(open_manifest(manifest_dir=mpv), tmp_path / "big", 20)
    name = _name()
    r = browse.build(manifest_dir=big, name=name, quiet=True)
    assert r.groups == 20 and r.added == 60
    ds = fo.load_dataset(name)
    assert len(ds.select_group_slices("pose_a").exists("parse")) == 20
    assert len(ds.select_group_slices("cloth").exists("garment_mask")) == 20
    fo.delete_dataset(name)
    info = json.loads((big / "meta.json").read_text())
    assert info["fingerprint"] == "perf-20"


def test_embedded_database_failure_names_folder_and_binary(fo, tmp_path, monkeypatch):
    """A database that does not start becomes one BrowseError naming the folder, the mongod binary and its log.

    (In-process: FiftyOne attaches to any database service already running on the machine, so a second process
    cannot be made to fail reliably while other tests hold one.)"""
    import fiftyone.core.odm.database as fodb

    from annotate import browse

    dbdir = tmp_path / "db"
    (dbdir / "log").mkdir(parents=True)
    (dbdir / "log" / "mongo.log").write_text('{"msg":"first"}\n{"msg":"Fatal assertion: WiredTiger error"}\n')

    def refused():
        raise PermissionError(f"Database directory `{dbdir}` cannot be written to")

    monkeypatch.setattr(fodb, "get_db_conn", refused)
    monkeypatch.setattr(fo.config, "database_dir", str(dbdir))
    monkeypatch.setattr(fo.config, "database_uri", None)
    with pytest.raises(browse.BrowseError) as e:
        browse.connect()
    msg = str(e.value)
    assert "embedded database did not start (PermissionError" in msg and f"database_dir={dbdir}" in msg
    assert "mongod=" in msg and msg.split("mongod=")[1].split(";")[0].endswith("bin/mongod")
    assert "log tail:" in msg and "WiredTiger error" in msg and "fix: set FIFTYONE_DATABASE_DIR" in msg


def test_dataset_prepared_again_from_another_root_is_refreshed(fo, tmp_path):
    import shutil

    from annotate import browse
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    root = make_fixture("mpv", tmp_path / "a", n=4, size="128x96", seed=3)
    out = tmp_path / "out"
    mdir = prepare("mpv", root, out=out, quiet=True).manifest_dir
    name = _name()
    assert browse.build(manifest_dir=mdir, name=name, quiet=True).added == 12
    shutil.copytree(root, tmp_path / "b")
    mdir = prepare("mpv", tmp_path / "b", out=out, quiet=True, force=True).manifest_dir
    r = browse.build(manifest_dir=mdir, name=name, quiet=True)
    assert (r.removed, r.added, r.kept) == (12, 12, 0)
    ds = fo.load_dataset(name)
    paths = browse._all_slices(ds).values("filepath")
    assert len(paths) == 12 and all(p.startswith(str(tmp_path / "b")) for p in paths)
    assert browse.build(manifest_dir=mdir, name=name, quiet=True).added == 0
    fo.delete_dataset(name)
