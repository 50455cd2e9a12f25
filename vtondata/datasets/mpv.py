"""MPV (Multi-Pose Virtual try-on, Dong et al. 2019): one person in two poses and the garment they wear.

The unit is a *triplet* (``kind`` ``triplet``, ``setting`` ``multi-pose``): ``person`` = the person in pose A,
``target_person`` = the same person in pose B, ``garment`` = the in-shop garment. File names carry the item,
colour, view and framing: ``<ITEM>-<COLOUR>@<k>=<kind>.jpg`` with ``<kind>`` in ``person_half_front``,
``person_whole_front``, ``person_whole_back``, ``cloth_front``; they fill the sample columns ``item``
(``<ITEM>``), ``view`` (front / back) and ``framing`` (half / whole). Images are 192x256 (WxH).

Layouts read (unchanged):

``original`` -- the MPV_192_256 release::

    <root>/MPV_192_256/<ITEM>/<ITEM>-<COLOUR>@<k>=<kind>.jpg
    <root>/all_poseA_poseB_clothes.txt       "poseA<TAB>poseB<TAB>cloth<TAB>train|test", paths below MPV_192_256/

``detail_carving`` -- the front-view subset of "Down to the Last Detail" (JDAI-CV), nested as its loader reads
it or flat as the repository ships its sample (both accepted; files are found by name)::

    <root>/data_pair.txt                     same 4 TAB columns; 14,754 lines = 12,410 train / 2,344 test
    <root>/images/[<mode>/<ITEM>/]<name>.jpg             persons (and, in the nested form, garments)
    <root>/cloth_image/<cloth>.jpg                       garments (flat sample)
    <root>/cloth_mask/[<mode>/<ITEM>/]<cloth>_mask.png   garment mask, 0 / 255
    <root>/parse_cihp/[<mode>/]<name>.png                CIHP ids (grey PNG); <name>_vis.png its colour picture
    <root>/pose_coco/[<mode>/]<name>_keypoints.json      OpenPose 1.3, COCO-18 (pose_keypoints_2d)
    <root>/demo/demo.txt                     optional demo list, TAB separated:
                                             "person.jpg  target_keypoints.json  cloth.jpg  test"
                                             (the target pose is given by its keypoint file only)

  ``<mode>`` is ``train`` or ``val``. Without ``data_pair.txt`` a root holding ``demo/demo.txt`` (the shipped
  sample) is read from the demo list alone, with a warning.

``competition`` -- the MPV challenge repackaging::

    <root>/all/[<ITEM>/]<name>.jpg                       persons and garments
    <root>/all_parsing/[<ITEM>/]<name>.png               parse (CIHP ids assumed)
    <root>/all_person_clothes_keypoints/[<ITEM>/]<name>_keypoints.json
    <root>/all_densepose/[<ITEM>/]<name>_IUV.png         Detectron1 IUV written by OpenCV (encoding detectron_iuv)
    <root>/all_poseA_poseB_clothes_0607.txt  4 whitespace-separated columns, last = train|test

Example::

    vtondata prepare mpv --root ~/data/MPV            # MPV_192_256/ + all_poseA_poseB_clothes.txt
"""

from __future__ import annotations

import os
import re
from array import array
from bisect import bisect_left
from pathlib import Path
from typing import Optional

import numpy as np

from ..findings import Report
from ..probe import AssetSpec
from .base import Ingester, Scan, read_list, register

NAME_RE = re.compile(r"^(?P<item>[^-/]+)-(?P<colour>[^@/]+)@(?P<k>[^=/]+)=(?P<kind>[A-Za-z]+(?:_[A-Za-z]+)*)$")
_MODE = {"train": "train", "test": "val"}  # JDAI-CV folder name of each split

# role -> (folder(s), suffix replacing ".jpg" ("" = same name), check, label space / keypoint format, encoding,
#          nesting of the expected path when the file is missing: "entry" (as listed), "item", "mode", "flat")
_LAYOUTS = {
    "original": {
        "list": "all_poseA_poseB_clothes.txt", "sep": "\t",
        "person": {"person": (("MPV_192_256",), "", "image", None, None, "entry")},
        "garment": {"garment": (("MPV_192_256",), "", "image", None, None, "entry")},
    },
    "detail_carving": {
        "list": "data_pair.txt", "sep": "\t",
        "person": {
            "person": (("images",), "", "image", None, None, "item"),
            "parse": (("parse_cihp",), ".png", "parse", "cihp20", "gray_ids", "mode"),
            "parse_vis": (("parse_cihp",), "_vis.png", "image", "cihp20", "rgb_colours", "mode"),
            "pose": (("pose_coco",), "_keypoints.json", "pose", "coco18", None, "mode"),
        },
        "garment": {
            "garment": (("cloth_image", "images"), "", "image", None, None, "item"),
            "garment_mask": (("cloth_mask",), "_mask.png", "mask", "binary", None, "item"),
        },
    },
    "competition": {
        "list": "all_poseA_poseB_clothes_0607.txt", "sep": None,
        "person": {
            "person": (("all",), "", "image", None, None, "entry"),
            "parse": (("all_parsing",), ".png", "parse", "cihp20", None, "entry"),
            "pose": (("all_person_clothes_keypoints",), "_keypoints.json", "pose", "coco18", None, "entry"),
            "densepose": (("all_densepose",), "_IUV.png", "densepose", None, "detectron_iuv", "entry"),
        },
        "garment": {"garment": (("all",), "", "image", None, None, "entry")},
    },
}
DEMO_LIST = "demo/demo.txt"
_POSE_SUFFIX = "_keypoints.json"


def parse_name(stem: str) -> Optional[dict]:
    """``<ITEM>-<COLOUR>@<k>=<kind>`` -> {item, colour, k, kind, is_person, view, framing}; None if not MPV-style."""
    m = NAME_RE.match(stem)
    if not m:
        return None
    d = m.groupdict()
    words = d["kind"].lower().split("_")
    d["is_person"] = words[0] == "person"
    d["view"] = next((w for w in words if w in ("front", "back", "side")), None)
    d["framing"] = next((w for w in words if w in ("half", "whole")), None)
    return d


def _stem(entry: str) -> str:
    base = entry.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


class _Index:
    """Files of one folder below the root, found by base name (any nesting).

    Compact: the index of a 20,000-triplet release holds 100,000 names and keeps none of them, only each name's
    64-bit hash in a sorted ``array('q')`` beside the number of its folder (``array('I')``; the folders' relative
    paths are kept once): 12 bytes per file, looked up by bisection. Names whose hash appears more than once (the
    same name in several folders, or a hash collision) are resolved by checking which folder holds the name.
    """

    def __init__(self, root: Path, folder: str):
        self.root, self.folder = str(root), folder
        self.dirs: list[str] = []
        self.keys, self.where = array("q"), array("I")
        self.nested = False
        top = root / folder
        self.exists = top.is_dir()
        if not self.exists:
            return
        stack = [(str(top), folder)]
        keys, where = self.keys, self.where
        while stack:  # scandir walk: no stat per file (d_type), hidden entries skipped
            path, rel_dir = stack.pop()
            code = len(self.dirs)
            self.dirs.append(rel_dir)
            with os.scandir(path) as it:
                for e in it:
                    name = e.name
                    if name[0] == ".":
                        continue
                    if e.is_dir():
                        self.nested = True
                        stack.append((e.path, f"{rel_dir}/{name}"))
                        continue
                    keys.append(hash(name))
                    where.append(code)
        if len(keys) > 1:
            order = np.argsort(np.frombuffer(keys, np.int64), kind="stable")
            self.keys = array("q", np.frombuffer(keys, np.int64)[order].tobytes())
            self.where = array("I", np.frombuffer(where, np.uint32)[order].tobytes())

    def find(self, entry_path: str, mode: str) -> Optional[str]:
        """The file named like ``entry_path``: its exact path if listed, else the one under ``<mode>/``."""
        name = entry_path.rsplit("/", 1)[-1]
        key, keys = hash(name), self.keys
        i = bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            return None
        j = i + 1
        while j < len(keys) and keys[j] == key:
            j += 1
        if j == i + 1:
            return f"{self.dirs[self.where[i]]}/{name}"
        hits = [f"{d}/{name}" for d in (self.dirs[self.where[x]] for x in range(i, j))
                if os.path.isfile(os.path.join(self.root, d, name))]
        if not hits:
            return None
        exact = f"{self.folder}/{entry_path}"
        if exact in hits:
            return exact
        return next((h for h in hits if f"/{mode}/" in f"/{h}"), hits[0])


@register
class MPV(Ingester):
    name = "mpv"
    version = "1"
    layouts = ("original", "detail_carving", "competition")
    expected_sizes = {"detail_carving": {"train": 12410, "test": 2344}}
    size_unit = "triplets"
    native_size = (192, 256)

    def detect(self, root: Path) -> Optional[str]:
        if (root / "all").is_dir() and ((root / "all_parsing").is_dir()
                                        or (root / _LAYOUTS["competition"]["list"]).is_file()):
            return "competition"
        if (root / "images").is_dir() and any((root / f).exists() for f in
                                              ("data_pair.txt", "parse_cihp", "pose_coco", "cloth_mask", DEMO_LIST)):
            return "detail_carving"
        if (root / "MPV_192_256").is_dir() or (root / _LAYOUTS["original"]["list"]).is_file():
            return "original"
        return None

    # ------------------------------------------------------------------ scan

    def scan(self, root: Path, layout: str, report: Report) -> Scan:
        spec = _LAYOUTS[layout]
        scan = Scan(layout=layout)
        scan.notes["native_size"] = list(self.native_size)
        self._spec = spec
        self._sample_ids: set[str] = set()  # rows go straight to scan.samples (on disk under prepare)
        self._pose_only: set[str] = set()  # asset ids declared by demo lines (the target pose alone)
        self._scan = scan
        self._partial: set[str] = set()  # samples created by a demo line's pose alone (not all files declared)
        folders = {f for group in ("person", "garment") for v in spec[group].values() for f in v[0]}
        self._index = {f: _Index(root, f) for f in sorted(folders)}
        self._check_folders(layout, report)
        rel = spec["list"]
        if layout == "original" and not (root / rel).is_file() and (root / "MPV_192_256" / rel).is_file():
            rel = f"MPV_192_256/{rel}"
        have_demo = layout == "detail_carving" and (root / DEMO_LIST).is_file()
        if (root / rel).is_file():
            scan.list_files.append(rel)
            self._main = rel
            for line, cols in read_list(root, rel, report, ncols=4, sep=spec["sep"], path_cols=(0, 1, 2),
                                        what="'poseA, poseB, cloth, train|test' separated by "
                                             + ("a TAB" if spec["sep"] == "\t" else "whitespace")):
                self._triplet(scan, report, rel, line, cols, demo=False)
        else:
            self._main = None
            if have_demo:
                report.warn("missing-list", f"no {rel}: only the demo list {DEMO_LIST} is read", file=rel,
                            fix=f"restore {rel} from the release to read the train / test triplets")
            else:
                report.fail("missing-list", f"missing triplet list {rel}", file=rel,
                            fix=f"restore {rel} from the release (it sits in the dataset root)")
        if have_demo:
            scan.list_files.append(DEMO_LIST)
            for line, cols in read_list(root, DEMO_LIST, report, ncols=4, sep="\t", path_cols=(0, 1, 2),
                                        what="'person.jpg, target_keypoints.json, cloth.jpg, test' separated by a TAB"):
                self._triplet(scan, report, DEMO_LIST, line, cols, demo=True)
        ignored = [d for d in ("warped_cloth", "warped_cloth_mask") if (root / d).is_dir()]
        if ignored:
            scan.notes["ignored_model_outputs"] = ignored
        if layout == "detail_carving":
            scan.notes["nesting"] = "nested <mode>/<ITEM>/" if self._index["images"].nested else "flat"
        self._index, self._pose_only, self._partial, self._scan = {}, set(), set(), None  # free indexes
        self._sample_ids = set()
        return scan

    def _check_folders(self, layout: str, report: Report) -> None:
        for group in ("person", "garment"):
            for role, (folders, *_rest) in self._spec[group].items():
                if not any(self._index[f].exists for f in folders):
                    report.fail("missing-folder", f"folder {' or '.join(f + '/' for f in folders)} is missing "
                                f"({role} files)", file=folders[0],
                                fix=f"extract the complete {layout} release into the root")

    def _expected(self, folder: str, nest: str, entry: str, fname: str, split: str) -> str:
        idx = self._index[folder]
        item = entry.split("/")[0] if "/" in entry else fname.split("-")[0]
        if nest == "entry":
            d = entry.rsplit("/", 1)[0] if "/" in entry else ""
            return f"{folder}/{d}/{fname}" if d else f"{folder}/{fname}"
        if not idx.nested:
            return f"{folder}/{fname}"
        if nest == "item":
            return f"{folder}/{_MODE[split]}/{item}/{fname}"
        return f"{folder}/{_MODE[split]}/{fname}"

    def _locate(self, role_spec, entry: str, split: str) -> tuple[Optional[str], str]:
        """(found path or None, path to report when missing) of one role's file for a list entry."""
        folders, suffix, _check, _space, _enc, nest = role_spec
        stem = _stem(entry)
        fname = stem + suffix if suffix else entry.rsplit("/", 1)[-1]
        d = entry.rsplit("/", 1)[0] + "/" if "/" in entry else ""
        for folder in folders:
            if self._index[folder].exists:
                hit = self._index[folder].find(d + fname, _MODE[split])
                if hit:
                    return hit, hit
        folder = next((f for f in folders if self._index[f].exists), folders[0])
        return None, self._expected(folder, nest, entry, fname, split)

    def _sample(self, split: str, kind: str, stem: str) -> str:
        sid = f"{split}/{kind}/{stem}"
        if sid not in self._sample_ids:
            self._sample_ids.add(sid)
            info = parse_name(stem) or {}
            self._scan.samples.append({"sample_id": sid, "split": split, "kind": kind, "name": stem,
                                       "item": info.get("item"), "view": info.get("view"),
                                       "framing": info.get("framing")})
        return sid

    def _declare(self, split: str, sid: str, stem: str, role: str, role_spec, path: str, pose_only: bool = False) -> None:
        """Append one file's spec to the scan (each spec goes straight to ``scan.assets``, nothing is kept: a
        sample's files are declared once, guarded by :meth:`_full`; only demo-line poses need remembering)."""
        aid = f"{split}/{role}/{stem}"
        if aid in self._pose_only:
            return
        if pose_only:
            self._pose_only.add(aid)
        _folders, _suffix, check, space, enc, _nest = role_spec
        self._scan.assets.append(AssetSpec(
            asset_id=aid, split=split, role=role, sample_id=sid, path=path, check=check,
            size_group="image" if check in ("image", "mask", "parse", "densepose") else None,
            label_space=space if check in ("parse", "mask") or role == "parse_vis" else None,
            keypoint_format=space if check == "pose" else None, encoding=enc))

    def _member(self, missing: list, entry: str, split: str, group: str, pose_only: bool = False) -> Optional[str]:
        """Declare a person / garment of a list line; None (its description appended to ``missing``) if absent."""
        roles = self._spec[group]
        if pose_only:
            stem = _stem(entry)
            if stem.endswith("_keypoints"):
                stem = stem[: -len("_keypoints")]
            role, main = "pose", roles["pose"]
            entry = entry.rsplit("/", 1)[0] + "/" + stem + ".jpg" if "/" in entry else stem + ".jpg"
            if self._full(f"{split}/person/{stem}"):  # its pose is declared already
                return f"{split}/person/{stem}"
        else:
            stem = _stem(entry)
            role = "person" if group == "person" else "garment"
            main = roles[role]
            done = f"{split}/{'person' if group == 'person' else 'garment'}/{stem}"
            if self._full(done):  # persons recur in about two lines each: resolved once
                return done
        found, expected = self._locate(main, entry, split)
        if found is None:
            what = "target pose" if pose_only else ("person" if group == "person" else "garment")
            missing.append(f"{what} {expected}")
            return None
        new = f"{split}/{'person' if group == 'person' else 'garment'}/{stem}" not in self._sample_ids
        sid = self._sample(split, "person" if group == "person" else "garment", stem)
        self._declare(split, sid, stem, role, main, found, pose_only)
        if pose_only:
            if new:
                self._partial.add(sid)
        else:
            for r, rs in roles.items():
                if r != role:
                    hit, expected = self._locate(rs, entry, split)
                    self._declare(split, sid, stem, r, rs, hit or expected)
            self._partial.discard(sid)
        return sid

    def _full(self, sid: str) -> bool:
        """Whether all files of sample ``sid`` are declared (every sample but those a demo pose created)."""
        return sid in self._sample_ids and sid not in self._partial

    def _triplet(self, scan: Scan, report: Report, rel: str, line: int, cols: list, demo: bool) -> None:
        a, b, c, split = cols
        split = split.lower()
        if split not in ("train", "test"):
            report.fail("malformed-line", f"4th column must be 'train' or 'test', found {cols[3]!r}", file=rel,
                        line=line, fix="each line is 'poseA, poseB, cloth, train|test'")
            return
        missing: list[str] = []
        pa = self._member(missing, a, split, "person")
        pb = self._member(missing, b, split, "person", pose_only=demo)
        g = self._member(missing, c, split, "garment")
        if missing:
            report.fail("triplet-unresolved", f"not found: {'; '.join(missing)}", file=rel, line=line,
                        fix="the list and the folders must come from the same release")
            return
        # demo lines get their own id space (they may repeat a triplet of the main list); a repeated line is
        # dropped with a warning by the doctor (vtondata.validate), which sees all tuples
        tid = (f"{split}/{'demo' if demo else 'multi-pose'}/"
               f"{pa.rsplit('/', 1)[1]}__{pb.rsplit('/', 1)[1]}__{g.rsplit('/', 1)[1]}")
        scan.tuples.append({"tuple_id": tid, "split": split, "kind": "triplet", "setting": "multi-pose",
                            "person": pa, "target_person": pb, "garment": g, "source": rel, "line": line})

    def split_counts(self, scan: Scan) -> dict:
        """Triplets of the main list per split (the demo list is extra)."""
        counts: dict[str, int] = {}
        for t in scan.tuples:
            if t.get("source") == getattr(self, "_main", None):
                counts[t["split"]] = counts.get(t["split"], 0) + 1
        return counts
