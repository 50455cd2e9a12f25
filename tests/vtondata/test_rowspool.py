"""Sample and tuple rows spooled to disk under a streamed prepare (vtondata.rowspool): the spool reads back what
was appended, and a prepare through spools writes exactly the samples / tuples the in-memory path keeps."""

from __future__ import annotations

import shutil

import pandas as pd
import pyarrow as pa
import pytest

from vtondata import schema
from vtondata.datasets import get_ingester
from vtondata.findings import Report
from vtondata.fixtures import make_fixture
from vtondata.manifest import open_manifest
from vtondata.prepare import prepare
from vtondata.probefeed import streaming
from vtondata.rowspool import RowSpool
from vtondata.validate import check_dataset, start_feed


def _row(i: int) -> dict:
    return {"sample_id": f"train/person/p{i}", "split": "train", "kind": "person", "name": f"p{i}",
            "item": None if i % 2 else f"it{i}"}


def test_spool_reads_back_rows_in_order_across_batches(tmp_path):
    sp = RowSpool(tmp_path / "s.arrow", schema.SAMPLES, batch=3)
    for i in range(7):
        sp.append(_row(i))
    assert len(sp) == 7 and bool(sp)
    first = list(sp)  # 2 full batches on disk + 1 pending row
    assert [r["sample_id"] for r in first] == [f"train/person/p{i}" for i in range(7)]
    assert set(first[0]) == set(schema.SAMPLES.names) and first[0]["dataset"] is None  # absent keys read as None
    assert first[1]["item"] is None and first[2]["item"] == "it2"
    sp.append(_row(7))  # appending after a read keeps going
    extra = pa.record_batch([pa.array([f"test/person/q{j}" for j in range(2)])] +
                            [pa.nulls(2, f.type) for f in list(schema.SAMPLES)[1:]], schema=schema.SAMPLES)
    sp.append_batch(extra)
    sp.append(_row(8))
    sp.close()
    ids = [r["sample_id"] for r in sp]  # still readable once closed
    assert ids == [f"train/person/p{i}" for i in range(8)] + ["test/person/q0", "test/person/q1", "train/person/p8"]
    assert len(sp) == 11 and sum(b.num_rows for b in sp.batches()) == 11
    with pytest.raises(KeyError):
        bad = RowSpool(tmp_path / "b.arrow", schema.SAMPLES, batch=1)
        bad.append({"sample_id": "x", "colour": "red"})  # not a manifest column


def test_empty_spool(tmp_path):
    sp = RowSpool(tmp_path / "e.arrow", schema.TUPLES)
    assert len(sp) == 0 and not sp and list(sp) == [] and list(sp.batches()) == []


def _plain_rows(dataset: str, root, tmp_path):
    """Samples and tuples the doctor keeps from a plain (in-memory) scan, as DataFrames sorted by id."""
    ing = get_ingester(dataset)
    layout = ing.detect(root)
    report = Report()
    scan = ing.scan(root, layout, report)
    assert isinstance(scan.samples, list)
    v = check_dataset(ing, root, scan, report, spool=tmp_path / "plain.arrow", quiet=True)
    s = schema.to_table(v.samples, schema.SAMPLES).to_pandas()
    t = schema.to_table(v.tuples, schema.TUPLES).to_pandas()
    return s.sort_values("sample_id").reset_index(drop=True), t.sort_values("tuple_id").reset_index(drop=True)


@pytest.mark.parametrize("dataset,layout", [("mpv", "detail_carving"), ("viton", "cpvtonplus"),
                                            ("deepfashion", "fashion"), ("strat", None)])
def test_prepare_through_spools_keeps_what_the_in_memory_path_keeps(dataset, layout, tmp_path):
    root = make_fixture(dataset, tmp_path / "src", n=6, seed=3, layout=layout)
    # break one file so the lenient filter drops a sample and its tuples on both paths
    victim = sorted(p for p in root.rglob("*.jpg") if ".vtondata-fixture" not in p.parts)[0]
    victim.write_bytes(b"not a jpeg")
    ing = get_ingester(dataset)
    with streaming(start_feed(ing, root, tmp_path / "probe.arrow")) as feed:
        scan = ing.scan(root, ing.detect(root), Report())
    feed.close()
    assert isinstance(scan.samples, RowSpool) and isinstance(scan.tuples, RowSpool)
    res = prepare(dataset, root, out=tmp_path / "out", strict=False, quiet=True)
    m = open_manifest(manifest_dir=res.manifest_dir)
    got_s = m.samples.sort_values("sample_id").reset_index(drop=True)
    got_t = m.tuples.sort_values("tuple_id").reset_index(drop=True)
    want_s, want_t = _plain_rows(dataset, root, tmp_path)
    assert res.meta["dropped"]["samples"] >= 1 and len(got_s) >= 1
    pd.testing.assert_frame_equal(got_s[want_s.columns], want_s, check_dtype=False)
    pd.testing.assert_frame_equal(got_t[want_t.columns], want_t, check_dtype=False)
    assert (got_s.dataset == dataset.replace("_", "-")).all()
    counts = res.meta["counts"]
    assert counts["samples"] == len(want_s) and counts["tuples"] == len(want_t)
    assert sum(counts["samples_by"].values()) == len(want_s)
    assert counts["tuples_by"] == {f"{a}/{b}": n for (a, b), n in want_t.groupby(["split", "setting"]).size().items()}
    shutil.rmtree(tmp_path / "out")


@pytest.mark.parametrize("dataset,listfile", [("mpv", "data_pair.txt"), ("viton-hd", "test_pairs.txt")])
def test_a_repeated_list_line_is_kept_once_with_a_warning_naming_both_lines(dataset, listfile, tmp_path):
    """The doctor drops repeated tuples on the spooled tuple ids (no id set during the scan); the repeat's line and
    the first one are named. Same result from a plain in-memory scan."""
    layout = "detail_carving" if dataset == "mpv" else None
    root = make_fixture(dataset, tmp_path / "src", n=6, seed=2, layout=layout)
    before = prepare(dataset, root, out=tmp_path / "o1", quiet=True).meta["counts"]["tuples"]
    lst = root / listfile
    lines = lst.read_text().splitlines()
    lst.write_text("\n".join(lines + [lines[0], lines[0]]) + "\n")
    res = prepare(dataset, root, out=tmp_path / "o2", quiet=True)
    t = open_manifest(manifest_dir=res.manifest_dir).tuples
    assert len(t) == before and t.tuple_id.is_unique
    dups = [f for f in res.report.warns if f.code == "duplicate-line"]
    assert [(f.file, f.line) for f in dups] == [(listfile, len(lines) + 1), (listfile, len(lines) + 2)]
    assert all(f"(first: {listfile}:1)" in f.message for f in dups)
    _, want_t = _plain_rows(dataset, root, tmp_path)
    assert sorted(want_t.tuple_id) == sorted(t.tuple_id)
