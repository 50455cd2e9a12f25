"""CP-VTON building blocks: TPS grid against a direct NumPy solve, GMM / U-Net shapes of the paper, the person
representation, the VGG19 weights policy, and one training step of each stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.models.blocks import person as P
from bench.models.blocks.gmm import GMM, correlation, warp
from bench.models.blocks.tps import TpsGrid, control_points
from bench.models.blocks.unet import UNet
from bench.models.blocks.vgg import VGGLoss
from bench.weights import WEIGHTS
from vtondata.errors import WeightsMissingError


def _tps_numpy(theta: np.ndarray, g: int, h: int, w: int) -> np.ndarray:
    """Reference TPS written independently: solve the (n+3) system per axis, evaluate at every pixel."""
    axis = np.linspace(-1, 1, g)
    px, py = np.meshgrid(axis, axis, indexing="ij")  # x varies with the first index (CP-VTON order)
    p = np.stack([px.ravel(), py.ravel()], 1)
    n = len(p)

    def u(r2):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(r2 == 0, 0.0, r2 * np.log(r2))

    K = u(((p[:, None] - p[None]) ** 2).sum(-1))
    Pa = np.hstack([np.ones((n, 1)), p])
    L = np.block([[K, Pa], [Pa.T, np.zeros((3, 3))]])
    xs, ys = np.meshgrid(np.linspace(-1, 1, w), np.linspace(-1, 1, h))
    pix = np.stack([xs.ravel(), ys.ravel()], 1)
    Up = u(((pix[:, None] - p[None]) ** 2).sum(-1))
    out = []
    for axis_i in range(2):
        q = p[:, axis_i] + theta[axis_i * n:(axis_i + 1) * n]
        sol = np.linalg.solve(L, np.concatenate([q, np.zeros(3)]))
        out.append(Up @ sol[:n] + np.hstack([np.ones((len(pix), 1)), pix]) @ sol[n:])
    return np.stack(out, -1).reshape(h, w, 2)


def test_tps_grid_matches_a_direct_solve_and_is_identity_at_zero():
    g, h, w = 5, 32, 24
    tps = TpsGrid(h, w, g)
    rng = np.random.default_rng(0)
    theta = rng.uniform(-0.3, 0.3, size=2 * g * g)
    got = tps(torch.tensor(theta, dtype=torch.float32)[None])[0].numpy()
    np.testing.assert_allclose(got, _tps_numpy(theta, g, h, w), atol=2e-5)
    ident = tps(torch.zeros(1, 2 * g * g))[0].numpy()
    np.testing.assert_allclose(ident, _tps_numpy(np.zeros(2 * g * g), g, h, w), atol=1e-5)
    img = torch.rand(1, 3, h, w)
    assert torch.allclose(warp(img, torch.from_numpy(ident)[None]), img, atol=1e-4)
    assert control_points(3)[:4].tolist() == [[-1, -1], [-1, 0], [-1, 1], [0, -1]]


def test_gmm_has_the_paper_shapes_at_256x192():
    gmm = GMM(256, 192, in_person=22, in_garment=3, ngf=64, grid_size=5)
    assert gmm.regression.linear.in_features == 64 * 4 * 3  # reference FeatureRegression
    assert gmm.regression.conv[0].in_channels == 192  # correlation of 16 x 12 features
    a = torch.randn(2, 512, 16, 12)
    b = torch.randn(2, 512, 16, 12)
    corr = correlation(a, b)
    assert corr.shape == (2, 192, 16, 12)
    # channel k = position (column-major) of feature A, spatial = position of feature B
    assert torch.allclose(corr[1, 3 * 16 + 5, 7, 2], (a[1, :, 5, 3] * b[1, :, 7, 2]).sum(), atol=1e-4)
    small = GMM(128, 96, ngf=8)
    grid, theta = small(torch.randn(2, 22, 128, 96), torch.randn(2, 3, 128, 96))
    assert grid.shape == (2, 128, 96, 2) and theta.shape == (2, 50) and theta.abs().max() < 1
    with pytest.raises(ValueError, match="divisible by 16"):
        GMM(100, 96)


def test_unet_output_and_size_check():
    net = UNet(25, 4, num_downs=6, ngf=8)
    assert net(torch.randn(1, 25, 256, 192)).shape == (1, 4, 256, 192)
    with pytest.raises(ValueError, match="divisible by 64"):
        net(torch.randn(1, 25, 128, 96))


def test_person_representation_pieces():
    h, w = 64, 48
    pose = torch.zeros(1, 18, 3)
    pose[0, 0] = torch.tensor([20.0, 30.0, 0.9])
    pose[0, 1] = torch.tensor([1.0, 30.0, 0.9])  # x <= 1: the reference does not draw it
    maps = P.pose_maps(pose, h, w, radius=3)
    assert maps.shape == (1, 18, h, w) and set(maps.unique().tolist()) == {-1.0, 1.0}
    yy, xx = np.mgrid[:h, :w]
    disc = (xx - 20) ** 2 + (yy - 30) ** 2 <= 9
    assert np.array_equal(maps[0, 0].numpy() > 0, disc)
    assert (maps[0, 1:] == -1).all()
    assert int((P.pose_maps(pose, h, w, 3, "square")[0, 0] > 0).sum()) == 49
    body25 = torch.arange(25 * 3, dtype=torch.float32).view(1, 25, 3)
    assert P.to_coco18(body25)[0, 8, 0] == body25[0, 9, 0]  # BODY_25 mid-hip is skipped
    parse = torch.zeros(1, h, w, dtype=torch.long)
    parse[0, 10:50, 10:30] = 5
    parse[0, 2:8, 12:20] = 13
    shape = P.body_shape(parse, 16)
    assert shape.shape == (1, 1, h, w) and -1 <= shape.min() and shape.max() <= 1
    assert shape[0, 0, 30, 20] > shape[0, 0, 60, 45]  # blurred silhouette, high inside
    person = torch.rand(1, 3, h, w) * 2 - 1
    head = P.keep_region(person, P.region_mask(parse, [1, 2, 4, 13]))
    assert torch.equal(head[0, :, 5, 15], person[0, :, 5, 15]) and (head[0, :, 30, 20] == -1).all()


FILE = WEIGHTS["vgg19"].filename  # torchvision's vgg19-dcbb9e9d.pth


def test_vgg_weights_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsMissingError, match=FILE) as e:
        VGGLoss("imagenet")
    assert "hub/checkpoints" in str(e.value) and "vgg.weights=random" in str(e.value)
    bad = tmp_path / "torch" / "hub" / "checkpoints" / FILE
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the weights")
    with pytest.raises(WeightsMissingError, match="does not match the expected SHA-256 prefix dcbb9e9d"):
        VGGLoss("imagenet")
    loss = VGGLoss("random", layers=3)
    assert loss.provenance == {"network": "vgg19", "weights": "random", "layers": 3}
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0
    assert loss(x, x.flip(-1)).item() > 0
    assert not any(p.requires_grad for p in loss.parameters())


def test_cpvton_stages_train_on_a_batch():
    from bench.harness.registry import get_model, resolve_config

    torch.manual_seed(0)
    cfg = resolve_config("cpvton", "multi-pose", "mpv", "smoke")
    model = get_model("cpvton")(cfg)
    nets = model.build()
    model.setup(torch.device("cpu"))
    h, w = model.size
    b = {}
    for side in ("", "target_"):
        b[f"{side}person"] = torch.rand(2, 3, h, w) * 2 - 1
        b[f"{side}parse"] = torch.randint(0, 20, (2, h, w))
        b[f"{side}pose"] = torch.rand(2, 18, 3) * torch.tensor([w, h, 1.0])
    b["garment"] = torch.rand(2, 3, h, w) * 2 - 1
    b["garment_mask"] = (torch.rand(2, 1, h, w) > 0.5).float()
    rep = model.representation(b)
    assert rep.shape == (2, 22, h, w)
    # multi-pose: pose channels come from the target pose, head from the source person
    assert torch.equal(rep[:, 4:], P.pose_maps(b["target_pose"], h, w, model.radius))
    for stage in model.stages():
        params = [p for n in stage.trains for p in nets[n].parameters()]
        before = [p.detach().clone() for p in params]
        terms = model.losses(stage, nets, b)
        assert set(terms) == set(stage.losses)
        opt = stage.make_optimizer(params)
        sum(terms.values()).backward()
        opt.step()
        assert any(not torch.equal(a, p) for a, p in zip(before, params))
    out = model.infer(nets, b)
    assert out["tryon"].shape == (2, 3, h, w) and out["tryon"].abs().max() <= 1
    assert torch.equal(model.references(b)["tryon"], b["target_person"])
