"""Accessory model (seed 004) building blocks: soft-argmax, DLT homography vs STRAT's matrices, warp vs
OpenCV, Adaptive Wing (Eq. 1) and its weighting (Eqs. 2-3), network shapes, the Table 2 variants, the
ResNet-18 weights policy, and the significance test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bench.models.blocks import acc_geometry as G
from bench.models.blocks.acc_losses import awing, awing_constants, gaussian_heatmaps, heatmap_loss, positive_mask
from bench.models.blocks.acc_nets import DAF, KeypointNet, ResNet18Encoder


def test_soft_argmax_recovers_a_known_peak_and_is_differentiable():
    hm = gaussian_heatmaps(torch.tensor([[[10.0, 20.0], [33.0, 5.0], [0.0, 47.0], [63.0, 45.0]]]), (48, 64), 4)
    v = G.soft_argmax(hm, 1000.0)
    assert v.shape == (1, 4, 2)
    assert torch.allclose(v, torch.tensor([[[10.0, 20.0], [33.0, 5.0], [0.0, 47.0], [63.0, 45.0]]]), atol=1e-3)
    x = torch.zeros(1, 1, 8, 8, requires_grad=True)
    G.soft_argmax(x, 10.0)[..., 0].sum().backward()
    assert x.grad.abs().sum() > 0


def test_dlt_matches_opencv_and_is_exact_with_four_points():
    rng = np.random.default_rng(0)
    src = np.array([[10, 12], [50, 11], [52, 40], [9, 38]], np.float64) + rng.uniform(-2, 2, (4, 2))
    dst = src @ np.array([[0.9, 0.1], [-0.05, 1.1]]) + rng.uniform(-5, 5, (4, 2)) + 20
    ref = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    h = G.dlt_homography(torch.tensor(src)[None], torch.tensor(dst)[None])[0].numpy()
    assert np.allclose(h, ref / ref[2, 2], atol=1e-4)
    back = G.apply_homography(torch.tensor(h)[None], torch.tensor(src)[None])[0].numpy()
    assert np.abs(back - dst).max() < 1e-6


def test_dlt_reproduces_trans_params_matrices_of_generated_strat(tmp_path):
    from vtondata.fixtures import make_fixture

    root = make_fixture("strat", tmp_path / "strat", n=4, size="64x64", seed=5, layout="strat-names")
    for sub in ("STRAT-glasses", "STRAT-hat", "STRAT-tie"):
        params = json.loads((root / sub / "train" / "trans_params.json").read_text())
        for p in params.values():
            m = np.asarray(p.get("trans_matrix", p.get("trans_matri")), np.float64)
            h = G.dlt_homography(torch.tensor(p["init_vertex"], dtype=torch.float64)[None],
                                 torch.tensor(p["final_vertex"], dtype=torch.float64)[None])[0].numpy()
            assert np.allclose(h, m / m[2, 2], rtol=1e-3, atol=2e-3), sub


def test_warp_and_composite_follow_opencv_and_eq5():
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 1, (40, 48, 3)).astype(np.float32)
    h = np.array([[0.8, 0.05, 6.0], [-0.04, 0.9, 3.0], [0.0005, -0.0003, 1.0]])
    ref = cv2.warpPerspective(img, h, (48, 40), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    out = G.warp_perspective(torch.tensor(img).permute(2, 0, 1)[None], torch.tensor(h)[None])[0].permute(1, 2, 0)
    inner = (slice(8, 30), slice(10, 38))
    diff = np.abs(out.numpy()[inner] - ref[inner])  # OpenCV quantises bilinear weights to 1/32
    assert diff.max() < 0.03 and diff.mean() < 4e-3
    fg, bg = torch.ones(1, 3, 40, 48), -torch.ones(1, 3, 40, 48)
    mask = torch.zeros(1, 1, 40, 48)
    mask[..., 10:20, 10:20] = 1
    comp, wfg, wmask = G.composite(fg, mask, bg, torch.eye(3)[None])
    assert torch.allclose(comp, wmask * wfg + (1 - wmask) * bg) and comp[0, 0, 15, 15] == 1 and comp[0, 0, 0, 0] == -1


def test_awing_matches_eq1_and_is_continuous_at_theta():
    y = torch.tensor([0.0, 0.3, 1.0])
    for yy in y:
        a, c = awing_constants(y=float(yy))
        p = 2.1 - float(yy)
        for d in (0.1, 0.49999, 0.5, 0.50001, 0.8):
            got = float(awing(torch.tensor(float(yy) + d), torch.tensor(float(yy))))
            want = 14 * math.log1p(d ** p) if d < 0.5 else a * d - c
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
        below = float(awing(torch.tensor(float(yy) + 0.5 - 1e-5), yy))
        above = float(awing(torch.tensor(float(yy) + 0.5 + 1e-5), yy))
        assert abs(below - above) < 1e-3


def test_weighted_loss_uses_dilated_positive_mask_and_gamma():
    t = torch.zeros(1, 1, 9, 9)
    t[0, 0, 4, 4] = 1.0
    t[0, 0, 4, 5] = 0.1
    m = positive_mask(t)
    assert m[0, 0, 3:6, 3:6].all() and m.sum() == 9  # the 0.1 neighbour stays below the threshold
    t2 = t.clone()
    t2[0, 0, 4, 5] = 0.3
    assert positive_mask(t2).sum() == 12
    pred = torch.full_like(t, 0.2)
    base = heatmap_loss(pred, t, "mse", 0.0)
    w = heatmap_loss(pred, t, "mse", 10.0)
    per = (pred - t) ** 2
    assert float(w) == pytest.approx(float((per * (10 * m + 1)).mean()), rel=1e-6) and w > base
    assert heatmap_loss(pred, t, "awing", 0.0) != heatmap_loss(pred, t, "mse", 0.0)


def test_gaussian_heatmap_radius_and_peak():
    hm = gaussian_heatmaps(torch.tensor([[[20.0, 10.0]]]), (32, 40), 5)
    assert hm.max() == 1.0 and hm[0, 0, 10, 20] == 1.0
    assert hm[0, 0, 10, 25] > 0 and hm[0, 0, 10, 26] == 0  # zero outside the radius


def test_network_shapes_follow_the_paper_at_small_size():
    torch.manual_seed(0)
    net = KeypointNet(4, 12, use_sm=True, fg_mode="daf", weights="random", widths=(32, 16, 16, 8),
                      blocks=(1, 1, 1, 1), enc_width=8)
    bg, fg, m = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64), torch.rand(2, 1, 64, 64).round()
    feats = net.enc_b(bg)
    assert [tuple(f.shape[1:]) for f in feats] == [(8, 32, 32), (8, 16, 16), (16, 8, 8), (32, 4, 4), (64, 2, 2)]
    hm, sem = net(bg, fg, m)
    assert hm.shape == (2, 4, 64, 64) and sem.shape == (2, 12, 64, 64)
    (hm.mean() + sem.mean()).backward()
    assert net.enc_f.conv1.weight.grad is not None and net.fuse.conv.weight.grad.abs().sum() > 0
    assert net.fuse.last_map.shape == (2, 64, 2, 2) and 0 < float(net.fuse.last_map.min())


def test_width64_encoder_is_torchvision_resnet18_and_imagenet_weights_are_required(tmp_path, monkeypatch):
    from torchvision.models import resnet18

    from vtondata.errors import WeightsMissingError

    enc = ResNet18Encoder(3, "random", 64)
    ref = {k: v.shape for k, v in resnet18(weights=None).state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in enc.state_dict().items()} == ref
    assert ResNet18Encoder(4, "random", 64).conv1.weight.shape == (64, 4, 7, 7)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsMissingError, match="resnet18-f37072fd.pth"):
        ResNet18Encoder(3, "imagenet")
    assert enc.provenance["weights"] == "random"


def test_table2_rows_build_the_stated_combinations():
    from bench.harness import registry as reg

    want = {"row1": (False, "none", "awing", 0), "row2": (True, "none", "awing", 10), "Ours(w/o sm)": (False, "daf", "awing", 10),
            "row4": (True, "add", "awing", 10), "row5": (True, "daf_simple", "awing", 10), "row6": (True, "daf", "mse", 0),
            "row7": (True, "daf", "awing", 0), "row8": (True, "daf", "mse", 10), "Ours": (True, "daf", "awing", 10)}
    want["row1"] = (False, "none", "awing", 10)
    for variant, (sm, fg, loss, gamma) in want.items():
        cfg = reg.resolve_config("accessory", variant, "strat", "smoke")
        model = reg.get_model("accessory")(cfg)
        torch.manual_seed(0)
        nets = model.build()
        stages = {s.name: s for s in model.stages()}
        assert "hat" in nets and set(nets) == set(stages)
        if variant not in ("Ours", "Ours(w/o sm)"):
            assert set(stages) == {"hat"}, variant
        else:
            assert set(stages) == {"glasses", "hat", "tie"} and nets["tie"].dec_hm.head.out_channels == 4
        net = nets["hat"]
        assert (net.dec_sm is not None) == sm and ("sm" in stages["hat"].losses) == sm, variant
        assert stages["hat"].losses.get("sm", 0.1) == 0.1 and stages["hat"].losses["hm"] == 1.0
        assert (net.enc_f is None) == (fg == "none") and net.fg_mode == fg
        if fg in ("daf", "daf_simple"):
            assert isinstance(net.fuse, DAF) and (net.fuse.attn is None) == (fg == "daf_simple")
        else:
            assert net.fuse is None
        assert cfg["heatmap"]["loss"] == loss and cfg["heatmap"]["gamma"] == gamma, variant
        inp = model.inputs("train", "hat").fields
        assert ("background_parse" in inp) == sm


def test_full_profile_holds_the_paper_schedule():
    from bench.harness import registry as reg

    cfg = reg.resolve_config("accessory", "Ours", "strat", "full")
    model = reg.get_model("accessory")(cfg)
    st = {s.name: s for s in model.stages()}
    assert model.size_for("hat") == (224, 224) and model.size_for("glasses") == (224, 224)
    assert model.size_for("tie") == (448, 448)
    s = st["hat"]
    assert s.batch_size == 32 and s.steps == 2500 and s.optimizer["lr"] == 2e-4 and s.optimizer["weight_decay"] == 1e-5
    assert s.lr(0) == s.lr(624) == 2e-4 and s.lr(2499) == pytest.approx(5e-5, rel=0.01)
    assert cfg["heatmap"] == {"loss": "awing", "gamma": 10.0, "radius": 20.0, "beta": 1000.0,
                              "awing": {"omega": 14.0, "theta": 0.5, "epsilon": 1.0, "alpha": 2.1}}
    assert cfg["subsets"]["tie"]["classes"] == 8 and cfg["subsets"]["hat"]["classes"] == 12
    assert cfg["encoder"] == {"weights": "imagenet", "width": 64} and s.losses == {"hm": 1.0, "sm": 0.1}


def test_welch_significance_on_seed_records():
    import pandas as pd

    from bench.significance import compare, parse_seeds, to_markdown

    assert parse_seeds("1-10") == list(range(1, 11)) and parse_seeds("1,3") == [1, 3]
    rng = np.random.default_rng(0)
    rows = []
    for s in range(1, 11):
        for var, mu in (("Ours", 0.82), ("row1", 0.78)):
            rows.append({"model": "accessory", "variant": var, "dataset": "strat", "split": "test", "setting": "hat",
                         "profile": "full", "seed": s, "metric": "iou", "value": mu + rng.normal(0, 0.004),
                         "created": f"2026-01-{s:02d}"})
    res = compare(("accessory", "Ours"), ("accessory", "row1"), "strat", "hat", range(1, 11), profile="full",
                  results=pd.DataFrame(rows))
    r = res["metrics"]["iou"]
    from scipy import stats

    ref = stats.ttest_ind(r["a"]["values"], r["b"]["values"], equal_var=False)
    assert r["a"]["n"] == r["b"]["n"] == 10 and r["t"] == pytest.approx(ref.statistic) and r["p_two_sided"] < 1e-3
    assert r["p_one_sided"] < 1e-3 and r["a"]["mean"] > r["b"]["mean"] and "iou" in to_markdown(res)


def test_collapsed_vertices_give_an_empty_warp_not_an_error():
    src = torch.tensor([[[10.0, 10], [50, 10], [50, 40], [10, 40]]]).repeat(2, 1, 1)
    dst = torch.stack([torch.full((4, 2), 20.0), torch.tensor([[12.0, 11], [49, 12], [48, 41], [11, 39]])])
    h = G.dlt_homography(src, dst)
    comp, _, wmask = G.composite(torch.ones(2, 3, 64, 64), torch.ones(2, 1, 64, 64), -torch.ones(2, 3, 64, 64), h)
    assert wmask[0].sum() == 0 and (comp[0] == -1).all() and wmask[1].sum() > 1000


def test_sweep_overrides_resolve_to_the_swept_setting(tmp_path):
    from bench.acc_sweep import overrides, plot
    from bench.harness import registry as reg

    for param, key, v in (("lambda", ("stages", "hat", "losses", "sm"), 1.0), ("g", ("heatmap", "radius"), 10.0),
                          ("gamma", ("heatmap", "gamma"), 4.0)):
        cfg = reg.resolve_config("accessory", "Ours", "strat", "smoke", overrides(param, v))
        node = cfg
        for k in key:
            node = node[k]
        assert node == v and cfg["stages"]["tie"]["enabled"] is False and cfg["stages"]["glasses"]["enabled"] is False
    res = {"param": "g", "default": 20.0, "points": [{"value": 10.0, "lssim": 0.5, "iou": 0.7, "disp": 0.02},
                                                     {"value": 20.0, "lssim": 0.6, "iou": 0.8, "disp": 0.01}]}
    plot(res, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 1000
