"""SAL-VTON networks at small sizes: shapes follow the paper, gradients flow, the batched local flow equals a
naive per-landmark loop, and each Table 3 variant builds a different computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench.models.blocks.sal_flow import (GlobalFlow, LocalFlow, base_grid, charbonnier_smoothness, compose,
                                          local_warp_loop, sample)
from bench.models.blocks.sal_fpn import FeaturePyramid
from bench.models.blocks.sal_hrnet import HRNet
from bench.models.blocks.sal_lasnl import LandmarkNorm, LASNLGenerator, MultiscaleDiscriminator

H, W, K = 64, 48, 32


def _pyramids(n=2, dim=16, seed=0):
    torch.manual_seed(seed)
    fp = FeaturePyramid(12, (8, 16, 16, 16, 16), dim)
    return fp(torch.randn(n, 12, H, W)), fp(torch.randn(n, 12, H, W))


def _landmarks(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy_g = torch.rand(n, K, 2, generator=g) * torch.tensor([W - 1.0, H - 1.0])
    xy_p = (xy_g + torch.randn(n, K, 2, generator=g) * 2).clamp(0, W - 1)
    return xy_g, xy_p, torch.ones(n, K, dtype=torch.bool)


def test_hrnet_shapes_and_gradients():
    net = HRNet(38, K, 3, width=8, stem=16, stage_modules=(1, 1), blocks=1, branches=3)
    x = torch.randn(2, 38, H, W, requires_grad=True)
    heat, attr = net(x)
    assert heat.shape == (2, K, H // 4, W // 4) and attr.shape == (2, 3, K)
    (heat.mean() + attr.mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # the heatmap logits start at the sparse prior (sigmoid ~ 0.01)
    assert float(torch.sigmoid(net.heat.bias.detach()).mean()) == pytest.approx(0.01, abs=1e-3)


def test_fpn_has_five_levels_at_halving_sizes():
    p, _ = _pyramids()
    assert [tuple(f.shape[-2:]) for f in p] == [(32, 24), (16, 12), (8, 6), (4, 3), (2, 2)]
    assert all(f.shape[1] == 16 for f in p)


def test_compose_matches_successive_warps():
    torch.manual_seed(0)
    x = torch.nn.functional.interpolate(torch.randn(1, 3, 8, 6), size=(H, W), mode="bilinear")  # smooth image
    f = 0.05 * torch.nn.functional.interpolate(torch.randn(1, 2, 4, 3), size=(H, W), mode="bilinear")
    d = 0.05 * torch.nn.functional.interpolate(torch.randn(1, 2, 4, 3), size=(H, W), mode="bilinear")
    two = sample(sample(x, f, "border"), d, "border")
    one = sample(x, compose(f, d), "border")
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    assert (two - one)[inner].abs().mean() < 0.05 * x.abs().mean()
    assert torch.allclose(sample(x, torch.zeros(1, 2, H, W)), x, atol=1e-5)  # zero flow = identity


def test_charbonnier_penalises_curvature_not_affine_flows():
    g = base_grid(1, 16, 12)
    affine = 0.3 * g + 0.1
    rough = affine + 0.2 * torch.randn_like(affine)
    assert charbonnier_smoothness(affine) < 0.02 < charbonnier_smoothness(rough)


def test_local_flow_window_is_a_fifth_of_the_image():
    lf = LocalFlow((256, 192), K, 16, 3, 8, 8)
    assert (lf.win_h, lf.win_w) == (51, 39) and lf.init_h == pytest.approx(51.2) and lf.init_w == pytest.approx(38.4)


@pytest.mark.parametrize("impl", ["crop", "softbox"])
@pytest.mark.parametrize("patch", ["deformable", "fixed"])
def test_local_flow_batched_equals_naive_loop(patch, impl):
    p, g = _pyramids()
    torch.manual_seed(1)
    lf = LocalFlow((H, W), K, 16, 3, 8, 8, patch=patch, chunk=7, impl=impl)
    xy_g, xy_p, valid = _landmarks()
    valid[0, :5] = False
    garment = torch.rand(2, 3, H, W) * 2 - 1
    out = lf(p, g, xy_g, xy_p, valid, garment)
    assert out["warped"].shape == (2, 3, H, W) and out["flow"].shape == (2, 2 * K, H, W)
    assert out["att"].shape == (2, K, H // 2, W // 2) and out["covered"].shape == (2, 1, H, W)
    # m_l is the half-size bilinear resize of the full-resolution Eq. 4 weights (what GlobalFlow's finest level
    # read before), built without the dense full-resolution map
    dense = torch.zeros(2, K, H * W).scatter_add_(2, out["index"].clamp(max=H * W - 1), out["weights"])
    half = F.interpolate(dense.view(2, K, H, W), size=(H // 2, W // 2), mode="bilinear", align_corners=False)
    assert torch.allclose(out["att"], half, atol=1e-6) and out["att"].sum() > 1
    ref = local_warp_loop(garment, out["coords"], out["weights"], out["centres"], (lf.win_h, lf.win_w))
    cov = out["covered"]
    assert torch.allclose(ref * cov + (1 - cov), out["warped"], atol=1e-5)
    # landmarks the pair mask drops give no weight anywhere
    assert out["weights"][0, :5].abs().sum() == 0
    # pixels covered by no window: flow -2 (outside the image), W_l white
    far = out["covered"][0, 0] == 0
    assert far.any() and (out["flow"][0, :, far] == -2).all() and (out["warped"][0, :, far] == 1).all()


@pytest.mark.parametrize("impl", ["crop", "softbox"])
def test_deformable_patch_sizes_are_learnt_fixed_ones_ignore_the_head(impl):
    p, g = _pyramids()
    xy_g, xy_p, valid = _landmarks()
    garment = torch.rand(2, 3, H, W) * 2 - 1
    torch.manual_seed(0)
    deform = LocalFlow((H, W), K, 16, 3, 8, 8, patch="deformable", impl=impl)
    out = deform(p, g, xy_g, xy_p, valid, garment)
    s = out["sizes"]
    assert s.shape == (2, K, 4) and (s[..., 0] <= W / 5 + 1e-4).all() and (s[..., 1] <= H / 5 + 1e-4).all()
    out["warped"].sum().backward()
    assert deform.c1[-1].weight.grad.abs().sum() > 0  # Eqs. 2-3: the size head gets gradient
    fixed = LocalFlow((H, W), K, 16, 3, 8, 8, patch="fixed", impl=impl)
    assert fixed.c1 is None and fixed(p, g, xy_g, xy_p, valid, garment)["sizes"] is None
    box = fixed.box(None, 0, 1)
    assert set(box.unique().tolist()) <= {0.0, 1.0}  # hard I_h x I_w boxes


@pytest.mark.parametrize("impl", ["crop", "softbox"])
@pytest.mark.parametrize("patch", ["deformable", "fixed"])
def test_local_flow_core_batched_equals_per_landmark_loop_with_gradients(patch, impl):
    """The batched core (all N x K patches per call) and the per-landmark Python loop compute the same W_l,
    coverage, attention and input gradients (the perf benchmark times exactly these two)."""
    torch.manual_seed(0)
    n, c = 2, 8
    lf = LocalFlow((H, W), K, 16, 3, 8, c, patch=patch, impl=impl, chunk=7)
    xy_g, xy_p, valid = _landmarks()
    valid[1, 3:9] = False
    # correlation features and attention logits at the finest pyramid level (1/2), as LocalFlow.forward makes them
    leaves = [torch.randn(n, c, H // 2, W // 2), torch.randn(n, c, H // 2, W // 2), torch.randn(n, K, H // 2, W // 2)]
    if patch == "deformable":
        leaves.append(torch.rand(n, K, 4) * torch.tensor([W / 5, H / 5, W / 5, H / 5]) + 1)
    for t in leaves:
        t.requires_grad_(True)
    fp, fg, logit = leaves[:3]
    sizes = leaves[3] if patch == "deformable" else None
    # a smooth garment: on per-pixel noise the sampling gradient jumps at every pixel edge, and the two versions'
    # last-bit differences in positions would flip a few gradient entries
    garment = F.interpolate(torch.rand(n, 3, H // 8, W // 8) * 2 - 1, size=(H, W), mode="bicubic", align_corners=False)
    fast = lf.core(fp, fg, xy_g, xy_p, valid, garment, sizes, logit)
    slow = lf.core_loop(fp, fg, xy_g, xy_p, valid, garment, sizes, logit)
    for key in ("warped", "covered", "att"):
        assert torch.allclose(fast[key], slow[key], atol=1e-4), key  # the loop resamples with grid_sample: rounding
    assert float((fast["warped"] != 1).float().mean()) > 0.2  # windows really cover the image
    # Eq. 4 weights sum to 1 at every kept pixel: the 2 x 2 means sum to (kept pixels of the block) / 4
    total = fast["att"].sum(1)
    assert torch.allclose(total * 4, (total * 4).round(), atol=1e-4) and (total > 1 - 1e-4).float().mean() > 0.2
    assert fast["att"][1, 3:9].abs().sum() == 0  # dropped pairs take no part
    gf = torch.autograd.grad(fast["warped"].square().sum() + fast["att"].sum(), leaves)
    gs = torch.autograd.grad(slow["warped"].square().sum() + slow["att"].sum(), leaves)
    for a, b in zip(gf, gs):
        assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-4, rtol=1e-4)


def test_local_flow_reads_half_resolution_features_and_logits_upsampled_at_the_windows():
    """Correlation features and the m_l logits live at the finest pyramid level (1/2); the blend reads the logits
    exactly as F.interpolate would upsample them to the image, at each window's pixels (border clamped), and the
    logits and features really drive the output."""
    torch.manual_seed(0)
    p, g = _pyramids()
    lf = LocalFlow((H, W), K, 16, 3, 8, 8)
    pg, fp, fg = lf.features(p, g)
    assert pg.shape[-2:] == fp.shape[-2:] == fg.shape[-2:] == (H // 2, W // 2)
    assert lf.att(pg).shape == (2, K, H // 2, W // 2)
    xy_g, xy_p, valid = _landmarks()
    xy_p[0, 0] = torch.tensor([0.0, 0.0])                      # a window hanging over the top-left corner
    cp = torch.round(xy_p)
    logits = torch.randn(2, K, H // 2, W // 2)
    got = lf.window_logits(logits, cp)
    up = F.pad(F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False),
               (lf.win_w, lf.win_w, lf.win_h, lf.win_h), mode="replicate")  # border clamping off the image
    for a, j in ((0, 0), (1, 7), (0, K - 1)):
        y0 = int(cp[a, j, 1]) - (lf.win_h - 1) // 2 + lf.win_h
        x0 = int(cp[a, j, 0]) - (lf.win_w - 1) // 2 + lf.win_w
        assert torch.allclose(got[a, j], up[a, j, y0:y0 + lf.win_h, x0:x0 + lf.win_w], atol=1e-5)
    garment = torch.rand(2, 3, H, W) * 2 - 1
    out = lf(p, g, xy_g, xy_p, valid, garment)
    with torch.no_grad():
        lf.att[-1].bias[3] += 5.0                               # landmark 3's logits up everywhere
    out2 = lf(p, g, xy_g, xy_p, valid, garment)
    assert (out2["att"][:, 3] - out["att"][:, 3]).sum() > 0 and not torch.allclose(out["warped"], out2["warped"])


@pytest.mark.parametrize("patch", ["deformable", "fixed"])
def test_separable_window_resampling_equals_grid_sample(patch):
    """The batched crop path resamples the cell positions onto the windows with two matmuls of grid_sample's
    1-D weights on channels-last features; the per-landmark loops use grid_sample on NCHW features: same
    positions, membership and gradients, border clamping included (windows are wider than small patches)."""
    torch.manual_seed(0)
    n, c = 2, 8
    lf = LocalFlow((H, W), K, 16, 3, 8, c, patch=patch)
    p, g = _pyramids()
    assert lf.features(p, g)[1].is_contiguous(memory_format=torch.channels_last)
    xy_g, xy_p, _ = _landmarks()
    cp = torch.round(xy_p)
    fp, fg, wgt = torch.randn(n, c, H, W), torch.randn(n, c, H, W), torch.randn(n, K, lf.win_h * lf.win_w, 2)
    sizes = None
    if patch == "deformable":
        sizes = (torch.rand(n, K, 4) * torch.tensor([W / 5, H / 5, W / 5, H / 5]) * 0.6 + 1).requires_grad_(True)
    outs = []
    for separable, fmt in ((True, torch.channels_last), (False, torch.contiguous_format)):
        a, b = [t.contiguous(memory_format=fmt).requires_grad_(True) for t in (fp, fg)]
        coords, member = lf.window_coords(a, b, xy_g, xy_p, cp, sizes, separable=separable)
        leaves = [a, b] + ([sizes] if sizes is not None else [])
        outs.append((coords, member, torch.autograd.grad((coords * wgt).sum() + member.square().sum(), leaves)))
    (c1, m1, g1), (c2, m2, g2) = outs
    assert c1.shape == c2.shape == (n, K, lf.win_h * lf.win_w, 2)
    assert torch.allclose(c1, c2, atol=1e-4) and torch.allclose(m1, m2, atol=1e-6)
    for x, y in zip(g1, g2):
        assert x.abs().sum() > 0 and torch.allclose(x, y, atol=1e-4, rtol=1e-4)
    assert (m1 < 0.5).any()  # some window pixels lie outside their patch: the border clamp was exercised


@pytest.mark.parametrize("impl", ["crop", "softbox"])
def test_local_flow_recovers_a_translation(impl):
    """Garment features = person features shifted by (3, 2) px and landmarks shifted alike: the local flow of
    the person-patch pixels points (3, 2) px away, within a fraction of a pixel."""
    torch.manual_seed(0)
    lf = LocalFlow((H, W), K, 16, 3, 8, 8, patch="fixed", impl=impl)
    with torch.no_grad():
        lf.log_tau.fill_(math.log(30.0))  # sharp matching
    fp = F.interpolate(torch.randn(1, 8, 16, 12), size=(H, W), mode="bicubic", align_corners=False)
    fp = fp / fp.norm(dim=1, keepdim=True)
    fg = torch.roll(fp, shifts=(2, 3), dims=(2, 3))
    shift = torch.tensor([3.0, 2.0])
    xy_p = torch.rand(1, K, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([W - 20.0, H - 20.0]) + 8
    cp = torch.round(xy_p)
    with torch.no_grad():
        coords, member = lf.window_coords(fp, fg, xy_p + shift, xy_p, cp, None)
    err = (coords - (cp[:, :, None, :] + lf.offsets) - shift).norm(dim=-1)[member > 0.5]
    assert float(err.median()) < 0.6 and float(err.quantile(0.9)) < 1.2


def test_crop_impl_is_the_default_and_softbox_a_config_option():
    from bench.harness import registry as reg

    crop = _model("full").build()["warp"].local
    assert crop.impl == "crop" and (crop.patch_h, crop.patch_w) == (12, 9) and crop.unit.shape == (108, 2)
    cfg = reg.resolve_config("salvton", "full", "viton", "smoke", ["warp.local_impl=softbox", "warp.patch_res=8"])
    soft = reg.get_model("salvton")(cfg).build()["warp"].local
    assert soft.impl == "softbox" and soft.patch_h == 8
    with pytest.raises(ValueError):
        LocalFlow((H, W), K, 16, 3, 8, 8, impl="dense")
    # same weights, same inputs: the two formulations really compute different local flows
    p, g = _pyramids()
    xy_g, xy_p, valid = _landmarks()
    garment = torch.rand(2, 3, H, W) * 2 - 1
    torch.manual_seed(3)
    a = LocalFlow((H, W), K, 16, 3, 8, 8).eval()
    b = LocalFlow((H, W), K, 16, 3, 8, 8, impl="softbox").eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert not torch.allclose(a(p, g, xy_g, xy_p, valid, garment)["coords"],
                                  b(p, g, xy_g, xy_p, valid, garment)["coords"], atol=1e-3)


def test_global_flow_outputs_and_local_attention_input():
    p, g = _pyramids()
    torch.manual_seed(0)
    gf = GlobalFlow(5, 16, 16, local_points=K)
    la = torch.rand(2, K, H, W)
    out = gf(p, g, (H, W), la)
    assert out["flow"].shape == (2, 2, H, W) and out["att"].shape == (2, 1, H, W)
    assert [tuple(f.shape[-2:]) for f in out["flows"]] == [(2, 2), (4, 3), (8, 6), (16, 12), (32, 24)]
    # zero-initialised flow heads: the untrained warp is the identity
    assert out["flow"].abs().max() < 1e-6
    out2 = gf(p, g, (H, W), torch.zeros_like(la))
    assert not torch.allclose(out["att"], out2["att"])  # the local attention feeds the global attention
    assert GlobalFlow(5, 16, 16, local_points=0).att_refine[0][0][0].in_channels == 2


def test_lasnl_generator_uses_the_landmark_map_and_plain_one_does_not():
    torch.manual_seed(0)
    gen = LASNLGenerator(12, 8, 5, 1, True, K, 16)
    x = torch.randn(2, 12, H, W)
    lmap = -torch.ones(2, K, H, W)
    y = gen(x, lmap)
    assert y.shape == (2, 3, H, W) and y.abs().max() <= 1
    lmap2 = lmap.clone()
    lmap2[:, 3, 20:30, 10:20] = 1
    assert not torch.allclose(gen(x, lmap2), y)
    assert sum(isinstance(m, LandmarkNorm) for m in gen.modules()) == 10  # 2 per decoder level
    with pytest.raises(ValueError):
        gen(x)
    plain = LASNLGenerator(6, 8, 5, 1, False)
    assert not any(isinstance(m, LandmarkNorm) for m in plain.modules())
    z = plain(torch.randn(2, 6, H, W))
    assert z.shape == (2, 3, H, W)
    d = MultiscaleDiscriminator(3 + K, 8, 2, 2)
    feats = d(torch.randn(2, 3 + K, H, W))
    assert len(feats) == 2 and feats[0][-1].shape[1] == 1


def _model(variant):
    from bench.harness import registry as reg

    cfg = reg.resolve_config("salvton", variant, "viton", "smoke")
    return reg.get_model("salvton")(cfg)


def test_variants_exist_under_table_names_and_change_the_computation():
    from bench.harness import registry as reg

    names = set(reg.variants("salvton"))
    assert {"full", "w/ Deformable Patch", "w/ Fixed Patch", "w/o LASNL", "w/o Local Flow and LASNL"} <= names
    torch.manual_seed(0)
    full = _model("full").build()
    from bench.harness.config import strip_comments

    assert strip_comments(_model("w/ Deformable Patch").config) == strip_comments(_model("full").config)
    fixed = _model("w/ Fixed Patch").build()
    assert full["warp"].local.c1 is not None and fixed["warp"].local.c1 is None
    no_lasnl = _model("w/o LASNL")
    nets = no_lasnl.build()
    assert not any(isinstance(m, LandmarkNorm) for m in nets["gen"].modules())
    assert nets["warp"].local is not None and no_lasnl.gen_in_channels() == 12
    bare = _model("w/o Local Flow and LASNL")
    nets = bare.build()
    assert nets["warp"].local is None and bare.gen_in_channels() == 6
    losses = {s.name: s.losses for s in bare.stages()}
    assert losses["warp"]["local_l1"] == 0 and losses["warp"]["fused_l1"] == 0
    assert {s.name: s.losses for s in _model("full").stages()}["warp"]["local_l1"] > 0


def test_paper_config_in_the_full_profile():
    from bench.harness import registry as reg

    cfg = reg.resolve_config("salvton", "full", "viton", "full")
    m = reg.get_model("salvton")(cfg)
    st = {s.name: s for s in m.stages()}
    assert list(st) == ["landmark", "warp", "gen"] and m.size == (256, 192)
    for name in ("landmark", "warp"):
        assert st[name].batch_size == 8 and st[name].optimizer["lr"] == 3e-4
        assert tuple(st[name].optimizer["betas"]) == (0.5, 0.999)
        assert st[name].schedule["decay_after"] * 2 == st[name].steps == 177800  # 100 epochs, decay after 50
    assert st["gen"].optimizer["lr"] == 1e-4 and st["gen"].lr_mult["disc"] == 4.0  # D 4e-4
    assert cfg["warp"]["chans"] == [64, 128, 256, 256, 256] and cfg["landmark"]["width"] == 48
    hd = reg.resolve_config("salvton", "full", "viton-hd", "full")
    assert hd["size"] == [1024, 768] and hd["landmark_size"] == [512, 384] and hd["warp_size"] == [256, 192]


def test_multi_resolution_chain_shapes():
    """VITON-HD scheme at toy sizes: landmarks at half size, warping at a quarter, generator at full size."""
    from bench.harness import registry as reg

    cfg = reg.resolve_config("salvton", "full", "viton", "smoke",
                             ["size=[128,96]", "landmark_size=[64,48]", "warp_size=[64,48]"])
    m = reg.get_model("salvton")(cfg)
    torch.manual_seed(0)
    nets = {k: v.eval() for k, v in m.build().items()}
    batch = {"person": torch.rand(2, 3, 128, 96) * 2 - 1, "garment": torch.rand(2, 3, 128, 96) * 2 - 1,
             "garment_mask": torch.ones(2, 1, 128, 96)}
    r = m.render(nets, batch)
    assert r["tryon"].shape == (2, 3, 128, 96) and r["warps"]["W_f"].shape == (2, 3, 128, 96)
    assert r["warps"]["low"]["W_g"].shape == (2, 3, 64, 48)
    assert r["landmarks"]["xy_p"].shape == (2, K, 2) and r["landmarks"]["xy_p"][..., 0].max() <= 96


def test_gan_terms_reach_only_their_own_network():
    """One optimiser trains G and D: G's terms go through detached D weights, D's through a detached fake."""
    from bench.harness import registry as reg

    cfg = reg.resolve_config("salvton", "full", "viton", "smoke", ["teacher.model=null", "stages.gen.losses.gen_vgg=0",
                                                                    "stages.warp.losses.global_vgg=0",
                                                                    "stages.warp.losses.fused_vgg=0"])
    m = reg.get_model("salvton")(cfg)
    m.setup(torch.device("cpu"))  # no VGG term left: nothing to build
    assert m.vgg is None
    torch.manual_seed(0)
    nets = m.build()
    n = 2
    xy_g, xy_p, _ = _landmarks(n)
    lookup = {}
    for i in range(n):
        lookup[(f"g{i}", "garment")] = (xy_g[i], torch.ones(K, dtype=torch.long))
        lookup[(f"p{i}", "person")] = (xy_p[i], torch.full((K,), 2, dtype=torch.long))
    m.set_landmarks(lookup)
    parse = torch.zeros(n, H, W, dtype=torch.long)
    parse[:, 20:40, 15:35] = 5  # upper clothes (cihp20)
    batch = {"person": torch.rand(n, 3, H, W) * 2 - 1, "garment": torch.rand(n, 3, H, W) * 2 - 1,
             "garment_mask": torch.ones(n, 1, H, W), "parse": parse, "garment_id": ["g0", "g1"],
             "person_id": ["p0", "p1"], "tuple_id": ["a", "b"]}
    st = {s.name: s for s in m.stages()}
    terms = m.losses(st["gen"], nets, batch)
    g_params = list(nets["gen"].parameters())
    d_params = list(nets["disc"].parameters())
    for name, net_params, other in (("gen_adv", g_params, d_params), ("disc", d_params, g_params)):
        grads = torch.autograd.grad(terms[name], net_params + other, allow_unused=True, retain_graph=True)
        own, foreign = grads[:len(net_params)], grads[len(net_params):]
        assert any(g is not None and g.abs().sum() > 0 for g in own), name
        assert all(g is None or g.abs().sum() == 0 for g in foreign), name
    # warping losses exist for every term of the stage and Eq. 9 is finite
    w = m.losses(st["warp"], nets, batch)
    assert set(w) >= {k for k, v in st["warp"].losses.items() if v} and torch.isfinite(w["local_l1"])


def test_teacher_pairing_is_a_seeded_derangement():
    from bench.models.salvton_teacher import derangement

    perm = derangement(10, 3)
    assert sorted(perm) == list(range(10)) and all(i != j for i, j in enumerate(perm))
    assert perm == derangement(10, 3) and perm != derangement(10, 4)
    assert derangement(1, 0) == [0]


def test_edits_move_points_and_draw_them():
    from bench.models.salvton_edit import apply_edits

    lm = {"xy_g": torch.zeros(1, K, 2), "attr_g": torch.ones(1, K, dtype=torch.long),
          "xy_p": torch.zeros(1, K, 2), "attr_p": torch.zeros(1, K, dtype=torch.long)}
    out = apply_edits(lm, {"person": {"4": [10, 12], "5": {"attribute": 1}}, "garment": {"2": {"attribute": 0}}})
    assert out["xy_p"][0, 4].tolist() == [10.0, 12.0] and out["attr_p"][0, 4] == 2 and out["attr_p"][0, 5] == 1
    assert out["attr_g"][0, 2] == 0 and lm["attr_p"].sum() == 0  # input untouched


def test_full_profile_teacher_is_styleflow_parser_based_on_viton():
    from bench.harness import registry as reg

    full = reg.resolve_config("salvton", "full", "viton", "full", [])["teacher"]
    assert (full["model"], full["variant"]) == ("styleflow", "parser-based")
    assert "parser-based" in reg.variants("styleflow") and "viton" in reg.get_model("styleflow").spec()["datasets"]
    # HR-VITON is not registered: CP-VTON stands in on VITON-HD; the smoke profile keeps a tiny CP-VTON
    assert reg.resolve_config("salvton", "full", "viton-hd", "full", [])["teacher"]["model"] == "cpvton"
    assert reg.resolve_config("salvton", "full", "viton", "smoke", [])["teacher"]["model"] == "cpvton"
