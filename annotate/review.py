"""``vtondata review``: rank noisy triplets, record reviewers' decisions durably, derive clean splits.

Workflow (README "Browse and review"): ``review score`` computes one field per noise signal for every triplet
(and pair) and pushes them into the FiftyOne dataset; reviewers sort by ``noise_score`` (saved view "noise
candidates") and tag groups ``noisy`` or ``clean`` plus ``noise:<kind>``; ``review export`` writes the decisions
to a CSV / Parquet file (merged with the file's earlier decisions, written atomically); ``review import``
restores them into a rebuilt FiftyOne dataset; ``review splits`` writes ``<out>/splits/train-clean.parquet`` and
``train-noisy.parquet``. ``review results`` loads a folder of generated images next to their inputs.

Signals (weights and ranges are data: ``annotate/data/noise_signals.json``), each in [0, 1]:

- ``noise_cloth_mismatch``: in-shop garment vs the upper clothes worn in pose A and pose B (colour + texture);
- ``noise_pose_clothes``: upper clothes of pose A vs pose B;
- ``noise_accessory``: hat / glove / sunglasses / scarf / coat / bag-like area present in one image only;
- ``noise_background``: background that is not plain (either image);
- ``noise_identity``: face and hair colour statistics differ (a proxy for another person).

``noise_score = 1 - prod(1 - w_k s_k)`` (noisy-OR) and ``noise_kind = argmax_k w_k s_k``.
Images are read through :func:`vtondata.loader.load` (built caches are used, e.g. parses), at most 256 x 192.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import ndimage

from vtondata.errors import ReviewError
from vtondata.manifest import Manifest, atomic_write_bytes, atomic_write_json, atomic_write_parquet, open_manifest
from vtondata.progress import progress_bar

KINDS = ("cloth_mismatch", "pose_clothes", "accessory", "background", "identity")
DECISIONS = ("noisy", "clean")
NOISE_TAG = "noise:"
DECISION_COLUMNS = ["dataset", "tuple_id", "decision", "kind", "reviewer", "time", "source"]
SPLITS = ("train-clean", "train-noisy")

# CIHP / LIP ids used by the signals (identical in both spaces)
BG, HAT, HAIR, GLOVE, SUNGLASSES, UPPER, DRESS, COAT, NECK, SCARF, FACE, L_ARM, R_ARM = 0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 13, 14, 15
UPPER_IDS = (UPPER, DRESS, COAT)
ACCESSORY_IDS = {"hat": HAT, "glove": GLOVE, "sunglasses": SUNGLASSES, "scarf": SCARF, "coat": COAT}
_UPPER_LUT = np.isin(np.arange(256), UPPER_IDS)
_SKIN_LUT = np.isin(np.arange(256), [NECK, L_ARM, R_ARM])


@lru_cache(maxsize=1)
def signal_config() -> dict:
    """The signal definitions (``annotate/data/noise_signals.json``)."""
    return json.loads(resources.files("annotate").joinpath("data/noise_signals.json").read_text())


def signal_fields() -> dict:
    """kind -> FiftyOne / Parquet field name of its signal."""
    return {k: v["field"] for k, v in signal_config()["signals"].items()}


def review_dir(m: Manifest) -> Path:
    return m.out / "review"


# ----------------------------------------------------------------------------- region descriptors


def _hist(values: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    h = np.bincount(np.clip(((values - lo) / (hi - lo) * bins).astype(np.int64), 0, bins - 1), minlength=bins)
    return h.astype(np.float64)


def _grey(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float32)
    return f[..., 0] * 0.299 + f[..., 1] * 0.587 + f[..., 2] * 0.114


def _gradient(img: np.ndarray) -> np.ndarray:
    gy, gx = np.gradient(_grey(img))
    return np.hypot(gx, gy)


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square dilation of radius ``r`` (two 1-D running maxima: fast for large radii)."""
    m = mask.view(np.uint8)
    m = ndimage.maximum_filter1d(m, 2 * r + 1, axis=0)
    return ndimage.maximum_filter1d(m, 2 * r + 1, axis=1).astype(bool)


def region_descriptor(img: np.ndarray, mask: np.ndarray, grad: Optional[np.ndarray] = None) -> Optional[dict]:
    """Colour (chromaticity 2-D + intensity) and texture (gradient magnitude) histograms of ``img[mask]``.

    ``img``: H x W x 3 uint8; ``mask``: H x W bool. None when the (eroded) region has too few pixels.
    """
    cfg = signal_config()["region"]
    if cfg["erode"]:
        mask = ndimage.binary_erosion(mask, iterations=int(cfg["erode"]))
    n = int(mask.sum())
    if n < cfg["min_pixels"]:
        return None
    px = img[mask].astype(np.float64)
    s = px.sum(1) + 1e-6
    b = int(cfg["chroma_bins"])
    r, g = px[:, 0] / s, px[:, 1] / s
    ri = np.clip((r * b).astype(np.int64), 0, b - 1)
    gi = np.clip((g * b).astype(np.int64), 0, b - 1)
    chroma = np.bincount(ri * b + gi, minlength=b * b).astype(np.float64)
    inten = _hist(s / 3.0, int(cfg["intensity_bins"]), 0, 256)
    if grad is None:
        grad = _gradient(img)
    gm = np.log1p(np.maximum(grad[mask] - cfg["gradient_floor"], 0.0))  # sensor / JPEG noise is not texture
    tex = _hist(gm, int(cfg["gradient_bins"]), 0, math.log1p(180.0))
    return {"chroma": chroma / n, "intensity": inten / n, "texture": tex / n, "mean": px.mean(0), "n": n}


def _hellinger(p: np.ndarray, q: np.ndarray) -> float:
    return float(math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(p * q))))))


def region_distance(a: Optional[dict], b: Optional[dict]) -> float:
    """Colour + texture distance in [0, 1] between two region descriptors (NaN if either is missing)."""
    if a is None or b is None:
        return float("nan")
    cfg = signal_config()["region"]
    colour = 0.5 * _hellinger(a["chroma"], b["chroma"]) + 0.5 * _hellinger(a["intensity"], b["intensity"])
    texture = _hellinger(a["texture"], b["texture"])
    return cfg["colour_weight"] * colour + cfg["texture_weight"] * texture


# ----------------------------------------------------------------------------- per-image measurements


@dataclass
class ImageStats:
    """What the signals need from one person image (computed once per image)."""

    upper: Optional[dict]
    areas: dict            # accessory name -> area / person area
    background: float      # fraction of far background pixels that differ from the plain border colour
    face: Optional[np.ndarray]
    hair: Optional[np.ndarray]


def _mean(img: np.ndarray, mask: np.ndarray, min_px: int = 20) -> Optional[np.ndarray]:
    mask = ndimage.binary_erosion(mask, iterations=1)
    if mask.sum() < min_px:
        return None
    return img[mask].astype(np.float64).mean(0)


def _border_reference(img: np.ndarray, bg: np.ndarray, k: int) -> np.ndarray:
    """Median colour of the background pixels on the image border (the plain studio backdrop)."""
    frame = np.zeros(bg.shape, bool)
    frame[:k], frame[-k:], frame[:, :k], frame[:, -k:] = True, True, True, True
    px = img[frame & bg]
    if len(px) < 10:
        px = img[bg] if bg.any() else img.reshape(-1, 3)
    px = px.reshape(-1, 3)
    return np.median(px[:: max(1, len(px) // 4000)], axis=0)


def white_balance(img: np.ndarray, ref: np.ndarray, white: float = 245.0) -> np.ndarray:
    """Scale each channel so the backdrop ``ref`` becomes ``white``: removes global gain and colour casts."""
    gain = (white / np.maximum(np.asarray(ref, np.float32), 40.0)).astype(np.float32)
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def person_stats(img: np.ndarray, parse: np.ndarray) -> ImageStats:
    """Measurements of one person image (``img`` H x W x 3 uint8, ``parse`` H x W CIHP / LIP ids).

    Colours are white-balanced on the border backdrop first, so a global lighting change between the two
    photographs of a triplet does not count as noise.
    """
    cfg = signal_config()
    bcfg = cfg["background"]
    H, W = parse.shape
    body = parse != BG
    bgm = ~body
    ref = _border_reference(img, bgm, int(bcfg["border"]))
    deviant = (np.abs(img.astype(np.int16) - ref.astype(np.int16)).max(-1) > bcfg["threshold"]) & bgm
    img = white_balance(img, ref)
    upper = region_descriptor(img, _UPPER_LUT[parse], _gradient(img))
    n_body = max(1, int(body.sum()))
    counts = np.bincount(parse.ravel(), minlength=256)
    areas = {name: float(counts[i]) / n_body for name, i in ACCESSORY_IDS.items()}
    band = _dilate(body, max(1, int(bcfg["band"] * W)))
    near = _dilate(body, 2)
    far = bgm & ~band
    background = float(deviant[far].mean()) if far.any() else 0.0
    # bag-like: the largest compact deviant blob beside the body (not the far clutter)
    cand = deviant & band & ~near
    bag = 0.0
    if cand.any() and background < bcfg["bag_max_clutter"]:  # on clutter a blob is not a bag
        lab, n = ndimage.label(cand)
        if n:
            sizes = np.bincount(lab.ravel())[1:]
            bag = float(sizes.max()) / n_body
    areas["bag"] = bag
    face = _mean(img, parse == FACE)
    if face is None:
        face = _mean(img, _SKIN_LUT[parse])
    hair = _mean(img, parse == HAIR)
    return ImageStats(upper=upper, areas=areas, background=background, face=face, hair=hair)


def garment_descriptor(img: np.ndarray, mask: Optional[np.ndarray]) -> Optional[dict]:
    """Descriptor of an in-shop garment inside its mask (without one: the non-white pixels)."""
    if mask is None:
        mask = img.astype(np.int32).sum(-1) < 3 * 235
    mask = mask.astype(bool)
    img = white_balance(img, _border_reference(img, ~mask, int(signal_config()["background"]["border"])))
    return region_descriptor(img, mask)


# ----------------------------------------------------------------------------- signals


def raw_signals(a: ImageStats, b: Optional[ImageStats], garment: Optional[dict]) -> dict:
    """Raw distances per kind (NaN when not measurable, e.g. pairs have no pose B)."""
    nan = float("nan")
    out = dict.fromkeys(KINDS, nan)
    people = [s for s in (a, b) if s is not None]
    if garment is not None:
        d = [region_distance(garment, s.upper) for s in people]
        d = [x for x in d if not math.isnan(x)]
        out["cloth_mismatch"] = min(d) if d else nan
    out["background"] = max(s.background for s in people)
    if b is None:
        return out
    out["pose_clothes"] = region_distance(a.upper, b.upper)
    typ = signal_config()["signals"]["accessory"]["typical_area"]
    out["accessory"] = max(abs(a.areas.get(k, 0.0) - b.areas.get(k, 0.0)) / t for k, t in typ.items())
    ident = []
    if a.face is not None and b.face is not None:
        ident.append(float(np.linalg.norm(a.face - b.face)))
    if a.hair is not None and b.hair is not None:
        ident.append(0.5 * float(np.linalg.norm(a.hair - b.hair)))
    out["identity"] = max(ident) if ident else nan
    return out


def combine(raw: dict) -> dict:
    """Raw distances -> ``{field: s in [0, 1]}`` plus ``noise_score`` and ``noise_kind`` (see module docstring)."""
    sig = signal_config()["signals"]
    out, keep, best, best_v = {}, 1.0, "", 0.0
    for kind in KINDS:
        spec = sig[kind]
        r = raw.get(kind, float("nan"))
        if r is None or (isinstance(r, float) and math.isnan(r)):
            out[spec["field"]] = float("nan")
            continue
        s = min(1.0, max(0.0, (r - spec["lo"]) / (spec["hi"] - spec["lo"])))
        out[spec["field"]] = s
        ws = spec["weight"] * s
        keep *= 1.0 - ws
        if ws > best_v:
            best, best_v = kind, ws
    out["noise_score"] = 1.0 - keep
    out["noise_kind"] = best
    return out


# ----------------------------------------------------------------------------- scoring a dataset


def _u8(t) -> np.ndarray:
    return np.asarray(((t.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().clip(0, 255), np.uint8)


class _Scored:
    """Wraps a :class:`vtondata.loader.VtonDataset`: item -> raw signals (runs inside DataLoader workers)."""

    def __init__(self, ds, has_target: bool, has_mask: bool):
        self.ds, self.has_target, self.has_mask = ds, has_target, has_mask

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        it = self.ds[i]
        a = person_stats(_u8(it["person"]), it["parse"].numpy().astype(np.uint8))
        b = None
        if self.has_target:
            b = person_stats(_u8(it["target_person"]), it["target_parse"].numpy().astype(np.uint8))
        gm = it["garment_mask"][0].numpy() > 0.5 if self.has_mask else None
        g = garment_descriptor(_u8(it["garment"]), gm)
        raw = raw_signals(a, b, g)
        return {"tuple_id": it["tuple_id"], **{f"raw_{k}": v for k, v in raw.items()}}


@dataclass
class ScoreResult:
    scores: pd.DataFrame  # every scored tuple of the file (this run's and earlier runs' for other tuples)
    path: Path
    seconds: float
    per_s: float          # tuples scored per second in this run
    scored: int = 0       # tuples scored in this run
    pushed: int = 0
    name: Optional[str] = None


def _work_size(m: Manifest) -> Optional[tuple[int, int]]:
    wh, ww = signal_config()["work_size"]
    a = m.assets[m.assets["role"] == "person"]
    h = pd.to_numeric(a["height"], errors="coerce").median()
    if not h or math.isnan(h) or h <= wh:
        return None
    w = pd.to_numeric(a["width"], errors="coerce").median()
    return (wh, int(round(w * wh / h))) if w and not math.isnan(w) else (wh, ww)


def score(dataset: Optional[str] = None, manifest_dir: Optional[Path] = None, *, split: Optional[str] = None,
          workers: int = 0, push: bool = True, name: Optional[str] = None, limit: Optional[int] = None,
          quiet: bool = False) -> ScoreResult:
    """Score every triplet (and pair with a garment) of a prepared dataset; write ``<out>/review/noise_scores.parquet``.

    ``push`` also stores the fields in the FiftyOne dataset (built first when missing) and saves the view
    "noise candidates". ``limit`` scores the first tuples only (timing).
    """
    import torch
    from vtondata.loader import VtonDataset

    t0 = time.perf_counter()
    m = open_manifest(dataset, manifest_dir)
    t = m.tuples
    t = t[t["kind"].isin(["triplet", "pair"]) & t["person"].notna() & t["garment"].notna()]
    if split:
        t = t[t["split"] == split]
    if t.empty:
        raise ReviewError(f"{m.dataset}: no triplets or pairs to score" + (f" in split {split!r}" if split else ""),
                          file=m.dir / "tuples.parquet", fix="noise review works on person + garment tuples")
    roles = set(m.assets["role"])
    if "parse" not in roles:
        raise ReviewError(f"{m.dataset} has no parse maps", file=m.dir / "assets.parquet",
                          fix="the signals need human parsings (ship them or build the parse cache)")
    has_mask = "garment_mask" in roles
    size = _work_size(m)
    workers = workers if workers > 0 else min(2, os.cpu_count() or 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small per-image ops: intra-op threads only contend (workers set 1 themselves)
    rows: list[dict] = []
    groups = list(t.groupby(["split", "setting"], sort=True))
    total = len(t) if limit is None else min(limit, len(t))
    try:
        with progress_bar(total, f"noise signals {m.dataset}", disable=quiet, unit="tuple") as adv:
            for (sp, setting), sub in groups:
                if limit is not None and len(rows) >= limit:
                    break
                has_target = bool(sub["target_person"].notna().all())
                fields = ["person", "parse", "garment"] + (["garment_mask"] if has_mask else [])
                if has_target:
                    fields += ["target_person", "target_parse"]
                vds = VtonDataset(m, sp, setting, fields=fields, size=size)
                keep = set(sub["tuple_id"])
                vds.items = [it for it in vds.items if it["tuple_id"] in keep]
                if limit is not None:
                    vds.items = vds.items[: limit - len(rows)]
                wrapped = _Scored(vds, has_target, has_mask)
                loader = torch.utils.data.DataLoader(wrapped, batch_size=None, collate_fn=lambda x: x,
                                                     num_workers=workers if len(vds) > 8 else 0)
                for r in loader:
                    r["split"], r["setting"] = sp, setting
                    rows.append(r)
                    adv(1)
    finally:
        torch.set_num_threads(threads)
    df = pd.DataFrame(rows)
    comb = pd.DataFrame([combine({k: r[f"raw_{k}"] for k in KINDS}) for r in rows])
    df = pd.concat([df[["tuple_id", "split", "setting"]], comb, df[[f"raw_{k}" for k in KINDS]]], axis=1)
    elapsed = time.perf_counter() - t0
    n_new = len(df)
    path = review_dir(m) / "noise_scores.parquet"
    if path.exists():  # scores of other splits (or an earlier full run) stay, for tuples still in the manifest
        old = pd.read_parquet(path)
        old = old[~old["tuple_id"].isin(set(df["tuple_id"])) & old["tuple_id"].isin(set(m.tuples["tuple_id"]))]
        if len(old) and list(old.columns) == list(df.columns):
            df = pd.concat([df, old], ignore_index=True)
    df = df.sort_values("noise_score", ascending=False, kind="stable").reset_index(drop=True)
    atomic_write_parquet(path, pa.Table.from_pandas(df, preserve_index=False))
    res = ScoreResult(scores=df, path=path, seconds=elapsed, per_s=n_new / elapsed if elapsed > 0 else 0.0,
                      scored=n_new)
    if push:
        res.name, res.pushed = push_scores(m, df, name=name, quiet=quiet)
    return res


def push_scores(m: Manifest, df: pd.DataFrame, *, name: Optional[str] = None, quiet: bool = True) -> tuple[str, int]:
    """Store the score fields on every slice of each group of the FiftyOne dataset (built when missing)."""
    from . import browse

    name = name or browse.default_name(m.dataset)
    fo = browse.connect()
    if not fo.dataset_exists(name):
        browse.build(m.dataset, m.dir, name=name, quiet=quiet)
    ds = fo.load_dataset(name)
    coll = browse._all_slices(ds)
    ids, tids = coll.values("id"), coll.values("tuple_id")
    by = df.set_index("tuple_id")
    cols = list(signal_fields().values()) + ["noise_score", "noise_kind"]
    present = [i for i, t in zip(ids, tids) if t in by.index]
    tp = [t for t in tids if t in by.index]
    if present:
        view = coll.select(present, ordered=True)
        for c in cols:
            vals = [None if isinstance(v, float) and math.isnan(v) else v for v in by.loc[tp, c].tolist()]
            view.set_values(c, vals)
    browse._saved_views(ds, m, fo)
    return name, len(present)


# ----------------------------------------------------------------------------- evaluation on injected noise


def evaluate(scores: pd.DataFrame, truth: dict, k: Optional[int] = None) -> dict:
    """Ranking quality against injected noise (``truth``: tuple_id -> kind, others clean).

    Returns ``k`` (default: number of noisy tuples), ``precision_at_k``, ``recall_at_k``, ``average_precision``,
    and per kind ``recall_at_k`` (share of that kind in the top k), ``signal_recall_at_k`` (its own signal's
    ranking) and ``kind_accuracy`` (predicted ``noise_kind`` equals the injected kind, among that kind).
    """
    s = scores.sort_values("noise_score", ascending=False, kind="stable").reset_index(drop=True)
    noisy = s["tuple_id"].isin(truth).to_numpy()
    n_noisy = int(noisy.sum())
    k = k or n_noisy
    top = noisy[:k]
    hits = np.cumsum(noisy)
    prec = hits / np.arange(1, len(noisy) + 1)
    out = {"n": int(len(s)), "n_noisy": n_noisy, "k": int(k),
           "precision_at_k": float(top.mean()) if k else float("nan"),
           "recall_at_k": float(top.sum() / n_noisy) if n_noisy else float("nan"),
           "average_precision": float((prec * noisy).sum() / n_noisy) if n_noisy else float("nan"), "kinds": {}}
    topset = set(s["tuple_id"].iloc[:k])
    fields = signal_fields()
    for kind in sorted(set(truth.values())):
        ids = {t for t, v in truth.items() if v == kind and t in set(s["tuple_id"])}
        if not ids:
            continue
        by_sig = scores.sort_values(fields[kind], ascending=False, kind="stable", na_position="last")
        sig_top = set(by_sig["tuple_id"].iloc[: len(ids)])
        pred = s.set_index("tuple_id").loc[list(ids), "noise_kind"]
        out["kinds"][kind] = {"n": len(ids), "recall_at_k": len(ids & topset) / len(ids),
                              "signal_recall_at_k": len(ids & sig_top) / len(ids),
                              "kind_accuracy": float((pred == kind).mean())}
    return out


def evaluate_prepared(dataset: Optional[str] = None, *, manifest_dir: Optional[Path] = None,
                      truth: Optional[Path] = None) -> dict:
    """:func:`evaluate` of the saved scores against a ``noise.json`` (default: the fixture sidecar of the root)."""
    m = open_manifest(dataset, manifest_dir)
    tp = Path(truth) if truth else m.root / ".vtondata-fixture" / "noise.json"
    if not tp.exists():
        raise ReviewError("no injected-noise truth", file=tp, fix="make one with `vtondata review inject SRC DST`")
    sp = review_dir(m) / "noise_scores.parquet"
    if not sp.exists():
        raise ReviewError("no noise scores", file=sp, fix=f"run `vtondata review score {m.dataset}` first")
    return evaluate(pd.read_parquet(sp), json.loads(tp.read_text())["triplets"])


# ----------------------------------------------------------------------------- decisions


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_decisions(path: Path) -> pd.DataFrame:
    """A decisions file (CSV or Parquet) as a DataFrame with :data:`DECISION_COLUMNS` (validated)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=DECISION_COLUMNS)
    try:
        df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path, dtype=str,
                                                                                       keep_default_na=False)
    except Exception as exc:
        raise ReviewError(f"unreadable decisions file ({type(exc).__name__}: {exc})", file=path,
                          fix="pass a file written by `vtondata review export`") from None
    missing = [c for c in ("tuple_id", "decision") if c not in df.columns]
    if missing:
        raise ReviewError(f"decisions file lacks column(s) {missing}", file=path,
                          fix=f"columns are {DECISION_COLUMNS}")
    for c in DECISION_COLUMNS:
        if c not in df.columns:
            df[c] = ""
    df = df[DECISION_COLUMNS].fillna("").astype(str)
    bad = df[~df["decision"].isin(DECISIONS)]
    if len(bad):
        line = int(bad.index[0]) + 2 if path.suffix.lower() == ".csv" else None
        raise ReviewError(f"unknown decision {bad['decision'].iloc[0]!r} for {bad['tuple_id'].iloc[0]}", file=path,
                          line=line, fix="decision must be 'noisy' or 'clean'")
    kinds = {k for v in df["kind"] for k in v.split(",") if k}
    if kinds - set(KINDS):
        raise ReviewError(f"unknown noise kind(s) {sorted(kinds - set(KINDS))}", file=path,
                          fix=f"kinds are {list(KINDS)}")
    return df.reset_index(drop=True)


def write_decisions(path: Path, df: pd.DataFrame) -> Path:
    """Write decisions atomically; the format follows the suffix (``.parquet`` or ``.csv``)."""
    path = Path(path)
    df = df[DECISION_COLUMNS].sort_values("tuple_id", kind="stable").reset_index(drop=True)
    if path.suffix.lower() == ".parquet":
        atomic_write_parquet(path, pa.Table.from_pandas(df, preserve_index=False))
    elif path.suffix.lower() == ".csv":
        atomic_write_bytes(path, df.to_csv(index=False).encode())
    else:
        raise ReviewError("unknown decisions file type", file=path, fix="use a .csv or .parquet file name")
    return path


def app_decisions(ds) -> pd.DataFrame:
    """Decisions as tagged in the App: per tuple, the union of the tags of its group's samples.

    ``noisy`` wins over ``clean`` when both are present; kinds come from ``noise:<kind>`` tags.
    """
    from . import browse

    coll = browse._all_slices(ds)
    schema = ds.get_field_schema()
    tids, tags = coll.values("tuple_id"), coll.values("tags")
    rev = coll.values("reviewer") if "reviewer" in schema else [None] * len(tids)
    when = coll.values("review_time") if "review_time" in schema else [None] * len(tids)
    acc: dict[str, dict] = {}
    for t, tg, r, w in zip(tids, tags, rev, when):
        if t is None:
            continue
        tg = set(tg or [])
        d = acc.setdefault(t, {"tags": set(), "reviewer": None, "time": None})
        d["tags"] |= tg
        d["reviewer"] = d["reviewer"] or r
        d["time"] = d["time"] or w
    rows = []
    for t, d in acc.items():
        tg = d["tags"]
        dec = "noisy" if "noisy" in tg else ("clean" if "clean" in tg else None)
        if dec is None:
            continue
        kinds = sorted(x[len(NOISE_TAG):] for x in tg if x.startswith(NOISE_TAG) and x[len(NOISE_TAG):] in KINDS)
        rows.append({"tuple_id": t, "decision": dec, "kind": ",".join(kinds) if dec == "noisy" else "",
                     "reviewer": d["reviewer"] or "", "time": d["time"] or ""})
    return pd.DataFrame(rows, columns=["tuple_id", "decision", "kind", "reviewer", "time"])


def merge_decisions(old: pd.DataFrame, new: pd.DataFrame, *, dataset: str, reviewer: str, source: str) -> pd.DataFrame:
    """Earlier decisions are kept; a tuple's row changes only when its decision or kind changed."""
    now = _now()
    old = old.copy()
    idx = {t: i for i, t in enumerate(old["tuple_id"])}
    add = []
    for r in new.itertuples(index=False):
        i = idx.get(r.tuple_id)
        if i is not None and old.at[i, "decision"] == r.decision and old.at[i, "kind"] == r.kind:
            continue
        row = {"dataset": dataset, "tuple_id": r.tuple_id, "decision": r.decision, "kind": r.kind,
               "reviewer": r.reviewer or reviewer, "time": r.time or now, "source": source}
        if i is not None:
            row["reviewer"], row["time"] = reviewer, now  # a changed decision is a new decision
            for k, v in row.items():
                old.at[i, k] = v
        else:
            add.append(row)
    out = pd.concat([old, pd.DataFrame(add, columns=DECISION_COLUMNS)], ignore_index=True) if add else old
    return out[DECISION_COLUMNS].fillna("").astype(str)


def default_decisions_path(m: Manifest) -> Path:
    return review_dir(m) / "decisions.csv"


@dataclass
class ExportResult:
    path: Path
    total: int
    new_or_changed: int
    from_app: int


def export(dataset: Optional[str] = None, out: Optional[Path] = None, *, manifest_dir: Optional[Path] = None,
           name: Optional[str] = None, reviewer: Optional[str] = None) -> ExportResult:
    """Write the App's decisions to ``out`` (default ``<out>/review/decisions.csv``), merged with the file."""
    from . import browse

    m = open_manifest(dataset, manifest_dir)
    out = Path(out) if out else default_decisions_path(m)
    old = read_decisions(out)
    reviewer = reviewer or os.environ.get("VTONDATA_REVIEWER") or getpass.getuser()
    ds = browse.open_dataset(name or browse.default_name(m.dataset))
    new = app_decisions(ds)
    merged = merge_decisions(old, new, dataset=m.dataset, reviewer=reviewer, source="fiftyone")
    write_decisions(out, merged)
    n_changed = len(set(map(tuple, merged.values.tolist())) - set(map(tuple, old.values.tolist())))
    return ExportResult(path=out, total=len(merged), new_or_changed=n_changed, from_app=len(new))


@dataclass
class ImportResult:
    applied: int
    unknown: list = field(default_factory=list)  # tuple ids of the file absent from the FiftyOne dataset


def import_(dataset: Optional[str] = None, path: Optional[Path] = None, *, manifest_dir: Optional[Path] = None,
            name: Optional[str] = None) -> ImportResult:
    """Restore decisions from a file into the FiftyOne dataset (tags ``noisy`` / ``clean`` / ``noise:<kind>``
    and fields ``review_decision``, ``review_kind``, ``reviewer``, ``review_time`` on every slice)."""
    from . import browse

    m = open_manifest(dataset, manifest_dir)
    path = Path(path) if path else default_decisions_path(m)
    if not path.exists():
        raise ReviewError("no decisions file", file=path, fix="pass the file written by `vtondata review export`")
    dec = read_decisions(path)
    dec = dec[(dec["dataset"] == "") | (dec["dataset"] == m.dataset)]
    ds = browse.open_dataset(name or browse.default_name(m.dataset))
    coll = browse._all_slices(ds)
    ids, tids, tags = coll.values("id"), coll.values("tuple_id"), coll.values("tags")
    by = dec.drop_duplicates("tuple_id", keep="last").set_index("tuple_id")
    review_tags = set(DECISIONS) | {NOISE_TAG + k for k in KINDS}
    sel, new_tags, fields = [], [], {"review_decision": [], "review_kind": [], "reviewer": [], "review_time": []}
    for i, t, tg in zip(ids, tids, tags):
        if t not in by.index:
            continue
        r = by.loc[t]
        keep = [x for x in (tg or []) if x not in review_tags]
        add = [r["decision"]] + [NOISE_TAG + k for k in r["kind"].split(",") if k]
        sel.append(i)
        new_tags.append(keep + add)
        fields["review_decision"].append(r["decision"])
        fields["review_kind"].append(r["kind"])
        fields["reviewer"].append(r["reviewer"])
        fields["review_time"].append(r["time"])
    if sel:
        view = coll.select(sel, ordered=True)
        view.set_values("tags", new_tags)
        for f, v in fields.items():
            view.set_values(f, v)
    found = set(tids)
    unknown = sorted(set(by.index) - found)
    return ImportResult(applied=len(set(by.index) & found), unknown=unknown)


# ----------------------------------------------------------------------------- derived splits


@dataclass
class SplitResult:
    paths: dict
    counts: dict


def splits(dataset: Optional[str] = None, *, manifest_dir: Optional[Path] = None, decisions: Optional[Path] = None,
           threshold: Optional[float] = None, base_split: str = "train") -> SplitResult:
    """Write ``<out>/splits/train-clean.parquet`` and ``train-noisy.parquet`` from the decisions.

    A tuple of ``base_split`` is noisy when a reviewer decided so, or -- with ``threshold`` -- when it is
    unreviewed and its ``noise_score`` is at least ``threshold``; every other tuple is clean. Columns:
    ``tuple_id``, ``split`` (the derived split name), ``basis`` (``review`` / ``score`` / ``unreviewed``),
    ``decision``, ``kind``, ``noise_score``. A ``<name>.json`` record beside each file gives the rule and counts.
    """
    m = open_manifest(dataset, manifest_dir)
    t = m.tuples
    t = t[t["split"] == base_split]
    if t.empty:
        raise ReviewError(f"{m.dataset} has no {base_split!r} tuples", file=m.dir / "tuples.parquet",
                          fix="derived splits start from the training split")
    dpath = Path(decisions) if decisions else default_decisions_path(m)
    dec = read_decisions(dpath).drop_duplicates("tuple_id", keep="last").set_index("tuple_id")
    scores = None
    sp = review_dir(m) / "noise_scores.parquet"
    if threshold is not None:
        if not sp.exists():
            raise ReviewError("no noise scores for --threshold", file=sp, fix=f"run `vtondata review score {m.dataset}`")
    if sp.exists():
        scores = pd.read_parquet(sp, columns=["tuple_id", "noise_score"]).set_index("tuple_id")["noise_score"]
    rows = []
    for tid in t["tuple_id"]:
        score_v = float(scores.get(tid, float("nan"))) if scores is not None else float("nan")
        if tid in dec.index:
            d, k, basis = dec.at[tid, "decision"], dec.at[tid, "kind"], "review"
        elif threshold is not None and not math.isnan(score_v) and score_v >= threshold:
            d, k, basis = "noisy", "", "score"
        else:
            d, k, basis = "clean", "", "unreviewed"
        rows.append({"tuple_id": tid, "decision": d, "kind": k, "basis": basis, "noise_score": score_v})
    df = pd.DataFrame(rows)
    out_dir = m.out / "splits"
    paths, counts = {}, {}
    for name, dval in (("train-clean", "clean"), ("train-noisy", "noisy")):
        part = df[df["decision"] == dval].assign(split=name)[["tuple_id", "split", "basis", "decision", "kind",
                                                                "noise_score"]]
        p = out_dir / f"{name}.parquet"
        atomic_write_parquet(p, pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False))
        counts[name] = len(part)
        paths[name] = p
        atomic_write_json(out_dir / f"{name}.json", {
            "name": name, "dataset": m.dataset, "base_split": base_split, "tuples": len(part),
            "rule": ("noisy = reviewed noisy" + (f" or unreviewed with noise_score >= {threshold}" if threshold is not None
                                                 else "") + "; clean = every other tuple of the base split"),
            "decisions_file": str(dpath), "decisions": int(len(dec)), "written_at": _now(),
            "basis_counts": part["basis"].value_counts().to_dict()})
    return SplitResult(paths=paths, counts=counts)


# ----------------------------------------------------------------------------- generated results next to inputs


IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _match_key(s: str) -> str:
    return s.replace("/", "__").replace("#", "__").rsplit(".", 1)[0] if "." in s.rsplit("/", 1)[-1] else s.replace("/", "__")


def match_results(m: Manifest, run_dir: Path, split: Optional[str] = None) -> pd.DataFrame:
    """Generated images of ``run_dir`` (searched recursively) matched to tuples by file stem.

    A file matches a tuple when its stem equals the tuple id with ``/`` written ``__``, ``<person>__<garment>``
    (names), or the person's name when that person is in one tuple only. Returns ``path, tuple_id, how``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReviewError("results folder not found", file=run_dir, fix="pass the folder holding generated images")
    t = m.tuples if split is None else m.tuples[m.tuples["split"] == split]
    names = m.samples.set_index("sample_id")["name"]
    by_id = {tid.replace("/", "__"): tid for tid in t["tuple_id"]}
    by_pair, by_person = {}, {}
    for r in t.itertuples(index=False):
        pn = names.get(r.person) if isinstance(r.person, str) else None
        other = r.garment if isinstance(r.garment, str) else (r.target_person if isinstance(r.target_person, str) else None)
        on = names.get(other) if other else None
        if pn and on:
            by_pair.setdefault(f"{pn}__{on}", []).append(r.tuple_id)
        if pn:
            by_person.setdefault(pn, []).append(r.tuple_id)
    rows = []
    for p in sorted(run_dir.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXT:
            continue
        stem = p.stem
        if stem in by_id:
            rows.append((str(p), by_id[stem], "tuple_id"))
        elif len(by_pair.get(stem, [])) == 1:
            rows.append((str(p), by_pair[stem][0], "person__garment"))
        elif len(by_person.get(stem, [])) == 1:
            rows.append((str(p), by_person[stem][0], "person"))
    return pd.DataFrame(rows, columns=["path", "tuple_id", "how"])


@dataclass
class ResultsReview:
    name: str
    matched: int
    unmatched: int
    groups: int


def results(dataset: Optional[str], run_dir: Path, *, manifest_dir: Optional[Path] = None, name: Optional[str] = None,
            split: Optional[str] = None, overwrite: bool = True, launch_app: bool = False, port: int = 5151,
            address: str = "127.0.0.1", echo=print) -> ResultsReview:
    """A grouped FiftyOne dataset: the tuple's input slices + ``output`` (+ ``ground_truth`` when the tuple has
    one: the person for paired tuples, pose B for triplets) with ``l1_to_gt`` (mean |output - truth| in [0, 1])."""
    from PIL import Image

    from . import browse

    m = open_manifest(dataset, manifest_dir)
    run_dir = Path(run_dir)
    matched = match_results(m, run_dir, split)
    n_files = sum(1 for p in run_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXT)
    if matched.empty:
        raise ReviewError("no generated image matches a tuple of the manifest", file=run_dir,
                          fix="name outputs by tuple id ('/' -> '__'), '<person>__<garment>' or the person's name")
    fo = browse.connect()
    name = name or f"{browse.default_name(m.dataset)}-results-{run_dir.name}"
    if fo.dataset_exists(name):
        if not overwrite:
            raise ReviewError(f"FiftyOne dataset {name!r} exists", fix="pass another --name")
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    ds.add_group_field("group", default="output")
    pl = browse.plan(m, split)
    rows = pl.rows[pl.rows["tuple_id"].isin(set(matched["tuple_id"]))]
    labels = browse._Labels(m, fo)
    tup = m.tuples.set_index("tuple_id")
    samples = []
    for tid, out_path, how in zip(matched["tuple_id"], matched["path"], matched["how"]):
        gid = browse.group_id(name, tid)
        tr = tup.loc[tid]
        gt_col = "target_person" if tr["kind"] == "triplet" else ("person" if tr["setting"] == "paired" else None)
        gt_sid = tr[gt_col] if gt_col and isinstance(tr[gt_col], str) else None
        gt_path = None
        for r in rows[rows["tuple_id"] == tid].itertuples(index=False):
            img = labels.image_asset(r.sample_id, r.column)
            if img is None:
                continue
            s = fo.Sample(filepath=str(m.root / img["path"]), group=fo.Group(id=gid).element(r.slice))
            s["tuple_id"], s["split"], s["setting"], s["sample_id"] = tid, r.split, r.setting, r.sample_id
            samples.append(s)
            if gt_sid is not None and r.sample_id == gt_sid and gt_path is None:
                gt_path = m.root / img["path"]
        o = fo.Sample(filepath=str(Path(out_path).resolve()), group=fo.Group(id=gid).element("output"))
        o["tuple_id"], o["split"], o["setting"], o["matched_by"] = tid, tr["split"], tr["setting"], how
        if gt_path is not None:
            a = np.asarray(Image.open(out_path).convert("RGB"), np.float32)
            g = Image.open(gt_path).convert("RGB")
            if g.size != (a.shape[1], a.shape[0]):
                g = g.resize((a.shape[1], a.shape[0]), Image.BILINEAR)
            o["l1_to_gt"] = float(np.abs(a - np.asarray(g, np.float32)).mean() / 255.0)
            gts = fo.Sample(filepath=str(gt_path), group=fo.Group(id=gid).element("ground_truth"))
            gts["tuple_id"], gts["split"], gts["setting"] = tid, tr["split"], tr["setting"]
            samples.append(gts)
        samples.append(o)
    ds.add_samples(samples, progress=False)
    if "l1_to_gt" in ds.get_field_schema():
        ds.save_view("worst first", ds.exists("l1_to_gt").sort_by("l1_to_gt", reverse=True), overwrite=True)
    res = ResultsReview(name=name, matched=len(matched), unmatched=n_files - len(matched),
                        groups=matched["tuple_id"].nunique())
    if launch_app:
        echo(f"{res.name}: {res.groups} groups ({res.matched} outputs matched, {res.unmatched} not)")
        browse.launch(name, port=port, address=address, echo=echo)
    return res
