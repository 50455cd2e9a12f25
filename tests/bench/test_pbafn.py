"""PBAFN, the Table 2 try-on baseline of 3D-GCL: the ResUNet generator's shapes at the paper's widths, the
composition, the spec extending AFWM's, the Table 2 cells, and the try-on stage running on the frozen AFWM
(no gradient reaches it, yet its flow drives the output) while a few generator steps lower the try-on loss."""

from __future__ import annotations

import pytest
import torch

from bench.harness import registry as reg
from bench.models.blocks.pbafn_gen import ResUNet, composite, tryon_terms

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/bench/conftest.py


def test_resunet_widths_norms_and_shapes():
    torch.manual_seed(0)
    g = ResUNet(25, 4).eval()  # the paper's 5 levels, ngf 64; at 64x32 to stay quick
    assert [lvl[0].out_channels for lvl in g.down] == [64, 128, 256, 512, 512]
    assert [isinstance(lvl[1], torch.nn.BatchNorm2d) for lvl in g.down] == [False, True, True, True, False]
    assert [lvl[1].out_channels for lvl in g.up] == [512, 256, 128, 64]
    with torch.no_grad():
        assert g(torch.randn(2, 25, 64, 32)).shape == (2, 4, 64, 32)
    with pytest.raises(ValueError, match="divisible by 32"):
        g(torch.randn(1, 25, 64, 48))
    assert ResUNet(7, 4, num_downs=4, ngf=8)(torch.randn(1, 7, 64, 48)).shape == (1, 4, 64, 48)


def test_composite_limits_the_mask_to_the_warped_garment():
    warped = torch.full((1, 3, 4, 4), 0.5)
    raw = torch.cat([torch.full((1, 3, 4, 4), 20.0), torch.full((1, 1, 4, 4), 20.0)], 1)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    tryon, rendered, m = composite(raw, warped, mask)
    assert torch.allclose(rendered, torch.ones_like(rendered)) and bool((m <= mask).all())
    assert torch.allclose(tryon[..., :2, :], warped[..., :2, :], atol=1e-6)  # inside the mask: the garment
    assert torch.allclose(tryon[..., 2:, :], rendered[..., 2:, :])  # outside: the rendered person
    terms = tryon_terms({"l1": 5.0, "vgg": 0.0, "render_l1": 5.0, "mask": 1.0}, tryon, rendered, m, warped)
    assert set(terms) == {"l1", "render_l1", "mask"}  # a zero weight is not computed (no VGG given)
    assert float(terms["mask"]) == pytest.approx(0.5, abs=1e-6) and float(terms["l1"]) < float(terms["render_l1"])


def test_spec_extends_afwm_and_fills_the_pbafn_cells_of_table2():
    assert "pbafn" in reg.model_names() and set(reg.variants("pbafn")) == {"default"}
    full = reg.resolve_config("pbafn", "default", "mpv", "full")
    afwm = reg.resolve_config("afwm", "warping module only", "mpv", "full")
    assert full["afwm"] == afwm["afwm"] and full["stages"]["warping"] == afwm["stages"]["warping"]
    tryon = full["stages"]["tryon"]
    assert tryon["trains"] == ["generator"] and tryon["uses"] == ["afwm"] and tryon["steps"] == 652950
    assert tryon["losses"] == {"l1": 5.0, "vgg": 1.0, "render_l1": 5.0, "render_vgg": 1.0, "mask": 1.0}
    assert full["generator"]["num_downs"] == 5 and full["generator"]["ngf"] == 64
    cells = [c for c in reg.get_table("3d_gcl_table2_tryon")["cells"] if c["reported"]["method"] == "PBAFN"]
    assert sorted(c["id"] for c in cells) == sorted(f"pbafn/default/{d}/{s}" for d in ("deepfashion", "mpv")
                                                    for s in ("test", "hardpose"))
    assert all(reg.cell_fillable(c)[0] and c["model"] == "pbafn" and c["variant"] == "default" for c in cells)
    assert all(c["metrics"]["FID"] == {"metric": "fid", "output": "tryon"} for c in cells)


def _setup(kit, n=2):
    """Smoke-config model and nets (seed 0), and a batch of smooth persons whose garment moves by 2 px."""
    cfg = reg.resolve_config("pbafn", "default", "deepfashion", "smoke")
    model = reg.get_model("pbafn")(cfg)
    torch.manual_seed(0)
    nets = model.build()
    model.setup(torch.device("cpu"))
    parse, kp = kit.garment_parse_and_pose(model.size, n)
    h, w = model.size
    person = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 6) * 2 - 1, size=(h, w), mode="bilinear")
    batch = {"person": person, "target_person": torch.roll(person, shifts=2, dims=3), "parse": parse,
             "target_parse": torch.roll(parse, shifts=2, dims=2), "pose": kp, "target_pose": kp + 1.5}
    return model, nets, batch


def _weighted(stage, terms):
    return sum(w * terms[k] for k, w in stage.losses.items() if w)


def test_tryon_stage_runs_on_the_frozen_afwm(kit):
    model, nets, batch = _setup(kit)
    stage = {s.name: s for s in model.stages()}["tryon"]
    assert stage.trains == ("generator",) and stage.uses == ("afwm",)
    x, _, _ = model.generator_inputs(nets["afwm"], batch)
    assert x.shape == (2, 3 + 3 + 1 + 18, 64, 48)  # preserved, warped garment, warped mask, 18 keypoint maps
    terms = model.losses(stage, nets, batch)
    assert set(terms) == {"l1", "vgg", "render_l1", "render_vgg", "mask"}
    _weighted(stage, terms).backward()
    assert all(p.grad is None for p in nets["afwm"].parameters())
    assert all(p.grad is not None for p in nets["generator"].parameters())
    for n in nets.values():
        n.eval()
    before = model.infer(nets, batch)
    assert set(before) == {"tryon", "warped_garment"} and before["tryon"].shape == (2, 3, 64, 48)
    with torch.no_grad():  # a non-zero flow head: the warp, hence the try-on, changes
        nets["afwm"].refine_heads[-1][-1].bias.fill_(3.0)
    after = model.infer(nets, batch)
    assert (after["warped_garment"] - before["warped_garment"]).abs().max() > 0.1
    assert (after["tryon"] - before["tryon"]).abs().max() > 0.01


def test_a_few_generator_steps_lower_the_tryon_loss(kit):
    model, nets, batch = _setup(kit)
    stage = {s.name: s for s in model.stages()}["tryon"]
    nets["afwm"].eval()
    opt = stage.make_optimizer(nets["generator"].parameters())
    losses = []
    for _ in range(10):
        loss = _weighted(stage, model.losses(stage, nets, batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]
