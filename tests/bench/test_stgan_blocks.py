"""ST-GAN blocks and spec: predictor / critic shapes at the paper's sizes, the homography update, gradient
separation of the one-optimiser GAN losses, and the two Table 1 variants (``ST-GAN(+s)`` adds the MSE term)."""

from __future__ import annotations

import pytest
import torch

from bench.models.blocks import acc_geometry as G
from bench.models.blocks.stgan_nets import (STGAN, Critic, GeometricPredictor, critic_loss, generator_loss,
                                            update_homography)


def test_predictor_and_critic_shapes_follow_the_paper():
    g = GeometricPredictor((224, 224))
    assert [c.out_channels for c in g.convs] == [32, 64, 128, 256, 512]
    assert g.fc1.in_features == (512 + 7) * 7 * 7 and g.fc2.out_features == 8  # 224 -> 7 after five stride-2
    small = GeometricPredictor((64, 48), widths=(8, 8, 16, 16, 32), fc=16)
    assert small(torch.randn(2, 7, 64, 48)).shape == (2, 8)
    d = Critic((8, 8, 16, 16, 32))
    assert d(torch.randn(3, 3, 64, 48)).shape == (3,)


def test_update_is_identity_at_zero_and_a_translation_in_canonical_units():
    hom = G.dlt_homography(torch.tensor([[[0.0, 0], [20, 0], [20, 10], [0, 10]]]),
                           torch.tensor([[[5.0, 5], [30, 6], [29, 20], [4, 18]]]))
    size = (64, 48)
    assert torch.allclose(update_homography(hom, torch.zeros(1, 8), size), hom, atol=1e-5)
    dp = torch.zeros(1, 8)
    dp[0, 2], dp[0, 5] = 0.1, -0.2  # canonical [-1, 1] frame: x by 0.1 * (W-1)/2 px, y by -0.2 * (H-1)/2 px
    pts = torch.tensor([[[3.0, 4.0], [10.0, 2.0]]])
    moved = G.apply_homography(update_homography(hom, dp, size), pts) - G.apply_homography(hom, pts)
    assert torch.allclose(moved, torch.tensor([0.1 * 47 / 2, -0.2 * 63 / 2]).expand(1, 2, 2), atol=1e-4)


def test_generator_and_critic_losses_reach_only_their_own_network():
    torch.manual_seed(0)
    net = STGAN((32, 32), warps=2, widths=(4, 4, 8, 8, 8), d_widths=(4, 4, 8, 8, 8), fc=8, std=0.05)
    fg, mask, bg = torch.rand(2, 3, 32, 32) * 2 - 1, torch.ones(2, 1, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1
    src = torch.tensor([[[0.0, 0], [31, 0], [31, 31], [0, 31]]]).repeat(2, 1, 1)
    hom0 = G.dlt_homography(src, src * 0.5 + 8)
    hom, comp, dps = net.warp(fg, mask, bg, hom0, G.composite)
    assert hom.shape == (2, 3, 3) and comp.shape == (2, 3, 32, 32) and len(dps) == 2
    generator_loss(net.critic, comp).backward(retain_graph=True)
    assert all(p.grad is None for p in net.critic.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.predictors[0].parameters())
    net.zero_grad(set_to_none=True)
    critic_loss(net.critic, bg, comp).backward()
    assert all(p.grad is None for p in net.predictors.parameters())
    assert all(p.grad is not None for p in net.critic.parameters())


def test_variants_and_paper_config():
    from bench.harness import registry as reg

    full = reg.resolve_config("stgan", "ST-GAN", "strat", "full")
    model = reg.get_model("stgan")(full)
    st = {s.name: s for s in model.stages()}
    assert set(st) == {"glasses", "hat", "tie"} and "mse" not in st["hat"].losses
    assert st["hat"].optimizer["lr"] == 1e-5 and st["hat"].batch_size == 20 and st["hat"].steps == 50000
    assert full["net"]["warps"] == 5 and model.size_for("hat") == (224, 224) and model.size_for("tie") == (448, 448)
    plus = reg.get_model("stgan")(reg.resolve_config("stgan", "ST-GAN(+s)", "strat", "full"))
    assert all(s.losses["mse"] == 1.0 for s in plus.stages())
    t1 = reg.get_table("accessory_table1_strat")
    cells = {c["id"]: c for c in t1["cells"] if c.get("model") == "stgan"}
    assert {c["variant"] for c in cells.values()} == {"ST-GAN", "ST-GAN(+s)"} and len(cells) == 6
    assert all(reg.cell_fillable(c)[0] for c in cells.values())
    assert set(reg.variants("stgan")) >= {"ST-GAN", "ST-GAN(+s)"}
