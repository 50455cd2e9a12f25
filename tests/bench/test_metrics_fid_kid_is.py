"""FID, KID, IS and the Inception extractor against pytorch-fid and direct NumPy formulas."""

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import entropy

from bench.metrics import build_metric
from bench.metrics._images import pil_resize, resize
from bench.metrics.fid import FID, fid_from_features, frechet_distance, statistics
from bench.metrics.inception import InceptionExtractor
from bench.metrics.inception_score import inception_score_from_logits
from bench.metrics.kid import KID, kid_from_features
from vtondata.errors import MetricInputError, WeightsMissingError


def _feats(n, d, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    base = rng.random((n, d)) + shift
    return base @ (np.eye(d) + 0.3 * rng.random((d, d)) / d)


def test_frechet_distance_equals_pytorch_fid_scipy_path():
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = _feats(400, 64, 0), _feats(300, 64, 1, shift=0.05)
    mu1, s1 = np.mean(a, 0), np.cov(a, rowvar=False)
    mu2, s2 = np.mean(b, 0), np.cov(b, rowvar=False)
    ref = calculate_frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, abs=1e-6)
    assert fid_from_features(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(ref, abs=1e-6)


def test_frechet_distance_singular_case_fewer_samples_than_dims():
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = _feats(40, 96, 2), _feats(50, 96, 3, shift=0.1)  # rank-deficient covariances
    mu1, s1 = np.mean(a, 0), np.cov(a, rowvar=False)
    mu2, s2 = np.mean(b, 0), np.cov(b, rowvar=False)
    assert np.linalg.matrix_rank(s1) < 96
    ref = calculate_frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, abs=1e-6)


def test_gpu_and_cpu_trace_paths_agree_full_rank_and_singular():
    from bench.metrics.fid import _tr_sqrt_product_numpy, _tr_sqrt_product_torch

    for n in (300, 30):  # 30 < 64 dims: Cholesky fails, the eigendecomposition factor is used
        a, b = _feats(n, 64, 20), _feats(200, 64, 21)
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        ref = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
        assert _tr_sqrt_product_numpy(s1, s2) == pytest.approx(ref, abs=1e-6)
        assert _tr_sqrt_product_torch(torch.from_numpy(s1), torch.from_numpy(s2)) == pytest.approx(ref, abs=1e-6)


def test_identical_sets_give_fid_zero_and_streamed_statistics_equal_np_cov():
    a = _feats(120, 32, 4)
    m = FID(random_weights=True)
    for chunk in np.array_split(a, 5):
        m.update_features(pred=torch.from_numpy(chunk).float(), target=torch.from_numpy(chunk).float())
    res = m.compute()
    assert res["value"] == pytest.approx(0.0, abs=1e-6)
    assert res["comparable"] is False and res["n_pred"] == 120
    st = m.state()
    mu, cov = FID._stats(st["pred_sum"], st["pred_outer"], 120.0)
    a32 = a.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(mu.numpy(), a32.mean(0), atol=1e-12)
    np.testing.assert_allclose(cov.numpy(), np.cov(a32, rowvar=False), atol=1e-10)
    mu2, cov2 = statistics(torch.from_numpy(a32))
    np.testing.assert_allclose(cov2.numpy(), np.cov(a32, rowvar=False), atol=1e-12)


def test_fid_target_stats_from_pytorch_fid_npz(tmp_path):
    a, b = _feats(200, 16, 5), _feats(150, 16, 6, shift=0.2)
    np.savez(tmp_path / "real.npz", mu=b.mean(0), sigma=np.cov(b, rowvar=False))
    m = FID(target_stats=str(tmp_path / "real.npz"), random_weights=True)
    m.update_features(pred=torch.from_numpy(a))
    ref = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert m.compute()["value"] == pytest.approx(ref, abs=1e-5)


def _kid_numpy(x, y, subsets, m, seed=2020):
    """The unbiased MMD^2 formula written out with explicit i != j masks."""
    d = x.shape[1]
    rng = np.random.RandomState(seed)
    vals = []
    for _ in range(subsets):
        xs = x[rng.choice(len(x), m, replace=False)]
        ys = y[rng.choice(len(y), m, replace=False)]
        k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
        off = ~np.eye(m, dtype=bool)
        mmd = k(xs, xs)[off].mean() + k(ys, ys)[off].mean() - 2 * k(xs, ys).mean()
        vals.append(mmd)
    return np.mean(vals), np.std(vals)


def test_kid_matches_direct_numpy_formula_and_seeded_subsets():
    x, y = _feats(90, 48, 7), _feats(70, 48, 8, shift=0.1)
    ref_mean, ref_std = _kid_numpy(x, y, subsets=20, m=50)
    out = kid_from_features(torch.from_numpy(x), torch.from_numpy(y), subsets=20, subset_size=50)
    assert out["value"] == pytest.approx(ref_mean, rel=1e-9, abs=1e-12)
    assert out["std"] == pytest.approx(ref_std, rel=1e-7, abs=1e-12)
    # shrinking to the smaller set when a set has fewer rows than subset_size (clean-fid behaviour)
    small = kid_from_features(torch.from_numpy(x), torch.from_numpy(y), subsets=5, subset_size=1000)
    assert small["subset_size"] == 70
    assert small["value"] == pytest.approx(_kid_numpy(x, y, 5, 70)[0], rel=1e-9)
    with pytest.raises(MetricInputError):
        kid_from_features(torch.from_numpy(x), torch.from_numpy(y), subset_size=1000, shrink=False)
    # the per-subset path (no precomputed kernel matrices) gives the same value
    import bench.metrics.kid as kid_mod

    limit = kid_mod._GRAM_LIMIT
    kid_mod._GRAM_LIMIT = 0
    try:
        again = kid_from_features(torch.from_numpy(x), torch.from_numpy(y), subsets=20, subset_size=50)
    finally:
        kid_mod._GRAM_LIMIT = limit
    assert again["value"] == pytest.approx(out["value"], rel=1e-12)


def test_kid_metric_accumulates_and_separates_shifted_sets():
    x = torch.from_numpy(_feats(60, 24, 9)).float()
    y = torch.from_numpy(_feats(60, 24, 14, shift=0.5)).float()
    m = KID(subsets=10, subset_size=30, random_weights=True)
    m.update_features(pred=x[:25], target=x[:25])
    m.update_features(pred=x[25:], target=x[25:])
    res = m.compute()
    assert res["n_pred"] == 60 and res["comparable"] is False
    assert res["value"] == kid_from_features(x, x, subsets=10, subset_size=30)["value"]
    far = kid_from_features(x, y, subsets=10, subset_size=30)["value"]
    assert far > 20 * abs(res["value"])


def _is_direct(logits, splits):
    """openai improved-gan / HR-VITON formula with scipy's entropy per image."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    scores = []
    n = len(p)
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        py = part.mean(0)
        scores.append(np.exp(np.mean([entropy(px, py) for px in part])))
    return np.mean(scores), np.std(scores)


def test_inception_score_matches_direct_implementation():
    rng = np.random.default_rng(10)
    logits = rng.normal(0, 3, (53, 20))
    for splits in (10, 1):
        ref = _is_direct(logits, splits)
        out = inception_score_from_logits(torch.from_numpy(logits), splits=splits)
        assert out["value"] == pytest.approx(ref[0], rel=1e-10)
        assert out["std"] == pytest.approx(ref[1], abs=1e-10)
    ddof0 = inception_score_from_logits(torch.from_numpy(logits), splits=10)
    ddof1 = inception_score_from_logits(torch.from_numpy(logits), splits=10, ddof=1)
    assert ddof1["std"] == pytest.approx(ddof0["std"] * (10 / 9) ** 0.5, rel=1e-9)  # torchmetrics' ddof 1


def _fid_state_dict():
    from bench.metrics.inception import get_extractor

    ext = get_extractor({"network": "pytorch-fid", "resize": "torch-bilinear", "size": 299, "normalize": "2x-1"},
                        torch.device("cpu"), random_weights=True)
    return ext, {k: v.clone() for k, v in ext.net.state_dict().items()}


def test_extractor_equals_pytorch_fid_inception_with_same_random_weights(monkeypatch):
    import pytorch_fid.inception as pfi

    ext, sd = _fid_state_dict()
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: sd)
    ref = pfi.InceptionV3([3]).eval()
    x = torch.rand(2, 3, 96, 72)  # resized to 299 inside both (bilinear, no antialias)
    ours = ext(x)
    with torch.no_grad():
        theirs = ref(x)[0].flatten(1)
    assert ours["pool3"].shape == (2, 2048)
    assert torch.allclose(ours["pool3"], theirs, atol=1e-5)
    assert float(ours["pool3"].std()) > 1e-3  # random weights still give informative features
    fc = sd["fc.weight"]
    assert torch.allclose(ours["logits_unbiased"], theirs @ fc.T, atol=1e-4)
    # uint8 input is pre-processed like the float [0, 1] image pytorch-fid's loader produces
    u8 = (torch.rand(1, 3, 64, 48) * 255).round().to(torch.uint8)
    assert torch.allclose(ext.preprocess(u8), ext.preprocess(u8.float() / 255), atol=1e-6)


def test_fid_metric_end_to_end_with_random_network_is_stamped_not_comparable(monkeypatch):
    import pytorch_fid.inception as pfi

    g = torch.Generator().manual_seed(12)
    real = torch.randint(0, 256, (6, 3, 64, 48), generator=g, dtype=torch.uint8)
    fake = (real.float() * 0.7).to(torch.uint8)
    # pytorch-fid's --dims 192 (second max-pool block) keeps the test fast; 2048 is checked above
    cfg = {"network": "pytorch-fid", "resize": "torch-bilinear", "size": 299, "normalize": "2x-1", "dims": 192}
    m = build_metric("fid", random_weights=True, extractor=cfg)
    m.update(fake[:3], real[:4])
    m.update(fake[3:], real[4:])
    res = m.compute()
    assert res["comparable"] is False and res["n_pred"] == 6 and res["n_target"] == 6 and res["dims"] == 192
    assert res["value"] > 0 and res["warnings"]  # 6 samples < 192 dims
    assert any("not comparable" in n for n in res["notes"])
    assert res["params"]["weights"] == "random"
    # the same images through pytorch-fid's InceptionV3(output_blocks=[1]) and its Frechet distance
    from pytorch_fid.fid_score import calculate_frechet_distance

    sd = m.extractor(real).net.state_dict()
    monkeypatch.setattr(pfi, "load_state_dict_from_url", lambda *a, **k: sd)
    ref_net = pfi.InceptionV3([1]).eval()
    with torch.no_grad():
        a = ref_net(fake.float() / 255)[0].mean((2, 3)).double().numpy()
        b = ref_net(real.float() / 255)[0].mean((2, 3)).double().numpy()
    ref = calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert res["value"] == pytest.approx(ref, rel=1e-4)


def test_missing_weights_stop_with_file_name_and_location(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsMissingError) as err:
        build_metric("fid").update(torch.rand(2, 3, 32, 32))
    msg = str(err.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "vtondata weights fetch" in msg


def test_hrviton_is_uses_torchvision_inception_single_split():
    m = build_metric("is", "hr-viton", random_weights=True)
    assert m.splits == 1 and m.feature == "logits"
    assert m.extractor_config["network"] == "torchvision" and m.extractor_config["resize"] == "pil-bilinear"
    imgs = torch.randint(0, 256, (3, 3, 40, 30), dtype=torch.uint8)
    m.update(imgs)
    res = m.compute()
    logits = m.state()["pred_features"]
    assert logits.shape == (3, 1000)
    pre = m.extractor(imgs).preprocess(imgs)
    assert pre.shape == (3, 3, 299, 299) and float(pre.min()) >= -1 and float(pre.max()) <= 1
    assert res["value"] == pytest.approx(_is_direct(logits.double().numpy(), 1)[0], rel=1e-6)
    assert res["std"] == 0.0 and res["comparable"] is False


def test_mask_is_zeroes_the_background_before_scoring():
    g = torch.Generator().manual_seed(15)
    imgs = torch.randint(0, 256, (2, 3, 40, 30), generator=g, dtype=torch.uint8)
    mask = torch.zeros(2, 1, 40, 30)
    mask[:, :, 10:30, 5:25] = 1
    m = build_metric("mask_is", random_weights=True, splits=1)
    m.update(imgs, mask=mask)
    masked = imgs.clone()
    masked[mask.expand(-1, 3, -1, -1) == 0] = 0
    ref = build_metric("is", random_weights=True, splits=1)
    ref.update(masked)
    plain = build_metric("is", random_weights=True, splits=1)
    plain.update(imgs)
    logits_m, logits_ref = m.state()["pred_features"], ref.state()["pred_features"]
    assert torch.allclose(logits_m, logits_ref, atol=1e-5)
    assert not torch.allclose(plain.state()["pred_features"], logits_ref, atol=1e-3)
    assert m.compute()["value"] == pytest.approx(ref.compute()["value"], rel=1e-9)


def test_pil_resize_recipes_match_torchvision_and_clean_fid():
    from torchvision import transforms

    rng = np.random.default_rng(13)
    a = rng.integers(0, 256, (1, 50, 37, 3), dtype=np.uint8)
    x = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
    # HR-VITON: torchvision Resize((128, 128)) on a PIL image
    ref = np.asarray(transforms.Resize((128, 128))(Image.fromarray(a[0])))
    ours = (pil_resize(x, (128, 128), "bilinear") * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, ref)
    # clean-fid: per-channel float 'F' images, bicubic, clipped to [0, 255]
    chans = [np.asarray(Image.fromarray(a[0, :, :, c].astype(np.float32), mode="F")
                        .resize((299, 299), resample=Image.BICUBIC)).clip(0, 255) for c in range(3)]
    ref_f = np.stack(chans, 0)
    ours_f = resize(x, (299, 299), "pil-bicubic-float")[0].numpy() * 255
    np.testing.assert_allclose(ours_f, ref_f, atol=1e-3)


def test_clean_fid_torchscript_is_called_like_cleanfid(tmp_path):
    class Layers(torch.nn.Module):
        def forward(self, x):
            return x.mean((2, 3)).repeat(1, 683)[:, :2048].reshape(-1, 2048, 1, 1)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x):
            return self.layers(x)

    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(Net()).save(str(path))
    ext = InceptionExtractor("clean-fid", resize="pil-bicubic-float", normalize="x255-128/128", weights=str(path))
    x = torch.randint(0, 256, (2, 3, 30, 20), dtype=torch.uint8)
    out = ext(x)["pool3"]
    pre = (resize(x.float() / 255, (299, 299), "pil-bicubic-float") * 255 - 128) / 128
    assert torch.allclose(out[:, :3], pre.mean((2, 3)), atol=1e-5)
