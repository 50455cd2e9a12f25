"""SPG-VTON unit tests at small sizes: Table I shapes (against the transcribed table), the paper's input
channel counts, variants change exactly what their names say, gradients reach the trained networks only."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch

from bench.harness.registry import get_model, resolve_config, variants
from bench.models.blocks.spg_nets import SPGDiscriminator, SPGGenerator

TABLE1 = Path(__file__).resolve().parents[2] / "leaderboards" / "reported" / "spg_vton_table1_architecture.csv"


def _chw(text: str, in_ch: int, out_ch: int, scale_c: float, scale_hw: float):
    c, h, w = [t.strip() for t in text.split("x")]
    c = in_ch if c == "IN" else out_ch if c == "OUT" else 1 if c == "1" else int(int(c) * scale_c)
    h, w = int(h), int(w)
    w = 96 if (h == 128 and w == 92) else w  # Table I typo "128 x 92" (docs/models.md 5.2)
    return c, int(h * scale_hw), int(w * scale_hw)


def _shapes(net, layers, x):
    seen = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=name: seen.append((n, tuple(o.shape[1:]))))
             for name, m in layers]
    net(x)
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("network", ["Generator G_i", "Discriminator D_i"])
def test_layers_follow_table1_at_a_quarter_size(network):
    rows = [r for r in csv.DictReader(TABLE1.open()) if r["network"] == network]
    assert rows, TABLE1
    in_ch, out_ch, width = 7, 4, 8  # ngf 8 = 64 / 8, ndf 4 = 32 / 8, input 64 x 48 = 256 x 192 / 4
    if network.startswith("Generator"):
        net = SPGGenerator(in_ch, out_ch, ngf=width)
    else:
        net = SPGDiscriminator(in_ch, ndf=width // 2)
    got = _shapes(net, net.table_layers(), torch.randn(1, in_ch, 64, 48))
    want = [(r["layer"], _chw(r["output (C x H x W)"], in_ch, out_ch, 1 / 8, 1 / 4)) for r in rows]
    assert [g[0] for g in got] == [w[0] for w in want]
    assert got == want


def test_paper_input_channels_and_networks():
    cfg = resolve_config("spgvton", "full", "mpv", "smoke")
    model = get_model("spgvton")(cfg)
    nets = model.build()
    assert set(nets) == {"g1", "d1", "g2", "d2", "gmm1", "gmm2", "g3", "dg", "dl"}
    ins = {k: (v.in_ch if hasattr(v, "in_ch") else v.scales[0].in_ch)
           for k, v in nets.items() if not k.startswith("gmm")}
    assert ins == {"g1": 41, "d1": 61, "g2": 44, "d2": 47, "g3": 24, "dg": 27, "dl": 30}
    assert nets["g1"].out_ch == 20 and nets["g2"].out_ch == 4 and nets["g3"].out_ch == 4
    assert len(nets["d1"].scales) == 2
    full = resolve_config("spgvton", "full", "mpv", "full")
    assert full["size"] == [256, 192] and full["lambdas"]["lambda3"] == 20 and full["lambdas"]["lambda1"] == 10
    st = get_model("spgvton")(full).stages()
    assert [(s.name, s.steps, s.batch_size) for s in st] == [("spm", 70000, 16), ("cwm_tsm", 70000, 8),
                                                             ("joint", 100000, 8)]
    assert st[0].optimizer["betas"] == [0.0, 0.999] and st[0].optimizer["weight_decay"] == 0.0005
    assert st[1].uses == ("g1",) and "g1" not in st[1].trains and "g1" in st[2].trains


def _model(variant):
    return get_model("spgvton")(resolve_config("spgvton", variant, "mpv", "smoke"))


def _losses(model):
    return {s.name: dict(s.losses) for s in model.stages()}


def test_every_printed_variant_exists():
    names = set(variants("spgvton"))
    assert {"full", "w/o E2E", "w/o Cycle", "w/o S_t-hat", "w/o L_id", "w/o L_adv^l", "w/o L_perc^c", "w/o M_p^c",
            "w/o Noise", "w/ S_t"} <= names
    assert {f"lambda_{i} = 0" for i in range(1, 6)} <= names
    assert {f"lambda_3 = {v}" for v in (0, 1, 5, 10, 40, 80)} | {"lambda_3 = 20 (= full)"} <= names


def test_variants_change_exactly_what_they_say():
    full = _model("full")
    base_nets, base_losses = set(full.net_names()), _losses(full)

    def diff(variant):
        m = _model(variant)
        nets, losses = set(m.net_names()), _losses(m)
        changed = {(st, k, base_losses.get(st, {}).get(k), losses.get(st, {}).get(k))
                   for st in set(base_losses) | set(losses)
                   for k in set(base_losses.get(st, {})) | set(losses.get(st, {}))
                   if base_losses.get(st, {}).get(k) != losses.get(st, {}).get(k)}
        return m, base_nets - nets, changed

    m, gone, changed = diff("w/o E2E")
    assert gone == set() and {c[0] for c in changed} == {"joint"} and [s.name for s in m.stages()] == ["spm", "cwm_tsm"]
    m, gone, changed = diff("w/o Cycle")
    assert gone == {"gmm2"} and changed == set() and not m.config["cycle"]
    m, gone, changed = diff("w/o L_adv^l")
    assert gone == {"dl"} and {c[1] for c in changed} == {"t_adv_l", "dl"}
    m, gone, changed = diff("w/o L_perc^c")
    assert gone == set() and {c[1] for c in changed} == {"p_perc", "t_perc"}
    assert all(c[3] is None for c in changed)
    for variant, terms in (("w/o L_id", {"id"}), ("lambda_5 = 0", {"id"}), ("lambda_1 = 0", {"s_focal"}),
                           ("lambda_2 = 0", {"p_recon", "p_perc"}), ("lambda_3 = 0", {"cond"}),
                           ("lambda_4 = 0", {"t_recon", "t_perc"})):
        m, gone, changed = diff(variant)
        assert gone == set() and {c[1] for c in changed} == terms, variant
        assert all(c[3] == 0.0 for c in changed), variant
    for v in (1, 5, 10, 40, 80):
        m, gone, changed = diff(f"lambda_3 = {v}")
        assert {(c[1], c[3]) for c in changed} == {("cond", float(v))}
    assert diff("lambda_3 = 20 (= full)")[2] == set()
    m, gone, changed = diff("w/o S_t-hat")
    assert gone == set() and changed == set()
    nets = m.build()
    assert nets["g1"].out_ch == 1 and nets["g2"].in_ch == 1 + 18 + 3 + 3 and nets["d1"].scales[0].in_ch == 42
    for variant, key, value in (("w/o M_p^c", "gmm_mask", "ground_truth"), ("w/ S_t", "test_semantic", "ground_truth"),
                                ("w/o Noise", "train_split", "train-clean")):
        m, gone, changed = diff(variant)
        assert gone == set() and changed == set() and m.config[key] == value and full.config.get(key) != value


def _batch(model, n=2):
    h, w = model.size
    g = torch.Generator().manual_seed(0)
    parse = torch.zeros(n, h, w, dtype=torch.long)
    parse[:, 4:12, 18:30] = 13  # face
    parse[:, 2:5, 16:32] = 2  # hair
    parse[:, 14:36, 12:36] = 5  # upper clothes
    parse[:, 36:60, 14:34] = 9  # pants
    pose = torch.zeros(n, 18, 3)
    pose[:, :, 0] = torch.linspace(10, 38, 18)
    pose[:, :, 1] = torch.linspace(6, 58, 18)
    pose[:, :, 2] = 1
    mask = torch.zeros(n, 1, h, w)
    mask[:, :, 10:50, 8:40] = 1
    img = lambda: torch.rand(n, 3, h, w, generator=g) * 2 - 1  # noqa: E731
    return {"person": img(), "parse": parse, "pose": pose, "garment": img(), "garment_mask": mask,
            "target_person": img(), "target_parse": parse.roll(2, 1), "target_pose": pose + 1}


def test_gradients_reach_trained_networks_only():
    model = _model("full")
    torch.manual_seed(0)
    nets = model.build()
    model.setup(torch.device("cpu"))
    batch = _batch(model)
    for stage in model.stages():
        for n, net in nets.items():
            net.zero_grad(set_to_none=True)
            for p in net.parameters():
                p.requires_grad_(n in stage.trains)
        terms = model.losses(stage, nets, batch)
        assert set(terms) == {k for k, v in stage.losses.items() if v}
        assert all(torch.isfinite(v) for v in terms.values())
        sum(stage.losses[k] * v for k, v in terms.items()).backward()
        for n in stage.trains:
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets[n].parameters()), (stage.name, n)
        for n in set(nets) - set(stage.trains):
            assert all(p.grad is None for p in nets[n].parameters()), (stage.name, n)


def test_generator_adversarial_term_does_not_train_the_discriminator():
    model = _model("full")
    torch.manual_seed(0)
    nets = model.build()
    model.setup(torch.device("cpu"))
    spm = model.stages()[0]
    only_adv = dataclasses.replace(spm, losses={"s_adv": 1.0})
    model.losses(only_adv, nets, _batch(model))["s_adv"].backward()
    assert any(p.grad is not None for p in nets["g1"].parameters())
    assert all(p.grad is None for p in nets["d1"].parameters())


def test_gt_mask_variant_guides_the_warp_with_the_target_clothes_mask():
    for variant, expect_gt in (("full", False), ("w/o M_p^c", True)):
        model = _model(variant)
        torch.manual_seed(0)
        nets = model.build()
        for n in nets.values():
            n.eval()
        assert nets["gmm1"].regression.linear.weight.abs().sum() == 0  # identity warp at initialisation
        torch.nn.init.normal_(nets["gmm1"].regression.linear.weight, std=0.05)  # as after some training
        r = model.represent(_batch(model))
        a = model.cwm(nets, r, torch.zeros_like(r["m_c"]))
        b = model.cwm(nets, r, torch.ones_like(r["m_c"]))
        assert torch.equal(a["c_w"], b["c_w"]) is expect_gt, variant
        assert torch.equal(a["guide"], r["m_t_c"]) is expect_gt


def test_infer_outputs_and_ground_truth_semantic_path():
    model = _model("full")
    torch.manual_seed(0)
    nets = model.build()
    for n in nets.values():
        n.eval()
    batch = _batch(model)
    out = model.infer(nets, batch)
    assert set(out) == set(model.outputs)
    for v in out.values():
        assert v.shape == (2, 3, 64, 48) and v.min() >= -1 and v.max() <= 1
    assert not torch.equal(out["tryon"], out["tryon_gt_semantic"])
    gt = model.forward_all(nets, batch, erase=False, semantic="ground_truth")
    assert torch.allclose(gt["tryon"], out["tryon_gt_semantic"])
