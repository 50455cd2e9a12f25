"""ST-GAN end to end on generated STRAT: both Table 1 variants train, infer, score LSSIM / IoU / Disp and record
into their Table 1 cells for all three sub-datasets through the CLI; the (+s) composite supervision and the
adversarial training lower the composite MSE and Disp on the training tuples versus initialisation (which is
the mean-vertex baseline: the untrained predictors propose near-zero updates)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow

SUBSETS = ("glasses", "hat", "tie")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "stgan_smoke", "strat", n=16, size="64x64", seed=7)
    base = ["bench", "--model", "stgan", "--dataset", "strat", "--split", "test", "--profile", "smoke",
            "--device", "cpu"]
    with kit.one_thread(), kit.bench_env(d.home, d.results):
        kit.cli_ok(base + ["--variant", "ST-GAN(+s)"] + [f"--set=stages.{s}.steps=2" for s in SUBSETS])
        kit.cli_ok(base + ["--variant", "ST-GAN", "--setting", "hat", "--set", "stages.hat.steps=2",
                           "--set", "stages.glasses.enabled=false", "--set", "stages.tie.enabled=false"])
    return {"home": d.home, "results": d.results}


def test_both_variants_fill_their_table1_cells(env, kit):
    plus = kit.read_records(env["results"], by="setting", variant="ST-GAN(+s)")
    assert set(plus) == set(SUBSETS)
    for s, r in plus.items():
        assert [c["cell"] for c in r["cells"]] == [f"st-gan-s/{s}"] and set(r["metrics"]) == {"lssim", "iou", "disp"}
        assert r["comparable"] is False and all(m["value"] is not None for m in r["metrics"].values())
    assert [t["stage"] for t in plus["hat"]["train_stats"]] == list(SUBSETS)
    plain = kit.read_records(env["results"], variant="ST-GAN")
    assert len(plain) == 1 and plain[0]["cells"] == [{"table": "accessory_table1_strat", "cell": "st-gan/hat"}]
    assert [t["stage"] for t in plain[0]["train_stats"]] == ["hat"]


def test_training_beats_initialisation_on_the_training_tuples(env, kit):
    from bench.harness.registry import get_model, resolve_config
    from bench.metrics.disp import displacement

    cfg = resolve_config("stgan", "ST-GAN(+s)", "strat", "smoke",
                         ["stages.glasses.enabled=false", "stages.tie.enabled=false"])
    model = get_model("stgan")(cfg)
    model._mean["hat"] = model.verts.train_mean_final((64, 64), "train", "hat")
    torch.manual_seed(0)
    nets = model.build()
    stage = model.stages()[0]
    batch = kit.full_batch(model, "strat", "train", "hat", "train")
    gt = model.verts.vertices(batch, (64, 64))[1]

    def evaluate():
        with torch.no_grad():
            return (float(displacement(model.predict_vertices(nets, batch), gt, (64, 64)).mean()),
                    float(model.losses(stage, nets, batch)["mse"]))

    disp0, mse0 = evaluate()
    mean_disp = float(displacement(model._mean["hat"].expand_as(gt), gt, (64, 64)).mean())
    assert disp0 == pytest.approx(mean_disp, rel=0.05)  # untrained: (almost) the mean-vertex baseline
    opt = stage.make_optimizer([p for n in nets.values() for p in n.parameters()])
    with kit.one_thread():
        for _ in range(30):
            terms = model.losses(stage, nets, batch)
            opt.zero_grad()
            sum(stage.losses[k] * v for k, v in terms.items()).backward()
            opt.step()
    disp1, mse1 = evaluate()
    assert mse1 < 0.85 * mse0 and disp1 < disp0, (mse0, mse1, disp0, disp1)
