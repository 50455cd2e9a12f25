"""The registered ``treeblock`` model: paper-shaped networks, Algorithm 1's stages, every Table 2 variant
changing exactly what its name says, the table files, and one forward/backward of every stage on a batch of
generated MPV triplets (shapes and losses at 128 x 96)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from bench.harness import registry as reg
from bench.models.blocks.treeblock_nets import ResnetBlock, TreeBlock

TABLE2 = ("full", "w/o Tree-Block", "w/o attention loss", "w/o face refinement", "w/o end2end training")


def _model(variant: str = "full", profile: str = "smoke", overrides=()):
    cls = reg.get_model("treeblock")
    return cls(reg.resolve_config("treeblock", variant, "mpv", profile, list(overrides)))


def _stages(m):
    return {s.name: s for s in m.stages()}


def test_full_profile_is_the_paper_configuration():
    m = _model(profile="full")
    c = m.config
    assert c["size"] == [256, 192] and c["app"]["n_blocks"] == 6 and c["app"]["ngf"] == 64
    assert c["vgg"]["weights"] == "imagenet" and c["vgg"]["layer_weights"] == [1.0, 0.25, 0.125, 0.0625, 0.03125]
    st = _stages(m)
    assert list(st) == ["gmm", "parsing", "appearance", "face", "joint"]  # Algorithm 1, ending in joint training
    for name in ("parsing", "appearance", "face", "joint"):
        assert st[name].optimizer == {"name": "adam", "lr": 0.0002, "betas": [0.5, 0.999]}
    assert st["appearance"].uses == ("gmm", "parsing") and st["appearance"].trains == ("app", "d_app")
    assert st["face"].uses == ("gmm", "parsing", "app")
    assert set(st["joint"].trains) == {"parsing", "app", "face", "d_app"}
    assert dict(st["face"].losses) == {"face_feat": 1.0, "face_l1": 10.0, "face_gan": 3.0, "refine": 1.0, "d": 1.0}
    assert st["joint"].losses["parse_ce"] == 1.0 and st["appearance"].losses["atten"] == 1.0


def test_paper_channel_counts_at_full_width():
    nets = _model(profile="full").build()
    assert nets["parsing"].unet.model.model[0].in_channels == 36  # 17 parsing + 18 pose + cloth mask
    assert nets["parsing"].unet.num_downs == 6
    assert nets["d_parsing"].model[0].in_channels == 56
    app = nets["app"]
    assert app.model[1].in_channels == 26 and app.model[-1].out_channels == 4
    assert len(app.blocks()) == 6 and all(isinstance(b, TreeBlock) and b.fuse_root.out_channels == 256
                                          for b in app.blocks())
    assert nets["face"].model[1].in_channels == 6 and isinstance(nets["face"].model[-1], nn.Tanh)
    assert nets["d_app"].model[1].in_channels == 6 and nets["gmm"].extraction_a.model[0].in_channels == 22


def test_variants_are_the_table_rows_and_change_exactly_what_they_say():
    assert tuple(reg.variants("treeblock")) == TABLE2
    full, no_tree, no_att, no_face, no_e2e = (_model(v) for v in TABLE2)
    nets = {v: m.build() for v, m in zip(TABLE2, (full, no_tree, no_att, no_face, no_e2e))}
    # w/o Tree-Block: ResNet blocks in G_A and G_F, no dilation anywhere, same depth
    for g in ("app", "face"):
        blocks = nets["w/o Tree-Block"][g].blocks()
        assert blocks and all(isinstance(b, ResnetBlock) for b in blocks)
        assert len(blocks) == len(nets["full"][g].blocks())
        assert all(c.dilation == (1, 1) for c in nets["w/o Tree-Block"][g].modules() if isinstance(c, nn.Conv2d))
        assert {c.dilation[0] for c in nets["full"][g].modules() if isinstance(c, nn.Conv2d)} == {1, 2, 3, 4}
    assert _stages(no_tree).keys() == _stages(full).keys()
    # w/o attention loss: attention (and TV) weights 0 where the appearance losses apply, nothing else changed
    for s in ("appearance", "joint"):
        assert _stages(no_att)[s].losses["atten"] == 0 and _stages(full)[s].losses["atten"] == 1
        rest = {k: v for k, v in _stages(no_att)[s].losses.items() if k not in ("atten", "tv")}
        assert rest == {k: v for k, v in _stages(full)[s].losses.items() if k not in ("atten", "tv")}
    # w/o face refinement: no G_F / D_F, no face stage, the joint stage does not train a face network
    assert "face" not in nets["w/o face refinement"] and "d_face" not in nets["w/o face refinement"]
    assert list(_stages(no_face)) == ["gmm", "parsing", "appearance", "joint"]
    assert "face" not in _stages(no_face)["joint"].trains
    # w/o end2end training: Algorithm 1 without its joint step
    assert list(_stages(no_e2e)) == ["gmm", "parsing", "appearance", "face"]
    assert set(nets["w/o end2end training"]) == set(nets["full"])


def test_tables_map_every_variant_and_the_real_data_row():
    t2 = reg.get_table("tree_block_table2_ablation_mpv")
    assert sorted(c["variant"] for c in t2["cells"]) == sorted(TABLE2)
    for tid in ("tree_block_table1_mpv", "tree_block_table2_ablation_mpv"):
        for cell in reg.get_table(tid)["cells"]:
            assert reg.cell_fillable(cell)[0], (tid, cell["id"])
            assert cell["variant"] in reg.variants(cell["model"]), (tid, cell["id"])
    t1 = {c["reported"]["method"]: c for c in reg.get_table("tree_block_table1_mpv")["cells"]}
    assert t1["SRB-VTON"]["variant"] == "w/o Tree-Block" and t1["Tree-Block (Ours)"]["variant"] == "full"
    assert t1["Real data"]["model"] == "real" and "reason" not in t1["Real data"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    base = tmp_path_factory.mktemp("tb_model")
    data = make_fixture("mpv", base / "data", n=4, size="128x96", seed=5, layout="detail_carving")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTONDATA_HOME", str(base / "home"))
        prepare("mpv", data, out=base / "home" / "mpv", quiet=True)
        from bench.harness.data import open_dataset

        m = _model()
        inp = m.inputs("train", "multi-pose")
        ds = open_dataset("mpv", "train", "multi-pose", inp.fields, m.size, inp.label_space)
        return torch.utils.data.default_collate([ds[i] for i in range(min(2, len(ds)))])


@pytest.mark.parametrize("variant", ["full", "w/o face refinement"])
def test_every_stage_runs_forward_and_backward_with_paper_shapes(batch, variant):
    torch.manual_seed(0)
    m = _model(variant, overrides=["app.n_blocks=1", "face.n_blocks=1"])
    nets = m.build()
    m.setup(torch.device("cpu"))
    n = batch["person"].shape[0]
    fwd = m.forward(nets, batch)
    assert fwd["parsing"].shape == (n, 20, 128, 96) and fwd["parsing_in"].shape == (n, 36, 128, 96)
    assert fwd["coarse"].shape == fwd["tryon"].shape == (n, 3, 128, 96) and fwd["m"].shape == (n, 1, 128, 96)
    # Eq. 4: I~_pt = C~w * M + I~_r * (1 - M)
    assert torch.allclose(fwd["coarse"], fwd["warped"] * fwd["m"] + fwd["rendered"] * (1 - fwd["m"]), atol=1e-6)
    if variant == "full":
        assert not torch.equal(fwd["tryon"], fwd["coarse"])  # the face region is refined
    else:
        assert torch.equal(fwd["tryon"], fwd["coarse"])
    out = m.infer(nets, batch)
    assert set(out) == {"tryon", "tryon_coarse", "warped_garment"}
    assert all(v.shape == (n, 3, 128, 96) and v.abs().max() <= 1 + 1e-5 for v in out.values()), \
        {k: float(v.abs().max()) for k, v in out.items()}
    for stage in m.stages():
        terms = m.losses(stage, nets, batch)
        assert {k for k, w in stage.losses.items() if w} <= set(terms), stage.name
        loss = sum(w * terms[k] for k, w in stage.losses.items() if w)
        for net in nets.values():
            net.zero_grad(set_to_none=True)
        loss.backward()
        for name in stage.trains:
            grads = [p.grad for p in nets[name].parameters() if p.grad is not None]
            assert grads and all(torch.isfinite(g).all() for g in grads), (stage.name, name)
        if stage.name == "appearance":
            assert all(p.grad is None for p in nets["parsing"].parameters())  # frozen G_P gets nothing
        if stage.name == "joint":
            assert any(p.grad is not None for p in nets["parsing"].parameters())  # end-to-end into G_P


def test_attention_term_is_absent_without_the_attention_loss(batch):
    torch.manual_seed(0)
    m = _model("w/o attention loss", overrides=["app.n_blocks=1", "face.n_blocks=1"])
    nets = m.build()
    m.setup(torch.device("cpu"))
    terms = m.losses(_stages(m)["appearance"], nets, batch)
    assert "atten" not in terms and "pixel" in terms
    full = _model(overrides=["app.n_blocks=1", "face.n_blocks=1"])
    full.setup(torch.device("cpu"))
    assert "atten" in full.losses(_stages(full)["appearance"], nets, batch)


def test_class_weights_must_cover_the_label_space():
    from vtondata.errors import VtonDataError

    with pytest.raises(VtonDataError, match="20 classes"):
        _model(overrides=["parsing.class_weights=[1, 2]"])
    assert _model().class_weights.tolist()[5:8] == pytest.approx([0.08] * 3)  # cloth labels weighted 0.08
