"""Cache build throughput per kind, 2-shard scaling, and loader batch throughput from caches vs raw files.

Data: a generated VITON-HD fixture (``PERSONS`` persons, 256x192) prepared once; for ``smpl-flow`` a generated
set of ``TRIPLETS`` triplets rendered from the synthetic body mesh (meshes + Pose-with-Style IUV files).

Measured in the same run:
- build: samples (keys) per second of each kind, one process, from an empty cache;
- scaling: wall time of the ``agnostic`` build in one process vs two processes ``--shard 0/2`` and ``1/2`` run
  at the same time (process start included), on the machine's cores;
- loader: batches of 8 at 256x192 (person, garment, garment_mask, parse, pose, densepose) per second through a
  ``DataLoader`` (no workers), reading raw files (JPEG, palette PNG, OpenPose JSON, DensePose picture) vs
  reading the ``decoded`` / ``parse`` / ``densepose`` caches; target >= 5x. Each loader mode runs in its own
  process and reports its peak resident memory.
``VTONDATA_PERF_QUICK=1`` uses fewer samples.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUICK = os.environ.get("VTONDATA_PERF_QUICK") == "1"
PERSONS = 48 if QUICK else 192
TRIPLETS = 8 if QUICK else 24
LOADER_FIELDS = ["person", "garment", "garment_mask", "parse", "pose", "densepose"]

_LOADER_CHILD = r"""
import json, resource, sys, time
import torch
import vtondata
man, mode, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
fields = json.loads(sys.argv[4])
ds = vtondata.load(None, "train", manifest=man, fields=fields, size="256x192",
                   caches=False if mode == "raw" else "auto")
dl = torch.utils.data.DataLoader(ds, batch_size=8, shuffle=False, num_workers=0, drop_last=True)
next(iter(dl))  # warm-up (opens files / memory maps)
t0 = time.perf_counter(); n = 0
for _ in range(epochs):
    for b in dl:
        n += 1
dt = time.perf_counter() - t0
print(json.dumps({"batches": n, "seconds": dt, "sources": ds.sources(),
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_SHARD_CHILD = r"""
import sys, time
from vtondata.caches import store
from vtondata.manifest import open_manifest
t0 = time.perf_counter()
r = store.build(open_manifest(manifest_dir=sys.argv[1]), "agnostic", shard=sys.argv[2], quiet=True, chunk_size=8)
print(r.samples_built, time.perf_counter() - t0)
"""


def _mesh_triplets(out: Path, n: int):
    """A prepared-like manifest of ``n`` triplets over persons rendered from the body mesh in two poses."""
    import hashlib

    import numpy as np
    from PIL import Image

    from vtondata import schema
    from vtondata.densepose import write_iuv
    from vtondata.fixtures.mesh import render, two_poses
    from vtondata.manifest import open_manifest, write_manifest

    H, W = 256, 192
    root, meshes = out / "root", out / "meshes"
    (root / "img").mkdir(parents=True)
    meshes.mkdir()
    poses = two_poses(H, W)
    rendered = [render(m, H, W) for m in poses]
    assets, samples, tuples = [], [], []
    for i in range(n + 1):
        mesh, r = poses[i % 2], rendered[i % 2]
        name = f"p{i:04d}"
        Image.fromarray(r["image"]).save(root / "img" / f"{name}.png")
        write_iuv(root / "img" / f"{name}_iuv.png", r["I"], r["U"], r["V"], encoding="pws_iuv")
        np.savez(meshes / f"{name}.npz", vertices=mesh.vertices + np.float32(i * 1e-3), faces=mesh.faces)
        sid = f"train/person/{name}"
        samples.append({"sample_id": sid, "dataset": "deepfashion", "split": "train", "kind": "person", "name": name})
        for role, path, enc in (("person", f"img/{name}.png", None), ("densepose", f"img/{name}_iuv.png", "pws_iuv")):
            data = (root / path).read_bytes()
            assets.append({"asset_id": f"train/{role}/{name}", "dataset": "deepfashion", "split": "train",
                           "role": role, "sample_id": sid, "path": path, "width": W, "height": H, "encoding": enc,
                           "hash": hashlib.blake2b(data, digest_size=16).hexdigest()})
        if i:
            tuples.append({"tuple_id": f"train/multi-pose/{i - 1:04d}", "dataset": "deepfashion", "split": "train",
                           "kind": "triplet", "setting": "multi-pose", "person": f"train/person/p{i - 1:04d}",
                           "target_person": sid})
    tables = {"assets": schema.to_table(assets, schema.ASSETS), "samples": schema.to_table(samples, schema.SAMPLES),
              "tuples": schema.to_table(tuples, schema.TUPLES), "findings": schema.FINDINGS.empty_table()}
    write_manifest(out / "out", tables, {"dataset": "deepfashion", "root": str(root), "fingerprint": "perf"})
    return open_manifest(manifest_dir=out / "out" / "manifest"), meshes


def _row(cols, widths):
    return "  ".join(str(c).ljust(w) for c, w in zip(cols, widths))


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="perf_caches_"))
    os.environ["VTONDATA_HOME"] = str(tmp / "home")
    from vtondata.caches import store
    from vtondata.fixtures import make_fixture
    from vtondata.manifest import open_manifest
    from vtondata.prepare import prepare

    root = make_fixture("viton-hd", tmp / "vitonhd", n=PERSONS, size="256x192", seed=0)
    man_dir = prepare("viton-hd", root, out=tmp / "vh", quiet=True).manifest_dir
    man = open_manifest(manifest_dir=man_dir)

    # ---- build throughput per kind
    print(f"build throughput, one process (VITON-HD fixture, {PERSONS} persons at 256x192):")
    widths = (16, 8, 10, 12)
    print(_row(("kind", "keys", "seconds", "keys/s"), widths))
    plan = [("decoded", {}), ("parse", {}), ("densepose", {"cmap": "vtondata-fixture"}), ("pose-maps", {}),
            ("pose-maps+gauss", {"maps": "disc,gauss,limb_mask"}), ("agnostic", {})]
    for label, params in plan:
        kind = label.split("+")[0]
        t0 = time.perf_counter()
        r = store.build(man, kind, params, quiet=True, force=True)
        dt = time.perf_counter() - t0
        print(_row((label, r.samples_built, f"{dt:.2f}", f"{r.samples_built / dt:.1f}"), widths))
    try:
        tman, meshes = _mesh_triplets(tmp / "mesh", TRIPLETS)
        for label, params in (("smpl-flow mesh", {"source": "mesh", "meshes": str(meshes)}),
                              ("smpl-flow iuv", {"source": "iuv"})):
            t0 = time.perf_counter()
            r = store.build(tman, "smpl-flow", params, quiet=True, force=True)
            dt = time.perf_counter() - t0
            print(_row((label, r.samples_built, f"{dt:.2f}", f"{r.samples_built / dt:.1f}"), widths))
    except ImportError as exc:
        print(f"smpl-flow: skipped ({exc})")
    store.build(man, "densepose", {"cmap": "vtondata-fixture"}, quiet=True)  # leave the loader's caches current

    # ---- scaling with 2 shards
    script = tmp / "shard.py"
    script.write_text(_SHARD_CHILD)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def fresh():
        import shutil

        shutil.rmtree(store.caches_dir(man) / "agnostic", ignore_errors=True)

    fresh()
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(script), str(man_dir), "0/1"], check=True, env=env, capture_output=True,
                         text=True).stdout.split()
    one, one_build = time.perf_counter() - t0, float(out[1])
    fresh()
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(script), str(man_dir), f"{i}/2"], env=env,
                              stdout=subprocess.PIPE, text=True) for i in range(2)]
    builds = [float(p.communicate()[0].split()[1]) for p in procs]
    two, two_build = time.perf_counter() - t0, max(builds)
    print(f"\nscaling, agnostic build of {PERSONS} persons ({os.cpu_count()} cores):")
    widths = (10, 14, 10, 16, 10)
    print(_row(("processes", "wall s (+start)", "speed-up", "build s (slowest)", "speed-up"), widths))
    print(_row((1, f"{one:.2f}", "1.00x", f"{one_build:.2f}", "1.00x"), widths))
    print(_row((2, f"{two:.2f}", f"{one / two:.2f}x", f"{two_build:.2f}", f"{one_build / two_build:.2f}x"), widths))

    # ---- loader: caches vs raw
    child = tmp / "loader.py"
    child.write_text(_LOADER_CHILD)
    epochs = 2 if QUICK else 4
    res = {}
    for mode in ("raw", "cache"):
        out = subprocess.run([sys.executable, str(child), str(man_dir), mode, str(epochs), json.dumps(LOADER_FIELDS)],
                             check=True, capture_output=True, text=True, env=env)
        res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nloader, batch of 8 at 256x192, fields {', '.join(LOADER_FIELDS)} (DataLoader, no workers):")
    widths = (8, 10, 12, 14, 10)
    print(_row(("source", "batches", "batches/s", "samples/s", "peak MiB"), widths))
    rate = {}
    for mode, r in res.items():
        rate[mode] = r["batches"] / r["seconds"]
        print(_row((mode, r["batches"], f"{rate[mode]:.1f}", f"{8 * rate[mode]:.0f}", f"{r['maxrss_mib']:.0f}"),
                   widths))
    ratio = rate["cache"] / rate["raw"]
    print(f"caches vs raw: {ratio:.1f}x (target >= 5x: {'met' if ratio >= 5 else 'NOT met'}); "
          f"cache sources: {res['cache']['sources']}")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
