"""FiftyOne build of 10,000 generated MPV triplets (batched vs one by one) and noise-scoring throughput.

Data: a drawn MPV fixture (16 triplets, 256x192, detail_carving) is prepared once; its manifest is replicated
under new ids to 10,000 triplets (the rows point at the same files: FiftyOne does not require distinct files),
written with :func:`vtondata.manifest.write_manifest`. Every sample carries its labels: CIHP parse
(``Segmentation``), COCO-18 pose (``Keypoints``) and the cloth mask.

Measured in the same run, in one process with the embedded database started once:
- batched: ``annotate.browse.build`` of all 10,000 groups (30,000 samples) -> samples/s; it writes FiftyOne's
  stored documents directly, 500 groups per ``insert_many`` (new fields / slices go through ``add_samples``);
- one by one: the same builder making a public ``fo.Sample`` per row and calling ``Dataset.add_sample``
  (``one_by_one=True``) on the first ``ONE_BY_ONE_GROUPS`` groups only (it is slow); its per-sample rate is
  extrapolated to 30,000 samples and the table says so. Both share the label preparation (pose JSON reading,
  label documents). Target: batched >= 10x one by one.
- noise scoring (``annotate.review.score``, no FiftyOne push) on ``SCORE_TRIPLETS`` triplets: triplets/s from
  the raw files, then again after building the ``parse`` cache (read through the loader).
``VTONDATA_PERF_QUICK=1`` uses 1,000 triplets.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

TRIPLETS = 1000 if os.environ.get("VTONDATA_PERF_QUICK") == "1" else 10_000
ONE_BY_ONE_GROUPS = 150
SCORE_TRIPLETS = 1000


def _replicate(m, out: Path, n: int) -> Path:
    """Write a manifest of ``n`` triplets by copying the small manifest's rows under suffixed ids."""
    import pandas as pd
    import pyarrow as pa

    from vtondata import schema
    from vtondata.manifest import write_manifest

    t, s, a = m.tuples, m.samples, m.assets
    reps = -(-n // len(t))
    ts, ss, as_ = [], [], []
    for r in range(reps):
        suf = f"~{r}"
        tt = t.copy()
        for c in ("tuple_id", "person", "target_person", "garment"):
            tt[c] = tt[c].where(tt[c].isna(), tt[c].astype(str) + suf)
        ts.append(tt)
        sc = s.copy()
        sc["sample_id"] = sc["sample_id"] + suf
        ss.append(sc)
        ac = a.copy()
        ac["asset_id"], ac["sample_id"] = ac["asset_id"] + suf, ac["sample_id"] + suf
        as_.append(ac)
    tables = {
        "tuples": pa.Table.from_pandas(pd.concat(ts).iloc[:n], schema=schema.TUPLES, preserve_index=False),
        "samples": pa.Table.from_pandas(pd.concat(ss), schema=schema.SAMPLES, preserve_index=False),
        "assets": pa.Table.from_pandas(pd.concat(as_), schema=schema.ASSETS, preserve_index=False),
        "findings": schema.FINDINGS.empty_table(),
    }
    meta = dict(m.meta, fingerprint=f"perf-{n}")
    return write_manifest(out, tables, meta)


def main() -> None:
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    tmp = Path(tempfile.mkdtemp(prefix="perf_browse_"))
    os.environ["VTONDATA_HOME"] = str(tmp / "home")
    # a fixed database folder: it must outlive this process (mongod stops after we exit); our datasets are deleted
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(Path(tempfile.gettempdir()) / "vtondata-perf-fiftyone-db"))
    try:
        from annotate import browse, review
        from vtondata.fixtures import make_fixture
        from vtondata.manifest import open_manifest
        from vtondata.prepare import prepare

        root = make_fixture("mpv", tmp / "mpv", n=16, size="256x192", seed=0)
        res = prepare("mpv", root, quiet=True)
        big = _replicate(open_manifest(manifest_dir=res.manifest_dir), tmp / "big", TRIPLETS)
        fo = browse.connect()  # start the embedded database once, outside the timings
        tag = uuid.uuid4().hex[:6]
        names = (f"perf-batched-{tag}", f"perf-one-by-one-{tag}")
        t0 = time.perf_counter()
        b = browse.build(manifest_dir=big, name=names[0], quiet=True)
        batched_s = time.perf_counter() - t0
        n_samples = b.added
        t0 = time.perf_counter()
        o = browse.build(manifest_dir=big, name=names[1], one_by_one=True, limit=ONE_BY_ONE_GROUPS, quiet=True)
        obo_s = time.perf_counter() - t0
        obo_rate = o.added / obo_s
        batched_rate = n_samples / batched_s
        obo_full = n_samples / obo_rate
        for name in names:
            fo.delete_dataset(name)

        m = open_manifest(manifest_dir=big)
        s_raw = review.score(manifest_dir=big, push=False, limit=SCORE_TRIPLETS, quiet=True)
        cache_note = ""
        try:
            from vtondata.caches.store import build as cache_build

            cache_build(m, "parse", {}, quiet=True)
            s_cache = review.score(manifest_dir=big, push=False, limit=SCORE_TRIPLETS, quiet=True)
        except Exception as exc:  # the cache layer is optional for this measurement
            s_cache, cache_note = None, f" (parse cache unavailable: {type(exc).__name__})"

        print(f"FiftyOne build, {TRIPLETS} MPV triplets = {n_samples} samples with parse, pose, cloth mask")
        print(f"{'method':34s} {'samples':>8s} {'seconds':>9s} {'samples/s':>10s}")
        print(f"{'batched (insert_many, 500 groups)':34s} {n_samples:8d} {batched_s:9.1f} {batched_rate:10.0f}")
        print(f"{'one by one (add_sample), measured':34s} {o.added:8d} {obo_s:9.1f} {obo_rate:10.0f}")
        print(f"{'one by one, extrapolated':34s} {n_samples:8d} {obo_full:9.1f} {obo_rate:10.0f}   "
              f"(rate of the first {ONE_BY_ONE_GROUPS} groups)")
        ratio = batched_rate / obo_rate
        print(f"speed-up batched / one by one: {ratio:.1f}x (target >= 10x: {'met' if ratio >= 10 else 'NOT met'})")
        print(f"noise scoring, {s_raw.scored} triplets (2 loader workers): raw files "
              f"{s_raw.per_s:.0f} triplets/s" + (f", parse cache {s_cache.per_s:.0f} triplets/s" if s_cache else "")
              + cache_note)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
