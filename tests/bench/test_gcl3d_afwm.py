"""AFWM, the Table 1 warping baseline of 3D-GCL: pyramid shapes at the paper's widths, the local correlation
against a brute-force reference, flow composition, the smoothness terms, registration and table cells, and a
few optimiser steps lowering the warping loss."""

from __future__ import annotations

import pytest
import torch

from bench.harness import registry as reg
from bench.models.blocks import afwm_flow as A
from bench.models.blocks import gcl_corr as C


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/bench/conftest.py


def test_pyramid_and_flows_at_paper_widths():
    torch.manual_seed(0)
    net = A.AFWMWarper(6, 3).eval()  # 5 levels, [64, 128, 256, 256, 256], FPN 256; at 128x96 to stay quick
    with torch.no_grad():
        flows = net(torch.randn(1, 6, 128, 96), torch.randn(1, 3, 128, 96))
    assert [tuple(f.shape[-2:]) for f in flows] == [(4, 3), (8, 6), (16, 12), (32, 24), (64, 48)]
    assert all(float(f.abs().max()) == 0 for f in flows)  # zero-initialised heads: identity warp at start


def test_local_correlation_matches_brute_force():
    torch.manual_seed(1)
    t, s = torch.randn(1, 4, 5, 6), torch.randn(1, 4, 5, 6)
    corr = A.local_correlation(t, s, radius=1)
    assert corr.shape == (1, 9, 5, 6)
    y, x, dy, dx = 2, 3, -1, 1
    ref = float((t[0, :, y, x] * s[0, :, y + dy, x + dx]).mean())
    ref = ref if ref > 0 else 0.1 * ref
    assert float(corr[0, (dy + 1) * 3 + (dx + 1), y, x]) == pytest.approx(ref, abs=1e-6)


def test_compose_and_smoothness():
    torch.manual_seed(2)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 12), torch.linspace(0, 1, 10), indexing="ij")
    prev = torch.stack([0.8 * yy, -0.5 * xx], 0)[None]
    delta = torch.stack([0.3 * xx, 0.2 * yy], 0)[None]
    img = torch.stack([torch.sin(xx * 2) + torch.cos(yy * 3), xx * yy], 0)[None]  # smooth: bilinear errors small
    lhs = C.warp(C.warp(img, prev), delta)[..., 2:-2, 2:-2]
    rhs = C.warp(img, A.compose(prev, delta))[..., 2:-2, 2:-2]
    assert torch.allclose(lhs, rhs, atol=0.01)
    affine = torch.stack([2 * xx + yy, xx - yy], 0)[None]
    bumpy = affine + torch.randn_like(affine)
    assert A.second_order_smoothness(affine) < A.second_order_smoothness(bumpy)
    assert float(A.tv(torch.ones(1, 2, 4, 4))) == 0


def test_registered_and_fills_the_afwm_cells_of_table1():
    assert "afwm" in reg.model_names() and set(reg.variants("afwm")) == {"warping module only"}
    cells = [c for c in reg.get_table("3d_gcl_table1_warping")["cells"] if c["reported"]["method"] == "AFWM"]
    assert len(cells) == 4 and all(reg.cell_fillable(c)[0] and c["model"] == "afwm" for c in cells)
    full = reg.resolve_config("afwm", "warping module only", "deepfashion", "full")
    assert full["afwm"]["chans"] == [64, 128, 256, 256, 256] and full["stages"]["warping"]["losses"]["smooth"] == 6.0


def _batch(kit, model, n=2):
    """Garment region shifted by 2 px between source and target; keypoints move by 1.5 px."""
    parse, kp = kit.garment_parse_and_pose(model.size, n)
    h, w = model.size
    person = torch.rand(n, 3, h, w) * 2 - 1
    return {"person": person, "target_person": torch.roll(person, shifts=2, dims=3), "parse": parse,
            "target_parse": torch.roll(parse, shifts=2, dims=2), "pose": kp, "target_pose": kp + 1.5}


def test_a_few_steps_lower_the_warping_loss(kit):
    model, nets = kit.built_model("afwm", "warping module only", "deepfashion")
    stage = model.stages()[0]
    batch = _batch(kit, model)
    opt = stage.make_optimizer(nets["afwm"].parameters())
    losses = []
    for _ in range(12):
        terms = model.losses(stage, nets, batch)
        loss = sum(w * terms[k] for k, w in stage.losses.items() if w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]
    out = model.infer(nets, batch)
    assert set(out) == {"warped_garment", "warped_parse"} and out["warped_garment"].shape == (2, 3, 64, 48)
