"""Tree-Block building blocks (seed 001 Eqs. 1-4, 9): the Tree-Block's four dilated branches and tree fusion,
the ResNet block of the ablation, generator / discriminator shapes, the decoupled LSGAN terms, the weighted
parsing cross-entropy and the face-refinement composition."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from bench.models.blocks.treeblock_face import refine
from bench.models.blocks.treeblock_losses import PerceptualStyleLoss, d_loss, g_loss, gram, weighted_ce
from bench.models.blocks.treeblock_nets import (PatchDiscriminator, ResnetBlock, ResnetDiscriminator, TreeBlock,
                                                TreeResnetGenerator)
from bench.models.blocks.treeblock_parsing import ParsingNet, one_hot, parsing_input


def _dilations(m: nn.Module) -> list[int]:
    return [c.dilation[0] for c in m.modules() if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)]


def test_tree_block_has_four_dilated_branches_and_a_tree_fusion():
    torch.manual_seed(0)
    blk = TreeBlock(8)
    assert [_dilations(b) for b in blk.branches] == [[1, 1], [2, 2], [3, 3], [4, 4]]
    assert blk.fuse_pair.kernel_size == (1, 1) and blk.fuse_pair.in_channels == 16 and blk.fuse_pair.out_channels == 16
    assert blk.fuse_root.kernel_size == (1, 1) and blk.fuse_root.in_channels == 32 and blk.fuse_root.out_channels == 8
    x = torch.randn(2, 8, 12, 10, requires_grad=True)
    y = blk(x)
    assert y.shape == x.shape
    # Eq. 3: residual -- with a zero root fusion the block is the identity
    with torch.no_grad():
        blk.fuse_root.weight.zero_()
        blk.fuse_root.bias.zero_()
    assert torch.equal(blk(x), x)


def _no_norm(m: nn.Module) -> nn.Module:
    """Instance norm mixes every position into every output; drop it to read the convolutions' reach."""
    for name, child in m.named_children():
        if isinstance(child, nn.InstanceNorm2d):
            setattr(m, name, nn.Identity())
        else:
            _no_norm(child)
    return m


def test_tree_block_receptive_field_is_wider_than_a_resnet_block():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 33, 33, requires_grad=True)
    for blk, reach in ((TreeBlock(4), 8), (ResnetBlock(4), 2)):  # two 3x3 convs of dilation 4 vs 1
        y = _no_norm(blk)(x)
        (g,) = torch.autograd.grad(y[0, :, 16, 16].sum(), x)
        cols = (g[0].abs().sum(0).sum(0) > 0).nonzero().flatten()
        assert cols.min().item() == 16 - reach and cols.max().item() == 16 + reach


def test_resnet_block_has_no_dilation():
    assert _dilations(ResnetBlock(8)) == [1, 1]
    gen = TreeResnetGenerator(26, 4, ngf=4, n_blocks=3, block="resnet")
    assert set(_dilations(gen)) == {1} and not any(isinstance(m, TreeBlock) for m in gen.modules())
    tree = TreeResnetGenerator(26, 4, ngf=4, n_blocks=3, block="tree")
    assert len(tree.blocks()) == 3 and all(isinstance(b, TreeBlock) for b in tree.blocks())
    with pytest.raises(ValueError):
        TreeResnetGenerator(3, 3, block="dense")


def test_generator_and_discriminator_shapes_and_gradients():
    torch.manual_seed(0)
    gen = TreeResnetGenerator(26, 4, ngf=4, n_blocks=2)
    x = torch.randn(2, 26, 32, 24)
    y = gen(x)
    assert y.shape == (2, 4, 32, 24)
    y.pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gen.parameters())
    face = TreeResnetGenerator(6, 3, ngf=4, n_blocks=1, tanh=True)
    assert face(torch.randn(1, 6, 32, 24) * 10).abs().max() <= 1
    assert ResnetDiscriminator(6, ngf=4, n_blocks=1)(torch.randn(2, 6, 32, 24)).shape == (2, 16, 8, 6)
    d = PatchDiscriminator(56, ndf=4)(torch.randn(2, 56, 64, 48))
    assert d.shape == (2, 1, 6, 4) and ((d > 0) & (d < 1)).all()
    with pytest.raises(ValueError, match="divisible"):
        gen(torch.randn(1, 26, 34, 24))


def test_gan_terms_send_each_gradient_to_its_own_network():
    torch.manual_seed(0)
    g = nn.Conv2d(3, 3, 3, padding=1)
    d = PatchDiscriminator(3, ndf=4)
    real = torch.randn(2, 3, 64, 48)
    fake = g(torch.randn(2, 3, 64, 48))
    g_loss(d, fake).backward()
    assert all(p.grad is None for p in d.parameters()) and g.weight.grad is not None
    g.zero_grad()
    with torch.no_grad():  # LSGAN: 0.5 (|D(real) - 1|^2 + |D(fake)|^2), one batched call = two separate calls
        pr, pf = d(real), d(fake)
        want = 0.5 * (((pr - 1) ** 2).mean() + (pf ** 2).mean())
    assert float(d_loss(d, real, fake).detach()) == pytest.approx(float(want), rel=1e-5)
    d_loss(d, real, fake).backward()
    assert g.weight.grad is None and all(p.grad is not None for p in d.parameters())


def test_weighted_cross_entropy_and_parsing_input():
    target = torch.randint(0, 20, (2, 8, 6))
    w = torch.linspace(0.03, 0.08, 20)
    perfect = one_hot(target, 20) * 0.999 + 0.001 / 20
    uniform = torch.full((2, 20, 8, 6), 1 / 20)
    assert weighted_ce(perfect, target, w) < 0.01 < weighted_ce(uniform, target, w)
    ce = weighted_ce(uniform, target, w)
    assert ce == pytest.approx(float((w[target] * torch.log(torch.tensor(20.0))).mean()), rel=1e-5)
    pose = torch.zeros(2, 18, 8, 6)
    inp = parsing_input(target, pose, torch.ones(2, 1, 8, 6), 20, [5, 6, 7])
    assert inp.shape == (2, 36, 8, 6)  # 17 parsing channels without the cloth labels + 18 pose + cloth mask
    net = ParsingNet(36, 20, ngf=4, num_downs=5)
    prob = net(torch.randn(2, 36, 64, 64))
    assert prob.shape == (2, 20, 64, 64) and torch.allclose(prob.sum(1), torch.ones(2, 64, 64), atol=1e-5)


def test_face_refinement_only_changes_the_face_region():
    torch.manual_seed(0)
    g_face = TreeResnetGenerator(6, 3, ngf=4, n_blocks=1, tanh=True)
    img = torch.rand(1, 3, 64, 48) * 2 - 1
    parse = torch.zeros(1, 64, 48, dtype=torch.long)
    parse[:, 4:12, 20:28] = 13  # face
    parse[:, 2:4, 18:30] = 2  # hair
    out = refine(g_face, img, parse, img, parse, [1, 2, 4, 13])
    inside = out["mask"].bool().expand_as(img)
    assert torch.equal(out["refined"][~inside], img[~inside])
    assert not torch.allclose(out["refined"][inside], img[inside])
    assert int(out["mask"].sum()) == 8 * 8 + 2 * 12


def test_perceptual_style_loss_is_zero_on_identical_images_and_uses_tree_block_weights():
    torch.manual_seed(0)
    loss = PerceptualStyleLoss(weights="random", layers=2)
    assert loss.layer_weights == (1.0, 0.25) and loss.provenance["weights"] == "random"
    x = torch.rand(1, 3, 32, 24) * 2 - 1
    feat, style = loss(x, x)
    assert float(feat) == 0 and float(style) == 0
    feat, style = loss(x, -x)
    assert float(feat) > 0 and float(style) > 0
    f = torch.randn(2, 4, 5, 3)
    assert torch.allclose(gram(f), torch.einsum("nchw,ndhw->ncd", f, f) / 60)
