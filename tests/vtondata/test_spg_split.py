"""The ``spg-deepfashion`` split (SPG-VTON Table II, DeepFashion column): DeepFashion test pairs with MPV test
clothes, seeded and deterministic; the loader returns the MPV garment and mask for a DeepFashion tuple; the
CLI writes it."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from vtondata import splits_spg as S


def test_assign_is_seeded_order_free_and_uses_every_garment_before_reuse():
    pairs = [f"test/p/{i:02d}" for i in range(7)]
    garments = [f"test/garment/{c}" for c in "abc"]
    a = S.assign(pairs, garments, seed=0)
    assert a.equals(S.assign(pairs[::-1], garments[::-1], seed=0))  # input order does not matter
    assert a["tuple_id"].tolist() == pairs and a["rank"].tolist() == list(range(1, 8))
    firsts = a["garment"].tolist()
    assert sorted(firsts[:3]) == garments and firsts[3:6] == firsts[:3]  # a permutation, cycled
    seeds = {tuple(S.assign(pairs, garments, seed=s)["garment"]) for s in range(6)}
    assert len(seeds) > 1  # the seed changes the assignment
    sub = S.assign(pairs, garments, seed=1, n_max=4)
    assert len(sub) == 4 and set(sub["tuple_id"]) < set(pairs) and sub["tuple_id"].is_monotonic_increasing
    assert sub.equals(S.assign(pairs, garments, seed=1, n_max=4))
    assert S.PAPER_PAIRS == 10_000


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    base = tmp_path_factory.mktemp("spg_split")
    out = {}
    for ds, n, kw in (("deepfashion", 12, {"layout": "3dgcl"}), ("mpv", 24, {})):
        data = make_fixture(ds, base / f"data_{ds}", n=n, size="64x48", seed=1, **kw)
        out[ds] = prepare(ds, data, out=base / "home" / ds, quiet=True).manifest_dir
    out["home"] = base / "home"
    return out


def test_make_writes_the_documented_split_and_the_loader_returns_mpv_garments(prepared):
    from vtondata.errors import VtonDataError
    from vtondata.loader import load
    from vtondata.manifest import open_manifest

    df_dir, mpv_dir = prepared["deepfashion"], prepared["mpv"]
    res = S.make(None, df_dir, garment_manifest=mpv_dir, seed=0)
    first = pd.read_parquet(res.path)
    df, mpv = open_manifest(manifest_dir=df_dir), open_manifest(manifest_dir=mpv_dir)
    t = df.tuples
    assert sorted(first["tuple_id"]) == sorted(t[t.split == "test"]["tuple_id"])  # every test pair (< 10,000)
    assert set(first["garment"]) == set(S.test_garments(mpv)) and res.n_garments == 3
    assert (first["garment_dataset"] == "mpv").all() and (first["garment_fingerprint"] == mpv.fingerprint).all()
    assert res.report["seed"] == 0 and res.report["n_selected"] == len(first) == res.n_test_pairs
    assert pd.read_parquet(S.make(None, df_dir, garment_manifest=mpv_dir, seed=0).path).equals(first)
    other = pd.read_parquet(S.make(None, df_dir, garment_manifest=mpv_dir, seed=5).path)
    assert other["seed"].iloc[0] == 5
    S.make(None, df_dir, garment_manifest=mpv_dir, seed=0)

    fields = ("person", "garment", "garment_mask", "target_person")
    ds = load(None, "spg-deepfashion", "pose-transfer", fields=fields, manifest=df_dir, caches=False)
    assert len(ds) == len(first)
    ref = load(None, "test", "multi-pose", fields=("garment", "garment_mask"), manifest=mpv_dir, caches=False)
    by_garment = {ref[i]["garment_id"]: ref[i] for i in range(len(ref))}
    want = dict(zip(first["tuple_id"], first["garment"]))
    for i in range(len(ds)):
        item = ds[i]
        gid = want[item["tuple_id"]]
        assert item["garment_id"] == f"mpv:{gid}"
        assert torch.equal(item["garment"], by_garment[gid]["garment"])
        assert torch.equal(item["garment_mask"], by_garment[gid]["garment_mask"])
        assert 0 < item["garment_mask"].mean() < 1 and item["person"].shape == item["garment"].shape
    # the plain test split is untouched: no garments there
    with pytest.raises(VtonDataError, match="unavailable"):
        load(None, "test", "pose-transfer", fields=fields, manifest=df_dir, caches=False)
    # a split made against another MPV manifest is refused, with the remake command as the fix
    stale = first.assign(garment_fingerprint="0" * 32)
    stale.to_parquet(res.path, index=False)
    with pytest.raises(VtonDataError, match="changed since the split was made"):
        load(None, "spg-deepfashion", "pose-transfer", fields=fields, manifest=df_dir, caches=False)
    first.to_parquet(res.path, index=False)
    assert S.ensure(None, "spg-deepfashion", df_dir) is None and S.ensure(None, "test", df_dir) is None


def test_cli_splits_make_spg_deepfashion(prepared, monkeypatch):
    from cli import app

    monkeypatch.setenv("VTONDATA_HOME", str(prepared["home"]))
    res = CliRunner().invoke(app, ["splits", "make", "spg-deepfashion", "--dataset", "deepfashion",
                                   "--garments", "mpv", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "spg-deepfashion: 6 of 6 test pairs, 3 mpv test garments (seed 3)" in res.output
    got = pd.read_parquet(prepared["home"] / "deepfashion" / "splits" / "spg-deepfashion.parquet")
    assert (got["seed"] == 3).all()
    assert got.equals(pd.read_parquet(S.make("deepfashion", seed=3).path))
