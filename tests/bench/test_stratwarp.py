"""CP-VTON+ and PF-AFN warping baselines on generated STRAT (model ``stratwarp``): the fitted homography
recovers a known one from its dense correspondences; shapes of both warps; the variants differ in their network
and losses; training lowers the warp loss and Disp versus initialisation; a smoke CLI run of both variants on
STRAT-hat fills their Table 1 cells."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.models.blocks import acc_geometry as G

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "stratwarp_smoke", "strat", n=16, size="64x64", seed=7)
    base = ["bench", "--model", "stratwarp", "--dataset", "strat", "--setting", "hat", "--split", "test",
            "--profile", "smoke", "--device", "cpu", "--set", "stages.glasses.enabled=false",
            "--set", "stages.tie.enabled=false"]
    with kit.one_thread(), kit.bench_env(d.home, d.results):
        kit.cli_ok(base + ["--variant", "PF-AFN", "--set", "stages.hat.steps=3"])
        kit.cli_ok(base + ["--variant", "CP-VTON+", "--set", "method_schedule.cpvton_plus.steps=3"])
    return {"home": d.home, "results": d.results}


def test_homography_fit_recovers_a_known_flow():
    from bench.models.stratwarp import fit_homography, pixel_grid

    h, w = 48, 64
    src = torch.tensor([[[5.0, 4.0], [58.0, 7.0], [60.0, 40.0], [3.0, 44.0]]])
    dst = torch.tensor([[[10.0, 8.0], [50.0, 5.0], [55.0, 42.0], [8.0, 38.0]]])
    hom = G.dlt_homography(src.double(), dst.double())  # foreground -> background
    inv = torch.linalg.inv(hom)
    grid = pixel_grid(h, w).reshape(1, -1, 2).double()
    corr = G.apply_homography(inv, grid).reshape(1, h, w, 2).float()  # the foreground pixel each pixel samples
    mask = torch.zeros(1, 1, h, w)
    mask[..., 10:40, 12:50] = 1
    fit = fit_homography(corr, mask, stride=4)
    assert torch.allclose(fit / fit[:, 2:, 2:], hom / hom[:, 2:, 2:], atol=1e-3)
    assert torch.allclose(G.apply_homography(fit, src.double()), dst.double(), atol=1e-2)
    # fewer masked points than needed: the whole lattice is used (still exact for a true homography)
    fit2 = fit_homography(corr, torch.zeros(1, 1, h, w), stride=8)
    assert torch.allclose(G.apply_homography(fit2, src.double()), dst.double(), atol=1e-2)


def test_shapes_and_variants_change_the_computation(env, kit):
    from bench.models.blocks.afwm_flow import AFWMWarper
    from bench.models.blocks.gmm import GMM

    cp, cp_nets = kit.built_model("stratwarp", "CP-VTON+", "strat")
    pf, pf_nets = kit.built_model("stratwarp", "PF-AFN", "strat")
    assert isinstance(cp_nets["hat"], GMM) and isinstance(pf_nets["hat"], AFWMWarper)
    assert cp_nets["hat"].extraction_b.model[0].in_channels == 1  # CP-VTON+: the mask is the garment input
    assert cp_nets["hat"].extraction_a.model[0].in_channels == 3 + 12  # background + 12 face classes
    assert cp_nets["tie"].extraction_a.model[0].in_channels == 3 + 8  # 8 body classes
    assert set(cp.stages()[0].losses) == {"l1", "gic"}
    assert set(pf.stages()[0].losses) == {"l1", "vgg", "mask", "smooth", "tv"}
    for model, nets in ((cp, cp_nets), (pf, pf_nets)):
        batch = kit.full_batch(model, "strat", "test", "hat")
        for n in nets.values():
            n.eval()
        out = model.infer(nets, batch)
        n = batch["background"].shape[0]
        assert out["tryon"].shape == (n, 3, 64, 64) and out["vertices"].shape == (n, 4, 2)
        assert out["tryon"].min() >= -1 and out["tryon"].max() <= 1 and torch.isfinite(out["vertices"]).all()
        cond = model.condition(batch)
        assert cond.shape == (n, 15, 64, 64) and torch.equal(cond[:, 3:].sum(1) <= 1, torch.ones_like(cond[:, 0],
                                                                                                         dtype=bool))


@pytest.mark.parametrize("variant,steps", [("CP-VTON+", 60), ("PF-AFN", 25)])
def test_training_beats_initialisation(env, kit, variant, steps):
    """Warp L1 and Disp on the training tuples, BatchNorm on batch statistics (the running statistics of a few
    dozen steps have not settled)."""
    from bench.metrics.disp import displacement

    model, nets = kit.built_model("stratwarp", variant, "strat")
    stage = [s for s in model.stages() if s.setting == "hat"][0]
    batch = kit.full_batch(model, "strat", "train", "hat", "train")
    gt = model.verts.vertices(batch, (64, 64))[1]

    def evaluate():
        with torch.no_grad():
            d = float(displacement(model.predict_vertices(nets, batch), gt, (64, 64)).mean())
            return d, float(model.losses(stage, nets, batch)["l1"])

    disp0, loss0 = evaluate()
    opt = stage.make_optimizer([p for p in nets["hat"].parameters()])
    with kit.one_thread():
        for _ in range(steps):
            terms = model.losses(stage, nets, batch)
            opt.zero_grad()
            sum(stage.losses[k] * v for k, v in terms.items()).backward()
            opt.step()
    disp1, loss1 = evaluate()
    assert loss1 < 0.9 * loss0 and disp1 < disp0, (loss0, loss1, disp0, disp1)


def test_smoke_cli_fills_the_hat_cells(env, kit):
    recs = kit.read_records(env["results"], by="variant")
    assert set(recs) == {"CP-VTON+", "PF-AFN"}
    for variant, cell in (("CP-VTON+", "cp-vton+/hat"), ("PF-AFN", "pf-afn/hat")):
        r = recs[variant]
        assert r["cells"] == [{"table": "accessory_table1_strat", "cell": cell}]
        assert r["comparable"] is False and set(r["metrics"]) == {"lssim", "iou", "disp"}
        assert all(m["value"] is not None for m in r["metrics"].values())
        assert [s["stage"] for s in r["train_stats"]] == ["hat"]
        assert len(list((Path(r["outputs"]) / "vertices").glob("*.npy"))) == r["data"]["n_eval"]


@pytest.mark.parametrize("variant", ["CP-VTON+", "PF-AFN"])
def test_a_warp_that_is_the_true_homography_gives_the_true_vertices(env, kit, variant):
    """A stand-in warper whose TPS grid / flow is exactly the ground-truth homography: the fitted vertices are
    the annotated ones (checks the grid and flow conventions of the correspondences)."""
    from bench.models.stratwarp import pixel_grid

    model, _ = kit.built_model("stratwarp", variant, "strat")
    batch = kit.full_batch(model, "strat", "test", "hat")
    n, h, w = batch["background"].shape[0], 64, 64
    hom = model.verts.homographies(batch, (h, w))
    src = G.apply_homography(torch.linalg.inv(hom), pixel_grid(h, w).reshape(1, -1, 2).double().expand(n, -1, 2))
    src = src.reshape(n, h, w, 2).float()
    if variant == "CP-VTON+":
        out = (src / torch.tensor([w - 1.0, h - 1.0]) * 2 - 1, None)
    else:
        out = [(src - pixel_grid(h, w)).permute(0, 3, 1, 2)]
    fake = {"hat": lambda *a: out}
    pred = model.predict_vertices(fake, batch)
    assert torch.allclose(pred, model.verts.vertices(batch, (h, w))[1], atol=0.05)
