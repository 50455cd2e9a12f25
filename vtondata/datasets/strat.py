"""STRAT (bcmi; Zhang et al. 2022, arXiv 2207.02398): accessory try-on as homography annotation.

Three sub-datasets, each 2,000 train / 1,000 test (foreground, background) pairs: ``glasses`` and ``hat``
(background = face, parse ``face12``) and ``tie`` (background = portrait, parse ``body8``). Per sub-dataset
and split (``docs/datasets.md`` section 5)::

    <root>/<subset dir>/{train,test}/trans_params.json      {"<id>": {"init_vertex": 4 x (x, y),
                                                                      "final_vertex": 4 x (x, y),
                                                                      "trans_matrix" | "trans_matri": 3 x 3}}
                                    foreground/<id>.png         accessory, RGBA (alpha = its mask)
                                    foreground_mask/<id>.png    binary 0/255
                                    background/<id>.jpg         face or portrait
                                    composite/<id>.jpg          ground-truth composite (optional; also comp/)
                                    background_mask/<id>.png    parse of the background (face12 | body8)
                                    background_mask_comp/<id>.png   parse of the composite

Folder names are UNVERIFIED (bcmi's README names only ``trans_params.json``, ``background_mask`` and
``background_mask_comp``). Decision: a subset directory is found under any of these names, first match wins --

* ``glasses``: ``face_glasses`` (third-party loaders), ``STRAT-glasses``, ``STRAT_glasses``, ``glasses``
* ``hat``: ``face_hat``, ``STRAT-hat``, ``STRAT_hat``, ``hat``
* ``tie``: ``body_tie`` (our guess by analogy: the tie background is a body / portrait), ``portrait_tie``,
  ``face_tie``, ``STRAT-tie``, ``STRAT_tie``, ``tie``

Layout ``face-names`` when the ``face_*`` / ``body_tie`` style is found, ``strat-names`` for the others, and
``single`` when the root is one subset directory itself (``<root>/{train,test}/trans_params.json``; the subset
is read from the root's name). Files are matched to ids by stem, any of .png / .jpg; a missing file is reported.

Manifest: samples ``<split>/{foreground,background,composite}/<subset>/<id>`` (``category`` = subset), one
``accessory`` tuple per id (``tuple_id`` ``<split>/<subset>/<id>``, ``setting`` = subset, ``source`` the json file,
``line`` the line of the id's key), and the extra table ``strat_params`` (``tuple_id``, ``subset``, ``split``, ``key``,
``init_vertex`` / ``final_vertex`` (8 values, x0 y0 ... x3 y3), ``homography`` (9 values, row-major),
``matrix_key`` (the spelling found), ``reproj_error_px``). Every homography is checked: it must map
``init_vertex`` onto ``final_vertex`` within 1 px (:func:`homography_error`); a sample where it does not is a
fail naming the json file, the line and the sample key (lenient: the tuple is dropped). Files of one sample that
are drawn in the background frame (background, composite, parses) must share one size; the foreground and its
mask likewise (foreground and background are not required to match: UNVERIFIED).

Example::

    vtondata prepare strat --root ~/data/STRAT
"""

from __future__ import annotations

import bisect
import json
import re
from pathlib import Path
from typing import Optional

import numpy as np

from ..findings import Report
from ..probe import AssetSpec, iter_files
from .base import Ingester, Scan, register, safe_relpath

SUBSETS = ("glasses", "hat", "tie")
SPLITS = ("train", "test")
DIR_NAMES = {
    "glasses": ("face_glasses", "STRAT-glasses", "STRAT_glasses", "glasses"),
    "hat": ("face_hat", "STRAT-hat", "STRAT_hat", "hat"),
    "tie": ("body_tie", "portrait_tie", "face_tie", "STRAT-tie", "STRAT_tie", "tie"),
}
_FACE_STYLE = {"face_glasses", "face_hat", "body_tie", "portrait_tie", "face_tie"}
PARSE_SPACE = {"glasses": "face12", "hat": "face12", "tie": "body8"}
MATRIX_KEYS = ("trans_matrix", "trans_matri")
MAX_ERROR_PX = 1.0
# folder -> (role, check, default extension, frame group, sample kind)
FOLDERS = {
    "foreground": ("foreground", "image", ".png", "fg", "foreground"),
    "foreground_mask": ("foreground_mask", "mask", ".png", "fg", "foreground"),
    "background": ("background", "image", ".jpg", "bg", "background"),
    "background_mask": ("background_parse", "parse", ".png", "bg", "background"),
    "composite": ("composite", "image", ".jpg", "bg", "composite"),
    "background_mask_comp": ("composite_parse", "parse", ".png", "bg", "composite"),
}
_ALIASES = {"composite": ("composite", "comp")}
_REQUIRED = ("foreground", "foreground_mask", "background")
_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


def as_points(v, n: int) -> np.ndarray:
    """4 (x, y) vertices (nested or flat) -> (4, 2) float64; a 3x3 matrix (nested or flat 9) -> (3, 3)."""
    a = np.asarray(v, dtype=np.float64)
    if a.size != n * (2 if n == 4 else 3) or not np.isfinite(a).all():
        raise ValueError(f"expected {'4 (x, y) points' if n == 4 else 'a 3x3 matrix'}, got shape {a.shape}")
    return a.reshape(n, -1)


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(N, 2) points -> (N, 2) points mapped by the 3x3 homography ``h`` (homogeneous division)."""
    p = np.c_[np.asarray(pts, np.float64), np.ones(len(pts))] @ np.asarray(h, np.float64).T
    w = p[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        return p[:, :2] / w


def homography_error(init_vertex, final_vertex, h) -> float:
    """Largest distance in pixels between ``h(init_vertex)`` and ``final_vertex`` over the 4 vertices (inf if degenerate)."""
    got = apply_homography(as_points(h, 3), as_points(init_vertex, 4))
    err = np.sqrt(((got - as_points(final_vertex, 4)) ** 2).sum(1))
    return float(err.max()) if np.isfinite(err).all() else float("inf")


def key_lines(text: str) -> dict[str, int]:
    """1-based line of the first occurrence of each JSON object key in ``text``."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    out: dict[str, int] = {}
    for m in _KEY.finditer(text):
        k = m.group(1)
        if k not in out:
            out[k] = bisect.bisect_right(starts, m.start())
    return out


def find_subsets(root: Path) -> dict[str, str]:
    """``{subset: directory relative to root}`` for the subsets present (first accepted name wins)."""
    found = {}
    for sub, names in DIR_NAMES.items():
        for name in names:
            if any((root / name / s / "trans_params.json").is_file() or (root / name / s).is_dir() for s in SPLITS):
                found[sub] = name
                break
    return found


def _single_subset(root: Path) -> Optional[str]:
    if not any((root / s / "trans_params.json").is_file() for s in SPLITS):
        return None
    low = root.name.lower()
    return next((s for s in SUBSETS if s in low), None)


@register
class Strat(Ingester):
    name = "strat"
    version = "1"
    layouts = ("face-names", "strat-names", "single")
    expected_sizes = {"*": {f"{sub}/{split}": n for sub in SUBSETS for split, n in (("train", 2000), ("test", 1000))}}
    size_unit = "pairs"

    def detect(self, root: Path) -> Optional[str]:
        found = find_subsets(root)
        if found:
            return "face-names" if any(d in _FACE_STYLE for d in found.values()) else "strat-names"
        if any((root / s / "trans_params.json").is_file() for s in SPLITS):
            return "single"
        return None

    def scan(self, root: Path, layout: str, report: Report) -> Scan:
        scan = Scan(layout=layout)
        if layout == "single":
            sub = _single_subset(root)
            if sub is None:
                report.fail("unknown-subset", f"cannot tell the STRAT subset from the folder name {root.name!r}",
                            file=str(root), fix="name the folder after its subset (glasses, hat or tie) or pass the "
                                                "parent folder that holds all three")
                return scan
            subsets = {sub: "."}
        else:
            subsets = find_subsets(root)
        scan.notes["subset_dirs"] = dict(subsets)
        rows = scan.tables.setdefault("strat_params", [])
        for sub, d in subsets.items():
            for split in SPLITS:
                base = split if d == "." else f"{d}/{split}"
                if not (root / base).is_dir():
                    report.warn("missing-split", f"{sub}: no {split}/ folder", file=base,
                                fix="extract the complete subset")
                    continue
                self._scan_split(root, sub, split, base, scan, rows, report)
        return scan

    def _scan_split(self, root: Path, sub: str, split: str, base: str, scan: Scan, rows: list, report: Report) -> None:
        tp = f"{base}/trans_params.json".removeprefix("./")
        try:
            text = (root / tp).read_text(encoding="utf-8-sig")
            params = json.loads(text)
        except FileNotFoundError:
            report.fail("missing-list", f"{sub}/{split}: missing trans_params.json", file=tp,
                        fix="restore trans_params.json from the release")
            return
        except (ValueError, UnicodeDecodeError) as exc:
            report.fail("bad-json", f"invalid JSON ({exc})", file=tp, fix="re-download trans_params.json")
            return
        scan.list_files.append(tp)
        if not isinstance(params, dict):
            report.fail("bad-trans-params", "trans_params.json must be an object keyed by sample id", file=tp, line=1,
                        fix="use the release's trans_params.json")
            return
        lines = key_lines(text)
        folders = {}
        for folder in FOLDERS:
            for alias in _ALIASES.get(folder, (folder,)):
                if (root / base / alias).is_dir():
                    folders[folder] = (alias, {f.rsplit(".", 1)[0]: f for f in iter_files(root, f"{base}/{alias}")})
                    break
        for folder in _REQUIRED:
            if folder not in folders:
                report.fail("missing-folder", f"required folder {folder}/ is missing", file=f"{base}/{folder}",
                            fix=f"extract the complete {sub} {split} tree of the release")
        space = PARSE_SPACE[sub]
        matrix_keys = set()
        for key, entry in params.items():
            line = lines.get(key)
            if safe_relpath(key) is None or "/" in key:
                report.fail("unsafe-path", f"sample key {key!r} is not a plain file name; refused, never read", file=tp,
                            line=line, fix="sample keys are image ids without '/' or '..'")
                continue
            tid = f"{split}/{sub}/{key}"
            ids = {kind: f"{split}/{kind}/{sub}/{key}" for kind in ("foreground", "background", "composite")}
            try:
                if not isinstance(entry, dict):
                    raise ValueError("the entry is not an object")
                mkey = next((k for k in MATRIX_KEYS if k in entry), None)
                if mkey is None or "init_vertex" not in entry or "final_vertex" not in entry:
                    raise ValueError("needs init_vertex, final_vertex and trans_matrix (or trans_matri)")
                init, final = as_points(entry["init_vertex"], 4), as_points(entry["final_vertex"], 4)
                h = as_points(entry[mkey], 3)
            except (ValueError, TypeError) as exc:
                report.fail("bad-trans-params", f"sample {key!r}: {exc}", file=tp, line=line, drops=(tid,),
                            fix="each sample holds init_vertex and final_vertex (4 x (x, y)) and a 3x3 trans_matrix")
                init = final = h = None
                mkey = None
            err = None
            if h is not None:
                matrix_keys.add(mkey)
                err = homography_error(init, final, h)
                if not err <= MAX_ERROR_PX:
                    report.fail("homography-mismatch", f"sample {key!r}: {mkey} maps init_vertex to {err:.2f} px from "
                                f"final_vertex (more than {MAX_ERROR_PX:g} px)", file=tp, line=line, drops=(tid,),
                                fix="recompute the matrix with cv2.findHomography(init_vertex, final_vertex) or drop "
                                    "the sample (prepare --lenient)")
                rows.append({"tuple_id": tid, "subset": sub, "split": split, "key": key,
                             "init_vertex": init.reshape(-1).tolist(), "final_vertex": final.reshape(-1).tolist(),
                             "homography": h.reshape(-1).tolist(), "matrix_key": mkey,
                             "reproj_error_px": err if np.isfinite(err) else None})
            has_comp = "composite" in folders or "background_mask_comp" in folders
            for kind in ("foreground", "background") + (("composite",) if has_comp else ()):
                scan.samples.append({"sample_id": ids[kind], "split": split, "kind": kind, "name": key,
                                     "item": key, "category": sub})
            for folder, (role, check, ext, group, kind) in FOLDERS.items():
                if folder not in folders:
                    continue
                alias, names = folders[folder]
                fname = names.get(key, key + ext)
                scan.assets.append(AssetSpec(
                    asset_id=f"{split}/{role}/{sub}/{key}", split=split, role=role, sample_id=ids[kind],
                    path=f"{base}/{alias}/{fname}".removeprefix("./"), check=check,
                    size_group=f"{group}:{tid}", label_space=space if check == "parse" else
                    ("binary" if check == "mask" else None)))
            scan.tuples.append({"tuple_id": tid, "split": split, "kind": "accessory", "setting": sub,
                                "foreground": ids["foreground"], "background": ids["background"],
                                "composite": ids["composite"] if has_comp else None, "source": tp, "line": line})
        if len(matrix_keys) > 0:
            scan.notes.setdefault("matrix_key", {})[f"{sub}/{split}"] = sorted(matrix_keys)

    def split_counts(self, scan: Scan) -> dict:
        counts: dict[str, int] = {}
        for t in scan.tuples:
            k = f"{t['setting']}/{t['split']}"
            counts[k] = counts.get(k, 0) + 1
        return counts
