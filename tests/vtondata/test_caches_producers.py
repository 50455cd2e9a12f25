"""Cache producers: parse (+ plugins), densepose, pose-maps, agnostic, landmark-maps, decoded; the loader on caches."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from vtondata.caches import store
from vtondata.caches.heatmaps import disc_maps, gaussian_maps
from vtondata.errors import VtonDataError, WeightsMissingError
from vtondata.manifest import open_manifest
from vtondata.prepare import prepare


@pytest.fixture()
def man(vitonhd_root, tmp_path):
    prepare("viton-hd", vitonhd_root, out=tmp_path / "out", quiet=True)
    return open_manifest(manifest_dir=tmp_path / "out" / "manifest")


def _persons(man):
    a = man.assets
    return a[a["role"] == "parse"].sort_values("sample_id")


# ----------------------------------------------------------------------------- parse


def test_parse_decodes_palette_and_maps_spaces(man):
    from vtondata.labels import mapping

    r = store.build(man, "parse", quiet=True)
    rd = store.open_reader(man, "parse")
    assert len(rd) == len(_persons(man))
    for row in _persons(man).itertuples():
        ids = np.asarray(Image.open(man.root / row.path))
        np.testing.assert_array_equal(rd.get(row.sample_id, "parse"), ids)
        assert rd.label_space(row.sample_id, "parse") == "cihp20"
    store.build(man, "parse", {"label_space": "lip20"}, quiet=True)
    rl = store.open_reader(man, "parse")
    sid = _persons(man).iloc[0].sample_id
    np.testing.assert_array_equal(rl.get(sid, "parse"), mapping("cihp20", "lip20")[rd.get(sid, "parse")])
    assert rl.label_space(sid, "parse") == "lip20" and rl.dir != r.dir


def test_parse_rgb_colour_encoding(tmp_path):
    from vtondata.decode import read_parse
    from vtondata.labels import label_space

    ids = np.random.default_rng(0).integers(0, 20, (32, 24)).astype(np.uint8)
    rgb = label_space("lip20").colorize(ids)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_parse(tmp_path / "p.png", "rgb_colours", "lip20"), ids)
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "bad.png")
    with pytest.raises(VtonDataError, match="outside label space lip20"):
        read_parse(tmp_path / "bad.png", "rgb_colours", "lip20")


class ThresholdParser:
    """A tiny parser plugin for the tests: dark pixels -> 2 (hair), the rest -> 0 (LIP ids)."""

    name = "test-threshold"
    task = "parse"
    label_space = "lip20"

    def __init__(self, weights=None):
        self.weights = weights
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        return [np.where(im.mean(-1) < 100, 2, 0).astype(np.uint8) for im in images]


def make_threshold():
    return ThresholdParser(weights=str(Path(__file__).with_name("_plugin_weights.bin")))


def test_parse_plugin_python(man, tmp_path):
    w = Path(__file__).with_name("_plugin_weights.bin")
    w.write_bytes(b"weights v1")
    try:
        spec = f"{__name__}:make_threshold"
        r = store.build(man, "parse", {"plugin": spec}, quiet=True)
        meta = json.loads((r.dir / "meta.json").read_text())
        from vtondata.caches.plugins import file_hash

        assert meta["producer"] == "vtondata-parse+test-threshold" and meta["weights_hash"] == file_hash(w)
        rd = store.open_reader(man, "parse")
        row = man.assets[man.assets["role"] == "person"].sort_values("sample_id").iloc[0]
        im = np.asarray(Image.open(man.root / row.path).convert("RGB"))
        np.testing.assert_array_equal(rd.get(row.sample_id, "parse"), np.where(im.mean(-1) < 100, 2, 0))
        assert rd.label_space(row.sample_id, "parse") == "lip20"
        w.write_bytes(b"weights v2")  # new weights -> new cache
        r2 = store.build(man, "parse", {"plugin": spec}, quiet=True, dry_run=True)
        assert r2.fingerprint != r.fingerprint
        w.unlink()
        with pytest.raises(WeightsMissingError, match="weights file not found"):
            store.build(man, "parse", {"plugin": spec}, quiet=True)
    finally:
        w.unlink(missing_ok=True)


def test_parse_plugin_command(man, tmp_path):
    script = tmp_path / "parser.py"
    script.write_text(
        "import sys, pathlib, numpy as np\nfrom PIL import Image\n"
        "src, dst = map(pathlib.Path, sys.argv[1:3])\n"
        "for p in sorted(src.glob('*.png')):\n"
        "    a = np.asarray(Image.open(p).convert('L'))\n"
        "    Image.fromarray(np.where(a > 200, 0, 5).astype(np.uint8), 'L').save(dst / p.name)\n")
    spec = f"cmd:{sys.executable} {script} {{input}} {{output}}#label_space=cihp20"
    r = store.build(man, "parse", {"plugin": spec}, quiet=True)
    meta = json.loads((r.dir / "meta.json").read_text())
    assert meta["producer"].endswith("+cmd:" + Path(sys.executable).name) and meta["weights_hash"]
    rd = store.open_reader(man, "parse")
    row = man.assets[man.assets["role"] == "person"].sort_values("sample_id").iloc[0]
    grey = np.asarray(Image.open(man.root / row.path).convert("L"))
    np.testing.assert_array_equal(rd.get(row.sample_id, "parse"), np.where(grey > 200, 0, 5))
    bad = f"cmd:{sys.executable} -c 'import sys; sys.exit(3)' {{input}} {{output}}"
    with pytest.raises(VtonDataError, match="plugin command failed"):
        store.build(man, "parse", {"plugin": bad}, quiet=True)


# ----------------------------------------------------------------------------- densepose


def test_densepose_decodes_canonical_iuv(man):
    dp = pytest.importorskip("vtondata.densepose", reason="vtondata.densepose (DeepFashion helper) not present")
    store.build(man, "densepose", {"cmap": "vtondata-fixture"}, quiet=True)
    rd = store.open_reader(man, "densepose")
    row = man.assets[man.assets["role"] == "densepose"].sort_values("sample_id").iloc[0]
    iuv = dp.read_iuv(man.root / row.path, row.encoding, cmap="vtondata-fixture")
    got = rd.get(row.sample_id, "iuv")
    np.testing.assert_array_equal(got[..., 0], iuv.i)
    assert (got[..., 1:] == 0).all() and rd.key_meta(row.sample_id)["uv_valid"] is False


def test_densepose_pws_roundtrip(tmp_path):
    dp = pytest.importorskip("vtondata.densepose", reason="vtondata.densepose (DeepFashion helper) not present")
    from vtondata.decode import iuv_to_uint8, read_densepose

    rng = np.random.default_rng(1)
    i = rng.integers(0, 25, (20, 16)).astype(np.uint8)
    u, v = rng.random((20, 16)), rng.random((20, 16))
    dp.write_iuv(tmp_path / "x_iuv.png", i, u, v, encoding="pws_iuv")
    I, U, V = read_densepose(tmp_path / "x_iuv.png", "pws_iuv")
    out = iuv_to_uint8(I, U, V)
    np.testing.assert_array_equal(out[..., 0], i)
    fg = i > 0
    np.testing.assert_array_equal(out[..., 1][fg], np.floor(u * 255)[fg])


# ----------------------------------------------------------------------------- pose maps


def test_heatmaps_match_definitions():
    from skimage.draw import disk

    pts = np.array([[10.3, 7.8], [0.0, 0.0], [30.0, 40.0]])
    vis = np.array([True, False, True])
    d = disc_maps(pts, vis, 48, 36, radius=4)
    assert d.shape == (3, 48, 36) and d[1].sum() == 0
    ref = np.zeros((48, 36), bool)
    yy, xx = np.mgrid[0:48, 0:36]
    ref = (xx - 10.3) ** 2 + (yy - 7.8) ** 2 <= 16
    np.testing.assert_array_equal(d[0].astype(bool), ref)
    # integer centre: skimage's disk (strict inequality) plus the 4 boundary pixels at exactly r
    sk = np.zeros((48, 36), bool)
    rr, cc = disk((40, 30), 4, shape=(48, 36))
    sk[rr, cc] = True
    extra = d[2].astype(bool) & ~sk
    assert not (sk & ~d[2].astype(bool)).any() and extra.sum() == 4
    g = gaussian_maps(pts, vis, 48, 36, sigma=6, dtype=np.float64)
    np.testing.assert_allclose(g[0], np.exp(-((xx - 10.3) ** 2 + (yy - 7.8) ** 2) / 72), atol=1e-12)
    assert g[1].max() == 0 and abs(g[2][40, 30] - 1) < 1e-12


def _limb_mask_reference(kp, h, w, radius):
    """Independent PG2 mask: half-plane quad test + discs, closing by max/min filters (scipy)."""
    from scipy.ndimage import maximum_filter, minimum_filter

    from vtondata.caches.pose_maps import pose_map_table

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    m = np.zeros((h, w), bool)
    vis = ~((kp[:, 0] == 0) & (kp[:, 1] == 0))
    for f, t in pose_map_table()["pg2_mask_limbs"]:
        if vis[f] and vis[t]:
            a, b = kp[f, :2], kp[t, :2]
            d = b - a
            L = np.hypot(*d)
            along = ((xx - a[0]) * d[0] + (yy - a[1]) * d[1]) / L
            across = np.abs((xx - a[0]) * d[1] - (yy - a[1]) * d[0]) / L
            m |= (along >= 0) & (along <= L) & (across <= radius)
    for k in np.nonzero(vis)[0]:
        m |= (xx - kp[k, 0]) ** 2 + (yy - kp[k, 1]) ** 2 < radius ** 2
    closed = minimum_filter(maximum_filter(m, size=5, mode="constant"), size=5, mode="nearest")
    return closed


def test_pose_maps_cache(man):
    from vtondata.pose import read_openpose, to_coco18

    r = store.build(man, "pose-maps", {"maps": "disc,gauss,limb_mask"}, quiet=True)
    rd = store.open_reader(man, "pose-maps")
    a = man.assets
    row = a[a["role"] == "pose"].sort_values("sample_id").iloc[0]
    kp = to_coco18(read_openpose(man.root / row.path)[0])
    vis = ~((kp[:, 0] == 0) & (kp[:, 1] == 0))
    disc = rd.get(row.sample_id, "disc")
    assert disc.shape == (18, 256, 192) and disc.dtype == bool
    np.testing.assert_array_equal(disc, disc_maps(kp[:, :2], vis, 256, 192, 4).astype(bool))
    for k in np.nonzero(vis)[0]:  # each disc sits on its joint, area ~ pi r^2
        assert disc[k][int(round(kp[k, 1])), int(round(kp[k, 0]))] and 40 <= disc[k].sum() <= 60
    g = rd.get(row.sample_id, "gauss")
    assert g.dtype == np.float16 and float(g.max()) <= 1.0
    lm = rd.get(row.sample_id, "limb_mask")
    ref = _limb_mask_reference(kp.astype(np.float64), 256, 192, 4.0)
    iou = (lm & ref).sum() / (lm | ref).sum()
    assert iou > 0.95, iou
    # bit-packed storage: 18 discs + 1 mask at 256x192 take 19*256*192/8 bytes + alignment
    size = sum(p.stat().st_size for p in (r.dir / "chunks").glob("*.bin"))
    assert size < len(rd) * (18 * 256 * 192 * 2 + 19 * 256 * 192 / 8 + 1024)
    with pytest.raises(VtonDataError, match="unknown map"):
        store.build(man, "pose-maps", {"maps": "disc,blobs"}, quiet=True)


def test_pose_maps_resized(man):
    store.build(man, "pose-maps", {"size": "128x96"}, quiet=True)
    rd = store.open_reader(man, "pose-maps")
    k = sorted(rd._meta)[0]
    assert rd.get(k, "disc").shape == (18, 128, 96) and rd.get(k, "limb_mask").shape == (128, 96)


# ----------------------------------------------------------------------------- agnostic


def test_agnostic_recipe_properties(man):
    from vtondata.caches.agnostic import HEAD, LOWER, UPPER

    r = store.build(man, "agnostic", quiet=True)
    rd = store.open_reader(man, "agnostic")
    recs = man.assets
    for sid in sorted(rd._meta)[:4]:
        prow = recs[(recs.sample_id == sid) & (recs.role == "parse")].iloc[0]
        irow = recs[(recs.sample_id == sid) & (recs.role == "person")].iloc[0]
        parse = np.asarray(Image.open(man.root / prow.path))
        person = np.asarray(Image.open(man.root / irow.path).convert("RGB"))
        ag, m, pa = rd.get(sid, "agnostic"), rd.get(sid, "agnostic_mask"), rd.get(sid, "parse_agnostic")
        keep = np.isin(parse, HEAD + LOWER)
        np.testing.assert_array_equal(ag[keep], person[keep])  # head and lower body untouched
        assert (ag[m] == 128).all() and not (m & keep).any()
        upper = np.isin(parse, UPPER)
        assert m[upper].mean() > 0.9  # the garment region is painted
        assert not np.isin(pa, UPPER + (10,)).any()  # upper clothes and neck removed from the parse
        lower = np.isin(parse, LOWER)
        np.testing.assert_array_equal(pa[lower], parse[lower])
    rep = json.loads((r.dir / "agreement.json").read_text())
    assert rep["n"] == len(rd) and 0 < rep["mean"]["mask_iou"] <= 1 and "parse_agreement" in rep["mean"]
    assert any("agreement with the shipped agnostic files" in n for n in r.notes)


def test_agnostic_agreement_is_one_against_itself(man, tmp_path):
    from vtondata.caches.agnostic import agreement

    store.build(man, "agnostic", quiet=True)
    rd = store.open_reader(man, "agnostic")
    # write our own outputs over the shipped files of a copy of the manifest: agreement must be perfect
    import shutil

    root = tmp_path / "root"
    shutil.copytree(man.root, root)
    a = man.assets
    for sid in rd._meta:
        arow = a[(a.sample_id == sid) & (a.role == "agnostic")].iloc[0]
        Image.fromarray(rd.get(sid, "agnostic")).save(root / arow.path, quality=100)
        prow = a[(a.sample_id == sid) & (a.role == "parse_agnostic")].iloc[0]
        from vtondata.fixtures.common import save_palette_png

        save_palette_png(root / prow.path, rd.get(sid, "parse_agnostic"))
    man2 = open_manifest(manifest_dir=man.dir)
    man2.meta = dict(man2.meta, root=str(root))
    rep = agreement(man2, rd)
    assert rep["mean"]["parse_agreement"] == 1.0 and rep["mean"]["mask_iou"] > 0.97
    assert rep["mean"]["image_mae"] < 2.0


def test_agnostic_body25_from_coco18():
    from vtondata.caches.agnostic import to_body25
    from vtondata.pose import BODY25_TO_COCO18

    b = np.random.default_rng(0).random((25, 3)).astype(np.float32) * 100
    c = b[BODY25_TO_COCO18]
    out = to_body25(c)
    np.testing.assert_array_equal(out[BODY25_TO_COCO18], c)
    np.testing.assert_allclose(out[8], (b[9] + b[12]) / 2, rtol=1e-6)


# ----------------------------------------------------------------------------- landmark maps, decoded


def test_landmark_maps_from_table(man):
    a = man.assets
    rows = []
    targets = a[a["role"].isin(["person", "garment"])].sort_values("asset_id").head(3)
    for t in targets.itertuples():
        for k in range(4):
            rows.append({"asset_id": t.asset_id, "side": "garment" if t.role == "garment" else "person",
                         "point": k, "x": 20.0 + 30 * k, "y": 50.0 + 10 * k, "attribute": 0 if k == 3 else 2})
    man.write_table("landmarks", pd.DataFrame(rows))
    r = store.build(man, "landmark-maps", {"sigma": 5}, quiet=True)
    assert r.skipped is None and r.keys == 3
    rd = store.open_reader(man, "landmark-maps")
    t = targets.iloc[0]
    m = rd.get(t.sample_id, "maps")
    assert m.shape == (4, 256, 192) and m.dtype == np.float16
    assert float(m[0, 50, 20]) == 1.0 and m[3].max() == 0
    ref = gaussian_maps(np.array([[50.0, 60.0]]), np.array([True]), 256, 192, 5)
    np.testing.assert_array_equal(m[1], ref[0])


def test_decoded_and_loader_reads_caches_identically(man):
    import vtondata

    fields = ["person", "garment", "garment_mask", "parse", "pose"]
    raw = vtondata.load(None, "train", manifest=man.dir, fields=fields, size="128x96", caches=False)
    for kind in ("decoded", "parse"):
        store.build(man, kind, quiet=True)
    cached = vtondata.load(None, "train", manifest=man.dir, fields=fields, size="128x96")
    assert cached.sources() == {"person": "decoded", "garment": "decoded", "garment_mask": "decoded",
                                "parse": "parse", "pose": "decoded"}
    for i in range(len(raw)):
        a, b = raw[i], cached[i]
        for f in fields:
            assert torch.equal(a[f], b[f]), f
    # fields that only exist as caches
    store.build(man, "pose-maps", quiet=True)
    store.build(man, "agnostic", quiet=True)
    ds = vtondata.load(None, "train", manifest=man.dir, fields=["pose_disc", "limb_mask", "agnostic_mask",
                                                                "agnostic", "parse_agnostic"], size="128x96")
    x = ds[0]
    assert x["pose_disc"].shape == (18, 128, 96) and x["pose_disc"].dtype == torch.float32
    assert set(x["pose_disc"].unique().tolist()) <= {0.0, 1.0} and x["limb_mask"].shape == (1, 128, 96)
    assert x["agnostic"].shape == (3, 128, 96) and x["parse_agnostic"].dtype == torch.int64
    assert ds.sources()["agnostic"] == "agnostic"
