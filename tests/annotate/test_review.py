"""``annotate.review`` and ``annotate.noise_fixtures``: noise signals, ranking of injected noise, decisions,
derived splits and generated-results review."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image



def _hashes(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def noisy(tmp_path_factory):
    """60 MPV triplets with 2 injected items per kind (20 noisy triplets) and photometric nuisance on all."""
    from annotate.noise_fixtures import inject
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    base = tmp_path_factory.mktemp("noise")
    clean = make_fixture("mpv", base / "clean", n=60, size="256x192", seed=11)
    before = _hashes(clean)
    rec = inject(clean, base / "noisy", per_kind=2, seed=3, nuisance=1.0)
    mdir = prepare("mpv", base / "noisy", out=base / "out", quiet=True).manifest_dir
    return {"clean": clean, "before": before, "root": base / "noisy", "truth": rec, "manifest": mdir}


@pytest.fixture(scope="session")
def scored(noisy):
    from annotate import review

    return review.score(manifest_dir=noisy["manifest"], push=False, quiet=True)


# ----------------------------------------------------------------------------- signals on arrays


def test_region_distance_colour_and_texture():
    from annotate import review

    rng = np.random.default_rng(0)
    mask = np.zeros((64, 48), bool)
    mask[10:50, 8:40] = True
    red = np.zeros((64, 48, 3), np.uint8)
    red[...] = (200, 40, 40)
    stripes = red.copy()
    stripes[:, ::4] = (40, 40, 200)
    noise = np.clip(red + rng.normal(0, 2, red.shape), 0, 255).astype(np.uint8)
    d = review.region_descriptor
    assert review.region_distance(d(red, mask), d(red, mask)) == pytest.approx(0.0, abs=1e-9)
    near = review.region_distance(d(red, mask), d(noise, mask))
    far = review.region_distance(d(red, mask), d(stripes, mask))
    assert near < 0.1 and far > 0.3  # sensor noise is not a different garment, blue stripes are
    assert np.isnan(review.region_distance(d(red, mask), None))
    assert d(red, np.zeros_like(mask)) is None


def test_person_stats_background_accessories_identity():
    from annotate import review
    from annotate.noise_fixtures import add_accessories, busy_background, other_identity, photometric_jitter
    from vtondata.fixtures.synth import draw_sample

    rng = np.random.default_rng(5)
    d = draw_sample(rng, 256, 192)
    base = review.person_stats(d.person, d.parse)
    assert base.background < 0.01 and max(base.areas.values()) < 1e-3
    img, parse = d.person.copy(), d.parse.copy()
    busy_background(img, parse, np.random.default_rng(1))
    assert review.person_stats(img, parse).background > 0.2
    img, parse = d.person.copy(), d.parse.copy()
    got = add_accessories(img, parse, np.random.default_rng(2), n=2)
    st = review.person_stats(img, parse)
    raw = review.raw_signals(base, st, None)
    assert raw["accessory"] > 1.0, got
    # a global lighting change is not another identity, another skin tone is
    lit = review.person_stats(photometric_jitter(d.person, np.random.default_rng(3)), d.parse)
    assert review.raw_signals(base, lit, None)["identity"] < 20
    img = d.person.copy()
    other_identity(img, d.parse, np.random.default_rng(4))
    assert review.raw_signals(base, review.person_stats(img, d.parse), None)["identity"] > 80


def test_combine_noisy_or_and_kind():
    from annotate import review

    sig = review.signal_config()["signals"]
    raw = {k: sig[k]["lo"] for k in review.KINDS}
    out = review.combine(raw)
    assert out["noise_score"] == 0.0 and out["noise_kind"] == ""
    raw["background"] = sig["background"]["hi"]
    raw["identity"] = (sig["identity"]["lo"] + sig["identity"]["hi"]) / 2
    out = review.combine(raw)
    wb, wi = sig["background"]["weight"], sig["identity"]["weight"] * 0.5
    assert out["noise_score"] == pytest.approx(1 - (1 - wb) * (1 - wi))
    assert out["noise_kind"] == "background" and out["noise_background"] == 1.0
    raw["pose_clothes"] = float("nan")
    assert np.isnan(review.combine(raw)["noise_pose_clothes"])


# ----------------------------------------------------------------------------- injected noise and the ranking


def test_inject_copies_and_records_truth(noisy):
    rec, root = noisy["truth"], noisy["root"]
    assert _hashes(noisy["clean"]) == noisy["before"]  # the source fixture is untouched
    assert len(rec["triplets"]) == 20 and set(rec["triplets"].values()) == set(rec["kinds"])
    for kind, n in pd.Series(rec["triplets"]).value_counts().items():
        assert n == 4, kind  # each changed item is used by its two triplets (A->B and B->A)
    truth = json.loads((root / ".vtondata-fixture" / "noise.json").read_text())
    assert truth["triplets"] == rec["triplets"]
    acc = [p for p in rec["changed"]["accessory"] if p.endswith(".png") and "parse_cihp" in p and "_vis" not in p]
    classes = set()
    for p in acc:
        classes |= set(np.unique(np.asarray(Image.open(root / p))))
    assert classes & {1, 3, 4, 11}  # hat / glove / sunglasses / scarf labelled in the parse


def test_ranking_finds_injected_noise(noisy, scored):
    """Precision at k (k = number of injected noisy triplets) and recall, overall and per kind."""
    from annotate import review

    ev = review.evaluate(scored.scores, noisy["truth"]["triplets"])
    assert ev["n"] == 60 and ev["n_noisy"] == 20 and ev["k"] == 20
    assert ev["precision_at_k"] >= 0.9 and ev["recall_at_k"] >= 0.9 and ev["average_precision"] >= 0.9
    for kind, v in ev["kinds"].items():
        assert v["signal_recall_at_k"] >= 0.75, (kind, v)  # each kind is found by its own signal
        assert v["kind_accuracy"] >= 0.5, (kind, v)
    saved = pd.read_parquet(scored.path)
    assert list(saved["tuple_id"]) == list(scored.scores["tuple_id"])
    assert saved["noise_score"].is_monotonic_decreasing
    assert set(review.signal_fields().values()) <= set(saved.columns)


def test_weak_noise_is_ranked_lower(tmp_path):
    """Severity 0.1 (slight colour shifts) is harder to find than severity 1: the measured precision drops."""
    from annotate import review
    from annotate.noise_fixtures import inject
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    clean = make_fixture("mpv", tmp_path / "c", n=40, size="256x192", seed=21)
    rec = inject(clean, tmp_path / "n", per_kind=1, seed=2, nuisance=1.0, severity=0.1,
                 kinds=["identity", "pose_clothes", "accessory"])
    mdir = prepare("mpv", tmp_path / "n", out=tmp_path / "o", quiet=True).manifest_dir
    s = review.score(manifest_dir=mdir, push=False, quiet=True, workers=1)
    ev = review.evaluate(s.scores, rec["triplets"])
    assert ev["kinds"]["identity"]["signal_recall_at_k"] < 1.0  # a 10 % skin shift hides in the nuisance
    assert ev["kinds"]["accessory"]["recall_at_k"] == 1.0  # one accessory is still found


def test_evaluate_counts():
    from annotate import review

    scores = pd.DataFrame({"tuple_id": list("abcdef"), "noise_score": [0.9, 0.8, 0.7, 0.2, 0.1, 0.0],
                           "noise_kind": ["background", "identity", "", "", "", ""],
                           **{f: [0.0] * 6 for f in review.signal_fields().values()}})
    scores.loc[0, "noise_background"] = 1.0
    ev = review.evaluate(scores, {"a": "background", "c": "identity", "f": "identity"})
    assert ev["k"] == 3 and ev["precision_at_k"] == pytest.approx(2 / 3) and ev["recall_at_k"] == pytest.approx(2 / 3)
    assert ev["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    assert ev["kinds"]["background"] == {"n": 1, "recall_at_k": 1.0, "signal_recall_at_k": 1.0, "kind_accuracy": 1.0}
    assert ev["kinds"]["identity"]["recall_at_k"] == 0.5 and ev["kinds"]["identity"]["kind_accuracy"] == 0.0


def test_cli_inject_score_evaluate(tmp_path, noisy):
    from typer.testing import CliRunner

    import cli
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    src = make_fixture("mpv", tmp_path / "src", n=12, size="128x96", seed=1)
    r = CliRunner().invoke(cli.app, ["review", "inject", str(src), str(tmp_path / "dst"), "--per-kind", "1"])
    assert r.exit_code == 0 and "10 of 12 triplets noisy" in r.output, r.output
    mdir = prepare("mpv", tmp_path / "dst", out=tmp_path / "o", quiet=True).manifest_dir
    r = CliRunner().invoke(cli.app, ["review", "score", "mpv", "--manifest", str(mdir), "--no-push", "--workers", "1"])
    assert r.exit_code == 0 and "scored 12 tuples" in r.output, r.output
    r = CliRunner().invoke(cli.app, ["review", "evaluate", "mpv", "--manifest", str(mdir)])
    assert r.exit_code == 0 and "precision@10" in r.output and "identity" in r.output, r.output
    r = CliRunner().invoke(cli.app, ["review", "score", "mpv", "--manifest", str(mdir), "--no-push", "--split", "test"])
    assert r.exit_code == 0 and "scored 2 tuples" in r.output, r.output  # one test item, two triplets
    assert len(pd.read_parquet(Path(mdir).parent / "review" / "noise_scores.parquet")) == 12  # other splits kept
    r = CliRunner().invoke(cli.app, ["review", "inject", str(src), str(tmp_path / "dst")])
    assert r.exit_code == 2 and "destination exists" in r.output


# ----------------------------------------------------------------------------- decisions, FiftyOne round trip


def test_decisions_export_merge_import_roundtrip(fo, noisy, scored, tmp_path):
    """App tags -> export (CSV, then Parquet) -> delete the FiftyOne dataset -> rebuild -> import: all restored."""
    from annotate import browse, review
    from vtondata.manifest import open_manifest

    name = f"vtondata-test-{uuid.uuid4().hex[:8]}"
    mdir = noisy["manifest"]
    pushed_name, pushed = review.push_scores(open_manifest(manifest_dir=mdir), scored.scores, name=name)
    assert pushed_name == name and pushed == 3 * 60
    ds = fo.load_dataset(name)
    cand = ds.load_saved_view("noise candidates")
    top = cand.values("tuple_id")
    assert cand.values("noise_score") == sorted(cand.values("noise_score"), reverse=True)
    # reviewer actions in the App: tags on one slice of a group
    cand.limit(3).tag_samples(["noisy", "noise:background"])
    F = fo.ViewField
    ds.select_group_slices("pose_b").match(F("tuple_id") == top[-1]).tag_samples("clean")
    out = tmp_path / "decisions.csv"
    e1 = review.export(manifest_dir=mdir, out=out, name=name, reviewer="ana")
    assert (e1.total, e1.new_or_changed, e1.from_app) == (4, 4, 4)
    d1 = review.read_decisions(out)
    assert set(d1.loc[d1["decision"] == "noisy", "tuple_id"]) == set(top[:3])
    assert set(d1["kind"]) == {"background", ""} and set(d1["reviewer"]) == {"ana"}
    # an earlier decision that is not in the App any more is kept; unchanged ones keep reviewer and time
    extra = {"dataset": "mpv", "tuple_id": "train/multi-pose/elsewhere", "decision": "noisy", "kind": "identity",
             "reviewer": "zoe", "time": "2020-01-01T00:00:00Z", "source": "manual"}
    review.write_decisions(out, pd.concat([d1, pd.DataFrame([extra])], ignore_index=True))
    ds.select_group_slices("pose_a").match(F("tuple_id") == top[0]).untag_samples(["noise:background"])
    ds.select_group_slices("pose_a").match(F("tuple_id") == top[0]).tag_samples(["noise:identity"])
    e2 = review.export(manifest_dir=mdir, out=out, name=name, reviewer="bob")
    d2 = review.read_decisions(out).set_index("tuple_id")
    assert e2.total == 5 and e2.new_or_changed == 1
    assert d2.at[top[0], "kind"] == "identity" and d2.at[top[0], "reviewer"] == "bob"
    assert d2.at[top[1], "reviewer"] == "ana" and d2.at[top[1], "time"] == d1.set_index("tuple_id").at[top[1], "time"]
    assert d2.at["train/multi-pose/elsewhere", "reviewer"] == "zoe"
    pq_out = tmp_path / "decisions.parquet"
    review.write_decisions(pq_out, review.read_decisions(out))
    # the FiftyOne database is a view: delete it, rebuild, import
    browse.delete(name)
    assert not fo.dataset_exists(name)
    browse.build(manifest_dir=mdir, name=name, quiet=True)
    ds = fo.load_dataset(name)
    assert "noise_score" in ds.get_field_schema()  # scores come back from noise_scores.parquet
    imp = review.import_(manifest_dir=mdir, path=pq_out, name=name)
    assert imp.applied == 4 and imp.unknown == ["train/multi-pose/elsewhere"]
    back = review.app_decisions(ds).set_index("tuple_id")
    want = review.read_decisions(pq_out).set_index("tuple_id").drop("train/multi-pose/elsewhere")
    assert back["decision"].to_dict() == want["decision"].to_dict()
    assert back["kind"].to_dict() == want["kind"].to_dict()
    assert back["reviewer"].to_dict() == want["reviewer"].to_dict()
    for s in browse._all_slices(ds).match(F("tuple_id") == top[0]).iter_samples():
        assert {"noisy", "noise:identity"} <= set(s.tags) and s.review_decision == "noisy"
    # exporting the restored dataset changes nothing
    assert review.export(manifest_dir=mdir, out=out, name=name, reviewer="carl").new_or_changed == 0
    fo.delete_dataset(name)


def test_decisions_file_validation_and_atomic_write(tmp_path, monkeypatch):
    from annotate import review
    import vtondata.manifest as vm

    bad = tmp_path / "d.csv"
    bad.write_text("tuple_id,decision\na,clean\nb,maybe\n")
    with pytest.raises(review.ReviewError) as e:
        review.read_decisions(bad)
    assert e.value.line == 3 and "maybe" in str(e.value) and str(bad) in str(e.value)
    bad.write_text("tuple_id,decision,kind\na,noisy,hat\n")
    with pytest.raises(review.ReviewError, match="unknown noise kind"):
        review.read_decisions(bad)
    good = tmp_path / "g.csv"
    df = pd.DataFrame([{"dataset": "mpv", "tuple_id": "a", "decision": "clean", "kind": "", "reviewer": "r",
                        "time": "t", "source": "s"}])
    review.write_decisions(good, df)
    before = good.read_bytes()

    def crash(*a, **k):  # the process dies between writing the temporary file and the rename
        raise OSError("killed")

    monkeypatch.setattr(vm.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        review.write_decisions(good, pd.concat([df, df.assign(tuple_id="b")]))
    monkeypatch.undo()
    assert good.read_bytes() == before and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(review.ReviewError, match="csv or .parquet"):
        review.write_decisions(tmp_path / "d.txt", df)


def test_splits_from_decisions(noisy, scored, tmp_path):
    from annotate import review
    from vtondata.manifest import open_manifest

    m = open_manifest(manifest_dir=noisy["manifest"])
    train = set(m.tuples.loc[m.tuples["split"] == "train", "tuple_id"])
    ids = sorted(train)
    dec = pd.DataFrame([{"dataset": "mpv", "tuple_id": ids[0], "decision": "noisy", "kind": "accessory", "reviewer": "a",
                         "time": "t", "source": "s"},
                        {"dataset": "mpv", "tuple_id": ids[1], "decision": "clean", "kind": "", "reviewer": "a",
                         "time": "t", "source": "s"}])
    dfile = tmp_path / "dec.csv"
    review.write_decisions(dfile, dec)
    r = review.splits(manifest_dir=noisy["manifest"], decisions=dfile)
    clean = pd.read_parquet(r.paths["train-clean"])
    noisy_ = pd.read_parquet(r.paths["train-noisy"])
    assert list(noisy_["tuple_id"]) == [ids[0]] and set(clean["tuple_id"]) == train - {ids[0]}
    assert set(clean["split"]) == {"train-clean"}
    # with a threshold, unreviewed high scores go to train-noisy; a reviewer's 'clean' always wins
    r = review.splits(manifest_dir=noisy["manifest"], decisions=dfile, threshold=0.5)
    clean = pd.read_parquet(r.paths["train-clean"])
    noisy_ = pd.read_parquet(r.paths["train-noisy"])
    s = scored.scores.set_index("tuple_id")["noise_score"]
    high = {t for t in train if s[t] >= 0.5} - {ids[1]}
    assert set(noisy_["tuple_id"]) == high | {ids[0]}
    assert set(clean["tuple_id"]) | set(noisy_["tuple_id"]) == train and not set(clean["tuple_id"]) & set(noisy_["tuple_id"])
    assert set(noisy_.loc[noisy_["tuple_id"] != ids[0], "basis"]) <= {"score"}
    truth = {t for t in noisy["truth"]["triplets"] if t in train}
    assert truth <= set(noisy_["tuple_id"])  # every injected training triplet is removed from train-clean
    meta = json.loads((m.out / "splits" / "train-clean.json").read_text())
    assert meta["tuples"] == len(clean) and "0.5" in meta["rule"]


def test_results_review_groups_outputs_with_inputs_and_truth(fo, noisy, tmp_path):
    from annotate import review
    from vtondata.manifest import open_manifest

    m = open_manifest(manifest_dir=noisy["manifest"])
    t = m.tuples[m.tuples["split"] == "test"]
    img = m.assets[m.assets["role"] == "person"].set_index("sample_id")["path"]
    run = tmp_path / "run" / "images"
    run.mkdir(parents=True)
    expect = {}
    for i, r in enumerate(t.itertuples(index=False)):
        gt = np.asarray(Image.open(m.root / img[r.target_person]).convert("RGB"), np.int16)
        out = np.clip(gt + 10 * (i + 1), 0, 255).astype(np.uint8)
        Image.fromarray(out).save(run / (r.tuple_id.replace("/", "__") + ".png"))
        expect[r.tuple_id] = np.abs(out.astype(np.float32) - gt).mean() / 255
    (run / "unrelated.png").write_bytes((run / (t.iloc[0]["tuple_id"].replace("/", "__") + ".png")).read_bytes())
    name = f"vtondata-test-res-{uuid.uuid4().hex[:6]}"
    res = review.results(None, run.parent, manifest_dir=noisy["manifest"], name=name)
    assert res.groups == len(t) and res.matched == len(t) and res.unmatched == 1
    ds = fo.load_dataset(name)
    assert set(ds.group_slices) == {"pose_a", "pose_b", "cloth", "output", "ground_truth"}
    outs = ds.select_group_slices("output")
    got = dict(zip(outs.values("tuple_id"), outs.values("l1_to_gt")))
    assert got.keys() == expect.keys() and all(got[k] == pytest.approx(v, abs=1e-6) for k, v in expect.items())
    worst = ds.load_saved_view("worst first").select_group_slices("output").values("tuple_id")
    assert worst[0] == max(expect, key=expect.get)
    fo.delete_dataset(name)
    with pytest.raises(review.ReviewError, match="no generated image"):
        review.results(None, tmp_path / "run", manifest_dir=noisy["manifest"], name=name, split="train")
