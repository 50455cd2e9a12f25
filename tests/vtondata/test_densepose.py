"""DensePose decoding: the real Pose-with-Style IUV files, the three encodings, detection and the file probe."""

from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vtondata.densepose import (IUV, check, colormap, decode_iuv, detect_encoding, encode_iuv, read_iuv,
                                segm_to_index, write_iuv)
from vtondata.errors import DensePoseFormatError, ImageReadError

PWS_STEMS = ("fashionWOMENBlouses_Shirtsid0000635004_1front", "fashionWOMENDressesid0000262902_1front",
             "fashionWOMENDressesid0000262902_3back", "fashionWOMENSkirtsid0000177102_1front")


@pytest.fixture(scope="module")
def pws_dir(realdata) -> Path:
    d = realdata / "deepfashion" / "pose_with_style_data"
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d


@pytest.mark.parametrize("stem", PWS_STEMS)
def test_real_pws_iuv_decodes_exactly(pws_dir, stem):
    path = pws_dir / f"{stem}_iuv.png"
    raw = np.asarray(Image.open(path).convert("RGB"))
    assert detect_encoding(raw, path.name) == "pws_iuv"
    iuv = read_iuv(path)
    assert isinstance(iuv, IUV) and iuv.encoding == "pws_iuv" and iuv.uv_valid
    assert iuv.shape == (512, 348) and iuv.i.dtype == np.uint8 and iuv.u.dtype == np.float32
    # part range 0-24, both head parts present, U,V exactly zero off the body and G/255, B/255 on it
    assert iuv.i.min() == 0 and iuv.i.max() == 24 and {23, 24} <= set(np.unique(iuv.i).tolist())
    bg = iuv.i == 0
    assert (iuv.u[bg] == 0).all() and (iuv.v[bg] == 0).all()
    np.testing.assert_array_equal(iuv.u[~bg], raw[..., 1][~bg].astype(np.float32) / 255)
    np.testing.assert_array_equal(iuv.v[~bg], raw[..., 2][~bg].astype(np.float32) / 255)
    assert 0 <= iuv.u.min() and iuv.u.max() <= 1 and 0 <= iuv.v.min() and iuv.v.max() <= 1
    assert 0.25 < iuv.foreground.mean() < 0.5  # a standing person fills about a third of the frame
    # DensePose torso: part 1 is the back, part 2 the front -- the view in the file name says which one
    parts = set(np.unique(iuv.i).tolist())
    seen, hidden = {"front": (2, 1), "back": (1, 2)}[re.search(r"(front|back)$", stem).group(1)]
    assert seen in parts and hidden not in parts
    # the real file is not a Detectron1 file: its blue channel (V*255) goes far above 24
    assert check(raw, "pws_iuv") is None and "part index" in check(raw, "detectron_iuv")
    with pytest.raises(DensePoseFormatError):
        decode_iuv(raw, "detectron_iuv")


@pytest.mark.parametrize("stem", [s for s in PWS_STEMS if "Dressesid0000262902_1front" not in s])
def test_real_silhouette_is_binary_and_covers_the_densepose_body(pws_dir, stem):
    sil = np.asarray(Image.open(pws_dir / f"{stem}_sil.png"))
    assert sil.ndim == 2 and set(np.unique(sil).tolist()) == {0, 255}
    fg = read_iuv(pws_dir / f"{stem}_iuv.png").foreground
    inside = (sil[fg] == 255).mean()
    assert inside > 0.95, inside  # DensePose body pixels lie inside the CIHP silhouette


def test_encode_roundtrips_the_real_file_bytes(pws_dir):
    path = pws_dir / f"{PWS_STEMS[0]}_iuv.png"
    raw = np.asarray(Image.open(path).convert("RGB"))
    iuv = read_iuv(path, "pws_iuv")
    np.testing.assert_array_equal(encode_iuv(iuv.i, iuv.u, iuv.v, encoding="pws_iuv"), raw)
    det = encode_iuv(iuv.i, iuv.u, iuv.v, encoding="detectron_iuv")
    assert detect_encoding(det) == "detectron_iuv"
    back = decode_iuv(det, "detectron_iuv")
    np.testing.assert_array_equal(back.i, iuv.i)
    np.testing.assert_array_equal(back.u, iuv.u)
    np.testing.assert_array_equal(back.v, iuv.v)


def test_detectron_file_matches_the_opencv_convention(tmp_path):
    """Detectron1 writes [I, U*255, V*255] with cv2.imwrite: cv2.imread(...)[:, :, 0] is I."""
    rng = np.random.default_rng(0)
    i = rng.integers(0, 25, (40, 30)).astype(np.uint8)
    u, v = rng.random((40, 30)), rng.random((40, 30))
    ref = np.stack([i, (u * 255).astype(np.uint8), (v * 255).astype(np.uint8)], -1)
    ref[i == 0] = 0
    cv2.imwrite(str(tmp_path / "x_IUV.png"), ref)  # the reference writer: OpenCV, BGR order on disk
    got = read_iuv(tmp_path / "x_IUV.png")
    assert got.encoding == "detectron_iuv"
    np.testing.assert_array_equal(got.i, i)
    np.testing.assert_array_equal(got.u, np.where(i > 0, ref[..., 1] / np.float32(255), 0).astype(np.float32))
    # and our writer produces the same file content OpenCV reads back as [I, U, V]
    write_iuv(tmp_path / "y_IUV.png", i, u, v, encoding="detectron_iuv")
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "y_IUV.png"))[..., 0], i)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "y_IUV.png")), ref)


def test_parula_table_is_detectron2s_dp_segm_colours():
    """I * 255/24 truncated to uint8, through cv2.COLORMAP_PARULA, BGR -> RGB; background black."""
    vals = (np.arange(25, dtype=np.float32) * (255.0 / 24)).clip(0, 255).astype(np.uint8)
    ref = cv2.applyColorMap(vals.reshape(1, -1), cv2.COLORMAP_PARULA)[0, :, ::-1].copy()
    ref[0] = 0
    np.testing.assert_array_equal(colormap("parula"), ref)
    vir = cv2.applyColorMap(vals.reshape(1, -1), cv2.COLORMAP_VIRIDIS)[0, :, ::-1].copy()
    np.testing.assert_array_equal(colormap("viridis")[1:], vir[1:])


def test_dp_segm_jpeg_decodes_approximately(pws_dir):
    truth = read_iuv(pws_dir / f"{PWS_STEMS[2]}_iuv.png").i
    pic = encode_iuv(truth, encoding="vitonhd_dp_segm")
    np.testing.assert_array_equal(segm_to_index(pic)[0], truth)  # lossless picture: exact
    buf = io.BytesIO()
    Image.fromarray(pic).save(buf, "JPEG", quality=90)
    jpg = np.asarray(Image.open(buf).convert("RGB"))
    assert detect_encoding(jpg) == "vitonhd_dp_segm"
    got = decode_iuv(jpg, "vitonhd_dp_segm")
    assert not got.uv_valid and np.isnan(got.u).all() and np.isnan(got.v).all()
    assert (got.i == truth).mean() > 0.95
    body = truth > 0
    assert (got.i[body] == truth[body]).mean() > 0.85  # JPEG chroma bleeds at part borders
    assert ((got.i > 0) == body).mean() > 0.98


def test_synthetic_fixture_colours_decode_with_their_table():
    from vtondata.fixtures.synth import dp_segm_colours

    idx = np.tile(np.arange(25, dtype=np.uint8), (4, 1))
    pic = dp_segm_colours(idx)
    np.testing.assert_array_equal(decode_iuv(pic, "vitonhd_dp_segm", cmap="vtondata-fixture").i, idx)


def test_detection_refuses_what_fits_no_encoding(tmp_path):
    with pytest.raises(DensePoseFormatError, match="cannot tell"):
        detect_encoding(np.zeros((8, 8, 3), np.uint8))
    noise = np.random.default_rng(1).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    with pytest.raises(DensePoseFormatError):
        detect_encoding(noise)
    assert "not colours" in check(noise, "vitonhd_dp_segm")
    with pytest.raises(DensePoseFormatError, match="unknown DensePose encoding"):
        decode_iuv(noise, "made_up")
    with pytest.raises(DensePoseFormatError, match="0-24"):
        encode_iuv(np.full((2, 2), 30), np.zeros((2, 2)), np.zeros((2, 2)), encoding="pws_iuv")
    bad = tmp_path / "broken_iuv.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageReadError) as e:
        read_iuv(bad)
    assert "broken_iuv.png" in str(e.value)


def test_check_flags_uv_on_the_background():
    a = np.zeros((6, 6, 3), np.uint8)
    a[2:4, 2:4] = (5, 100, 200)
    assert check(a, "pws_iuv") is None
    a[0, 0] = (0, 7, 0)
    assert "background pixels" in check(a, "pws_iuv")


def test_deep_prepare_checks_densepose_values(tmp_path):
    """A pws_iuv file with part ids above 24 fails under --deep (values are not decoded by default)."""
    from vtondata.errors import ValidationFailedError
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    root = make_fixture("deepfashion", tmp_path / "pws", n=4, size="96x64", seed=3, layout="pws")
    f = sorted((root / "densepose" / "train").glob("*_iuv.png"))[0]
    arr = np.asarray(Image.open(f)).copy()
    arr[..., 0][arr[..., 0] > 0] = 40
    Image.fromarray(arr).save(f)
    prepare("deepfashion", root, out=tmp_path / "o1", quiet=True)  # headers only: passes
    with pytest.raises(ValidationFailedError) as e:
        prepare("deepfashion", root, out=tmp_path / "o2", deep=True, force=True, quiet=True)
    bad = [x for x in e.value.findings if x.code == "densepose-bad-values"]
    assert len(bad) == 1 and bad[0].file == f"densepose/train/{f.name}" and "40" in bad[0].message
