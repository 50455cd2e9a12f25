"""VITON (Han et al. 2018): Zalando women's tops, the original release and its CP-VTON / CP-VTON+ repackagings.

Layouts read (unchanged; ``vtondata prepare viton`` detects which one a root holds and records it):

``original`` -- the authors' release (xthan/VITON README)::

    <root>/women_top/NNNNNN_0.jpg            reference person, 762x1100 (WxH)
    <root>/women_top/NNNNNN_1.jpg            its in-shop top
    <root>/segment/NNNNNN_0.mat              LIP parse (variable ``segment``), 641x641, stored transposed and
                                             padded to a square; :func:`read_segment_mat` undoes it
    <root>/pose/NNNNNN_0.mat                 OpenPose (Realtime Multi-Person) ``subset`` / ``candidate``
    <root>/pose.pkl                          the same poses for every person in one pickle (either is enough)
    <root>/viton_train_pairs.txt             "NNNNNN_0.jpg NNNNNN_1.jpg", space separated, no header
    <root>/viton_test_pairs.txt              person with a *different* top (the unpaired test setting)

``cpvton`` -- CP-VTON's ``viton_resize`` at 256x192 (sergeywong/cp-vton convert_data.m)::

    <root>/train_pairs.txt  test_pairs.txt
    <root>/{train,test}/image/NNNNNN_0.jpg                 person, 192x256 JPEG
                        cloth/NNNNNN_1.jpg                 in-shop top
                        cloth-mask/NNNNNN_1.jpg            top mask, JPEG (noise near 0 / 255 is accepted)
                        image-parse/NNNNNN_0.png           LIP parse: palette ids, or an RGB LIP-colour PNG
                        pose/NNNNNN_0_keypoints.json       old OpenPose JSON (``pose_keypoints``), COCO-18

``cpvtonplus`` -- CP-VTON+ (minar09/cp-vton-plus) adds, per split::

                        image-parse-new/NNNNNN_0.png       corrected parse, grey ids, 10 = neck (CIHP ids)
                        image-mask/NNNNNN_0.png            body mask ({0, 1, 254, 255} in the release)

  and optionally ``test_pairs_same.txt`` (the paired test list). In this layout ``image-parse-new`` is the
  ``parse`` (what the CP-VTON+ loader reads) and the older ``image-parse`` is kept as ``parse_vis``.
  ``warp-cloth/`` and ``warp-mask/`` are model outputs, not dataset files, and are ignored.

Settings: training pairs are paired (a person with its own top). ``test_pairs.txt`` / ``viton_test_pairs.txt``
is the *unpaired* test setting; the *paired* test setting pairs each test person ``NNNNNN_0`` with its own top
``NNNNNN_1`` (from ``test_pairs_same.txt`` when present, otherwise derived from the folders). Sizes on the
full release: 14,221 train / 2,032 test pairs. VITON's train and test overlap in content: the doctor warns
and names every test image whose bytes equal a train image.

Example::

    vtondata prepare viton --root ~/data/viton_resize          # train/ test/ train_pairs.txt test_pairs.txt
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import PoseFormatError, VtonDataError
from ..findings import Report
from ..probe import AssetSpec, iter_files
from .base import Ingester, Scan, read_list, register

SPLITS = ("train", "test")
_IMG = (".jpg", ".jpeg", ".png")
#: the parser's padded square (xthan/VITON README: "these segmentation maps are 641x641")
SEGMENT_SIDE = 641

# folder -> (role, check, name suffix ("" = same name), label space / keypoint format, required)
_PERSON = {
    "cpvton": {
        "image": ("person", "image", "", None, True),
        "image-parse": ("parse", "parse", ".png", "lip20", True),
        "pose": ("pose", "pose", "_keypoints.json", "coco18", True),
    },
    "cpvtonplus": {
        "image": ("person", "image", "", None, True),
        "image-parse-new": ("parse", "parse", ".png", "cihp20", True),
        "image-parse": ("parse_vis", "parse", ".png", "lip20", False),
        "image-mask": ("person_mask", "mask", ".png", "binary", True),
        "pose": ("pose", "pose", "_keypoints.json", "coco18", True),
    },
}
_GARMENT = {"cloth": ("garment", "image", "", None, True),
            "cloth-mask": ("garment_mask", "mask", "", "binary", True)}
_LISTS = {"original": {"train": "viton_train_pairs.txt", "test": "viton_test_pairs.txt"},
          "cpvton": {"train": "train_pairs.txt", "test": "test_pairs.txt"}}
_LISTS["cpvtonplus"] = _LISTS["cpvton"]
PAIRED_TEST_LIST = "test_pairs_same.txt"


# --------------------------------------------------------------------------- readers of the original release


def read_segment_mat(path, width: int, height: int) -> np.ndarray:
    """VITON ``segment/*.mat`` -> ``height x width`` uint8 LIP ids (0-19) aligned with the person image.

    The parser ran on the image padded to a 641x641 square and the map was stored transposed
    (xthan/VITON prepare_data/build_viton.py ``_process_segment_map``): transpose, keep the first
    ``int(641 * w / h)`` columns (portrait) or rows (landscape), nearest-resize to ``(h, w)``.
    """
    from PIL import Image
    from scipy.io import loadmat

    try:
        seg = loadmat(str(path))["segment"]
    except (OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise VtonDataError(f"not a VITON segment .mat ({type(exc).__name__}: {exc})", file=path,
                            fix="re-extract segment/ from the release (MATLAB files with variable 'segment')"
                            ) from None
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise VtonDataError(f"segment array has shape {seg.shape}, expected a 2-D map", file=path,
                            fix="re-extract segment/ from the release")
    seg = np.ascontiguousarray(seg.T).astype(np.uint8)
    if height > width:
        seg = seg[:, : int(seg.shape[1] * float(width) / float(height))]
    else:
        seg = seg[: int(seg.shape[0] * float(height) / float(width)), :]
    return np.asarray(Image.fromarray(seg).resize((int(width), int(height)), Image.NEAREST))


def pose_from_subset(subset, candidate) -> np.ndarray:
    """Realtime Multi-Person pose (``subset`` row of 18+ candidate indices, -1 = missing; ``candidate`` rows
    ``x, y, score, id``) -> ``18 x 3`` float32 COCO-18 (x, y, confidence), missing joints ``0, 0, 0``."""
    sub = np.asarray(subset, np.float64).reshape(-1) if np.ndim(subset) < 2 else np.asarray(subset, np.float64)[0]
    cand = np.asarray(candidate, np.float64).reshape(-1, np.shape(candidate)[-1]) if np.size(candidate) else \
        np.zeros((0, 3))
    out = np.zeros((18, 3), np.float32)
    for i in range(18):
        j = int(sub[i]) if i < len(sub) else -1
        if 0 <= j < len(cand):
            out[i] = cand[j, :3]
    return out


def read_pose_mat(path) -> np.ndarray:
    """VITON ``pose/*.mat`` (``subset`` / ``candidate``, top level or in a struct ``pose``) -> ``18 x 3`` float32."""
    from scipy.io import loadmat

    try:
        d = loadmat(str(path), squeeze_me=False, struct_as_record=False)
    except (OSError, ValueError, NotImplementedError) as exc:
        raise PoseFormatError(f"not a MATLAB pose file ({exc})", file=path, fix="re-extract pose/ from the release")
    if "subset" not in d:
        structs = [v for k, v in d.items() if not k.startswith("__") and hasattr(np.ravel(v)[0], "subset")]
        if not structs:
            raise PoseFormatError("no 'subset' / 'candidate' in the pose file", file=path,
                                  fix="VITON pose files hold the Realtime Multi-Person 'subset' and 'candidate'")
        s = np.ravel(structs[0])[0]
        d = {"subset": s.subset, "candidate": s.candidate}
    return pose_from_subset(d["subset"], d["candidate"])


class _PoseUnpickler(pickle.Unpickler):
    """Only numpy arrays and plain containers: a downloaded pickle never runs code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("codecs", "encode"),
                ("collections", "OrderedDict")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a pose pickle")


def read_pose_pkl(path) -> dict:
    """VITON ``pose.pkl`` -> ``{person stem: 18 x 3 float32}`` (loaded without running any pickled code)."""
    try:
        with open(path, "rb") as fh:
            obj = _PoseUnpickler(fh, encoding="latin1").load()
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise PoseFormatError(f"unreadable pose pickle ({type(exc).__name__}: {exc})", file=path,
                              fix="re-download pose.pkl from the release") from None
    if not isinstance(obj, dict):
        raise PoseFormatError(f"pose.pkl holds a {type(obj).__name__}, expected a dict", file=path,
                              fix="re-download pose.pkl from the release")
    out = {}
    for key, val in obj.items():
        k = key.decode() if isinstance(key, bytes) else str(key)
        k = k.rsplit(".", 1)[0] if k.endswith((".jpg", ".png")) else k
        try:
            get = (lambda n: val[n]) if isinstance(val, dict) else (lambda n: getattr(val, n))
            out[k] = pose_from_subset(get("subset"), get("candidate"))
        except (KeyError, AttributeError, IndexError, TypeError, ValueError):
            raise PoseFormatError(f"entry {k!r} has no usable 'subset' / 'candidate'", file=path,
                                  fix="re-download pose.pkl from the release") from None
    return out


# --------------------------------------------------------------------------- the ingester


def _own_cloth(person_stem: str) -> str:
    """``NNNNNN_0`` -> ``NNNNNN_1`` (the top the person wears)."""
    return person_stem[:-2] + "_1" if person_stem.endswith("_0") else person_stem


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


@register
class Viton(Ingester):
    name = "viton"
    version = "1"
    layouts = ("original", "cpvton", "cpvtonplus")
    expected_sizes = {"*": {"train": 14221, "test": 2032}}
    size_unit = "pairs"
    native_size = (192, 256)
    NATIVE = {"original": (762, 1100), "cpvton": (192, 256), "cpvtonplus": (192, 256)}

    def detect(self, root: Path) -> Optional[str]:
        if (root / "women_top").is_dir() or (root / "viton_train_pairs.txt").is_file() \
                or (root / "viton_test_pairs.txt").is_file():
            return "original"
        for split in SPLITS:
            d = root / split
            if (d / "image").is_dir() and (d / "cloth").is_dir() and \
                    ((d / "pose").is_dir() or (d / "image-parse").is_dir() or (d / "image-parse-new").is_dir()):
                plus = (d / "image-parse-new").is_dir() or (d / "image-mask").is_dir()
                return "cpvtonplus" if plus else "cpvton"
        return None

    def scan(self, root: Path, layout: str, report: Report) -> Scan:
        self.native_size = self.NATIVE[layout]
        scan = Scan(layout=layout)
        scan.notes["native_size"] = list(self.native_size)
        self._sample_ids: set[str] = set()  # rows go straight to scan.samples (on disk under prepare)
        self._assets: set[str] = set()  # asset ids declared (each spec goes straight to scan.assets)
        self._scan = scan
        if layout == "original":
            self._scan_original(root, scan, report)
        else:
            self._scan_cpvton(root, layout, scan, report)
        self._sample_ids, self._assets, self._scan = set(), set(), None
        return scan

    # ------------------------------------------------------------------ shared helpers

    def _sample(self, split: str, kind: str, stem: str) -> str:
        sid = f"{split}/{kind}/{stem}"
        if sid not in self._sample_ids:
            self._sample_ids.add(sid)
            self._scan.samples.append({"sample_id": sid, "split": split, "kind": kind, "name": stem,
                                       "item": stem.rsplit("_", 1)[0], "view": "front", "category": "upper_body"})
        return sid

    def _asset(self, split: str, role: str, stem: str, sid: str, path: str, check: str, space=None,
               encoding=None, size_group: Optional[str] = "image", required: bool = True) -> None:
        aid = f"{split}/{role}/{stem}"
        if aid in self._assets:
            return
        self._assets.add(aid)
        self._scan.assets.append(AssetSpec(
            asset_id=aid, split=split, role=role, sample_id=sid, path=path, check=check,
            size_group=size_group if check in ("image", "mask", "parse") else None,
            label_space=space if check in ("parse", "mask", "file") and role != "pose" else None,
            keypoint_format=space if role == "pose" else None, encoding=encoding, required=required))

    def _tuple(self, scan: Scan, split: str, person: str, garment: str, source, line) -> None:
        setting = "paired" if _own_cloth(person) == garment else "unpaired"
        tid = f"{split}/{setting}/{person}__{garment}"  # repeats: dropped (listed ones with a warning) by the doctor
        scan.tuples.append({"tuple_id": tid, "split": split, "kind": "pair", "setting": setting,
                            "person": f"{split}/person/{person}", "garment": f"{split}/garment/{garment}",
                            "source": source, "line": line})

    def _paired_test(self, root: Path, scan: Scan, report: Report, persons: list[str], garments: set[str],
                     resolve) -> None:
        """The paired test setting: from ``test_pairs_same.txt`` when present, else person + own top."""
        if (root / PAIRED_TEST_LIST).is_file():
            scan.list_files.append(PAIRED_TEST_LIST)
            for line, (p, c) in read_list(root, PAIRED_TEST_LIST, report, ncols=2, path_cols=(0, 1),
                                          what="'<person>.jpg <cloth>.jpg' separated by one space"):
                if resolve(PAIRED_TEST_LIST, line, p, c, report):
                    self._tuple(scan, "test", _stem(p), _stem(c), PAIRED_TEST_LIST, line)
            return
        missing = 0
        for p in persons:
            own = _own_cloth(p)
            if own in garments:
                self._tuple(scan, "test", p, own, None, None)
            else:
                missing += 1
        if missing:
            scan.notes["paired_test_without_own_top"] = missing

    # ------------------------------------------------------------------ CP-VTON / CP-VTON+

    def _scan_cpvton(self, root: Path, layout: str, scan: Scan, report: Report) -> None:
        folders = _PERSON[layout]
        test_persons: list[str] = []
        test_garments: set[str] = set()
        for split in SPLITS:
            d = root / split
            if not d.is_dir():
                continue
            present = {f for f in {**folders, **_GARMENT} if (d / f).is_dir()}
            for f, spec in {**folders, **_GARMENT}.items():
                if f not in present and spec[4]:
                    report.fail("missing-folder", f"required folder {split}/{f}/ is missing", file=f"{split}/{f}",
                                fix=f"extract the complete {split}/ tree of the {layout} release")
            ignored = [f for f in ("warp-cloth", "warp-mask") if (d / f).is_dir()]
            if ignored:
                scan.notes.setdefault("ignored_model_outputs", []).extend(f"{split}/{f}" for f in ignored)
            persons = iter_files(root, f"{split}/image", _IMG)
            garments = iter_files(root, f"{split}/cloth", _IMG)
            for name in persons:
                stem = _stem(name)
                sid = self._sample(split, "person", stem)
                for folder, (role, check, suffix, space, _req) in folders.items():
                    if folder in present:
                        self._asset(split, role, stem, sid, f"{split}/{folder}/{stem + suffix if suffix else name}",
                                    check, space)
            for name in garments:
                stem = _stem(name)
                sid = self._sample(split, "garment", stem)
                for folder, (role, check, suffix, space, _req) in _GARMENT.items():
                    if folder in present:
                        self._asset(split, role, stem, sid, f"{split}/{folder}/{name}", check, space)
            pstems = {_stem(n): n for n in persons}
            gstems = {_stem(n): n for n in garments}

            def resolve(rel, line, p, c, rep, split=split, pstems=pstems, gstems=gstems):
                for x, have, where in ((p, pstems, "image"), (c, gstems, "cloth")):
                    if _stem(x) not in have:
                        rep.fail("pair-unresolved", f"{x} is not in {split}/{where}/", file=rel, line=line,
                                 fix="the pair list and the folders must come from the same release")
                        return False
                return True

            self._read_pairs(root, layout, split, scan, report, resolve)
            if split == "test":
                test_persons, test_garments = list(pstems), set(gstems)
        test_person_set = set(test_persons)
        if (root / "test").is_dir():
            self._paired_test(root, scan, report, test_persons, test_garments,
                              lambda rel, line, p, c, rep: self._resolve_test(rel, line, p, c, rep,
                                                                              test_person_set, test_garments))

    @staticmethod
    def _resolve_test(rel, line, p, c, rep, persons, garments) -> bool:
        for x, have, where in ((p, persons, "image"), (c, garments, "cloth")):
            if _stem(x) not in have:
                rep.fail("pair-unresolved", f"{x} is not in test/{where}/", file=rel, line=line,
                         fix="the pair list and the folders must come from the same release")
                return False
        return True

    def _read_pairs(self, root: Path, layout: str, split: str, scan: Scan, report: Report, resolve) -> None:
        rel = _LISTS[layout][split]
        if not (root / rel).is_file():
            report.fail("missing-list", f"missing pair list {rel}", file=rel,
                        fix=f"restore {rel} from the release (it sits next to the image folders)")
            return
        scan.list_files.append(rel)
        for line, (p, c) in read_list(root, rel, report, ncols=2, path_cols=(0, 1),
                                      what="'<person>.jpg <cloth>.jpg' separated by one space"):
            if resolve(rel, line, p, c, report):
                self._tuple(scan, split, _stem(p), _stem(c), rel, line)

    # ------------------------------------------------------------------ original release

    def _scan_original(self, root: Path, scan: Scan, report: Report) -> None:
        images = set(iter_files(root, "women_top", _IMG))
        if not images:
            report.fail("missing-folder", "folder women_top/ is missing or empty", file="women_top",
                        fix="extract women_top/ (persons ID_0.jpg and tops ID_1.jpg) into the root")
        if not (root / "segment").is_dir():
            report.fail("missing-folder", "folder segment/ is missing", file="segment",
                        fix="extract segment/ (the LIP parses, one .mat per person) into the root")
        pose_dir = (root / "pose").is_dir()
        pose_keys: Optional[set] = None
        if not pose_dir:
            if (root / "pose.pkl").is_file():
                scan.list_files.append("pose.pkl")
                try:
                    pose_keys = set(read_pose_pkl(root / "pose.pkl"))
                except PoseFormatError as exc:
                    report.fail("bad-pose-pkl", exc.message, file="pose.pkl", fix=exc.fix)
                    pose_keys = None
            else:
                report.fail("missing-folder", "neither pose/ nor pose.pkl is present", file="pose",
                            fix="extract pose/ or pose.pkl from the release")
        scan.notes["pose_source"] = "pose/" if pose_dir else "pose.pkl"
        by_stem = {_stem(n): n for n in images}
        persons: dict[str, dict] = {s: {} for s in SPLITS}  # ordered sets of stems
        garments: dict[str, set] = {s: set() for s in SPLITS}
        listed: set[str] = set()
        for split in SPLITS:
            def resolve(rel, line, p, c, rep):
                for x in (p, c):
                    if x not in images:
                        rep.fail("pair-unresolved", f"{x} is not in women_top/", file=rel, line=line,
                                 fix="the pair list and women_top/ must come from the same release")
                        return False
                return True

            def add_pair(rel, line, p, c, split=split):
                ps, cs = _stem(p), _stem(c)
                self._person_original(split, ps, by_stem[ps], pose_dir, pose_keys, report)
                self._garment_original(split, cs, by_stem[cs])
                persons[split][ps] = None
                garments[split].add(cs)
                listed.update((p, c))
                self._tuple(scan, split, ps, cs, rel, line)

            rel = _LISTS["original"][split]
            if not (root / rel).is_file():
                report.fail("missing-list", f"missing pair list {rel}", file=rel,
                            fix=f"restore {rel} from the release (it sits next to women_top/)")
                continue
            scan.list_files.append(rel)
            for line, (p, c) in read_list(root, rel, report, ncols=2, path_cols=(0, 1),
                                          what="'NNNNNN_0.jpg NNNNNN_1.jpg' separated by one space"):
                if resolve(rel, line, p, c, report):
                    add_pair(rel, line, p, c)
        # the paired test setting needs each test person's own top as a test garment
        for p in persons["test"]:
            own = _own_cloth(p)
            if own in by_stem and own not in garments["test"]:
                self._garment_original("test", own, by_stem[own])
                garments["test"].add(own)
        self._paired_test(root, scan, report, list(persons["test"]), garments["test"],
                          lambda rel, line, p, c, rep: self._resolve_test(rel, line, p, c, rep, persons["test"],
                                                                          garments["test"]))
        unlisted = len(images - listed)
        if unlisted:
            scan.notes["unlisted_images"] = unlisted

    def _person_original(self, split, stem, name, pose_dir, pose_keys, report: Report) -> None:
        sid = self._sample(split, "person", stem)
        if f"{split}/person/{stem}" in self._assets:
            return
        self._asset(split, "person", stem, sid, f"women_top/{name}", "image")
        self._asset(split, "parse", stem, sid, f"segment/{stem}.mat", "file", "lip20", encoding="viton_mat")
        if pose_dir:
            self._asset(split, "pose", stem, sid, f"pose/{stem}.mat", "file", "coco18", encoding="openpose_mat")
        elif pose_keys is not None and stem not in pose_keys:
            report.fail("missing-pose", f"pose.pkl has no entry for {stem}", file="pose.pkl",
                        drops=(sid,), fix=f"use the release's pose.pkl (it holds every person), or --lenient")

    def _garment_original(self, split, stem, name) -> None:
        sid = self._sample(split, "garment", stem)
        self._asset(split, "garment", stem, sid, f"women_top/{name}", "image")

    def after_probe(self, rows: list, report: Report) -> None:
        """``.mat`` parses take the size of their person image (needed to undo the 641x641 padding)."""
        size = {r["sample_id"]: (r.get("width"), r.get("height")) for r in rows if r.get("role") == "person"}
        for r in rows:
            if r.get("encoding") == "viton_mat" and r.get("hash"):
                w, h = size.get(r["sample_id"], (None, None))
                r["width"], r["height"] = w, h

    def split_counts(self, scan: Scan) -> dict:
        """Pairs of the main pair lists per split (what the 14,221 / 2,032 figures count)."""
        main = set(_LISTS[scan.layout].values())
        counts: dict[str, int] = {}
        for t in scan.tuples:
            if t.get("source") in main:
                counts[t["split"]] = counts.get(t["split"], 0) + 1
        return counts
