"""Cache store: fingerprints, chunk checksums, resume after SIGKILL, shards, finalize, gc, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vtondata.caches import store
from vtondata.errors import VtonDataError
from vtondata.manifest import open_manifest
from vtondata.prepare import prepare


def _prepared(root: Path, out: Path):
    prepare("viton-hd", root, out=out, quiet=True)
    return open_manifest(manifest_dir=out / "manifest")


def _files(d: Path) -> dict:
    """Relative path -> bytes of every non-hidden file (lock and temporary files excluded)."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


@pytest.fixture()
def man(vitonhd_root, tmp_path):
    return _prepared(vitonhd_root, tmp_path / "out")


def test_fingerprint_tracks_params_and_inputs(man, vitonhd_root, tmp_path):
    a = store.build(man, "pose-maps", {"radius": 4}, quiet=True)
    b = store.build(man, "pose-maps", {"radius": 4}, quiet=True)
    assert a.fingerprint == b.fingerprint and b.chunks_built == 0 and b.chunks_skipped == a.chunks_total
    c = store.build(man, "pose-maps", {"radius": 6}, quiet=True)
    assert c.fingerprint != a.fingerprint
    # the new parameters are current; the old cache stays until gc
    assert store.current_fingerprint(man, "pose-maps") == c.fingerprint
    assert (store.caches_dir(man) / "pose-maps" / a.fingerprint).is_dir()
    removed = store.gc(man)
    assert store.caches_dir(man) / "pose-maps" / a.fingerprint in removed
    assert not (store.caches_dir(man) / "pose-maps" / a.fingerprint).exists()
    assert (store.caches_dir(man) / "pose-maps" / c.fingerprint).is_dir()
    # a changed input file (one pose) changes the fingerprint
    import shutil

    root2 = tmp_path / "root2"
    shutil.copytree(vitonhd_root, root2)
    pj = next((root2 / "train" / "openpose_json").glob("*.json"))
    obj = json.loads(pj.read_text())
    obj["people"][0]["pose_keypoints_2d"][0] += 3.0
    pj.write_text(json.dumps(obj))
    m2 = _prepared(root2, tmp_path / "out2")
    d = store.build(m2, "pose-maps", {"radius": 6}, quiet=True, dry_run=True)
    assert d.fingerprint != c.fingerprint and d.dry_run and d.chunks_built == 0
    assert not (store.caches_dir(m2) / "pose-maps").exists()  # dry run writes nothing


def test_fingerprint_records_identity(man):
    r = store.build(man, "parse", {"label_space": "lip20"}, quiet=True)
    meta = json.loads((r.dir / "meta.json").read_text())
    assert meta["producer"] == "vtondata-parse" and meta["params"]["label_space"] == "lip20"
    assert meta["weights_hash"] is None and meta["fingerprint"] == r.fingerprint
    items = __import__("vtondata.caches", fromlist=["make_producer"]).make_producer(
        "parse", label_space="lip20").items(man)
    assert store.fingerprint(meta, items) == r.fingerprint
    with pytest.raises(VtonDataError, match="no parameter"):
        store.build(man, "parse", {"radius": 3}, quiet=True)


def test_skip_with_reason(man):
    r = store.build(man, "smpl-flow", quiet=True)
    assert r.skipped and "no tuples with a source and a target person" in r.skipped
    r = store.build(man, "landmark-maps", quiet=True)
    assert r.skipped and "landmarks table" in r.skipped


def test_corrupt_chunk_detected_and_rebuilt(man):
    r = store.build(man, "parse", quiet=True, chunk_size=4)
    clean = _files(r.dir)
    reader = store.open_reader(man, "parse")
    key = sorted(reader._meta)[0]
    good = reader.get(key, "parse").copy()
    chunk = reader._loc[(key, "parse")][0]
    b = r.dir / "chunks" / f"{chunk}.bin"
    raw = bytearray(b.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    b.write_bytes(bytes(raw))
    fresh = store.open_reader(man, "parse")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = fresh.get(key, "parse")
    np.testing.assert_array_equal(again, good)
    assert _files(r.dir) == clean
    # a build also notices the bad chunk and redoes it
    raw = bytearray(b.read_bytes())
    raw[10] ^= 0x01
    b.write_bytes(bytes(raw))
    r2 = store.build(man, "parse", quiet=True, chunk_size=4)
    assert r2.chunks_built == 1 and _files(r.dir) == clean


def test_shards_union_equals_single(vitonhd_root, tmp_path):
    m1 = _prepared(vitonhd_root, tmp_path / "one")
    m2 = _prepared(vitonhd_root, tmp_path / "two")
    one = store.build(m1, "pose-maps", quiet=True, chunk_size=2)
    parts = [store.build(m2, "pose-maps", shard=f"{i}/3", quiet=True, chunk_size=2) for i in range(3)]
    assert sum(p.chunks_mine for p in parts) == one.chunks_total
    assert not parts[0].complete and parts[2].complete
    assert _files(one.dir) == _files(parts[0].dir)
    with pytest.raises(VtonDataError, match="bad shard"):
        store.parse_shard("3/3")
    os.environ["WORLD_SIZE"], os.environ["RANK"] = "4", "1"
    try:
        assert store.parse_shard(None) == (1, 4)
    finally:
        del os.environ["WORLD_SIZE"], os.environ["RANK"]


def test_split_and_force(man):
    r = store.build(man, "pose-maps", split="test", quiet=True)
    st = json.loads((r.dir / "state.json").read_text())
    assert st["complete_splits"] == ["test"] and not st["complete"]
    r2 = store.build(man, "pose-maps", quiet=True)
    assert r2.chunks_skipped == r.chunks_built and r2.complete
    r3 = store.build(man, "pose-maps", quiet=True, force=True)
    assert r3.chunks_built == r3.chunks_total
    with pytest.raises(VtonDataError, match="split 'val'"):
        store.build(man, "pose-maps", split="val", quiet=True)


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import vtondata.caches as caches
    from vtondata.caches.pose_maps import PoseMapsProducer
    from vtondata.caches import store
    from vtondata.manifest import open_manifest

    class Slow(PoseMapsProducer):
        def produce(self, items, root):
            time.sleep(0.15)
            return super().produce(items, root)

    caches.make_producer = lambda kind, **p: Slow(**p)
    store.build(open_manifest(manifest_dir=sys.argv[1]), "pose-maps", quiet=True, chunk_size=1)
""")


def test_resume_after_sigkill_is_byte_identical(vitonhd_root, tmp_path):
    ref = _prepared(vitonhd_root, tmp_path / "ref")
    full = store.build(ref, "pose-maps", quiet=True, chunk_size=1)
    man = _prepared(vitonhd_root, tmp_path / "killed")
    script = tmp_path / "slow_build.py"
    script.write_text(_KILL_SCRIPT)
    d = store.cache_dir(man, "pose-maps", full.fingerprint)
    for delay in (0.0, 0.4):  # once before any chunk lands, once in the middle
        proc = subprocess.Popen([sys.executable, str(script), str(man.dir)])
        t0 = time.time()
        while time.time() - t0 < 60:
            n = len(list((d / "chunks").glob("*.json"))) if (d / "chunks").is_dir() else 0
            if (delay == 0 and (d / "plan.json").exists()) or (delay > 0 and n >= 2):
                break
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = len(list((d / "chunks").glob("*.json")))
    assert 0 < done < full.chunks_total, "the kill should land mid-build"
    resumed = store.build(man, "pose-maps", quiet=True, chunk_size=1)
    assert resumed.chunks_skipped == done and resumed.chunks_built == full.chunks_total - done
    assert resumed.fingerprint == full.fingerprint
    assert _files(d) == _files(full.dir)


def test_cli_build_status_gc_finalize(vitonhd_root, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli import app

    monkeypatch.setenv("VTONDATA_HOME", str(tmp_path / "home"))
    prepare("viton-hd", vitonhd_root, quiet=True)
    run = CliRunner().invoke
    r = run(app, ["cache", "build", "--kind", "pose-maps", "--dataset", "viton-hd", "--param", "radius=5",
                  "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "would build" in r.output and not (tmp_path / "home" / "viton-hd" / "caches").exists()
    r = run(app, ["cache", "build", "--kind", "pose-maps", "--dataset", "viton-hd", "--param", "radius=5",
                  "--shard", "0/2"])
    assert r.exit_code == 0 and "partial" in r.output, r.output
    r = run(app, ["cache", "build", "--kind", "pose-maps", "--dataset", "viton-hd", "--param", "radius=5",
                  "--shard", "1/2"])
    assert r.exit_code == 0 and "complete" in r.output, r.output
    r = run(app, ["cache", "build", "--kind", "smpl-flow", "--dataset", "viton-hd"])
    assert r.exit_code == 0 and "skip" in r.output
    r = run(app, ["cache", "status", "--dataset", "viton-hd"])
    assert r.exit_code == 0 and "pose-maps" in r.output and "complete" in r.output, r.output
    r = run(app, ["cache", "finalize", "--kind", "pose-maps", "--dataset", "viton-hd"])
    assert r.exit_code == 0 and "complete" in r.output, r.output
    r = run(app, ["cache", "gc", "--dataset", "viton-hd"])
    assert r.exit_code == 0 and "nothing to collect" in r.output
    r = run(app, ["cache", "build", "--kind", "nope", "--dataset", "viton-hd"])
    assert r.exit_code == 2 and "unknown cache kind" in r.output
