"""VITON-HD (``zalando-hd-resized``), Choi et al. 2021: 1024x768 try-on pairs.

Layout read (unchanged) -- ``official`` (the released zip)::

    <root>/train_pairs.txt  test_pairs.txt       "<person>.jpg <cloth>.jpg", space separated, no header
    <root>/{train,test}/image/NNNNN_00.jpg                 person, 768x1024 JPEG
                        cloth/NNNNN_00.jpg                 in-shop garment
                        cloth-mask/NNNNN_00.jpg            garment mask (JPEG, thresholded at 128)
                        image-parse-v3/NNNNN_00.png        parse, palette PNG, CIHP ids 0-19 (10 = neck)
                        image-parse-agnostic-v3.2/NNNNN_00.png
                        agnostic-v3.2/NNNNN_00.jpg         cloth-agnostic person
                        openpose_img/NNNNN_00_rendered.png
                        openpose_json/NNNNN_00_keypoints.json   OpenPose 1.3 BODY_25 + face + hands (CRLF)
                        image-densepose/NNNNN_00.jpg       DensePose dp_segm colour picture (not IUV)
                        agnostic-mask/NNNNN_00_mask.png    (optional; newer zips)

``demo``: the authors' sample folder (``datasets/test``) with ``image-parse``, ``openpose-img``,
``openpose-json`` instead.

Sizes: 11,647 train / 2,032 test pairs. ``test_pairs.txt`` is the *unpaired* setting; the *paired* test
setting pairs each person with its own garment (same file name). The second column of ``train_pairs.txt``
is shuffled and every official loader ignores it (training is paired), so training tuples are paired too;
the shuffled column is reported, not used.

Example::

    vtondata prepare viton-hd --root ~/data/zalando-hd-resized
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..findings import Report
from ..probe import AssetSpec, iter_files
from .base import Ingester, Scan, read_list, register

# folder -> (role, check, suffix transform, label space / keypoint format, encoding, required)
_FOLDERS = {
    "official": {
        "image": ("person", "image", "", None, None, True),
        "image-parse-v3": ("parse", "parse", ".png", "cihp20", "palette_ids", True),
        "image-parse-agnostic-v3.2": ("parse_agnostic", "parse", ".png", "cihp20", "palette_ids", False),
        "agnostic-v3.2": ("agnostic", "image", "", None, None, False),
        "agnostic-mask": ("agnostic_mask", "mask", "_mask.png", "binary", None, False),
        "openpose_img": ("pose_render", "image", "_rendered.png", None, None, False),
        "openpose_json": ("pose", "pose", "_keypoints.json", "body25", None, True),
        "image-densepose": ("densepose", "densepose", "", None, "vitonhd_dp_segm", False),
    },
    "demo": {
        "image": ("person", "image", "", None, None, True),
        "image-parse": ("parse", "parse", ".png", "cihp20", "palette_ids", True),
        "openpose-img": ("pose_render", "image", "_rendered.png", None, None, False),
        "openpose-json": ("pose", "pose", "_keypoints.json", "body25", None, True),
    },
}
_GARMENT_FOLDERS = {"cloth": ("garment", "image", "", None, None, True),
                    "cloth-mask": ("garment_mask", "mask", "", "binary", None, True)}
SPLITS = ("train", "test")


def _sibling(name: str, suffix: str) -> str:
    stem = name.rsplit(".", 1)[0]
    return name if not suffix else stem + suffix


@register
class VitonHD(Ingester):
    name = "viton-hd"
    version = "1"
    layouts = ("official", "demo")
    expected_sizes = {"*": {"train": 11647, "test": 2032}}
    size_unit = "persons"
    native_size = (768, 1024)

    def detect(self, root: Path) -> Optional[str]:
        for split in SPLITS:
            d = root / split
            if (d / "image").is_dir() and (d / "cloth").is_dir():
                if (d / "image-parse-v3").is_dir() or (d / "openpose_json").is_dir():
                    return "official"
                if (d / "openpose-json").is_dir() or (d / "image-parse").is_dir():
                    return "demo"
        return None

    def scan(self, root: Path, layout: str, report: Report) -> Scan:
        scan = Scan(layout=layout)
        folders = _FOLDERS[layout]
        for split in SPLITS:
            d = root / split
            if not d.is_dir():
                continue
            persons = iter_files(root, f"{split}/image", (".jpg", ".jpeg", ".png"))
            garments = iter_files(root, f"{split}/cloth", (".jpg", ".jpeg", ".png"))
            present = {f for f in list(folders) + list(_GARMENT_FOLDERS) if (d / f).is_dir()}
            for f, spec in {**folders, **_GARMENT_FOLDERS}.items():
                if f not in present and spec[5]:
                    report.fail("missing-folder", f"required folder {split}/{f}/ is missing", file=f"{split}/{f}",
                                fix=f"extract the complete {split}/ tree of the release")
            for name in persons:
                stem = name.rsplit(".", 1)[0]
                sid = f"{split}/person/{stem}"
                scan.samples.append({"sample_id": sid, "split": split, "kind": "person", "name": stem, "item": stem,
                                     "category": "upper_body", "view": "front"})
                for folder, (role, check, suffix, space, enc, required) in folders.items():
                    if folder not in present:
                        continue
                    fname = _sibling(name, suffix)
                    scan.assets.append(AssetSpec(
                        asset_id=f"{split}/{role}/{stem}", split=split, role=role, sample_id=sid,
                        path=f"{split}/{folder}/{fname}", check=check,
                        size_group=None if check == "pose" else "image",
                        label_space=space if check in ("parse", "mask") else None,
                        keypoint_format=space if check == "pose" else None, encoding=enc,
                        required=True))
            for name in garments:
                stem = name.rsplit(".", 1)[0]
                sid = f"{split}/garment/{stem}"
                scan.samples.append({"sample_id": sid, "split": split, "kind": "garment", "name": stem, "item": stem,
                                     "category": "upper_body", "view": "front"})
                for folder, (role, check, suffix, space, enc, required) in _GARMENT_FOLDERS.items():
                    if folder not in present:
                        continue
                    scan.assets.append(AssetSpec(
                        asset_id=f"{split}/{role}/{stem}", split=split, role=role, sample_id=sid,
                        path=f"{split}/{folder}/{_sibling(name, suffix)}", check=check, size_group="image",
                        label_space=space, encoding=enc))
            self._tuples(root, split, persons, garments, scan, report)
        scan.notes["native_size"] = list(self.native_size)
        return scan

    def _tuples(self, root: Path, split: str, persons: list[str], garments: list[str], scan: Scan,
                report: Report) -> None:
        pset, gset = set(persons), set(garments)
        rel = f"{split}_pairs.txt"
        if not (root / rel).exists():
            report.fail("missing-list", f"missing pair list {rel}", file=rel,
                        fix=f"restore {rel} from the release (it sits next to train/ and test/)")
            return
        scan.list_files.append(rel)
        shuffled = 0
        for line, (p, c) in read_list(root, rel, report, ncols=2, path_cols=(0, 1),
                                      what="'<person>.jpg <cloth>.jpg' separated by one space"):
            pstem, cstem = p.rsplit(".", 1)[0], c.rsplit(".", 1)[0]
            missing = [x for x, s, kind in ((p, pset, "image"), (c if split == "test" else p, gset, "cloth"))
                       if x not in s]
            if missing:
                report.fail("pair-unresolved", f"{missing[0]} is not in {split}/{'image' if missing[0] == p else 'cloth'}/",
                            file=rel, line=line, fix="the pair list and the folders must come from the same release")
                continue
            if split == "train":
                # official loaders train paired (cloth = person's own garment); column 2 is shuffled
                shuffled += pstem != cstem
                scan.tuples.append(self._tuple(split, "paired", pstem, pstem, rel, line))
            else:
                scan.tuples.append(self._tuple(split, "unpaired", pstem, cstem, rel, line))
        if split == "train" and shuffled:
            scan.notes["train_pairs_column2"] = (f"{shuffled} lines pair a person with another garment; ignored "
                                                 "(official loaders train paired)")
        if split == "test":
            for name in persons:
                stem = name.rsplit(".", 1)[0]
                if name in gset:
                    scan.tuples.append(self._tuple(split, "paired", stem, stem, None, None))

    @staticmethod
    def _tuple(split: str, setting: str, p: str, g: str, source, line) -> dict:
        tid = f"{split}/{setting}/{p}__{g}"
        return {"tuple_id": tid, "split": split, "kind": "pair", "setting": setting,
                "person": f"{split}/person/{p}", "garment": f"{split}/garment/{g}", "source": source, "line": line}

    def split_counts(self, scan: Scan) -> dict:
        counts: dict[str, int] = {}
        for s in scan.samples:
            if s["kind"] == "person":
                counts[s["split"]] = counts.get(s["split"], 0) + 1
        return counts
