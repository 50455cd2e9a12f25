"""Checks of a landmark table: every problem becomes a :class:`Finding` naming the file and the record.

Errors: ``point-count`` (not exactly the points 0..K-1), ``duplicate-record`` (one image and side
annotated twice), ``attribute`` (code outside the side's encoding), ``no-coordinates`` (a present point
without x, y), ``out-of-image`` (a present point outside [0, W] x [0, H]), ``missing-image`` (not in the
prepared dataset), ``ambiguous-image`` (several images of that name and side), ``frame-mismatch`` (the
file's image size differs from the dataset's). Warnings: ``pair-missing`` (garment annotated, its paired
person not) and ``pair-point-missing`` (garment point present, the person's point of the same index absent).
Strict mode raises :class:`ValidationFailedError`; lenient mode drops the records that have errors.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
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

    @property
    def errors(self) -> List[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> List[Finding]:
        return [f for f in self.findings if f.severity == "warn"]

    def findings_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(f) for f in self.findings],
                            columns=["severity", "code", "file", "record", "message", "image", "side"])


def _provenance(df: pd.DataFrame) -> pd.DataFrame:
    src = df["source"] if "source" in df.columns else pd.Series("<table>", index=df.index)
    rec = df["record"] if "record" in df.columns else df["image"].astype(str) + " (" + df["side"] + ")"
    return pd.DataFrame({"scheme": df["scheme"], "image": df["image"], "side": df["side"], "source": src, "record": rec}
                        ).groupby(_REC, sort=False).first()


def _emit(out: List[Finding], prov: pd.DataFrame, keys, severity: str, code: str, messages) -> None:
    for key, msg in zip(keys, messages):
        p = prov.loc[key]
        out.append(Finding(severity, code, str(p["source"]), str(p["record"]), msg, image=str(key[1]), side=str(key[2])))


def _structure(df: pd.DataFrame, prov: pd.DataFrame, out: List[Finding]) -> None:
    # duplicate records: one (image, side) reached from more than one record of a record-per-annotation format
    if "record" in df.columns:
        nrec = df.groupby(_REC, sort=False)["record"].nunique()
        dup = nrec[nrec > 1]
        if len(dup):
            recs = df.groupby(_REC, sort=False)["record"].unique()
            _emit(out, prov, dup.index, "error", "duplicate-record",
                  [f"{k[1]} ({k[2]}) is annotated {n} times: {', '.join(map(str, recs.loc[k][:3]))}"
                   for k, n in dup.items()])
    # point count and index set
    k_of = {s: load_definition(s).num_points for s in df["scheme"].unique()}
    g = df.groupby(_REC, sort=False)["point"]
    n = g.size()
    kk = np.array([k_of[s] for s in n.index.get_level_values(0)])
    dup_pt = df.duplicated(_REC + ["point"], keep=False)
    bad_range = (df["point"] < 0) | (df["point"] >= df["scheme"].map(k_of))
    dup_keys = set(df.loc[dup_pt, _REC].itertuples(index=False, name=None))
    range_keys = set(df.loc[bad_range, _REC].itertuples(index=False, name=None))
    bad = (n.to_numpy() != kk)
    keys, msgs = [], []
    for (key, cnt), kexp, b in zip(n.items(), kk, bad):
        if b:
            keys.append(key)
            msgs.append(f"has {cnt} landmarks, scheme {key[0]} needs exactly {kexp}")
        elif key in dup_keys or key in range_keys:
            keys.append(key)
            msgs.append(f"landmark indices are not 0..{kexp - 1} once each")
    _emit(out, prov, keys, "error", "point-count", msgs)


def _attributes(df: pd.DataFrame, prov: pd.DataFrame, out: List[Finding]) -> None:
    bad = np.zeros(len(df), dtype=bool)
    for (scheme, side), idx in df.groupby(["scheme", "side"]).indices.items():
        codes = np.array(load_definition(scheme).side(side).codes)
        bad[idx] = ~np.isin(df["attribute"].to_numpy()[idx], codes)
    if bad.any():
        sub = df[bad]
        first = sub.groupby(_REC, sort=False).agg(point=("point", "first"), attribute=("attribute", "first"),
                                                   n=("point", "size"))
        msgs = []
        for key, r in first.iterrows():
            enc = load_definition(key[0]).side(key[2]).attributes
            allowed = ", ".join(f"{c} {m}" for c, m in enc.items())
            msgs.append(f"landmark {r['point']}: attribute {r['attribute']} is outside the {key[2]} encoding "
                        f"({allowed})" + (f"; {r['n'] - 1} more" if r["n"] > 1 else ""))
        _emit(out, prov, first.index, "error", "attribute", msgs)
    present = df["attribute"].to_numpy() > 0
    nocoord = present & ~(np.isfinite(df["x"].to_numpy(np.float64)) & np.isfinite(df["y"].to_numpy(np.float64)))
    if nocoord.any():
        first = df[nocoord].groupby(_REC, sort=False)["point"].agg(["first", "size"])
        _emit(out, prov, first.index, "error", "no-coordinates",
              [f"landmark {r['first']} is marked present but has no x, y" + (f"; {r['size'] - 1} more" if r["size"] > 1 else "")
               for _, r in first.iterrows()])


def _coordinates(df: pd.DataFrame, prov: pd.DataFrame, out: List[Finding]) -> None:
    if "width" not in df.columns:
        return
    x = df["x"].to_numpy(np.float64)
    y = df["y"].to_numpy(np.float64)
    w = df["width"].to_numpy(np.float64)
    h = df["height"].to_numpy(np.float64)
    known = np.isfinite(w) & np.isfinite(h)
    eps = 1e-3
    outside = (df["attribute"].to_numpy() > 0) & known & np.isfinite(x) & np.isfinite(y) & (
        (x < -eps) | (y < -eps) | (x > w + eps) | (y > h + eps))
    if outside.any():
        sub = df[outside]
        first = sub.groupby(_REC, sort=False).agg(point=("point", "first"), x=("x", "first"), y=("y", "first"),
                                                   w=("width", "first"), h=("height", "first"), n=("point", "size"))
        _emit(out, prov, first.index, "error", "out-of-image",
              [f"landmark {r['point']} at ({r['x']:.1f}, {r['y']:.1f}) is outside the {int(r['w'])}x{int(r['h'])} image"
               + (f"; {r['n'] - 1} more" if r["n"] > 1 else "") for _, r in first.iterrows()])


def _join(df: pd.DataFrame, catalog: pd.DataFrame, prov: pd.DataFrame, out: List[Finding]) -> pd.DataFrame:
    keys = df[["image", "side"]].drop_duplicates()
    matched, unmatched = resolve(keys, catalog)
    rec_of = prov.reset_index().drop_duplicates(["image", "side"]).set_index(["image", "side"])
    for _, r in unmatched.iterrows():
        p = rec_of.loc[(r["image"], r["side"])]
        if r["reason"] == "ambiguous":
            out.append(Finding("error", "ambiguous-image", str(p["source"]), str(p["record"]),
                               f"{r['image']} matches several {r['side']} images of the prepared dataset; "
                               "give the path relative to the dataset root", image=r["image"], side=r["side"]))
        else:
            out.append(Finding("error", "missing-image", str(p["source"]), str(p["record"]),
                               f"{r['image']} ({r['side']}) does not exist in the prepared dataset",
                               image=r["image"], side=r["side"]))
    m = matched.rename(columns={"width": "cat_width", "height": "cat_height"})
    j = df.merge(m, on=["image", "side"], how="left")
    if "width" in j.columns:
        src_w, src_h = j["width"].to_numpy(np.float64), j["height"].to_numpy(np.float64)
        cw, ch = j["cat_width"].to_numpy(np.float64), j["cat_height"].to_numpy(np.float64)
        mism = np.isfinite(src_w) & np.isfinite(cw) & ((np.abs(src_w - cw) > 0.5) | (np.abs(src_h - ch) > 0.5))
        if mism.any():
            first = j[mism].groupby(_REC, sort=False).agg(w=("width", "first"), h=("height", "first"),
                                                           cw=("cat_width", "first"), ch=("cat_height", "first"))
            _emit(out, prov, first.index, "error", "frame-mismatch",
                  [f"the file gives a {int(r['w'])}x{int(r['h'])} frame but the dataset image is "
                   f"{int(r['cw'])}x{int(r['ch'])}; rescale the coordinates" for _, r in first.iterrows()])
    j["width"] = j["cat_width"].where(j["cat_width"].notna(), j["width"] if "width" in j.columns else np.nan)
    j["height"] = j["cat_height"].where(j["cat_height"].notna(), j["height"] if "height" in j.columns else np.nan)
    j["image"] = j["catalog_image"].where(j["catalog_image"].notna(), j["image"])
    return j.drop(columns=["cat_width", "cat_height", "catalog_image"])


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


def _pairs(df: pd.DataFrame, prov: pd.DataFrame, pairs: pd.DataFrame, out: List[Finding]) -> None:
    g = df[df["side"] == "garment"]
    p = df[df["side"] == "person"]
    if not len(g):
        return
    pairs = pairs[pairs["garment_image"].isin(g["image"].unique())]
    have_p = set(p["image"].unique())
    annotated = set(g["image"].unique())
    for gi, pi in zip(pairs["garment_image"], pairs["person_image"]):
        if gi in annotated and (pi is None or (isinstance(pi, float) and np.isnan(pi)) or pi not in have_p):
            key = (g.loc[g["image"] == gi, "scheme"].iloc[0], gi, "garment")
            _emit(out, prov, [key], "warn", "pair-missing",
                  [f"garment {gi} has landmarks but its paired person {pi if isinstance(pi, str) else '(none found)'} has none"])
    pp = pairs[pairs["person_image"].isin(have_p)]
    if not len(pp):
        return
    ga = g[["image", "scheme", "point", "attribute"]].rename(columns={"image": "garment_image", "attribute": "a_g"})
    pa = p[["image", "point", "attribute"]].rename(columns={"image": "person_image", "attribute": "a_p"})
    j = pp.merge(ga, on="garment_image").merge(pa, on=["person_image", "point"], how="left")
    lost = j[(j["a_g"] > 0) & ~(j["a_p"] > 0)]
    for (gi, pi, sc), grp in lost.groupby(["garment_image", "person_image", "scheme"], sort=False):
        pts = ", ".join(map(str, grp["point"].tolist()[:8])) + (" ..." if len(grp) > 8 else "")
        _emit(out, prov, [(sc, gi, "garment")], "warn", "pair-point-missing",
              [f"landmark(s) {pts} present on garment {gi} but absent on its person {pi}"])


def check_landmarks(df: pd.DataFrame, *, catalog: Optional[pd.DataFrame] = None,
                    pairs: Optional[pd.DataFrame] = None, check_pairs: bool = True) -> CheckResult:
    """Run every check. ``catalog``: images of the prepared dataset (see ``catalog.py``); ``pairs``:
    ``garment_image, person_image`` (default: by file name)."""
    df = df.reset_index(drop=True)
    prov = _provenance(df)
    out: List[Finding] = []
    _structure(df, prov, out)
    _attributes(df, prov, out)
    df["given_image"] = df["image"]
    if catalog is not None:
        df = _join(df, catalog, prov, out)
        prov = _provenance(df)  # keyed by the dataset's image paths from here on
        names = df.groupby(_REC, sort=False)["given_image"].unique()
        clash = names[names.map(len) > 1]
        _emit(out, prov, clash.index, "error", "duplicate-record",
              [f"{k[1]} ({k[2]}) is annotated under several names: {', '.join(map(str, v[:3]))}"
               for k, v in clash.items()])
    _coordinates(df, prov, out)
    if check_pairs:
        _pairs(df, prov, pairs_by_name(df) if pairs is None else pairs, out)
    order = {"error": 0, "warn": 1}
    out.sort(key=lambda f: (order[f.severity], f.file, f.image, f.side, f.code))
    return CheckResult(df, out)


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
        # errors found after the catalog join name the dataset's image path, the others the image as given
        bad = pd.MultiIndex.from_tuples({(e.image, e.side) for e in errs}, names=["image", "side"])
        keep = ~pd.MultiIndex.from_frame(df[["image", "side"]]).isin(bad)
        keep &= ~pd.MultiIndex.from_frame(df[["given_image", "side"]].set_axis(["image", "side"], axis=1)).isin(bad)
        df = df[keep]
    return df.drop(columns=["given_image"]).reset_index(drop=True), result.findings
