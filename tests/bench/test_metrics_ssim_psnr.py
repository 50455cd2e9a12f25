"""PSNR, SSIM, mask-SSIM, LSSIM and PG2 pose masks against scikit-image / PIL on the same inputs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.metrics import build_metric
from bench.metrics._images import gray_pil
from bench.metrics.lssim import lssim
from bench.metrics.mask_ssim import mask_ssim
from bench.metrics.masks import pose_mask, read_openpose_18, region_mask
from bench.metrics.presets import load_preset
from bench.metrics.psnr import psnr
from bench.metrics.ssim import ssim, ssim_map
from vtondata.errors import MetricInputError

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata"
VITON = REAL / "viton" / "cpvtonplus_sample" / "test"
WANG = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def _real_pairs():
    """Real VITON person images (256x192) and degraded copies, uint8 HWC."""
    if not (VITON / "image").is_dir():
        pytest.skip(f"real data not found at {VITON}")
    rng = np.random.default_rng(0)
    gts, preds = [], []
    for p in sorted((VITON / "image").glob("*.jpg"))[:4]:
        a = np.asarray(Image.open(p).convert("RGB"))
        noisy = np.clip(a.astype(np.int16) + rng.integers(-25, 26, a.shape), 0, 255).astype(np.uint8)
        gts.append(a)
        preds.append(noisy)
    return np.stack(preds), np.stack(gts)


def _t(batch):
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def test_ssim_matches_skimage_wang_rgb_on_real_images():
    preds, gts = _real_pairs()
    ours = ssim(_t(preds), _t(gts))
    ref = [structural_similarity(g, p, channel_axis=-1, **WANG) for p, g in zip(preds, gts)]
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-6)
    ours64 = ssim(_t(preds), _t(gts), dtype="float64")
    np.testing.assert_allclose(ours64.numpy(), ref, atol=1e-7)


def test_ssim_matches_skimage_defaults_uniform_sample_covariance():
    preds, gts = _real_pairs()
    ours = ssim(_t(preds), _t(gts), window="uniform", win_size=7, covariance="sample")
    ref = [structural_similarity(g, p, channel_axis=-1, data_range=255) for p, g in zip(preds, gts)]
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-6)


def test_ssim_grayscale_is_hrviton_pil_L_recipe():
    preds, gts = _real_pairs()
    ours = ssim(_t(preds), _t(gts), color="gray-pil")
    ref = [structural_similarity(np.asarray(Image.fromarray(g).convert("L")),
                                 np.asarray(Image.fromarray(p).convert("L")), **WANG) for p, g in zip(preds, gts)]
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-6)
    # grayscale and RGB really differ (about +0.1 in the metric notes)
    assert abs(float(ours.mean()) - float(ssim(_t(preds), _t(gts)).mean())) > 1e-3


def test_gray_pil_equals_pil_convert_L():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (2, 17, 13, 3), dtype=np.uint8)
    ours = (gray_pil(_t(a).float() / 255) * 255).round().to(torch.uint8)[:, 0].numpy()
    ref = np.stack([np.asarray(Image.fromarray(x).convert("L")) for x in a])
    np.testing.assert_array_equal(ours, ref)


def test_ssim_large_image_uses_row_bands_and_still_matches():
    rng = np.random.default_rng(2)
    g = rng.integers(0, 256, (1, 700, 300, 3), dtype=np.uint8)  # taller than one CPU work unit
    p = np.clip(g.astype(int) + rng.integers(-30, 31, g.shape), 0, 255).astype(np.uint8)
    ours = float(ssim(_t(p), _t(g)))
    assert ours == pytest.approx(structural_similarity(g[0], p[0], channel_axis=-1, **WANG), abs=2e-6)


def test_ssim_no_crop_variant_is_reflect_padded_full_mean():
    from scipy.ndimage import correlate1d

    rng = np.random.default_rng(3)
    x = rng.random((1, 1, 40, 30))
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)
    ours = float(ssim(torch.from_numpy(x), torch.from_numpy(y), crop="none", dtype="float64"))
    r = np.arange(-5, 6)
    w = np.exp(-0.5 * (r / 1.5) ** 2)
    w /= w.sum()

    def filt(a):  # numpy 'reflect' padding == scipy 'mirror'
        return correlate1d(correlate1d(a, w, axis=0, mode="mirror"), w, axis=1, mode="mirror")

    a, b = x[0, 0], y[0, 0]
    ux, uy = filt(a), filt(b)
    vx, vy, vxy = filt(a * a) - ux ** 2, filt(b * b) - uy ** 2, filt(a * b) - ux * uy
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    assert ours == pytest.approx(s.mean(), abs=1e-10)
    assert ours != pytest.approx(float(ssim(torch.from_numpy(x), torch.from_numpy(y), dtype="float64")), abs=1e-6)


def test_identical_images_give_ssim_one_and_psnr_inf():
    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64), atol=1e-6)
    assert torch.isinf(psnr(x, x)).all()


def test_psnr_per_image_mean_matches_skimage_and_not_pooled():
    preds, gts = _real_pairs()
    preds = preds.copy()
    preds[0] = gts[0] // 2 + 60  # one much worse image makes per-image and pooled means differ
    m = build_metric("psnr")
    m.update(_t(preds[:2]), _t(gts[:2]))
    m.update(_t(preds[2:]), _t(gts[2:]))
    ref = [peak_signal_noise_ratio(g, p) for p, g in zip(preds, gts)]
    res = m.compute()
    assert res["value"] == pytest.approx(np.mean(ref), abs=1e-9)
    assert res["std"] == pytest.approx(np.std(ref), abs=1e-9)
    pooled = build_metric("psnr", reduction="pooled")
    pooled.update(_t(preds), _t(gts))
    assert abs(pooled.compute()["value"] - res["value"]) > 0.1
    # float [0, 1] inputs give the same numbers as uint8 (data range from the stored dtype)
    floats = psnr(_t(preds).float() / 255, _t(gts).float() / 255)
    np.testing.assert_allclose(floats.numpy(), ref, atol=1e-4)


def test_wrong_value_range_is_refused():
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        psnr(x, x)
    with pytest.raises(MetricInputError, match="N x C x H x W"):
        ssim(torch.rand(3, 16, 16), torch.rand(3, 16, 16))


def test_ssim_metric_accumulates_over_batches():
    preds, gts = _real_pairs()
    m = build_metric("ssim", "hr-viton")
    for i in range(len(preds)):
        m.update(_t(preds[i:i + 1]), _t(gts[i:i + 1]))
    res = m.compute()
    assert res["value"] == pytest.approx(float(ssim(_t(preds), _t(gts), color="gray-pil").mean()), abs=1e-9)
    assert res["preset"] == "hr-viton" and res["params"]["color"] == "gray-pil" and res["n"] == len(preds)


def _pg2_pose_mask_reference(kp, h, w, limbs, radius=4):
    """PG2 ``_getPoseMask`` transcribed independently (sparse index lists, then dense, then closing)."""
    from skimage.morphology import dilation, erosion

    idx = []

    def sparse(r, c):
        r, c = int(r), int(c)
        for i in range(-radius, radius + 1):
            for j in range(-radius, radius + 1):
                if np.sqrt(float(i ** 2 + j ** 2)) <= radius and 0 <= r + i < h and 0 <= c + j < w:
                    idx.append((r + i, c + j))

    for a, b in limbs:
        pa, pb = kp[a], kp[b]
        if pa[2] > 0 and pb[2] > 0:
            sparse(pa[1], pa[0])
            sparse(pb[1], pb[0])
            n = int(np.sqrt((pa[1] - pb[1]) ** 2 + (pa[0] - pb[0]) ** 2) / radius)
            for i in range(1, n):
                sparse(pa[1] + (pb[1] - pa[1]) * i / n, pa[0] + (pb[0] - pa[0]) * i / n)
    dense = np.zeros((h, w))
    for r, c in idx:
        dense[r, c] = 1
    square = np.ones((5, 5), dtype=bool)
    return erosion(dilation(dense, square), square) > 0


def test_pose_mask_follows_pg2_on_real_openpose_files():
    pose_dir = VITON / "pose"
    if not pose_dir.is_dir():
        pytest.skip(f"real poses not found at {pose_dir}")
    limbs = load_preset("pytorch-fid")["masks"]["pose_mask"]["limbs"]
    files = sorted(pose_dir.glob("*_keypoints.json"))
    assert files
    for f in files:
        kp = read_openpose_18(f)
        ours = pose_mask(kp, (256, 192), limbs)
        assert ours.sum() > 500  # a person-shaped region, not a few dots
        np.testing.assert_array_equal(ours, _pg2_pose_mask_reference(kp, 256, 192, limbs))


def test_mask_ssim_equals_pg2_recipe_with_skimage_defaults():
    preds, gts = _real_pairs()
    parse_dir = VITON / "image-parse-new"
    names = sorted((VITON / "image").glob("*.jpg"))[:4]
    masks = np.stack([region_mask(np.asarray(Image.open(parse_dir / f"{p.stem}.png")), range(1, 20)) for p in names])
    m = build_metric("mask_ssim")
    m.update(_t(preds), _t(gts), mask=torch.from_numpy(masks[:, None]))
    res = m.compute()
    ref = []
    for p, g, mk in zip(preds, gts, masks):
        m255 = mk.astype(np.float64)[..., None] * 255
        mp = (m255 / 255 * p).astype(np.uint8)
        mg = (m255 / 255 * g).astype(np.uint8)
        ref.append(structural_similarity(mp, mg, channel_axis=-1, data_range=255))
    assert res["value"] == pytest.approx(np.mean(ref), abs=2e-6)
    # masking really changes the number
    plain = structural_similarity(gts[0], preds[0], channel_axis=-1, data_range=255)
    assert abs(plain - ref[0]) > 1e-3
    one = mask_ssim(_t(preds[:1]), _t(gts[:1]), torch.from_numpy(masks[:1, None]), window="uniform",
                    covariance="sample")
    assert float(one) == pytest.approx(ref[0], abs=2e-6)


def test_lssim_bbox_is_ssim_of_the_gt_foreground_box():
    rng = np.random.default_rng(4)
    g = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    p = np.clip(g.astype(int) + rng.integers(-40, 41, g.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((2, 1, 64, 64), dtype=bool)
    mask[0, 0, 10:30, 20:50] = True
    mask[1, 0, 40:44, 5:9] = True  # 4x4 box, grown to the 11 px window
    vals = lssim(_t(p), _t(g), torch.from_numpy(mask))
    ref0 = structural_similarity(g[0, 10:30, 20:50], p[0, 10:30, 20:50], channel_axis=-1, **WANG)
    assert float(vals[0]) == pytest.approx(ref0, abs=2e-6)
    # grown one pixel at a time, low side first: rows 36..46, columns 1..11
    assert float(vals[1]) == pytest.approx(
        structural_similarity(g[1, 36:47, 1:12], p[1, 36:47, 1:12], channel_axis=-1, **WANG), abs=2e-6)
    m = build_metric("lssim")
    m.update(_t(p), _t(g), mask=torch.from_numpy(mask))
    empty = torch.zeros(1, 1, 64, 64)
    m.update(_t(p[:1]), _t(g[:1]), mask=empty)
    res = m.compute()
    assert res["n"] == 2 and res["n_empty"] == 1
    assert res["value"] == pytest.approx(float(vals.mean()), abs=1e-12)
    assert "UNVERIFIED" in res["params"]["definition"]


# --- fast path (OpenCV on CPU) against skimage and against the device-agnostic torch path ---------

def _noisy_pair(rng, n, h, w, c=3, amp=30):
    g = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    p = np.clip(g.astype(np.int16) + rng.integers(-amp, amp + 1, g.shape), 0, 255).astype(np.uint8)
    return p, g


def _sk(p, g, **kw):
    return np.asarray([structural_similarity(gi, pi, channel_axis=-1, **kw) for pi, gi in zip(p, g)])


@pytest.mark.parametrize("backend", ["opencv", "torch"])
@pytest.mark.parametrize("h,w", [(11, 11), (12, 37), (37, 23), (64, 48)])
def test_ssim_odd_and_minimal_sizes_match_skimage(backend, h, w):
    p, g = _noisy_pair(np.random.default_rng(h * w), 3, h, w)
    ref = _sk(p, g, **WANG)
    np.testing.assert_allclose(ssim(_t(p), _t(g), backend=backend).numpy(), ref, atol=2e-6)
    np.testing.assert_allclose(ssim(_t(p), _t(g), backend=backend, dtype="float64").numpy(), ref, atol=1e-9)
    if min(h, w) >= 7:
        ref_u = _sk(p, g, data_range=255)
        ours_u = ssim(_t(p), _t(g), window="uniform", win_size=7, covariance="sample", backend=backend)
        np.testing.assert_allclose(ours_u.numpy(), ref_u, atol=2e-6)


@pytest.mark.parametrize("window,side", [("gaussian", 10), ("uniform", 6)])
def test_images_smaller_than_the_window_are_refused_like_skimage(window, side):
    p, g = _noisy_pair(np.random.default_rng(5), 1, side, 40)
    kw = WANG if window == "gaussian" else dict(data_range=255)
    with pytest.raises(ValueError, match="win_size exceeds image extent"):
        structural_similarity(g[0], p[0], channel_axis=-1, **kw)
    with pytest.raises(MetricInputError, match="exceeds the image"):
        ssim(_t(p), _t(g), window=window, win_size=7)
    # one pixel more is accepted by both, with equal values
    p, g = _noisy_pair(np.random.default_rng(6), 1, side + 1, 40)
    ours = float(ssim(_t(p), _t(g), window=window, win_size=7,
                      covariance="population" if window == "gaussian" else "sample"))
    assert ours == pytest.approx(structural_similarity(g[0], p[0], channel_axis=-1, **kw), abs=2e-6)


def test_batch_band_and_thread_count_do_not_change_values(monkeypatch):
    import bench.metrics.ssim as S

    p, g = _noisy_pair(np.random.default_rng(7), 5, 40, 33)
    whole = ssim(_t(p), _t(g))
    singles = torch.cat([ssim(_t(p[i:i + 1]), _t(g[i:i + 1])) for i in range(5)])
    assert torch.equal(whole, singles)  # each image's value is independent of its batch
    threads = torch.get_num_threads()
    monkeypatch.setattr(S, "_CV_BAND_PIXELS", 33 * 7)  # bands of 7 rows: several per image, across images
    try:
        torch.set_num_threads(2)
        banded = ssim(_t(p), _t(g))
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(whole, banded)
    np.testing.assert_allclose(whole.numpy(), _sk(p, g, **WANG), atol=2e-6)


def test_opencv_and_torch_paths_agree_on_maps_and_crop_none():
    p, g = _noisy_pair(np.random.default_rng(8), 2, 30, 26)
    for kw in (dict(), dict(window="uniform", win_size=7, covariance="sample"), dict(crop="none")):
        m_cv = ssim_map(_t(p), _t(g), backend="opencv", **kw)
        m_t = ssim_map(_t(p), _t(g), backend="torch", **kw)
        assert m_cv.shape == m_t.shape
        assert (m_cv - m_t).abs().max() < 2e-5
        assert float((ssim(_t(p), _t(g), backend="opencv", **kw) - ssim(_t(p), _t(g), backend="torch", **kw))
                     .abs().max()) < 1e-6
    assert ssim_map(_t(p), _t(g), crop="none").shape == (2, 3, 30, 26)
    assert ssim_map(_t(p), _t(g)).shape == (2, 3, 20, 16)
    with pytest.raises(MetricInputError, match="backend"):
        ssim(_t(p), _t(g), backend="numba")


def test_uint8_float16_float32_float64_and_strided_inputs_agree():
    p, g = _noisy_pair(np.random.default_rng(9), 2, 24, 20)
    u8 = ssim(_t(p), _t(g))
    ref = _sk(p, g, **WANG)
    for dt in (torch.float32, torch.float64):
        np.testing.assert_allclose(ssim(_t(p).to(dt) / 255, _t(g).to(dt) / 255).numpy(), ref, atol=2e-6)
    # channels-last (non-contiguous) tensors give the very same numbers
    cl_p = _t(p).contiguous(memory_format=torch.channels_last)
    cl_g = _t(g).contiguous(memory_format=torch.channels_last)
    assert torch.equal(ssim(cl_p, cl_g), u8)
    # float16 holds the values it holds: compare with skimage on exactly those values (data range 1)
    h_p, h_g = (_t(p).float() / 255).half(), (_t(g).float() / 255).half()
    ref16 = _sk(h_p.permute(0, 2, 3, 1).double().numpy(), h_g.permute(0, 2, 3, 1).double().numpy(),
                gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    np.testing.assert_allclose(ssim(h_p, h_g).numpy(), ref16, atol=2e-6)
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        ssim(_t(p).half(), _t(g).half())  # 0..255 stored as float16 is not a [0, 1] image


def test_mask_ssim_and_lssim_run_on_the_fast_kernel(monkeypatch):
    import bench.metrics.ssim as S

    calls = []
    real = S._ssim_planes_cv
    monkeypatch.setattr(S, "_ssim_planes_cv", lambda *a, **k: calls.append(1) or real(*a, **k))
    p, g = _noisy_pair(np.random.default_rng(10), 2, 32, 24)
    mask = torch.zeros(2, 1, 32, 24)
    mask[:, :, 4:28, 3:20] = 1
    mask_ssim(_t(p), _t(g), mask)
    lssim(_t(p), _t(g), mask)
    lssim(_t(p), _t(g), mask, region="mask")
    assert len(calls) == 1 + 2 + 1


# --- the uint8 fast path (exact int16 d / t maps, float squares) at tiny, odd and mixed inputs -----

@pytest.mark.parametrize("h,w,c", [(7, 7, 3), (7, 9, 1), (11, 13, 1), (11, 13, 3), (13, 11, 3), (29, 12, 1)])
def test_fast_path_matches_skimage_on_tiny_and_odd_sizes(h, w, c):
    rng = np.random.default_rng(h * 100 + w * 10 + c)
    p, g = _noisy_pair(rng, 4, h, w, c)
    if min(h, w) >= 11:  # the Gaussian needs 11 px, like skimage
        np.testing.assert_allclose(ssim(_t(p), _t(g), backend="opencv").numpy(), _sk(p, g, **WANG), atol=1e-6)
    ours = ssim(_t(p), _t(g), window="uniform", win_size=7, covariance="sample", backend="opencv")
    np.testing.assert_allclose(ours.numpy(), _sk(p, g, data_range=255), atol=1e-6)
    ours_map = ssim_map(_t(p), _t(g), window="uniform", win_size=7, covariance="sample", backend="opencv")
    assert ours_map.shape == (4, c, h - 6, w - 6)


def test_fast_path_batch_of_mixed_images_matches_skimage_and_single_calls():
    """Flat black / white / mid-grey, dark, noise and a smooth real-like ramp in one batch: no value
    leaks across images (the tall stacking), each equals skimage to 1e-6 and its own single call."""
    rng = np.random.default_rng(11)
    h, w = 40, 33
    ramp = np.linspace(0, 255, w)[None, :, None] * np.linspace(0.2, 1, h)[:, None, None]
    gts = [np.zeros((h, w, 3)), np.full((h, w, 3), 255.0), np.full((h, w, 3), 128.0),
           rng.integers(0, 12, (h, w, 3)), rng.integers(0, 256, (h, w, 3)), np.repeat(ramp, 3, axis=2)]
    g = np.stack(gts).astype(np.uint8)
    p = np.clip(g.astype(np.int16) + rng.integers(-6, 7, g.shape), 0, 255).astype(np.uint8)
    p[0] = 0  # an identical flat black pair: SSIM 1 exactly
    p[1, :, :w // 2] = 0  # half black against white
    ours = ssim(_t(p), _t(g))
    np.testing.assert_allclose(ours.numpy(), _sk(p, g, **WANG), atol=1e-6)
    assert float(ours[0]) == 1.0
    singles = torch.cat([ssim(_t(p[i:i + 1]), _t(g[i:i + 1])) for i in range(len(g))])
    assert torch.equal(ours, singles)
    gray = ssim(_t(p[:, :, :, :1]), _t(g[:, :, :, :1]))  # single-channel batch
    np.testing.assert_allclose(gray.numpy(), _sk(p[..., :1], g[..., :1], **WANG), atol=1e-6)


def test_fast_path_gives_exactly_one_for_identical_images():
    """d = 0 exactly, so vD = 0 and the rounding of the t terms cancels: exactly 1, not 1 +- 1e-5."""
    rng = np.random.default_rng(12)
    x = rng.integers(0, 256, (3, 3, 30, 24), dtype=np.uint8)
    x[1] = 255
    x[2, :, :15] = 0
    assert torch.equal(ssim(torch.from_numpy(x), torch.from_numpy(x)), torch.ones(3, dtype=torch.float64))
    if (VITON / "image").is_dir():
        gts = _real_pairs()[1]
        assert torch.equal(ssim(_t(gts), _t(gts)), torch.ones(len(gts), dtype=torch.float64))
