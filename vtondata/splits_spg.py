"""The ``spg-deepfashion`` split: SPG-VTON's DeepFashion test set (Table II), a documented, seeded stand-in.

SPG-VTON (seed 003 §IV-A, following MG-VTON) "collect[s] 10,000 pairs (the same person in different poses) from
DeepFashion, and randomly select[s] in-shop clothes from the test set of the MPV dataset"; the list is not public.
We derive it from two prepared datasets:

* **pairs**: the DeepFashion *test* tuples with a target person (same person, two poses; setting
  ``pose-transfer``), sorted by ``tuple_id``. At most ``PAPER_PAIRS`` = 10,000 are kept: all of them when there are
  fewer (the PATN test list has 8,570), else a seeded random subset (``numpy.random.default_rng(seed)``,
  ``choice`` without replacement), listed in ``tuple_id`` order. Test pairs only, so a model trained on MPV (the
  paper) or on DeepFashion train pairs never saw them.
* **clothes**: the MPV *test* garments (``garment`` samples of MPV test tuples that have both a ``garment`` and a
  ``garment_mask`` asset), sorted by sample id. Pair ``i`` (in the listed order) gets garment
  ``perm[i mod G]`` of a seeded permutation ``perm`` (the same generator, after the pair draw): a random
  assignment that uses every garment once before any is reused (ASSUMED: the paper says only "randomly select").

Same seed and same two manifests -> the same file, whatever the row order of the manifests.

File ``<deepfashion out>/splits/spg-deepfashion.parquet`` (the loader's derived-split file) with columns
``tuple_id`` (DeepFashion), ``rank``, ``garment`` (the MPV garment sample id), ``garment_dataset`` ("mpv"),
``garment_manifest`` (the MPV manifest directory when made), ``garment_fingerprint`` (its fingerprint) and
``seed``; :func:`vtondata.loader.load` then returns ``garment`` / ``garment_mask`` of those tuples from the MPV
manifest (:func:`external_garments`). ``spg-deepfashion_report.json``: counts, seed, the MPV fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .errors import VtonDataError
from .manifest import Manifest, atomic_write_json, open_manifest

SPLIT = "spg-deepfashion"
PAPER_PAIRS = 10_000
DATASET, GARMENT_DATASET = "deepfashion", "mpv"
GARMENT_ROLES = ("garment", "garment_mask")


@dataclass
class SplitResult:
    path: Path
    n_selected: int
    n_test_pairs: int
    n_garments: int
    report: dict


def test_pairs(m: Manifest) -> list[str]:
    """Sorted tuple ids of the dataset's test pairs with a target person."""
    t = m.tuples
    ids = sorted(t[(t["split"] == "test") & t["target_person"].notna()]["tuple_id"].unique())
    if not ids:
        raise VtonDataError(f"{m.dataset}: no test pairs with a target person", file=m.dir / "tuples.parquet",
                            fix="prepare DeepFashion with its pose-transfer pair lists")
    return ids


def test_garments(g: Manifest) -> list[str]:
    """Sorted sample ids of the garments of ``g``'s test tuples that have a garment image and a garment mask."""
    t = g.tuples
    used = set(t[(t["split"] == "test") & t["garment"].notna()]["garment"])
    a = g.assets
    roles = a[a["sample_id"].isin(used) & a["role"].isin(GARMENT_ROLES)].groupby("sample_id")["role"].nunique()
    ids = sorted(roles[roles == len(GARMENT_ROLES)].index)
    if not ids:
        raise VtonDataError(f"{g.dataset}: no test garments with both an image and a mask",
                            file=g.dir / "assets.parquet", fix="prepare MPV with its cloth masks")
    return ids


def assign(pairs: list[str], garments: list[str], seed: int, n_max: int = PAPER_PAIRS) -> pd.DataFrame:
    """The seeded selection and garment assignment described in the module docstring."""
    pairs, garments = sorted(pairs), sorted(garments)
    rng = np.random.default_rng(seed)
    if len(pairs) > n_max:
        keep = np.sort(rng.choice(len(pairs), size=n_max, replace=False))
        pairs = [pairs[i] for i in keep]
    perm = rng.permutation(len(garments))
    chosen = [garments[perm[i % len(garments)]] for i in range(len(pairs))]
    return pd.DataFrame({"tuple_id": pairs, "rank": np.arange(1, len(pairs) + 1), "garment": chosen})


def make(dataset: Optional[str] = DATASET, manifest_dir: Optional[Path] = None, garments: str = GARMENT_DATASET,
         garment_manifest: Optional[Path] = None, seed: int = 0) -> SplitResult:
    """Write ``<out>/splits/spg-deepfashion.parquet`` (and its report) for the prepared DeepFashion."""
    m = open_manifest(dataset if dataset or manifest_dir else DATASET, manifest_dir)
    g = open_manifest(garments, garment_manifest)
    pairs, gids = test_pairs(m), test_garments(g)
    df = assign(pairs, gids, seed)
    df["garment_dataset"] = g.dataset
    df["garment_manifest"] = str(Path(g.dir).resolve())
    df["garment_fingerprint"] = g.fingerprint
    df["seed"] = int(seed)
    out = m.out / "splits"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{SPLIT}.parquet"
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    report = {"split": SPLIT, "dataset": m.dataset, "garment_dataset": g.dataset, "seed": int(seed),
              "n_test_pairs": len(pairs), "n_selected": len(df), "paper_pairs": PAPER_PAIRS,
              "n_garments": len(gids), "n_garments_used": int(df["garment"].nunique()),
              "garment_fingerprint": g.fingerprint, "source": "seed 003 §IV-A (MG-VTON protocol), vtondata.splits_spg"}
    atomic_write_json(out / f"{SPLIT}_report.json", report)
    return SplitResult(path, len(df), len(pairs), len(gids), report)


def ensure(dataset: Optional[str], split: str, manifest_dir: Optional[Path] = None) -> Optional[SplitResult]:
    """Make the split with the default seed if it does not exist yet (``vtondata bench --split spg-deepfashion``)."""
    if split != SPLIT:
        return None
    m = open_manifest(dataset, manifest_dir)
    if (m.out / "splits" / f"{SPLIT}.parquet").exists():
        return None
    return make(dataset, manifest_dir)


def external_garments(sel: pd.DataFrame, listed: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """For a derived split listing garments of another prepared dataset: ``sel`` (tuples) with its ``garment``
    column set to keys ``"<dataset>:<sample id>"``, and ``{key: {role: (absolute path, encoding, label space, width,
    height)}}`` for their ``garment`` / ``garment_mask`` assets (the loader's asset records)."""
    row = listed.iloc[0]
    name, where = str(row["garment_dataset"]), Path(str(row["garment_manifest"]))
    g = open_manifest(None, where) if where.is_dir() else open_manifest(name)
    want = str(row.get("garment_fingerprint") or "")
    if want and g.fingerprint != want:
        raise VtonDataError(f"the {name} manifest changed since the split was made (fingerprint {g.fingerprint}, "
                            f"split made with {want})", file=g.dir,
                            fix=f"remake the split: vtondata splits make {SPLIT} --dataset {DATASET}")
    key = {t: f"{name}:{s}" for t, s in zip(listed["tuple_id"], listed["garment"])}
    sel = sel.assign(garment=sel["tuple_id"].map(key))
    ids = set(listed["garment"])
    a = g.assets
    assets: dict[str, dict] = {}
    for r in a[a["sample_id"].isin(ids) & a["role"].isin(GARMENT_ROLES)].itertuples(index=False):
        w, h = (None if pd.isna(v) else int(v) for v in (r.width, r.height))
        enc = None if pd.isna(r.encoding) else r.encoding
        assets.setdefault(f"{name}:{r.sample_id}", {})[r.role] = (str(Path(g.root) / r.path), enc, None, w, h)
    return sel, assets
