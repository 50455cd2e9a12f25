"""LPIPS against the ``lpips`` package with identical (random) trunk weights."""

import warnings

import numpy as np
import pytest
import torch

from bench.metrics import build_metric
from bench.metrics._images import pil_resize
from bench.metrics.lpips import LPIPSNet, get_lpips_net, lpips
from vtondata.errors import WeightsMissingError


def _reference(net: str, ours: LPIPSNet):
    import lpips as lp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lp.LPIPS(net=net, pnet_rand=True, verbose=False)
    for i in range(1, ref.net.N_slices + 1):
        for name, module in getattr(ref.net, f"slice{i}").named_children():
            module.load_state_dict(ours.features[int(name)].state_dict())
    return ref


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_lpips_equals_the_lpips_package(net):
    ours = LPIPSNet(net, random_weights=True, seed=3)
    ref = _reference(net, ours)
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.rand(3, 3, 40, 36, generator=g), torch.rand(3, 3, 40, 36, generator=g)
    with torch.no_grad():
        expected = ref(2 * x0 - 1, 2 * x1 - 1).flatten()
    torch.testing.assert_close(ours(2 * x0 - 1, 2 * x1 - 1), expected, atol=1e-6, rtol=1e-5)
    assert float(expected.abs().min()) > 0  # non-trivial distances
    # identical inputs: distance 0
    assert torch.allclose(ours(2 * x0 - 1, 2 * x0 - 1), torch.zeros(3), atol=1e-7)


def test_lpips_metric_hrviton_resizes_to_128_with_pil_then_scores():
    m = build_metric("lpips", "hr-viton", random_weights=True)
    g = torch.Generator().manual_seed(1)
    pred = torch.randint(0, 256, (2, 3, 256, 192), generator=g, dtype=torch.uint8)
    gt = torch.randint(0, 256, (2, 3, 256, 192), generator=g, dtype=torch.uint8)
    m.update(pred, gt)
    res = m.compute()
    net = get_lpips_net("alex", random_weights=True)
    ref = _reference("alex", net)
    p = pil_resize(pred.float() / 255, (128, 128), "bilinear")
    t = pil_resize(gt.float() / 255, (128, 128), "bilinear")
    with torch.no_grad():
        expected = ref(2 * p - 1, 2 * t - 1).flatten().double()
    assert res["value"] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert res["params"]["resize"] == [128, 128] and res["comparable"] is False
    full = lpips(pred, gt, random_weights=True)
    assert abs(float(full.mean()) - res["value"]) > 1e-4  # the resize matters


def test_lpips_torchmetrics_eps_variant():
    g = torch.Generator().manual_seed(2)
    x0, x1 = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    a = lpips(x0, x1, random_weights=True)
    b = lpips(x0, x1, random_weights=True, eps="torchmetrics")
    assert torch.allclose(a, b, rtol=1e-4)
    # the two normalisations differ visibly only for tiny feature vectors (whole-image values can round equal)
    f = torch.full((1, 4, 1, 1), 1e-5)
    ua = get_lpips_net("alex", random_weights=True)._unit(f)
    ub = get_lpips_net("alex", eps="torchmetrics", random_weights=True)._unit(f)
    assert torch.allclose(ua, torch.full_like(f, 0.5), rtol=1e-4)
    assert torch.allclose(ub, f / (4 * 1e-10 + 1e-8) ** 0.5, rtol=1e-4) and float(ub.max()) < 0.1


def test_lpips_missing_trunk_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsMissingError, match="alexnet-owt-7be5be79.pth"):
        LPIPSNet("alex")


def test_lpips_loads_trunk_from_the_torch_hub_cache(tmp_path, monkeypatch):
    """A trunk file in $TORCH_HOME/hub/checkpoints is loaded (hash prefix from its name checked)."""
    import hashlib

    import bench.weights as bw
    from torchvision import models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.manual_seed(5)
    # the trunk part of a torchvision alexnet checkpoint (the classifier keys are ignored anyway)
    state = {f"features.{k}": v for k, v in models.alexnet(weights=None).features.state_dict().items()}
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    prefix = hashlib.sha256(raw.read_bytes()).hexdigest()[:8]
    name = f"alexnet-owt-{prefix}.pth"
    (ckpt / name).write_bytes(raw.read_bytes())
    monkeypatch.setitem(bw.WEIGHTS, "alexnet", bw.WeightFile("alexnet", name, "test", "hub", "test", "test"))
    net = LPIPSNet("alex")
    assert net.trunk_file == str(ckpt / name)
    np.testing.assert_array_equal(net.features[0].weight.numpy(), state["features.0.weight"].numpy())
    # a corrupted file is refused
    (ckpt / name).write_bytes(raw.read_bytes()[:-10] + b"0123456789")
    bw._VERIFIED.clear()
    with pytest.raises(WeightsMissingError, match="does not match"):
        LPIPSNet("alex")
