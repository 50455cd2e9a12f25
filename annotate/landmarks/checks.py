"""Checks of a landmark table: every problem becomes a :class:`Finding` naming the file and the record.

Errors: ``point-count`` (not exactly the points 0..K-1), ``duplicate-record`` (one image and side
annotated twice), ``attribute`` (code outside the side's encoding), ``no-coordinates`` (a present point
without x, y), ``out-of-image`` (a present point outside [0, W] x [0, H]), ``missing-image`` (not in the
prepared dataset), ``ambiguous-image`` (several images of that name and side), ``frame-mismatch`` (the
file's image size differs from the dataset's). Warnings: ``pair-missing`` (garment annotated, its paired
person not) and ``pair-point-missing`` (garment point present, the person's point of the same index absent).
Strict mode raises :class:`ValidationFailedError`; lenient mode drops the records that have errors.

Implementation note: strings are factorised once into a record id per row; every check then works on
integer arrays (row level) or on the small per-record table, so 60,000 records check in a few seconds.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

import numpy as np
import pandas as pd

from vtondata.errors import ValidationFailedError

from .catalog import resolve
from .definition import load_definition

_REC = ["scheme", "image", "side"]


@dataclass(frozen=True)
class Finding:
    """One problem of one record. ``severity`` is ``error`` or ``warn``."""

    severity: str
    code: str
    file: str
    record: str
    message: str
    image: str = ""
    side: str = ""

    def __str__(self) -> str:
        return f"{self.file}: {self.record}: {self.message}"


@dataclass
class CheckResult:
    table: pd.DataFrame              # the input, joined to the catalog when one was given
    findings: List[Finding]
    rid: np.ndarray = field(default=None, repr=False)          # (rows,) record id of every row
    error_records: np.ndarray = field(default=None, repr=False)  # record ids that have an error

    @property
    def errors(self) -> List[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> List[Finding]:
        return [f for f in self.findings if f.severity == "warn"]

    def findings_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(f) for f in self.findings],
                            columns=["severity", "code", "file", "record", "message", "image", "side"])


class _Records:
    """Per-record view: ``rid`` per row, and scheme / image / side / source / record per record."""

    def __init__(self, df: pd.DataFrame):
        codes = []
        self.uniques = {}
        for c in _REC:
            code, uni = pd.factorize(df[c], sort=False)
            codes.append(code.astype(np.int64))
            self.uniques[c] = np.asarray(uni, dtype=object)
        key = (codes[0] * len(self.uniques["image"]) + codes[1]) * len(self.uniques["side"]) + codes[2]
        rid, _ = pd.factorize(key, sort=False)             # records numbered in order of first appearance
        self.rid = rid.astype(np.int64)
        self.first = pd.Series(self.rid).drop_duplicates().index.to_numpy()
        self.n = len(self.first)
        self.scheme = self.uniques["scheme"][codes[0][self.first]]
        self.image = self.uniques["image"][codes[1][self.first]]
        self.side = self.uniques["side"][codes[2][self.first]]
        src = df["source"].to_numpy(object)[self.first] if "source" in df.columns else np.full(self.n, "<table>", object)
        if "record" in df.columns:
            rec = df["record"].to_numpy(object)[self.first]
        else:
            rec = np.array([f"{i} ({s})" for i, s in zip(self.image, self.side)], dtype=object)
        self.source, self.record = src.astype(str), rec.astype(str)
        self.k = np.array([load_definition(s).num_points for s in self.scheme], dtype=np.int64)
        self.error = np.zeros(self.n, dtype=bool)

    def emit(self, out: List[Finding], ids, severity: str, code: str, messages) -> None:
        for i, msg in zip(ids, messages):
            out.append(Finding(severity, code, self.source[i], self.record[i], msg, image=str(self.image[i]),
                               side=str(self.side[i])))
            if severity == "error":
                self.error[i] = True


def _first_per_record(rid: np.ndarray, mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(record ids with any ``mask`` row, index of their first such row, count of such rows)."""
    rows = np.flatnonzero(mask)
    ids, first, cnt = np.unique(rid[rows], return_index=True, return_counts=True)
    return ids, rows[first], cnt


def _more(c: int) -> str:
    return f"; {c - 1} more" if c > 1 else ""


def _structure(df: pd.DataFrame, R: _Records, out: List[Finding]) -> np.ndarray:
    dup_rec = np.zeros(R.n, dtype=bool)
    if "record" in df.columns:
        rcode, runi = pd.factorize(df["record"], sort=False)
        differs = rcode != rcode[R.first][R.rid]           # a second record label inside one (image, side)
        dup_ids = np.unique(R.rid[differs])
        if len(dup_ids):
            dup_rec[dup_ids] = True
            runi = np.asarray(runi, dtype=object)
            labels = [list(dict.fromkeys(runi[rcode[R.rid == i]])) for i in dup_ids]
            R.emit(out, dup_ids, "error", "duplicate-record",
                   [f"{R.image[i]} ({R.side[i]}) is annotated {len(lab)} times: {', '.join(map(str, lab[:3]))}"
                    for i, lab in zip(dup_ids, labels)])
    pt = df["point"].to_numpy(np.int64)
    counts = np.bincount(R.rid, minlength=R.n)
    kmax = int(R.k.max())
    in_range = (pt >= 0) & (pt < R.k[R.rid])
    occupied = np.bincount(R.rid[in_range] * kmax + pt[in_range], minlength=R.n * kmax).reshape(R.n, kmax) > 0
    n_unique = occupied.sum(1)
    ids, msgs = [], []
    for i in np.flatnonzero((counts != R.k) | (n_unique != R.k)):
        if dup_rec[i]:
            continue  # already reported as a duplicate record
        ids.append(i)
        msgs.append(f"has {counts[i]} landmarks, scheme {R.scheme[i]} needs exactly {R.k[i]}" if counts[i] != R.k[i]
                    else f"landmark indices are not 0..{R.k[i] - 1} once each")
    R.emit(out, ids, "error", "point-count", msgs)
    return dup_rec


def _attributes(df: pd.DataFrame, R: _Records, out: List[Finding]) -> None:
    attr = df["attribute"].to_numpy(np.int64)
    ok = np.zeros(len(df), dtype=bool)
    rec_group = pd.Series(list(zip(R.scheme, R.side)))
    for (scheme, side), recs in rec_group.groupby(rec_group).groups.items():
        rows = np.isin(R.rid, np.asarray(recs))
        ok[rows] = np.isin(attr[rows], np.array(load_definition(scheme).side(side).codes))
    ids, first, cnt = _first_per_record(R.rid, ~ok)
    msgs = []
    for i, r, c in zip(ids, first, cnt):
        enc = load_definition(R.scheme[i]).side(R.side[i]).attributes
        allowed = ", ".join(f"{code} {m}" for code, m in enc.items())
        msgs.append(f"landmark {pt_of(df, r)}: attribute {attr[r]} is outside the {R.side[i]} encoding ({allowed}){_more(c)}")
    R.emit(out, ids, "error", "attribute", msgs)
    x, y = df["x"].to_numpy(np.float64), df["y"].to_numpy(np.float64)
    nocoord = (attr > 0) & ~(np.isfinite(x) & np.isfinite(y))
    ids, first, cnt = _first_per_record(R.rid, nocoord)
    R.emit(out, ids, "error", "no-coordinates",
           [f"landmark {pt_of(df, r)} is marked present but has no x, y{_more(c)}" for r, c in zip(first, cnt)])


def pt_of(df: pd.DataFrame, row: int) -> int:
    return int(df["point"].iat[row])


def _coordinates(df: pd.DataFrame, R: _Records, w_rec: np.ndarray, h_rec: np.ndarray, out: List[Finding]) -> None:
    x, y = df["x"].to_numpy(np.float64), df["y"].to_numpy(np.float64)
    w, h = w_rec[R.rid], h_rec[R.rid]
    eps = 1e-3
    with np.errstate(invalid="ignore"):
        outside = (df["attribute"].to_numpy() > 0) & np.isfinite(w) & np.isfinite(h) & np.isfinite(x) & np.isfinite(y) & (
            (x < -eps) | (y < -eps) | (x > w + eps) | (y > h + eps))
    ids, first, cnt = _first_per_record(R.rid, outside)
    R.emit(out, ids, "error", "out-of-image",
           [f"landmark {pt_of(df, r)} at ({x[r]:.1f}, {y[r]:.1f}) is outside the {int(w[r])}x{int(h[r])} image{_more(c)}"
            for r, c in zip(first, cnt)])


def _record_sizes(df: pd.DataFrame, R: _Records) -> Tuple[np.ndarray, np.ndarray]:
    if "width" in df.columns:
        return df["width"].to_numpy(np.float64)[R.first], df["height"].to_numpy(np.float64)[R.first]
    return np.full(R.n, np.nan), np.full(R.n, np.nan)


def _join(df: pd.DataFrame, R: _Records, catalog: pd.DataFrame, out: List[Finding]):
    """Resolve records against the catalog; returns per-record (image, asset_id, width, height)."""
    keys = pd.DataFrame({"image": R.image, "side": R.side})
    matched, unmatched = resolve(keys, catalog)
    pos = {}
    for n, key in enumerate(zip(R.image, R.side)):
        pos.setdefault(key, []).append(n)
    for _, r in unmatched.iterrows():
        for i in pos.get((r["image"], r["side"]), []):
            if r["reason"] == "ambiguous":
                R.emit(out, [i], "error", "ambiguous-image",
                       [f"{r['image']} matches several {r['side']} images of the prepared dataset; "
                        "give the path relative to the dataset root"])
            else:
                R.emit(out, [i], "error", "missing-image", [f"{r['image']} ({r['side']}) does not exist in the prepared dataset"])
    m = keys.merge(matched, on=["image", "side"], how="left")
    img = np.where(m["catalog_image"].notna(), m["catalog_image"].to_numpy(object), R.image).astype(object)
    src_w, src_h = _record_sizes(df, R)
    cw, ch = m["width"].to_numpy(np.float64), m["height"].to_numpy(np.float64)
    mism = np.isfinite(src_w) & np.isfinite(cw) & ((np.abs(src_w - cw) > 0.5) | (np.abs(src_h - ch) > 0.5))
    ids = np.flatnonzero(mism)
    R.emit(out, ids, "error", "frame-mismatch",
           [f"the file gives a {int(src_w[i])}x{int(src_h[i])} frame but the dataset image is {int(cw[i])}x{int(ch[i])}; "
            "rescale the coordinates" for i in ids])
    w = np.where(np.isfinite(cw), cw, src_w)
    h = np.where(np.isfinite(ch), ch, src_h)
    return img, m["asset_id"].to_numpy(object), w, h


_VITON_STEM = re.compile(r"^(.*)_1$")


def pairs_by_name(df: pd.DataFrame) -> pd.DataFrame:
    """Garment/person pairs by file name: same stem (VITON-HD ``x_00``), or VITON ``x_1`` -> ``x_0``."""
    recs = df[["image", "side"]].drop_duplicates()
    stem = recs["image"].map(lambda s: str(s).replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0])
    g = recs[recs["side"] == "garment"].assign(stem=stem)
    p = recs[recs["side"] == "person"].assign(stem=stem)
    same = g.merge(p, on="stem", suffixes=("_g", "_p"))
    g2 = g[~g["image"].isin(same["image_g"])].copy()
    g2["stem"] = g2["stem"].map(lambda s: (_VITON_STEM.sub(r"\1_0", s)))
    viton = g2.merge(p, on="stem", suffixes=("_g", "_p"))
    both = pd.concat([same, viton])
    out = both.rename(columns={"image_g": "garment_image", "image_p": "person_image"})[["garment_image", "person_image"]]
    unpaired = g[~g["image"].isin(out["garment_image"])]["image"]
    return pd.concat([out, pd.DataFrame({"garment_image": unpaired, "person_image": None})], ignore_index=True)


def _pairs(df: pd.DataFrame, R: _Records, img: np.ndarray, pairs: pd.DataFrame, out: List[Finding]) -> None:
    is_g, is_p = R.side == "garment", R.side == "person"
    if not is_g.any():
        return
    g_of = {(im, sc): i for i, (im, sc) in enumerate(zip(img, R.scheme)) if is_g[i]}
    p_of = {(im, sc): i for i, (im, sc) in enumerate(zip(img, R.scheme)) if is_p[i]}
    person_for = {}
    for gi, pi in zip(pairs["garment_image"], pairs["person_image"]):
        person_for.setdefault(gi, pi if isinstance(pi, str) else None)
    lonely, lonely_msg, links = [], [], []
    for (gi, sc), i in g_of.items():
        pi = person_for.get(gi)
        j = p_of.get((pi, sc)) if pi is not None else None
        if j is None:
            lonely.append(i)
            lonely_msg.append(f"garment {gi} has landmarks but its paired person {pi or '(none found)'} has none")
        else:
            links.append((i, j))
    R.emit(out, lonely, "warn", "pair-missing", lonely_msg)
    if not links:
        return
    kmax = int(R.k.max())
    dense = np.full((R.n, kmax), -1, dtype=np.int64)
    pt = df["point"].to_numpy(np.int64)
    ok = (pt >= 0) & (pt < kmax)
    dense[R.rid[ok], pt[ok]] = df["attribute"].to_numpy(np.int64)[ok]
    gi_, pi_ = np.array(links).T
    lost = (dense[gi_] > 0) & ~(dense[pi_] > 0)
    rows = np.flatnonzero(lost.any(1))
    msgs = []
    for r in rows:
        pts = np.flatnonzero(lost[r]).tolist()
        msgs.append(f"landmark(s) {', '.join(map(str, pts[:8]))}{' ...' if len(pts) > 8 else ''} present on garment "
                    f"{img[gi_[r]]} but absent on its person {img[pi_[r]]}")
    R.emit(out, gi_[rows], "warn", "pair-point-missing", msgs)


def _per_row(values: np.ndarray, rid: np.ndarray) -> pd.Categorical:
    codes, uniques = pd.factorize(np.asarray(values, dtype=object))
    return pd.Categorical.from_codes(codes[rid], categories=pd.Index(uniques, dtype=object))


def check_landmarks(df: pd.DataFrame, *, catalog: Optional[pd.DataFrame] = None,
                    pairs: Optional[pd.DataFrame] = None, check_pairs: bool = True) -> CheckResult:
    """Run every check. ``catalog``: images of the prepared dataset (see ``catalog.py``); ``pairs``:
    ``garment_image, person_image`` (default: by file name)."""
    df = df.reset_index(drop=True)
    out: List[Finding] = []
    R = _Records(df)
    _structure(df, R, out)
    _attributes(df, R, out)
    img = R.image
    if catalog is not None:
        img, asset, w, h = _join(df, R, catalog, out)
        df = df.assign(image=_per_row(img, R.rid), asset_id=_per_row(asset, R.rid), width=w[R.rid], height=h[R.rid])
        # two names of the source resolving to one dataset image: the same record twice
        key = pd.Series(list(zip(R.scheme, img, R.side)))
        clash = key[key.duplicated(keep=False)]
        for _, grp in clash.groupby(clash, sort=False):
            ids = grp.index.to_numpy()
            R.emit(out, ids[:1], "error", "duplicate-record",
                   [f"{img[ids[0]]} ({R.side[ids[0]]}) is annotated under several names: "
                    f"{', '.join(str(R.image[i]) for i in ids[:3])}"])
    else:
        w, h = _record_sizes(df, R)
    _coordinates(df, R, w, h, out)
    if check_pairs:
        recs = pd.DataFrame({"image": img, "side": R.side})
        _pairs(df, R, img, pairs_by_name(recs) if pairs is None else pairs, out)
    order = {"error": 0, "warn": 1}
    out.sort(key=lambda f: (order[f.severity], f.file, f.image, f.side, f.code))
    return CheckResult(df, out, rid=R.rid, error_records=np.flatnonzero(R.error))


def apply_policy(result: CheckResult, *, strict: bool = True, max_listed: int = 10) -> Tuple[pd.DataFrame, List[Finding]]:
    """Strict: raise on any error (message lists the first ``max_listed``). Lenient: drop erroneous records."""
    errs = result.errors
    if errs and strict:
        listed = "\n  ".join(str(e) for e in errs[:max_listed])
        more = f"\n  ... and {len(errs) - max_listed} more" if len(errs) > max_listed else ""
        raise ValidationFailedError(f"{len(errs)} landmark error(s):\n  {listed}{more}", findings=result.findings,
                                    file=errs[0].file, fix="correct the records, or use --lenient to drop them")
    df = result.table
    if errs:
        df = df[~np.isin(result.rid, result.error_records)]
    return df.reset_index(drop=True), result.findings
