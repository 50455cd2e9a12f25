"""vtondata.load: fields, shapes, ranges, resizing, settings, batching, errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vtondata.errors import UnknownNameError, VtonDataError


@pytest.fixture(scope="module")
def prepared(vitonhd_root, tmp_path_factory):
    """The session VITON-HD fixture prepared into its own output dir; returns the manifest dir."""
    from vtondata.prepare import prepare

    out = tmp_path_factory.mktemp("vitonhd-prepared")
    prepare("viton-hd", vitonhd_root, out=out, quiet=True)
    return out / "manifest"


def test_import_vtondata_is_light():
    import subprocess

    code = "import sys, vtondata; assert 'torch' not in sys.modules and 'vtondata.loader' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    import vtondata
    from vtondata.loader import load

    assert vtondata.load is load


def test_default_fields_native_size(prepared, vitonhd_root):
    import vtondata

    ds = vtondata.load("viton-hd", "train", manifest=prepared)
    from vtondata.manifest import open_manifest

    m = open_manifest(manifest_dir=prepared)
    tup = m.tuples
    assert len(ds) == int(((tup["split"] == "train") & (tup["setting"] == "paired")).sum())
    x = ds[0]
    stem = x["person_id"].rsplit("/", 1)[1]
    assert x["tuple_id"].startswith("train/paired/") and x["garment_id"] == f"train/garment/{stem}"
    person = np.asarray(Image.open(vitonhd_root / "train" / "image" / f"{stem}.jpg").convert("RGB"))
    assert x["person"].shape == (3, 256, 192) and x["person"].dtype == torch.float32
    np.testing.assert_allclose(x["person"].permute(1, 2, 0).numpy(), person / 127.5 - 1, atol=1e-6)
    assert float(x["person"].min()) >= -1 and float(x["person"].max()) <= 1
    gm = x["garment_mask"]
    assert gm.shape == (1, 256, 192) and set(gm.unique().tolist()) == {0.0, 1.0}
    raw_mask = np.asarray(Image.open(vitonhd_root / "train" / "cloth-mask" / f"{stem}.jpg").convert("L"))
    np.testing.assert_array_equal(gm[0].numpy(), (raw_mask >= 128).astype(np.float32))
    parse = np.asarray(Image.open(vitonhd_root / "train" / "image-parse-v3" / f"{stem}.png"))
    assert x["parse"].dtype == torch.int64
    np.testing.assert_array_equal(x["parse"].numpy(), parse)
    kp = json.loads((vitonhd_root / "train" / "openpose_json" / f"{stem}_keypoints.json").read_text())
    np.testing.assert_allclose(x["pose"].numpy().reshape(-1), kp["people"][0]["pose_keypoints_2d"], atol=1e-4)


def test_resize_and_batch(prepared):
    import vtondata

    ds = vtondata.load("viton-hd", "train", manifest=prepared, size="128x96")
    full = vtondata.load("viton-hd", "train", manifest=prepared)
    x, y = ds[1], full[1]
    assert x["person"].shape == (3, 128, 96) and x["parse"].shape == (128, 96)
    # keypoints scaled by the frame ratio, missing joints stay at 0
    vis = (y["pose"][:, 0] != 0) | (y["pose"][:, 1] != 0)
    torch.testing.assert_close(x["pose"][vis, :2], y["pose"][vis, :2] * 0.5)
    assert torch.all(x["pose"][~vis, :2] == 0)
    # parse resized with nearest: only ids present at full size
    assert set(x["parse"].unique().tolist()) <= set(y["parse"].unique().tolist())
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)
    b = next(iter(loader))
    assert b["person"].shape == (4, 3, 128, 96) and b["garment_mask"].shape == (4, 1, 128, 96)
    assert b["pose"].shape == (4, 25, 3) and len(b["tuple_id"]) == 4


def test_unpaired_setting_and_label_space(prepared):
    import vtondata

    ds = vtondata.load("viton-hd", "test", "unpaired", manifest=prepared, fields=["person", "garment", "parse"],
                       label_space="lip20")
    assert len(ds) > 0
    for i in range(len(ds)):
        x = ds[i]
        assert x["person_id"].split("/")[-1] != x["garment_id"].split("/")[-1]
    ds_cihp = vtondata.load("viton-hd", "test", "unpaired", manifest=prepared, fields=["parse"])
    from vtondata.labels import mapping

    lut = torch.from_numpy(mapping("cihp20", "lip20").astype(np.int64))
    torch.testing.assert_close(ds[0]["parse"], lut[ds_cihp[0]["parse"]])


def test_distributed_sampler_partitions(prepared):
    import vtondata
    from torch.utils.data.distributed import DistributedSampler

    ds = vtondata.load("viton-hd", "train", manifest=prepared, fields=["person"])
    seen = []
    for rank in range(2):
        s = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=3)
        seen += [ds[i]["tuple_id"] for i in s]
    assert sorted(set(seen)) == sorted(it["tuple_id"] for it in ds.items)
    # deterministic: a second construction gives the same order and values
    ds2 = vtondata.load("viton-hd", "train", manifest=prepared, fields=["person"])
    assert [it["tuple_id"] for it in ds.items] == [it["tuple_id"] for it in ds2.items]
    torch.testing.assert_close(ds[2]["person"], ds2[2]["person"])


def test_errors(prepared):
    import vtondata

    with pytest.raises(UnknownNameError, match="unknown loader field"):
        vtondata.load("viton-hd", "train", manifest=prepared, fields=["nope"])
    with pytest.raises(VtonDataError, match="no tuples for split"):
        vtondata.load("viton-hd", "train", "multi-pose", manifest=prepared)
    with pytest.raises(VtonDataError, match="target_person"):  # pairs have no target person
        vtondata.load("viton-hd", "train", manifest=prepared, fields=["target_person"])
    with pytest.raises(VtonDataError, match="cache build --kind pose-maps"):
        vtondata.load("viton-hd", "train", manifest=prepared, fields=["pose_disc"], caches=False)
    with pytest.raises(VtonDataError, match="not 'mpv'"):
        vtondata.load("mpv", "train", manifest=prepared)


_TORCHRUN_SCRIPT = """
import os, sys
from vtondata.caches import store
from vtondata.manifest import open_manifest

r = store.build(open_manifest(manifest_dir=sys.argv[1]), "pose-maps", quiet=True, chunk_size=1)
assert r.shard == (int(os.environ["RANK"]), 2), r.shard
print("rank", os.environ["RANK"], "built", r.chunks_built, "of", r.chunks_total)
"""


@pytest.mark.distributed
def test_torchrun_two_processes_shard_identically(vitonhd_root, tmp_path):
    """`torchrun --nproc-per-node 2` on CPU: each rank builds its chunks; the result equals one process."""
    import subprocess

    import vtondata
    from vtondata.caches import store
    from vtondata.manifest import open_manifest
    from vtondata.prepare import prepare

    prepare("viton-hd", vitonhd_root, out=tmp_path / "one", quiet=True)
    prepare("viton-hd", vitonhd_root, out=tmp_path / "two", quiet=True)
    one = store.build(open_manifest(manifest_dir=tmp_path / "one" / "manifest"), "pose-maps", quiet=True,
                      chunk_size=1)
    script = tmp_path / "shard_build.py"
    script.write_text(_TORCHRUN_SCRIPT)
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script), str(tmp_path / "two" / "manifest")], capture_output=True, text=True,
                          env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = [int(line.split()[3]) for line in proc.stdout.splitlines() if line.startswith("rank")]
    assert sorted(built) == [one.chunks_total // 2, one.chunks_total - one.chunks_total // 2]
    two = open_manifest(manifest_dir=tmp_path / "two" / "manifest")
    d2 = store.cache_dir(two, "pose-maps", one.fingerprint)

    def files(d):
        return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
                if p.is_file() and not p.name.startswith(".")}

    assert files(d2) == files(one.dir)
    ds = vtondata.load(None, "train", manifest=two.dir, fields=["pose_disc", "limb_mask"])
    assert ds.sources() == {"pose_disc": "pose-maps", "limb_mask": "pose-maps"} and ds[0]["pose_disc"].shape[0] == 18


def test_viton_original_mat_files(tmp_path):
    """VITON's original release: parses and poses in MATLAB files, decoded by the VITON readers."""
    import vtondata
    from vtondata.errors import UnknownNameError
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    try:
        root = make_fixture("viton", tmp_path / "viton", n=6, size="256x192", layout="original")
    except UnknownNameError as exc:
        pytest.skip(f"VITON fixture not available: {exc}")
    from vtondata.datasets.viton import read_pose_mat, read_segment_mat

    prepare("viton", root, out=tmp_path / "out", quiet=True)
    ds = vtondata.load("viton", "train", manifest=tmp_path / "out", fields=["person", "parse", "pose"],
                       size="128x96")
    x = ds[0]
    stem = x["person_id"].rsplit("/", 1)[1]
    seg = read_segment_mat(root / "segment" / f"{stem}.mat", 192, 256)
    np.testing.assert_array_equal(x["parse"].numpy(), np.asarray(Image.fromarray(seg).resize((96, 128), Image.NEAREST)))
    kp = read_pose_mat(root / "pose" / f"{stem}.mat")
    vis = (kp[:, 0] != 0) | (kp[:, 1] != 0)
    np.testing.assert_allclose(x["pose"].numpy()[vis, :2], kp[vis, :2] * 0.5, rtol=1e-6)
