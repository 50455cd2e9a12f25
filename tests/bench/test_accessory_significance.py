"""The significance test of the accessory paper (Supp. 3) through the CLI: ``vtondata bench --model M --seeds
--compare M2`` runs every seed of both methods (the two sanity baselines, no training), reports mean ± std and
Welch's p-value (scipy), stores the result, skips seeds already recorded, and ``vtondata leaderboard show`` prints
it in the significance table next to the reported numbers; the ``bench significance`` subcommand is the same code."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

TABLE = "accessory_supp_significance_strat_hat"
ARGS = ["--dataset", "strat", "--setting", "hat", "--profile", "smoke", "--device", "cpu"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kit):
    d = kit.prepared(tmp_path_factory, "acc_sig", "strat", n=16, size="64x64", seed=7)
    with kit.one_thread(), kit.bench_env(d.home, d.results):
        first = kit.cli_ok(["bench", "--model", "accessory", "--variant", "mean-vertices", "--seeds", "1-2",
                            "--compare", "accessory:gt-homography", *ARGS]).output
        again = kit.cli_ok(["bench", "significance", "--model", "accessory", "--variant", "mean-vertices",
                            "--compare", "accessory:gt-homography", "--seeds", "1,2", *ARGS]).output
    return {"home": d.home, "results": d.results, "first": first, "again": again}


def test_seeds_of_both_methods_run_and_welch_is_stored(env, kit):
    from scipy import stats

    recs = kit.read_records(env["results"])
    assert sorted((r["variant"], r["seed"]) for r in recs) == [("gt-homography", 1), ("gt-homography", 2),
                                                               ("mean-vertices", 1), ("mean-vertices", 2)]
    files = list((env["results"] / "significance").glob("accessory-mean-vertices__*.json"))
    assert len(files) == 1
    res = json.loads(files[0].read_text())
    assert res["seeds"] == [1, 2] and res["test"] == "welch" and set(res["metrics"]) == {"lssim", "iou", "disp"}
    assert res["comparable"] is False and "smoke" in res["flags"]
    for m, r in res["metrics"].items():
        a = [x["metrics"][m]["value"] for x in recs if x["variant"] == "mean-vertices"]
        b = [x["metrics"][m]["value"] for x in recs if x["variant"] == "gt-homography"]
        assert r["a"]["values"] == pytest.approx(a) and r["b"]["values"] == pytest.approx(b)
        assert r["a"]["n"] == r["b"]["n"] == 2 and r["b"]["mean"] == pytest.approx(sum(b) / 2)
        with pytest.warns(RuntimeWarning):  # deterministic baselines: constant samples
            ref = stats.ttest_ind(a, b, equal_var=False)
        assert r["p_two_sided"] == pytest.approx(float(ref.pvalue), nan_ok=True)
    iou = res["metrics"]["iou"]
    assert iou["b"]["mean"] == 1.0 and iou["a"]["mean"] < 1.0 and iou["p_two_sided"] == 0.0
    assert "Welch's t-test" in env["first"] and "| iou |" in env["first"]


def test_the_subcommand_reuses_recorded_seeds(env):
    assert env["again"].count("already recorded") == 4 and "| disp |" in env["again"]


def test_leaderboard_shows_mean_std_and_p_next_to_reported(env, kit, monkeypatch):
    from bench.harness import registry as reg

    real = reg.get_table

    def patched(tid):  # the table's "Ours" cell pointed at the smoke run's method and partner
        t = real(tid)
        if tid == TABLE:
            t["cells"][0]["variant"] = "mean-vertices"
            t["significance"]["compare"] = "accessory:gt-homography"
        return t

    monkeypatch.setattr(reg, "get_table", patched)
    import io

    import pandas as pd

    out = kit.cli_ok(["leaderboard", "show", "--table", TABLE, "--format", "csv"]).output
    df = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
    ours = df[df["method"] == "Ours (keypoint hallucination)"].set_index("metric")
    res = json.loads(next((env["results"] / "significance").glob("accessory-mean-vertices__*.json")).read_text())
    assert list(ours.index) == ["LSSIM (%)", "IoU (%)", "Disp (%)"]
    for name, m in (("LSSIM (%)", "lssim"), ("IoU (%)", "iou"), ("Disp (%)", "disp")):
        r = ours.loc[name]
        assert r["ours"] == f"{res['metrics'][m]['a']['mean'] * 100:.2f} ± 0.00" and r["p"] == "0"
        assert r["delta"] == "n/c" and "vs accessory:gt-homography" in r["flags"] and "n=2" in r["flags"]
        assert "smoke" in r["flags"] and " ± " in r["reported"]
    assert ours.loc["IoU (%)", "reported"] == "82.05 ± 0.34"
    corr = df[df["method"] == "CorrelNet"]
    assert len(corr) == 3 and corr["flags"].str.contains("no public code").all() and (corr["ours"] == "").all()


def test_table_view_prefers_the_named_partner_and_scales(monkeypatch):
    import pandas as pd

    from bench.leaderboard import load_reported
    from bench.harness import registry as reg
    from bench.significance import table_view

    table = reg.get_table(TABLE)

    def result(partner, mean, p):
        s = {"mean": mean, "std": 0.004, "n": 10, "values": []}
        return {"a": {"model": "accessory", "variant": "Ours"}, "b": {"model": "accessory", "variant": partner},
                "dataset": "strat", "split": "test", "setting": "hat", "profile": "full", "comparable": True,
                "flags": [], "metrics": {"iou": {"a": s, "b": s, "p_two_sided": p}}}

    written = [result("Ours(w/o sm)", 0.8205, 1e-4), result("row1", 0.5, 0.5)]  # newest is against another partner
    df = table_view(table, load_reported(TABLE), written)
    row = df[(df["method"] == "Ours (keypoint hallucination)") & (df["metric"] == "IoU (%)")].iloc[0]
    assert row["ours"] == "82.05 ± 0.40" and row["p"] == "0.0001" and row["delta"] == "+0.00"
    assert "vs accessory:Ours(w/o sm)" in row["flags"]
    lssim = df[(df["method"] == "Ours (keypoint hallucination)") & (df["metric"] == "LSSIM (%)")].iloc[0]
    assert lssim["ours"] == "" and lssim["flags"].startswith("not run")
    assert isinstance(df, pd.DataFrame) and list(df.columns).index("p") == 7


def test_bench_table_runs_the_tables_pair_over_its_seeds(monkeypatch, kit):
    import bench.significance as sig

    calls = []
    monkeypatch.setattr(sig, "run", lambda *a, **k: calls.append(a) or [])
    kit.cli_ok(["bench", "--table", TABLE, "--profile", "smoke", "--device", "cpu"])
    assert [c[:10] for c in calls] == [("accessory", "Ours", "accessory:Ours(w/o sm)", "strat", "hat",
                                         list(range(1, 11)), "test", "smoke", "cpu", [])]


def test_seeds_without_compare_report_mean_and_std_only(env, kit):
    with kit.one_thread():
        out = kit.cli_ok(["bench", "--model", "accessory", "--variant", "gt-homography", "--seeds", "1-2",
                          "--dataset", "strat", "--setting", "glasses", "--profile", "smoke", "--device", "cpu"]).output
    assert "Mean ± std over seeds" in out and "| iou | 1.0000 ± 0.0000 (n=2) |" in out
    res = json.loads((env["results"] / "significance" /
                      "accessory-gt-homography__vs__none__strat__test__glasses__smoke.json").read_text())
    assert res["b"] is None and res["test"] is None and res["metrics"]["disp"]["a"]["values"] == [0.0, 0.0]
