"""3D-GCL building blocks: shapes at the paper's 256x192, the global correspondence against a brute-force
reference, the SMPL pseudo-ground-truth correspondence, GACRM refinement, the GAN pieces and the Table 3
variants (which modules and loss terms each one computes)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.harness import registry as reg
from bench.models.blocks import gcl_corr as C
from bench.models.blocks.convgru import GACRMBlock
from bench.models.blocks.stylegan_spade import ResDiscriminator, SpatialStyleGenerator, r1_penalty
from bench.models.gcl3d import Correspondence

VARIANTS = ("3D-GCL *", "3D-GCL †", "3D-GCL ★", "3D-GCL")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/bench/conftest.py


def test_registered_under_3dgcl_with_the_table3_variants_and_paper_config():
    assert "3dgcl" in reg.model_names()
    assert set(reg.variants("3dgcl")) == set(VARIANTS)
    full = reg.resolve_config("3dgcl", "3D-GCL", "deepfashion", "full")
    assert full["size"] == [256, 192] and full["corr"]["tau"] == 0.01 and full["corr"]["iterations"] == 2
    st = full["stages"]["correspondence"]
    assert st["batch_size"] == 8 and st["steps"] == math.ceil(20 * 101622 / 8)
    assert st["losses"] == {"o_l1": 10.0, "o_vgg": 2.0, "flow": 30.0, "warp_l1_0": 1.0, "warp_vgg_0": 0.2,
                            "warp_l1": 5.0, "warp_vgg": 1.0}
    mpv = reg.resolve_config("3dgcl", "3D-GCL", "mpv", "full")
    assert mpv["stages"]["tryon"]["steps"] == math.ceil(50 * 52236 / 8) and mpv["train_setting"] == "multi-pose"
    smoke = reg.resolve_config("3dgcl", "3D-GCL", "deepfashion", "smoke")
    assert smoke["vgg"]["weights"] == "random" and smoke["size"] == [64, 48]


def test_paper_shapes_at_256x192():
    torch.manual_seed(0)
    enc = C.FeatureEncoderHD(6, nef=32).eval()
    with torch.no_grad():
        outs = enc(torch.randn(1, 6, 256, 192))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 32, 24), (1, 128, 64, 48), (1, 128, 128, 96)]
    theta, phi = torch.randn(1, 32, 32, 24), torch.randn(1, 32, 32, 24)
    o = C.correspondence(C.pono_c(theta), C.pono_c(phi), 0.01)
    assert o.shape == (1, 768, 768) and torch.allclose(o.sum(-1), torch.ones(1, 768), atol=1e-5)


def test_global_correspondence_matches_brute_force_and_chunked():
    torch.manual_seed(1)
    theta, phi = C.pono_c(torch.randn(2, 5, 3, 4)), C.pono_c(torch.randn(2, 5, 3, 4))
    values = torch.randn(2, 3, 3, 4)
    o = C.correspondence(theta, phi, 0.01)
    ref = torch.zeros(2, 12, 12)
    for n in range(2):
        for p in range(12):
            ty, tx = divmod(p, 4)
            logits = torch.tensor([float((theta[n, :, ty, tx] * phi[n, :, q // 4, q % 4]).sum()) / 0.01
                                   for q in range(12)])
            ref[n, p] = torch.softmax(logits, 0)
    assert torch.allclose(o, ref, atol=1e-5)
    warped = C.apply_correspondence(o, values)
    assert torch.allclose(warped[1, :, 2, 1], (ref[1, 9][None] * values[1].flatten(1)).sum(1), atol=1e-5)
    chunked, idx = C.global_warp_chunked(theta, phi, values, 0.01, chunk=5)
    assert torch.allclose(chunked, warped, atol=1e-5) and torch.equal(idx, o.argmax(-1))
    f0 = C.argmax_flow(o, 3, 4)  # integer offsets pointing at the best source position
    best = o[0, 6].argmax()
    assert f0[0, :, 1, 2].tolist() == [float(best % 4 - 2), float(best // 4 - 1)]


def test_pseudo_gt_correspondence_reproduces_the_smpl_flow_warp():
    torch.manual_seed(2)
    flow = torch.randn(2, 2, 6, 5) * 1.5
    mask = (torch.rand(2, 1, 6, 5) > 0.3).float()
    img = torch.randn(2, 3, 6, 5)
    o_gt = C.pseudo_gt_correspondence(flow, mask)
    assert o_gt.shape == (2, 30, 30) and bool((o_gt >= 0).all()) and bool((o_gt.sum(-1) <= 1 + 1e-5).all())
    assert torch.allclose(C.apply_correspondence(o_gt, img), C.warp(img, flow) * mask, atol=1e-5)
    ident = C.pseudo_gt_correspondence(torch.zeros(1, 2, 6, 5))
    assert torch.allclose(ident[0], torch.eye(30))


def test_correspondence_network_shapes_gradients_and_refinement():
    torch.manual_seed(3)
    net = Correspondence(6, 3, nef=4, feat_ch=8, hidden=8, motion=16)
    src, tgt = torch.randn(2, 6, 64, 48), torch.randn(2, 3, 64, 48)
    g, m = torch.rand(2, 3, 64, 48) * 2 - 1, torch.ones(2, 1, 64, 48)
    out = net(src, tgt, g, m)
    assert [tuple(f.shape) for f in out["flows"]] == [(2, 2, 8, 6), (2, 2, 16, 12), (2, 2, 32, 24)]
    assert [tuple(y.shape) for y in out["warped"]] == [(2, 3, 8, 6), (2, 3, 16, 12), (2, 3, 32, 24)]
    assert out["o"].shape == (2, 48, 48)
    f0 = out["flows"][0]
    assert torch.equal(f0, f0.round())  # argmax flow: integer offsets
    sum(y.mean() for y in out["warped"]).backward()
    for enc in (net.enc_src, net.enc_tgt):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    block = GACRMBlock(8, hidden=8, motion=16, iterations=2)
    off = torch.zeros(1, 2, 16, 12)
    assert torch.equal(block(torch.randn(1, 8, 16, 12), torch.randn(1, 8, 16, 12), off), off)  # zero-init head
    torch.nn.init.normal_(block.head.b.weight, std=0.1)
    assert not torch.equal(block(torch.randn(1, 8, 16, 12), torch.randn(1, 8, 16, 12), off), off)


def test_generator_discriminator_and_r1():
    torch.manual_seed(4)
    gen = SpatialStyleGenerator(3, 7, ngf=8, levels=3, max_ch=32)
    out = gen(torch.randn(2, 3, 64, 48), torch.randn(2, 7, 64, 48))
    assert out.shape == (2, 3, 64, 48) and out.abs().max() <= 1
    app1, app2 = torch.randn(1, 7, 64, 48), torch.randn(1, 7, 64, 48)
    pose = torch.randn(1, 3, 64, 48)
    gen.eval()
    assert not torch.allclose(gen(pose, app1), gen(pose, app2))  # the appearance modulates the output
    d = ResDiscriminator(6, ndf=8, levels=3, max_ch=32)
    x = torch.randn(3, 6, 64, 48, requires_grad=True)
    logits = d(x)
    assert logits.shape == (3,)
    assert float(r1_penalty(logits, x)) > 0


def _batch(kit, model, n=2):
    parse, kp = kit.garment_parse_and_pose(model.size, n)
    tparse = torch.roll(parse, shifts=2, dims=2)
    h, w = model.size
    return {"person": torch.rand(n, 3, h, w) * 2 - 1, "target_person": torch.rand(n, 3, h, w) * 2 - 1,
            "parse": parse, "target_parse": tparse, "pose": kp, "target_pose": kp + 1.5}


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_change_the_computation(variant, kit):
    model, nets = kit.built_model("3dgcl", variant, "deepfashion")
    stage = model.stages()[0]
    terms = model.losses(stage, nets, _batch(kit, model))
    glob = variant in ("3D-GCL †", "3D-GCL")
    with3d = variant in ("3D-GCL ★", "3D-GCL")
    assert hasattr(nets["corr"], "local_head") is (not glob)
    assert ("o_l1" in terms and "o_vgg" in terms) is (variant == "3D-GCL")
    assert ("flow" in terms) is with3d
    assert {"warp_l1_0", "warp_vgg_0", "warp_l1", "warp_vgg"} <= set(terms)
    assert model.uses_3d() is with3d
    out = model.correspond(nets["corr"], _batch(kit, model))
    assert (out["o"] is not None) is glob
    loss = sum(w * terms[k] for k, w in stage.losses.items() if w)
    loss.backward()
    assert all(torch.isfinite(v) for v in terms.values())


def test_tryon_stage_separates_generator_and_discriminator_gradients_and_updates_ema(kit):
    model, nets = kit.built_model("3dgcl", "3D-GCL", "deepfashion")
    stage = model.stages()[1]
    assert stage.trains == ("generator", "discriminator") and "generator_ema" in stage.uses
    ema0 = [p.clone() for p in nets["generator_ema"].parameters()]
    with torch.no_grad():
        for p in nets["generator"].parameters():
            p.add_(0.01)
    terms = model.losses(stage, nets, _batch(kit, model))
    assert set(terms) == {"gan", "d_gan", "r1", "l1", "vgg"} and float(terms["r1"]) > 0  # first step regularises
    assert any(not torch.equal(a, b) for a, b in zip(ema0, nets["generator_ema"].parameters()))
    terms["gan"].backward(retain_graph=True)
    assert all(p.grad is None for p in nets["discriminator"].parameters())
    assert any(p.grad is not None for p in nets["generator"].parameters())
    for p in nets["generator"].parameters():
        p.grad = None
    terms["d_gan"].backward()
    assert all(p.grad is None for p in nets["generator"].parameters())
    out = model.infer(nets, _batch(kit, model))
    assert set(out) == {"tryon", "warped_garment", "warped_parse"}
    labels = ((out["warped_parse"][:, 0] + 1) * 127.5).round()
    assert set(labels.unique().tolist()) <= {0.0, 5.0}  # garment labels only, stored as grey levels
