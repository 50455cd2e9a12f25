"""DeepFashion In-shop (Liu et al. 2016) and the pose-transfer conventions built on it (PATN, ADGAN, GFLA,
DiOr, Pose-with-Style, 3D-GCL): same-person, different-pose pairs.

Layouts read (unchanged; ``docs/datasets.md`` section 4):

``inshop`` -- the In-shop Clothes Retrieval Benchmark as extracted::

    <root>/Img/img/<WOMEN|MEN>/<Category>/id_<8 digits>/<NN>_<v>_<view>.jpg    256x256 (img.zip)
          (also <root>/img/..., or img_highres/ in place of img/: the paths in the lists start with img/)
    <root>/Eval/list_eval_partition.txt   line 1 count, line 2 header, then "<image> <item_id> train|query|gallery"
    <root>/Anno/list_bbox_inshop.txt       line 1 count, line 2 header, then "<image> <clothes type> <pose type> x1 y1 x2 y2"
    <root>/Anno/list_landmarks_inshop.txt  same, then "<image> <clothes type> <variation type> [vis x y] x 4|6|8"

  Split ``train`` = status train; split ``test`` = query + gallery (25,882 / 26,830 images = 14,218 + 12,612).
  The release has no pair list: tuples are *derived* as every ordered pair of two images of the same person (item
  and NN) in the same split (the rule of PATN's ``make_pairs``), setting ``pose-transfer``, ``source`` = the partition file and ``line``
  = the target image's line. Bounding boxes, landmarks and the evaluation status go to the extra table
  ``inshop_annotations`` (one row per image: ``sample_id``, ``item``, ``evaluation_status``, ``clothes_type``,
  ``pose_type``, ``variation_type``, ``bbox`` [x1, y1, x2, y2], ``landmark_vis`` (0 visible, 1 occluded,
  2 truncated), ``landmark_x``, ``landmark_y``, ``source``, ``line``).

``fashion`` -- PATN / ADGAN (``fashion_data/``) and GFLA / DiOr roots::

    <root>/{train,test}/<flat name>.jpg           person images (PATN: 176x256 crops; GFLA / DiOr: img_highres copies)
    <root>/{train,test}.lst                       one flat name per line (48,674 / 4,038); optional
    <root>/fasion-resize-pairs-{train,test}.csv   PATN / ADGAN: header "from,to"
    <root>/fasion-pairs-{train,test}.csv          GFLA / DiOr: header ",from,to" (leading pandas index column)
    <root>/fasion-resize-annotation-{train,test}.csv | fasion-annotation-{train,test}.csv   keypoints (below)
    <root>/{train,test}M_lip/<stem>.png           DiOr LIP-20 parse (optional)

``pws`` -- Pose-with-Style's ``DATASET`` folder::

    <root>/DeepFashion_highres/{train,test}/<flat name>.jpg
    <root>/DeepFashion_highres/tools/{train,test}.lst, fashion-pairs-{train,test}.csv   (header "from,to")
    <root>/densepose/{train,test}/<stem>_iuv.png     DensePose, encoding pws_iuv (R = I, G = U*255, B = V*255)
    <root>/silhouette/{train,test}/<stem>_sil.png    foreground mask 0/255

``3dgcl`` -- 3D-GCL's ``Deepfashion_512_320``::

    <root>/image/<flat stem>.png   keypoints/<stem>_keypoints.json (OpenPose COCO-18)   parsing/<stem>_label.png (CIHP-20)
    <root>/{train,test}_psw512.csv (the code's names) or {train,test}_512.csv (the README's), header "from,to"

Flattened names (:func:`flatten_name` / :func:`unflatten_name`): ``img/WOMEN/Blouses_Shirts/id_00006350/04_1_front.jpg``
<-> ``fashionWOMENBlouses_Shirtsid0000635004_1front.jpg``. Sample ids are ``<split>/person/<flat stem>`` in every
layout (so In-shop and pose-transfer manifests join), asset ids ``<split>/<role>/<flat stem>``; samples carry
``gender``, ``category``, ``item`` = the person-in-clothes identity ``id_NNNNNNNN_NN`` (one model in one outfit; the
garment item is its ``id_NNNNNNNN`` prefix) and ``view`` (``front``, ``side``, ``back``, ``full``, ``additional``,
``flat``; view numbers 1, 2, 3, 4, 7, 6). A person with images in both train and test is reported (warn). Samples come from the split lists when present, else from the image folders.

Pairs (``kind = "pair"``, ``setting = "pose-transfer"``): ``person`` = source (``from``), ``target_person`` =
target (``to``), ``tuple_id`` ``<split>/pose-transfer/<from stem>__<to stem>``; a pair of two different items is
reported (warn), a name not in the split is a fail with file and line.

Keypoint CSVs (``name:keypoints_y:keypoints_x``, rows ``<name>: [y0, ..., y17]: [x0, ..., x17]``, -1 = missing, 18
COCO points): parsed (:func:`parse_keypoint_line`) into (18, 3) float32 ``x, y, visibility`` (missing = 0, 0, 0) and
written to the extra table ``keypoints`` (``sample_id``, ``keypoint_format`` coco18, ``keypoints`` = the 54 values
row-major, ``source``, ``line``); coordinates stay in the CSV's frame (PATN "resize" files: 176x256). A row with
no keypoint at all fails for samples used by a pair (lenient: the sample and its pairs are dropped) and is a
warning otherwise (PATN's CSVs list images the detector missed; its pair lists skip them). Likewise DensePose and
silhouettes are required for samples used by a pair, optional otherwise (Pose-with-Style's train pairs skip images
without a detection).

Decisions (UNVERIFIED in the docs): the In-shop derived pairs; ``Img/img`` vs ``img`` vs ``img_highres`` accepted;
landmark counts 4 / 6 / 8 accepted for any clothes type (a count that does not match the type is a warning);
header of the GFLA pair CSVs taken from the file (any header holding ``from`` and ``to``).

Example::

    vtondata prepare deepfashion --root ~/data/DeepFashion/fashion_data
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..errors import ListFileError
from ..findings import Report
from ..probe import AssetSpec, iter_files
from .base import Ingester, Scan, read_list, register

SPLITS = ("train", "test")
VIEWS = ("front", "side", "back", "full", "additional", "flat")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")

_FLAT = re.compile(r"^fashion(WOMEN|MEN)(.+?)id(\d{8})(\d{2})_(\d+)([A-Za-z]+)(\.[A-Za-z]+)?$")
_INSHOP = re.compile(r"^(?:(?:Img/)?(?:img|img_highres)/)?(WOMEN|MEN)/([^/]+)/id_(\d{8})/(\d{2})_(\d+)_([A-Za-z]+)"
                     r"(\.[A-Za-z]+)?$")


@dataclass(frozen=True)
class FashionName:
    """The fields of one DeepFashion image name."""

    gender: str      # WOMEN | MEN
    category: str    # e.g. Blouses_Shirts
    item: str        # id_00006350
    pose: str        # NN, e.g. 04
    view_no: str     # v, e.g. 1
    view: str        # front | side | back | full | additional | flat
    ext: str         # ".jpg" or ""

    @property
    def flat(self) -> str:
        return f"fashion{self.gender}{self.category}id{self.item[3:]}{self.pose}_{self.view_no}{self.view}{self.ext}"

    @property
    def inshop(self) -> str:
        return f"img/{self.gender}/{self.category}/{self.item}/{self.pose}_{self.view_no}_{self.view}{self.ext}"

    @property
    def person(self) -> str:
        """The person-in-clothes identity ``<item>_<NN>`` (one model in one outfit; pairs share it)."""
        return f"{self.item}_{self.pose}"


def parse_flat_name(name: str) -> Optional[FashionName]:
    """``fashionWOMENBlouses_Shirtsid0000635004_1front.jpg`` -> :class:`FashionName` (None if not of that form)."""
    m = _FLAT.match(name)
    if not m:
        return None
    g, cat, ident, pose, vno, view, ext = m.groups()
    return FashionName(g, cat, f"id_{ident}", pose, vno, view, ext or "")


def parse_inshop_path(path: str) -> Optional[FashionName]:
    """``img/WOMEN/Blouses_Shirts/id_00006350/04_1_front.jpg`` -> :class:`FashionName` (None if not of that form)."""
    m = _INSHOP.match(path)
    if not m:
        return None
    g, cat, ident, pose, vno, view, ext = m.groups()
    return FashionName(g, cat, f"id_{ident}", pose, vno, view, ext or "")


def flatten_name(path: str) -> str:
    """In-shop path -> pose-transfer flat name (PATN's ``generate_fashion_datasets`` rule)."""
    f = parse_inshop_path(path)
    if f is None:
        raise ListFileError(f"not a DeepFashion In-shop image path: {path!r}",
                            fix="expected img/<WOMEN|MEN>/<Category>/id_<8 digits>/<NN>_<v>_<view>.jpg")
    return f.flat


def unflatten_name(name: str) -> str:
    """Pose-transfer flat name -> In-shop path ``img/<GENDER>/<Category>/id_<8 digits>/<NN>_<v>_<view>.jpg``."""
    f = parse_flat_name(name)
    if f is None:
        raise ListFileError(f"not a DeepFashion flat name: {name!r}",
                            fix="expected fashion<WOMEN|MEN><Category>id<8 digits><NN>_<v><view>.jpg")
    return f.inshop


# --------------------------------------------------------------------------- keypoint CSVs

N_KP = 18


def parse_keypoint_line(text: str) -> tuple[str, np.ndarray]:
    """One row ``<name>: [y0..y17]: [x0..x17]`` -> ``(name, (18, 3) float32 x, y, visibility)``; -1 -> 0, 0, 0.

    Raises :class:`ListFileError` (no file / line: the caller adds them) for anything else.
    """
    parts = text.strip().split(":")
    if len(parts) != 3:
        raise ListFileError(f"expected 3 ':'-separated fields (name, keypoints_y, keypoints_x), found {len(parts)}")
    name = parts[0].strip()
    try:
        ys, xs = json.loads(parts[1]), json.loads(parts[2])
    except ValueError as exc:
        raise ListFileError(f"keypoint lists are not JSON lists ({exc})") from None
    if not (isinstance(ys, list) and isinstance(xs, list)) or len(ys) != N_KP or len(xs) != N_KP:
        raise ListFileError(f"expected two lists of {N_KP} numbers, found {len(ys) if isinstance(ys, list) else '?'} "
                            f"and {len(xs) if isinstance(xs, list) else '?'}")
    try:
        y = np.asarray(ys, np.float32)
        x = np.asarray(xs, np.float32)
    except (TypeError, ValueError):
        raise ListFileError("keypoint lists hold non-numbers") from None
    kp = np.zeros((N_KP, 3), np.float32)
    ok = (x != -1) & (y != -1)
    kp[ok, 0], kp[ok, 1], kp[ok, 2] = x[ok], y[ok], 1.0
    return name, kp


def read_keypoint_csv(path) -> dict[str, np.ndarray]:
    """A whole keypoint CSV -> ``{name: (18, 3) array}``; the first bad line raises naming file and line."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if not lines or [c.strip() for c in lines[0].split(":")] != ["name", "keypoints_y", "keypoints_x"]:
        raise ListFileError("missing header 'name:keypoints_y:keypoints_x'", file=path, line=1,
                            fix="keypoint CSVs start with the header line written by PATN's compute_coordinates")
    for i, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        try:
            name, kp = parse_keypoint_line(raw)
        except ListFileError as exc:
            raise ListFileError(exc.message, file=path, line=i, fix="each row is '<name>: [18 y]: [18 x]'") from None
        out[name] = kp
    return out


def keypoints_from_row(row) -> np.ndarray:
    """A ``keypoints`` table row (a mapping with ``keypoints``) or its 54 values -> (18, 3) float32 x, y, vis."""
    vals = row["keypoints"] if hasattr(row, "keys") else row
    return np.asarray(vals, np.float32).reshape(N_KP, 3)


# --------------------------------------------------------------------------- the ingester

_PAIR_CSVS = {
    "fashion": ("fasion-resize-pairs-{s}.csv", "fasion-pairs-{s}.csv", "fashion-pairs-{s}.csv"),
    "pws": ("DeepFashion_highres/tools/fashion-pairs-{s}.csv",),
    "3dgcl": ("{s}_psw512.csv", "{s}_512.csv"),
}
_KP_CSVS = ("fasion-resize-annotation-{s}.csv", "fasion-annotation-{s}.csv")
_LISTS = {"fashion": "{s}.lst", "pws": "DeepFashion_highres/tools/{s}.lst"}
_IMAGE_DIRS = {"fashion": "{s}", "pws": "DeepFashion_highres/{s}", "3dgcl": "image"}


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


@register
class DeepFashion(Ingester):
    name = "deepfashion"
    version = "1"
    layouts = ("inshop", "fashion", "pws", "3dgcl")
    expected_sizes = {"inshop": {"train": 25882, "test": 26830},
                      "fashion": {"train": 48674, "test": 4038}, "pws": {"train": 48674, "test": 4038}}
    size_unit = "person images"
    native_size = None

    def detect(self, root: Path) -> Optional[str]:
        if (root / "Eval" / "list_eval_partition.txt").is_file():
            return "inshop"
        if any((root / "DeepFashion_highres" / s).is_dir() for s in SPLITS + ("tools",)):
            return "pws"
        if (root / "image").is_dir() and any((root / p.format(s=s)).is_file() for p in _PAIR_CSVS["3dgcl"]
                                             for s in SPLITS):
            return "3dgcl"
        marks = [p.format(s=s) for s in SPLITS for p in _PAIR_CSVS["fashion"] + _KP_CSVS + ("{s}.lst",)]
        if any((root / s).is_dir() for s in SPLITS) and any((root / m).is_file() for m in marks):
            return "fashion"
        return None

    # ---------------------------------------------------------------- shared pieces

    @staticmethod
    def _sample(split: str, stem: str, unknown: list) -> dict:
        f = parse_flat_name(stem)
        if f is None:
            unknown.append(stem)
        return {"sample_id": f"{split}/person/{stem}", "split": split, "kind": "person", "name": stem,
                "item": f.person if f else None, "view": f.view if f else None, "category": f.category if f else None,
                "gender": f.gender if f else None}

    @staticmethod
    def _warn_unknown(unknown: list, report: Report, where: str) -> None:
        if unknown:
            report.warn("unrecognised-name", f"{len(unknown)} image names do not follow the DeepFashion convention "
                        f"(e.g. {unknown[0]!r}); gender / category / item / view left empty", file=where,
                        fix="expected fashion<WOMEN|MEN><Category>id<8 digits><NN>_<v><view>")

    def _read_names(self, root: Path, rel: str, report: Report) -> list[tuple[int, str]]:
        return [(line, cols[0]) for line, cols in read_list(root, rel, report, ncols=1, path_cols=(0,),
                                                            what="one image name per line")]

    def _read_pairs(self, root: Path, rel: str, report: Report) -> Iterator[tuple[int, str, str]]:
        try:
            first = next((ln for ln in (root / rel).read_text(encoding="utf-8-sig").splitlines() if ln.strip()), "")
        except (OSError, UnicodeDecodeError) as exc:
            report.fail("bad-list", f"cannot read the pair list ({exc})", file=rel, fix="re-download the pair CSV")
            return
        header = [c.strip().strip('"') for c in first.split(",")]
        if "from" not in header or "to" not in header:
            report.fail("malformed-header", f"pair CSV header must name the columns 'from' and 'to', found {first[:60]!r}",
                        file=rel, line=1, fix="the first line is 'from,to' (PATN, Pose-with-Style, 3D-GCL) or "
                                               "',from,to' (GFLA / DiOr, pandas index column)")
            return
        fi, ti = header.index("from"), header.index("to")
        for line, cols in read_list(root, rel, report, ncols=len(header), sep=",", skip=1, path_cols=(fi, ti),
                                    what=f"{len(header)} comma-separated columns ({first.strip()})"):
            yield line, cols[fi].strip('"'), cols[ti].strip('"')

    def _add_pairs(self, root: Path, split: str, rel: str, by_name: dict, scan: Scan, report: Report) -> set:
        """Pair tuples from one CSV; returns the sample ids used by a pair."""
        scan.list_files.append(rel)
        used: set = set()
        seen: set = set()
        cross, dup = [], 0
        for line, a, b in self._read_pairs(root, rel, report):
            missing = [x for x in (a, b) if x not in by_name]
            if missing:
                report.fail("pair-unresolved", f"{missing[0]} is not a {split} image of this root", file=rel, line=line,
                            fix="the pair list and the image folders / split lists must come from the same release")
                continue
            sa, sb = by_name[a], by_name[b]
            tid = f"{split}/pose-transfer/{_stem(a)}__{_stem(b)}"
            if tid in seen:
                dup += 1
                continue
            seen.add(tid)
            fa, fb = parse_flat_name(_stem(a)), parse_flat_name(_stem(b))
            if fa and fb and (fa.gender, fa.category, fa.person) != (fb.gender, fb.category, fb.person):
                cross.append(line)
            used.update((sa, sb))
            scan.tuples.append({"tuple_id": tid, "split": split, "kind": "pair", "setting": "pose-transfer",
                                "person": sa, "target_person": sb, "source": rel, "line": line})
        if cross:
            report.warn("pair-not-same-person", f"{len(cross)} pairs join two different persons (item and NN; first at "
                        f"line {cross[0]});"
                        " pose-transfer pairs are the same person in two poses", file=rel, line=cross[0],
                        fix="check that this is the pair list of the release")
        if dup:
            scan.notes.setdefault("duplicate_pairs", {})[rel] = dup
            report.warn("duplicate-pairs", f"{dup} repeated pairs ignored", file=rel, fix="harmless; kept once")
        return used

    def _add_keypoints(self, root: Path, split: str, rel: str, by_name: dict, used: set, scan: Scan,
                       report: Report) -> None:
        scan.list_files.append(rel)
        rows = scan.tables.setdefault("keypoints", [])
        empty_unused: list[int] = []
        have = set()
        text_lines = list(read_list(root, rel, report, ncols=3, sep=":", what="'<name>: [18 y]: [18 x]'"))
        if not text_lines:
            return
        first_line, first_cols = text_lines[0]
        if first_line == 1 and [c.strip() for c in first_cols] == ["name", "keypoints_y", "keypoints_x"]:
            text_lines = text_lines[1:]
        else:
            report.warn("missing-header", "keypoint CSV has no header 'name:keypoints_y:keypoints_x'", file=rel, line=1,
                        fix="pandas.read_csv(sep=':') would take the first row as the header")
        for line, cols in text_lines:
            try:
                name, kp = parse_keypoint_line(":".join(cols))
            except ListFileError as exc:
                report.fail("malformed-line", exc.message, file=rel, line=line,
                            fix="each row is '<name>: [18 y values]: [18 x values]', -1 for a missing point")
                continue
            sid = by_name.get(name)
            if sid is None:
                continue
            have.add(sid)
            if not kp[:, 2].any():
                if sid in used:
                    report.fail("pose-empty", f"no keypoint detected for {name}, which a pair uses", file=rel, line=line,
                                drops=(sid,), fix="drop the pairs of this image (prepare --lenient) or re-run the "
                                                  "keypoint detector")
                else:
                    empty_unused.append(line)
            rows.append({"sample_id": sid, "keypoint_format": "coco18",
                         "keypoints": [float(v) for v in kp.reshape(-1)], "source": rel, "line": line})
        if empty_unused:
            report.warn("pose-empty", f"{len(empty_unused)} images have no keypoint at all (first at line "
                        f"{empty_unused[0]}); no pair uses them", file=rel, line=empty_unused[0],
                        fix="as released (the detector missed them); pose-conditioned use must skip them")
        lacking = [s for s in used if s not in have]
        if lacking:
            report.warn("pose-missing", f"{len(lacking)} images used by pairs have no keypoint row "
                        f"(e.g. {sorted(lacking)[0]})", file=rel, fix="use the keypoint CSV of the same release")

    # ---------------------------------------------------------------- scan

    def scan(self, root: Path, layout: str, report: Report) -> Scan:
        scan = Scan(layout=layout)
        if layout == "inshop":
            self._scan_inshop(root, scan, report)
        else:
            self._scan_fashion(root, layout, scan, report)
        return scan

    def _scan_fashion(self, root: Path, layout: str, scan: Scan, report: Report) -> None:
        unknown: list = []
        for split in SPLITS:
            img_dir = _IMAGE_DIRS[layout].format(s=split)
            pair_rel = next((p.format(s=split) for p in _PAIR_CSVS[layout] if (root / p.format(s=split)).is_file()), None)
            # the person images of this split
            names: list[tuple[Optional[int], str]] = []
            src = None
            if layout == "3dgcl":
                if pair_rel is None:
                    continue
                seen: set = set()
                for _, a, b in self._read_pairs(root, pair_rel, Report()):  # faults are reported by _add_pairs
                    for x in (a, b):
                        if x not in seen:
                            seen.add(x)
                            names.append((None, x))
            else:
                lst = _LISTS[layout].format(s=split)
                if (root / lst).is_file():
                    src = lst
                    scan.list_files.append(lst)
                    names = self._read_names(root, lst, report)
                elif (root / img_dir).is_dir():
                    names = [(None, n) for n in iter_files(root, img_dir, IMAGE_EXTS)]
                if not names and not (root / img_dir).is_dir():
                    continue
                if src and (root / img_dir).is_dir():
                    listed = {n for _, n in names}
                    extra = [n for n in iter_files(root, img_dir, IMAGE_EXTS) if n not in listed]
                    if extra:
                        report.warn("unlisted-images", f"{len(extra)} images in {img_dir}/ are not in {src} "
                                    f"(e.g. {extra[0]}); ignored", file=img_dir, fix="harmless")
            by_name: dict[str, str] = {}  # listed name and its stem -> sample id
            members: dict[str, str] = {}  # stem -> file name
            for line, n in names:
                stem = _stem(n)
                if stem in members:
                    if line is not None:
                        report.warn("duplicate-entry", f"{n} is listed twice; kept once", file=src, line=line,
                                    fix="harmless")
                    continue
                members[stem] = n if "." in n else n + ".jpg"
                by_name[n] = by_name[stem] = f"{split}/person/{stem}"
                scan.samples.append(self._sample(split, stem, unknown))
            used: set = set()
            if pair_rel:
                used = self._add_pairs(root, split, pair_rel, by_name, scan, report)
                scan.notes.setdefault("pair_lists", {})[split] = pair_rel
            kp_rel = next((p.format(s=split) for p in _KP_CSVS if (root / p.format(s=split)).is_file()), None)
            if kp_rel and layout == "fashion":
                self._add_keypoints(root, split, kp_rel, by_name, used, scan, report)
                scan.notes.setdefault("keypoint_csvs", {})[split] = kp_rel
            self._declare_assets(root, layout, split, img_dir, members, used, scan)
        self._warn_unknown(unknown, report, str(root))
        self._identity_overlap(scan, report, None)
        if layout == "fashion":
            resize = any("resize" in v for v in scan.notes.get("pair_lists", {}).values())
            scan.notes["convention"] = "PATN/ADGAN (fasion-resize-*)" if resize else "GFLA/DiOr (fasion-*)"

    def _declare_assets(self, root: Path, layout: str, split: str, img_dir: str, members: dict, used: set,
                        scan: Scan) -> None:
        resize = layout == "fashion" and any((root / p.format(s=split)).is_file() for p in ("fasion-resize-pairs-{s}.csv",
                                                                                           "fasion-resize-annotation-{s}.csv"))
        lip = f"{split}M_lip"
        extras = []  # (folder, role, check, suffix, label space / format, encoding, required-for-used-only)
        if layout == "pws":
            if (root / "densepose" / split).is_dir():
                extras.append((f"densepose/{split}", "densepose", "densepose", "_iuv.png", None, "pws_iuv"))
            if (root / "silhouette" / split).is_dir():
                extras.append((f"silhouette/{split}", "silhouette", "mask", "_sil.png", "binary", None))
        elif layout == "fashion" and (root / lip).is_dir():
            extras.append((lip, "parse", "parse", ".png", "lip20", None))
        elif layout == "3dgcl":
            extras.append(("keypoints", "pose", "pose", "_keypoints.json", "coco18", None))
            if (root / "parsing").is_dir():
                extras.append(("parsing", "parse", "parse", "_label.png", "cihp20", None))
        for stem, fname in members.items():
            sid = f"{split}/person/{stem}"
            scan.assets.append(AssetSpec(asset_id=f"{split}/person/{stem}", split=split, role="person", sample_id=sid,
                                         path=f"{img_dir}/{fname}", check="image",
                                         size_group="image" if resize else None))
            for folder, role, check, suffix, space, enc in extras:
                scan.assets.append(AssetSpec(
                    asset_id=f"{split}/{role}/{stem}", split=split, role=role, sample_id=sid,
                    path=f"{folder}/{stem}{suffix}", check=check,
                    size_group=None if check == "pose" or not resize else "image",
                    label_space=space if check in ("parse", "mask") else None,
                    keypoint_format=space if check == "pose" else None, encoding=enc,
                    required=sid in used))

    # ---------------------------------------------------------------- In-shop

    def _scan_inshop(self, root: Path, scan: Scan, report: Report) -> None:
        part = "Eval/list_eval_partition.txt"
        scan.list_files.append(part)
        base = next((b for b in ("Img/img", "img", "Img/img_highres", "img_highres") if (root / b).is_dir()), None)
        if base is None:
            report.fail("missing-folder", "no image folder (Img/img/, img/ or img_highres/) next to Eval/", file=str(root),
                        fix="extract Img/img.zip (or img_highres.zip) inside the benchmark folder")
            base = "Img/img"
        scan.notes["image_dir"] = base
        highres = "highres" in base
        if not highres:
            self.native_size = (256, 256)
        self._check_count_header(root, part, "image_name", report)
        unknown: list = []
        by_path: dict[str, str] = {}
        by_item: dict = defaultdict(list)
        ann: dict[str, dict] = {}
        for line, (path, item, status) in read_list(root, part, report, ncols=3, skip=2, path_cols=(0,),
                                                    what="'<image> <item_id> <train|query|gallery>'"):
            if status not in ("train", "query", "gallery"):
                report.fail("malformed-line", f"evaluation status {status!r} is not train, query or gallery", file=part,
                            line=line, fix="use the list_eval_partition.txt of the release")
                continue
            split = "train" if status == "train" else "test"
            f = parse_inshop_path(path)
            stem = f.flat.rsplit(".", 1)[0] if f else _stem(path).replace("/", "_")
            if f is None:
                unknown.append(path)
            sid = f"{split}/person/{stem}"
            if path in by_path:
                report.fail("duplicate-entry", f"{path} is listed twice", file=part, line=line, fix="delete one line")
                continue
            by_path[path] = sid
            if f and f.item != item:
                report.warn("item-mismatch", f"item column {item!r} differs from the folder {f.item!r}", file=part,
                            line=line, fix="as released; the folder id is used")
            scan.samples.append({"sample_id": sid, "split": split, "kind": "person", "name": stem,
                                 "item": f.person if f else item, "view": f.view if f else None,
                                 "category": f.category if f else None, "gender": f.gender if f else None})
            rel = path.split("/", 1)[1] if path.startswith("img/") else path
            scan.assets.append(AssetSpec(asset_id=f"{split}/person/{stem}", split=split, role="person", sample_id=sid,
                                         path=f"{base}/{rel}", check="image",
                                         size_group=None if highres else "image"))
            by_item[(split, (f.gender, f.category, f.person) if f else item)].append((line, sid, stem))
            ann[sid] = {"sample_id": sid, "item": item, "evaluation_status": status, "source": part, "line": line}
        self._warn_unknown(unknown, report, part)
        for (split, _), members in by_item.items():
            for _, sa, a in members:
                for lb, sb, b in members:
                    if sa != sb:
                        scan.tuples.append({"tuple_id": f"{split}/pose-transfer/{a}__{b}", "split": split, "kind": "pair",
                                            "setting": "pose-transfer", "person": sa, "target_person": sb,
                                            "source": part, "line": lb})
        self._inshop_annotations(root, by_path, ann, scan, report)
        scan.tables["inshop_annotations"] = list(ann.values())
        scan.notes["pairs"] = "derived: ordered pairs of two images of the same person (item and NN) within a split"
        self._identity_overlap(scan, report, part)

    @staticmethod
    def _check_count_header(root: Path, rel: str, header_word: str, report: Report) -> None:
        try:
            lines = (root / rel).read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError):
            return  # read_list reports it
        if not lines:
            return
        rows = sum(1 for ln in lines[2:] if ln.strip())
        first = lines[0].strip()
        if not first.isdigit():
            report.fail("malformed-line", f"line 1 must be the number of entries, found {first[:40]!r}", file=rel, line=1,
                        fix="keep the count line and the header line of the release")
        elif int(first) != rows:
            report.warn("count-mismatch", f"line 1 announces {first} entries, the file holds {rows}", file=rel, line=1,
                        fix="the list may be truncated: re-download it")
        if len(lines) < 2 or not lines[1].strip().startswith(header_word):
            report.fail("malformed-line", f"line 2 must be the header starting with {header_word!r}", file=rel, line=2,
                        fix="keep the count line and the header line of the release")

    def _inshop_annotations(self, root: Path, by_path: dict, ann: dict, scan: Scan, report: Report) -> None:
        bbox_rel, lm_rel = "Anno/list_bbox_inshop.txt", "Anno/list_landmarks_inshop.txt"
        if (root / bbox_rel).is_file():
            scan.list_files.append(bbox_rel)
            self._check_count_header(root, bbox_rel, "image_name", report)
            for line, cols in read_list(root, bbox_rel, report, ncols=7, skip=2, path_cols=(0,),
                                        what="'<image> <clothes type> <pose type> x1 y1 x2 y2'"):
                sid = by_path.get(cols[0])
                try:
                    vals = [int(c) for c in cols[1:]]
                except ValueError:
                    report.fail("malformed-line", f"non-integer value in {cols[1:]}", file=bbox_rel, line=line,
                                fix="columns 2-7 are integers")
                    continue
                if sid is None:
                    continue
                ann[sid].update(clothes_type=vals[0], pose_type=vals[1], bbox=vals[2:])
        if (root / lm_rel).is_file():
            scan.list_files.append(lm_rel)
            self._check_count_header(root, lm_rel, "image_name", report)
            n_for_type = {1: 6, 2: 4, 3: 8}
            odd = []
            for line, cols in read_list(root, lm_rel, report, ncols=(15, 21, 27), skip=2, path_cols=(0,),
                                        what="'<image> <clothes type> <variation type>' + 4, 6 or 8 x 'vis x y'"):
                try:
                    ctype, vtype = int(cols[1]), int(cols[2])
                    trip = np.asarray([float(c) for c in cols[3:]], np.float32).reshape(-1, 3)
                except ValueError:
                    report.fail("malformed-line", "non-numeric landmark values", file=lm_rel, line=line,
                                fix="columns 2 and up are numbers")
                    continue
                if n_for_type.get(ctype) != len(trip):
                    odd.append(line)
                sid = by_path.get(cols[0])
                if sid is None:
                    continue
                ann[sid].update(variation_type=vtype, landmark_vis=trip[:, 0].astype(int).tolist(),
                                landmark_x=trip[:, 1].tolist(), landmark_y=trip[:, 2].tolist())
                ann[sid].setdefault("clothes_type", ctype)
            if odd:
                report.warn("landmark-count", f"{len(odd)} lines have a landmark count that does not match the clothes "
                            f"type (6 upper / 4 lower / 8 full; first at line {odd[0]})", file=lm_rel, line=odd[0],
                            fix="as released; the landmarks are kept")
        keys = ("clothes_type", "pose_type", "bbox", "variation_type", "landmark_vis", "landmark_x", "landmark_y")
        for row in ann.values():
            for k in keys:
                row.setdefault(k, None)

    @staticmethod
    def _identity_overlap(scan: Scan, report: Report, where: Optional[str]) -> None:
        splits: dict = defaultdict(set)
        for s in scan.samples:
            if s["item"]:
                splits[(s["gender"], s["category"], s["item"])].add(s["split"])
        both = sorted(k for k, v in splits.items() if len(v) > 1)
        if both:
            report.warn("train-test-identity-overlap", f"{len(both)} persons (item and NN) have images in both train and "
                        f"test, e.g. {'/'.join(both[0])}", file=where,
                        fix="pose-transfer test scores on these persons are not held-out")
        elif splits:
            report.good("identities", f"{len(splits)} persons (item and NN), none in both train and test")

    def split_counts(self, scan: Scan) -> dict:
        counts: dict[str, int] = {}
        for s in scan.samples:
            counts[s["split"]] = counts.get(s["split"], 0) + 1
        return counts
