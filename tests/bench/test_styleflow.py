"""StyleFlow blocks and model: the style-based warper's shapes at the paper's layout (5 levels, 8x6 coarsest
at 256x192), that the global style vector really modulates the flow, that the two variants build different
computations (condition channels, inputs, teacher), and that the Table 2 cells point at the parser-free model."""

from __future__ import annotations

import pytest
import torch

from bench.models.blocks.styleflow_warp import ModulatedConv, StyleFlowWarper

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(chans=(4, 8, 8, 8, 8), fpn=8, style_dim=4, corr=5, hidden=8, head=(8, 4))


def test_warper_shapes_follow_the_paper_pyramid():
    torch.manual_seed(0)
    net = StyleFlowWarper(3, 3, (256, 192), **TINY)
    # the style convs cover the whole coarsest level: 256/32 x 192/32 = 8 x 6
    assert net.style_src[0].kernel_size == (8, 6) and net.style_dim == 8
    flows, deltas = net(torch.randn(2, 3, 256, 192), torch.randn(2, 3, 256, 192))
    assert [tuple(f.shape) for f in flows] == [(2, 2, 8 * 2 ** i, 6 * 2 ** i) for i in range(5)]
    assert len(deltas) == 10 and all(torch.isfinite(f).all() for f in flows)
    flows[-1].abs().mean().backward()
    assert net.style_heads[0].convs[0].affine.weight.grad.abs().sum() > 0  # the style path gets gradients
    with pytest.raises(ValueError, match="divisible"):
        StyleFlowWarper(3, 3, (100, 80), **TINY)


def test_changing_the_style_vector_changes_the_flow():
    torch.manual_seed(1)
    net = StyleFlowWarper(3, 3, (64, 48), chans=(4, 8, 8), fpn=8, style_dim=4, corr=5, hidden=8, head=(8, 4)).eval()
    src, tgt = torch.randn(1, 3, 64, 48), torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        ps, pt = net.enc_src(src), net.enc_tgt(tgt)
        style = net.style_vector(ps, pt)
        f0, _ = net(src, tgt)
        f1, _ = net(src, tgt, style=style)
        f2, _ = net(src, tgt, style=style + torch.randn_like(style))
    assert style.shape == (1, 8)
    assert torch.allclose(f0[-1], f1[-1], atol=1e-6)  # the default style is the pyramids' style vector
    assert (f2[0] - f1[0]).abs().mean() > 1e-3  # same features, another style -> another flow


def test_modulated_conv_is_per_sample_and_demodulated():
    torch.manual_seed(2)
    conv = ModulatedConv(6, 5, style_dim=3)
    x = torch.randn(1, 6, 9, 7).repeat(2, 1, 1, 1)
    s = torch.randn(2, 3)
    y = conv(x, s)
    assert y.shape == (2, 5, 9, 7) and not torch.allclose(y[0], y[1])
    # equals a conv with the explicitly modulated + demodulated per-sample weight
    w = conv.weight * conv.scale * conv.affine(s)[1][None, :, None, None]
    w = w * torch.rsqrt(w.pow(2).sum((1, 2, 3), keepdim=True) + 1e-8)
    ref = torch.nn.functional.conv2d(x[1:], w, conv.bias, padding=1)
    assert torch.allclose(y[1:], ref, atol=1e-5)
    # demodulation: scaling the style does not change the output
    assert torch.allclose(conv(x, s), ModulatedConvScaled(conv)(x, s), atol=1e-4)


class ModulatedConvScaled(torch.nn.Module):
    """The same conv with every style coefficient doubled (affine weights and bias x2)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x, s):
        sd = {k: v.clone() for k, v in self.conv.state_dict().items()}
        c = ModulatedConv(self.conv.weight.shape[1], self.conv.weight.shape[0], s.shape[1])
        sd["affine.weight"] *= 2
        sd["affine.bias"] *= 2
        c.load_state_dict(sd)
        return c(x, s)


def _built(variant):
    from bench.harness import registry as reg

    model = reg.get_model("styleflow")(reg.resolve_config("styleflow", variant, "viton", "smoke"))
    torch.manual_seed(0)
    return model, model.build()


def test_variants_build_different_computations(kit):
    pf, pf_nets = _built("parser-free")
    pb, pb_nets = _built("parser-based")
    pf.setup(torch.device("cpu"))
    pb.vgg = pf.vgg  # one random-init VGG19 for both (its construction dominates the test's time)
    assert pf_nets["warp"].enc_tgt.stages[0][2].in_channels == 3  # condition = a person image
    assert pb_nets["warp"].enc_tgt.stages[0][2].in_channels == 21  # masks + body shape + 18 pose maps
    assert pf.inputs("eval", "paired").fields == ("person", "garment", "garment_mask")  # parser-free at test
    assert {"parse", "pose"} <= set(pb.inputs("eval", "paired").fields)
    assert pf.config["teacher"]["model"] == "styleflow" and pf.config["teacher"]["variant"] == "parser-based"
    assert pb.config["teacher"]["model"] is None
    gen = {s.name: s for s in pf.stages()}["gen"]
    assert gen.trains == ("warp", "gen") and gen.lr_mult == {"warp": 0.2} and gen.losses["warp"] == 0.25

    n, (h, w) = 2, pf.size
    parse, kp = kit.garment_parse_and_pose((h, w), n)
    batch = {"person": torch.rand(n, 3, h, w) * 2 - 1, "garment": torch.rand(n, 3, h, w) * 2 - 1,
             "garment_mask": torch.ones(n, 1, h, w), "parse": parse, "pose": kp, "tuple_id": ["a", "b"]}
    pf.config["teacher"] = {"model": None}  # no teacher cache here: P_o := the person
    for model, nets in ((pf, pf_nets), (pb, pb_nets)):
        out = model.infer({k: v.eval() for k, v in nets.items()}, batch)
        assert out["tryon"].shape == (n, 3, h, w) and out["tryon"].abs().max() <= 1
        terms = model.losses({s.name: s for s in model.stages()}["gen"], nets, batch)
        assert set(terms) == {"warp", "l1", "vgg", "render_l1", "render_vgg", "mask"}
    # the parser-free condition at inference is the person image itself: changing it changes the warp
    b2 = dict(batch, person=-batch["person"])
    assert not torch.allclose(pf.infer(pf_nets, batch)["warped_garment"], pf.infer(pf_nets, b2)["warped_garment"])


def test_table2_styleflow_cells_are_fillable():
    from bench.harness import registry as reg

    cells = {c["id"]: c for c in reg.get_table("sal_vton_table2_viton")["cells"]}
    for cid in ("styleflow/viton/paired", "styleflow/viton/unpaired"):
        c = cells[cid]
        assert c["model"] == "styleflow" and c["variant"] == "parser-free" and "reason" not in c
        assert reg.cell_fillable(c)[0]
    from bench.harness.run import evaluations

    evs = evaluations("styleflow", "parser-free", "viton", "test", None)
    assert {e.setting: [c["cell"] for c in e.cells] for e in evs} == {
        "paired": ["styleflow/viton/paired"], "unpaired": ["styleflow/viton/unpaired"]}
