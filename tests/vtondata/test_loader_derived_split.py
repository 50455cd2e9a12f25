"""A derived split (``<out>/splits/<name>.parquet``, e.g. train-clean) selects its listed tuples."""

import pandas as pd

from vtondata.loader import load
from vtondata.prepare import prepare


def test_derived_split_selects_listed_tuples(vitonhd_root, tmp_path):
    res = prepare("viton-hd", vitonhd_root, out=tmp_path / "out", quiet=True)
    from vtondata.manifest import open_manifest

    t = open_manifest(manifest_dir=res.manifest_dir).tuples
    train = t[(t.split == "train") & (t.setting == "paired")].tuple_id.tolist()
    keep = train[:4]
    (tmp_path / "out" / "splits").mkdir()
    pd.DataFrame({"tuple_id": keep}).to_parquet(tmp_path / "out" / "splits" / "train-clean.parquet")
    ds = load(None, "train-clean", "paired", fields=("person",), manifest=res.manifest_dir, caches=False)
    assert len(ds) == 4 and sorted(ds[i]["tuple_id"] for i in range(4)) == sorted(keep)
    assert len(load(None, "train", "paired", fields=("person",), manifest=res.manifest_dir, caches=False)) == len(train)
