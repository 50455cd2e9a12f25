"""PF-AFN (bench model ``pfafn``): shapes at 64x48, the parser-free student against the parser-based teacher
(the student reads no parse), the tutor's garment swap, and the adjustable distillation terms."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

H, W, N = 64, 48, 3


def _batch(kit, with_parse: bool = True) -> dict:
    parse, pose = kit.garment_parse_and_pose((H, W), n=N, seed=2)
    b = {"person": torch.rand(N, 3, H, W) * 2 - 1, "garment": torch.rand(N, 3, H, W) * 2 - 1,
         "garment_mask": torch.zeros(N, 1, H, W)}
    b["garment_mask"][:, :, 12:50, 10:38] = 1
    if with_parse:
        b.update(parse=parse, pose=pose)
    return b


def _eval(nets):
    return {k: v.eval() for k, v in nets.items()}


def test_shapes_follow_the_paper_at_small_size(kit):
    model, nets = kit.built_model("pfafn", "PF-AFN", "viton")
    b = _batch(kit)
    cond = model.condition(b)
    assert cond.shape == (N, 22, H, W)  # preserved person 3 + body shape 1 + 18 pose maps
    flows = nets["pb_warp"](torch.cat([b["garment"], b["garment_mask"]], 1), cond)
    assert [tuple(f.shape) for f in flows] == [(N, 2, 8, 6), (N, 2, 16, 12), (N, 2, 32, 24)]  # H/8 .. H/2
    sflows = nets["pf_warp"](torch.cat([b["garment"], b["garment_mask"]], 1), b["person"])
    assert [f.shape for f in sflows] == [f.shape for f in flows]
    assert nets["pb_gen"].down[0][0].in_channels == 25 and nets["pf_gen"].down[0][0].in_channels == 7
    out = model.infer(_eval(nets), b)
    assert set(out) == {"tryon", "warped_garment"}
    for v in out.values():
        assert v.shape == (N, 3, H, W) and v.min() >= -1 and v.max() <= 1
    # full-profile widths are PF-AFN's
    from bench.harness.registry import resolve_config

    full = resolve_config("pfafn", "PF-AFN", "viton", "full")
    assert full["size"] == [256, 192] and full["warp"]["chans"] == [64, 128, 256, 256, 256]
    assert full["generator"] == {**full["generator"], "num_downs": 5, "ngf": 64}


def test_student_reads_no_parse_and_the_teacher_does(kit):
    student, snets = kit.built_model("pfafn", "PF-AFN", "viton")
    teacher, tnets = kit.built_model("pfafn", "PB-AFN", "viton")
    assert "parse" not in student.inputs("eval", "unpaired").fields
    assert "pose" not in student.inputs("eval", "paired").fields
    assert {"parse", "pose"} <= set(teacher.inputs("eval", "paired").fields)
    assert set(snets) == {"pb_warp", "pb_gen", "pf_warp", "pf_gen"} and set(tnets) == {"pb_warp", "pb_gen"}
    assert [s.name for s in student.stages()] == ["pb_warp", "pb_tryon", "pf_warp", "pf_tryon"]
    assert [s.name for s in teacher.stages()] == ["pb_warp", "pb_tryon"]
    bare = _batch(kit, with_parse=False)
    assert student.infer(_eval(snets), bare)["tryon"].shape == (N, 3, H, W)
    with pytest.raises(KeyError):
        teacher.infer(_eval(tnets), bare)
    # the student's try-on depends on the person image, which the teacher only sees through the parse
    other = dict(bare, person=-bare["person"])
    assert not torch.allclose(student.infer(snets, bare)["tryon"], student.infer(snets, other)["tryon"])


def test_tutor_wears_the_previous_samples_garment(kit):
    model, nets = kit.built_model("pfafn", "PF-AFN", "viton")
    nets = _eval(nets)
    for p in nets["pb_gen"].parameters():  # a generator that lets the garment through
        p.data.normal_(0, 0.2)
    b = _batch(kit)
    t0 = model.tutor(nets, b)
    g = b["garment"].clone()
    g[1] = -g[1]
    t1 = model.tutor(nets, dict(b, garment=g))
    changed = (t1 - t0).abs().flatten(1).amax(1)
    assert changed[2] > 1e-3 and changed[0] == 0 and changed[1] == 0


def test_distillation_terms_are_gated_and_reach_the_student_encoder(kit):
    from bench.models.blocks.pfafn_losses import distill_gate, feature_distill, flow_distill

    target = torch.zeros(2, 3, 4, 4)
    gate = distill_gate(torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)]), torch.full((2, 3, 4, 4), 0.5),
                        target)
    assert gate.tolist() == [1.0, 0.0]
    t = [torch.zeros(2, 5, 2, 2), torch.zeros(2, 5, 4, 4)]
    s = [torch.ones(2, 5, 2, 2), torch.ones(2, 5, 4, 4)]
    assert feature_distill(t, s, gate).item() == pytest.approx((2 + 1) * 0.04)
    assert feature_distill(t, s, torch.zeros(2)).item() == 0
    f = [torch.zeros(2, 2, 4, 4) for _ in range(4)]
    g = [torch.full((2, 2, 4, 4), 3.0) for _ in range(4)]  # per-pixel norm 3 * sqrt(2)
    assert flow_distill(f, g, gate).item() == pytest.approx((2 + 3 + 4) * 3 * 2 ** 0.5, rel=1e-5)

    model, nets = kit.built_model("pfafn", "PF-AFN", "viton")
    stage = {s.name: s for s in model.stages()}["pf_warp"]
    assert stage.losses["distill_feat"] > 0 and stage.losses["distill_flow"] > 0
    # a trained-looking teacher (its warp is perfect when the garment already sits where it is worn)
    b = _batch(kit)
    worn, mask = model.worn_garment(b)
    b = dict(b, garment=worn, garment_mask=mask)
    for p in nets["pf_warp"].corr_heads.parameters():  # a student that does move the garment
        p.data.normal_(0, 0.5)
    for n in ("pb_warp", "pb_gen"):
        nets[n].eval()
    terms = model.losses(stage, nets, b)
    assert terms["distill_feat"].item() > 0 and terms["distill_flow"].item() > 0
    terms["distill_feat"].backward()
    grad = nets["pf_warp"].enc_tgt.lateral[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0
