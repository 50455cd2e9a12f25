"""Per-file checks: existence, content hash, image header, truncation, masks, parses and poses.

Each file is read once: its bytes are hashed (BLAKE2b-128) and the header is parsed from memory
(JPEG SOF / PNG IHDR, no decoder). By default RGB images are checked by header and end-of-stream marker
(a truncated JPEG lacks ``FFD9``, a truncated PNG lacks ``IEND``); masks and parses are decoded because
their checks need the values (JPEG masks at 1/8 scale in the DCT domain); ``deep`` decodes everything.

8-bit grey / palette PNG masks and parses (the released parses) are decoded by :mod:`vtondata.pngfast`
(chunks + zlib + numpy row unfiltering; PIL's C row decoder for files with Average / Paeth rows), which gives
PIL's array; any file it does not take, or finds broken, goes through PIL exactly as before, so verdicts and
messages never change. The label check is exact on every pixel (a subsample of rows could miss a bad id).

:mod:`vtondata.probefeed` runs these probes on worker processes while the scan is still declaring files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
from PIL import Image

from . import pngfast
from .errors import PoseFormatError
from .findings import FAIL, WARN, Finding
from .labels import label_space
from .pose import parse_openpose

Image.MAX_IMAGE_PIXELS = None

#: fraction of pixels inside mid-grey (32..223) *regions* above which a mask is "not binary". Grey pixels
#: are eroded by a 3x3 window first, so the 1-2 px JPEG / anti-aliasing seams along edges never count.
MASK_GREY_FRACTION = 0.01

CHECKS = ("image", "mask", "parse", "pose", "densepose", "file", "json")


@dataclass(slots=True)
class AssetSpec:
    """What an ingester declares about one file; :func:`probe` fills in the rest."""

    asset_id: str
    split: str
    role: str
    sample_id: str
    path: str  # relative POSIX path
    check: str = "image"
    size: Optional[tuple[int, int]] = None  # expected (width, height), when known per file
    size_group: Optional[str] = None  # files of one group share one size (checked against the group's mode)
    label_space: Optional[str] = None
    keypoint_format: Optional[str] = None  # expected ("coco18", "body25", ...) or None for any
    encoding: Optional[str] = None
    required: bool = True  # a missing required file invalidates its sample

    def row(self, dataset: str) -> dict:
        return {"asset_id": self.asset_id, "dataset": dataset, "split": self.split, "role": self.role,
                "sample_id": self.sample_id, "path": self.path, "label_space": self.label_space,
                "keypoint_format": self.keypoint_format, "encoding": self.encoding}


@dataclass
class Probed:
    row: dict
    findings: list = field(default_factory=list)
    ok: bool = True


def _fail(spec: AssetSpec, code: str, msg: str, fix: str) -> Finding:
    return Finding(FAIL, code, msg, spec.path, None, fix, (spec.asset_id, spec.sample_id))


_PNG_MODES = {(0, 1): "1", (0, 8): "L", (0, 16): "I;16", (2, 8): "RGB", (3, 1): "P", (3, 2): "P", (3, 4): "P",
              (3, 8): "P", (4, 8): "LA", (6, 8): "RGBA", (2, 16): "RGB", (6, 16): "RGBA"}
_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def fast_header(data: bytes) -> Optional[tuple[str, str, int, int]]:
    """(format, mode, width, height) from a JPEG SOF or PNG IHDR without PIL; None if not recognised."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 26:
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        mode = _PNG_MODES.get((data[25], data[24]))
        return ("PNG", mode, w, h) if mode else None
    if data[:2] == b"\xff\xd8":
        i, n = 2, len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:
                i += 1
                continue
            seg = int.from_bytes(data[i + 2:i + 4], "big")
            if marker in _SOF:
                h, w = int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
                mode = _JPEG_MODES.get(data[i + 9])
                return ("JPEG", mode, w, h) if mode and w and h else None
            i += 2 + seg
    return None


def _truncated(data: bytes, fmt: str) -> bool:
    tail = data[-12:]
    if fmt == "JPEG":
        return b"\xff\xd9" not in data[-64:]
    if fmt == "PNG":
        return b"IEND" not in tail
    return False


def _decode_mask(im: Image.Image) -> np.ndarray:
    if im.format == "JPEG" and min(im.size) >= 128:
        # JPEG masks are decoded at 1/8 scale in the DCT domain (block means): a grey *region* of at least
        # ~3 blocks (24 px) survives the 3x3 erosion below; edges blend into a 1-block seam that does not.
        w, h = im.size
        im.draft("L", (w // 8, h // 8))
    if im.mode not in ("L", "1", "P"):
        im = im.convert("L")
    return pngfast.pil_array(im)


def _grey_region_fraction(arr: np.ndarray) -> float:
    """Fraction of pixels in mid-grey (32..223) regions (grey pixels surviving a 3x3 erosion).

    When even the un-eroded grey fraction is within :data:`MASK_GREY_FRACTION` the erosion cannot change the
    verdict (it only removes pixels), so that fraction is returned as is.
    """
    g = np.subtract(arr, 32, dtype=np.uint8) <= 191  # 32..223; values below 32 wrap to 224..255
    n = np.count_nonzero(g)
    if n <= MASK_GREY_FRACTION * arr.size:
        return n / max(arr.size, 1)
    core = g[1:-1, 1:-1].copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            core &= g[dy:dy + core.shape[0], dx:dx + core.shape[1]]
    return float(np.count_nonzero(core)) / max(arr.size, 1)


def probe(root: Path, spec: AssetSpec, deep: bool = False, stat: Optional[list] = None) -> Probed:
    """Check one file; never raises for bad data (returns findings instead).

    ``stat``: when given, ``[size, mtime_ns]`` of the file read (``fstat`` of the open file) is appended to it,
    or None when the file is missing (what :func:`vtondata.prepare.fingerprint` hashes).
    """
    row = spec.row("")
    full = os.path.join(root, spec.path) if isinstance(root, str) else str(root / spec.path)
    try:
        with open(full, "rb") as fh:
            if stat is not None:
                st = os.fstat(fh.fileno())
                stat.append((st.st_size, st.st_mtime_ns))
            data = fh.read()
    except FileNotFoundError:
        if stat is not None:
            stat.append(None)
        sev = "missing" if spec.required else "missing-optional"
        f = _fail(spec, "missing-file", f"missing {spec.role} file",
                  f"restore {spec.path} from the release, or run with --lenient to drop sample {spec.sample_id}")
        if not spec.required:
            f = Finding(WARN, sev, f"missing optional {spec.role} file", spec.path, None,
                        "restore it from the release if you need it")
            return Probed(row, [f], True)
        return Probed(row, [f], False)
    except OSError as exc:
        if stat is not None:
            try:
                st = os.stat(full)
                stat.append((st.st_size, st.st_mtime_ns))
            except OSError:
                stat.append(None)
        return Probed(row, [_fail(spec, "unreadable-file", f"cannot read ({exc})", "check permissions")], False)
    row["bytes"] = len(data)
    row["hash"] = hashlib.blake2b(data, digest_size=16).hexdigest()
    if spec.check == "file":
        row["format"] = Path(spec.path).suffix.lstrip(".").upper() or None
        return Probed(row)
    if spec.check in ("pose", "json"):
        row["format"] = "JSON"
        try:
            obj = json.loads(data)
        except ValueError as exc:
            return Probed(row, [_fail(spec, "bad-json", f"invalid JSON ({exc})", "re-export the file")], False)
        if spec.check == "pose":
            try:
                kp, fmt = parse_openpose(obj, file=spec.path)
            except PoseFormatError as exc:
                code = "pose-no-person" if "no person" in exc.message else "pose-bad-format"
                return Probed(row, [_fail(spec, code, exc.message, exc.fix or "")], False)
            if spec.keypoint_format and fmt.split("_")[0] != spec.keypoint_format.split("_")[0]:
                return Probed(row, [_fail(spec, "pose-wrong-count",
                                          f"expected {spec.keypoint_format} keypoints, found {fmt} ({len(kp)} points)",
                                          "re-run OpenPose with the model the release used")], False)
            row["keypoint_format"] = fmt
        return Probed(row)
    # images: the header alone unless the check needs values (masks, parses) or --deep
    needs_pixels = deep or spec.check in ("mask", "parse")
    head = None if needs_pixels else fast_header(data)
    im = None
    arr = None
    if needs_pixels and spec.check in ("mask", "parse") and data[24:26] in _FAST_PNG:
        arr, head = _fast_png(data, spec.path)  # (None, None) when PIL must decide
    if head is None:
        try:
            im = Image.open(io.BytesIO(data))
            head = (im.format, im.mode, *im.size)
        except Exception as exc:  # PIL raises many types for garbage
            return Probed(row, [_fail(spec, "corrupt-image", f"not a readable image ({type(exc).__name__}: {exc})",
                                      "re-download or re-extract this file")], False)
    fmt, mode, w, h = head
    row["format"], row["mode"], row["width"], row["height"] = fmt, mode, w, h
    findings: list[Finding] = []
    if _truncated(data, fmt):
        return Probed(row, [_fail(spec, "truncated-image", f"truncated {fmt} (no end-of-image marker)",
                                  "re-download or re-extract this file")], False)
    if spec.size is not None and (w, h) != tuple(spec.size):
        findings.append(_fail(spec, "wrong-size", f"image is {w}x{h} (WxH), expected "
                              f"{spec.size[0]}x{spec.size[1]}", "use the release's resized images or --layout"))
    if arr is not None:  # 8-bit grey / palette PNG decoded by vtondata.pngfast: same array as PIL's
        if spec.check == "mask":
            findings += _check_mask(arr, spec, row)
        else:
            findings += _check_ids(arr, mode, spec, row)
        return Probed(row, findings, not any(f.severity == FAIL for f in findings))
    if im is None:
        return Probed(row, findings, not findings)
    try:
        if spec.check == "mask":
            arr = _decode_mask(im)
            if arr.dtype == bool:
                arr = arr.astype(np.uint8) * 255
            findings += _check_mask(arr, spec, row)
        elif spec.check == "parse":
            findings += _check_parse(im, spec, row)
        elif spec.check == "densepose" and spec.encoding:  # values checked under --deep only
            from .densepose import check as _check_densepose

            why = _check_densepose(np.asarray(im.convert("RGB")), spec.encoding)
            if why:
                findings.append(_fail(spec, "densepose-bad-values", why,
                                      f"re-export the DensePose file in the release's {spec.encoding} encoding"))
        else:
            im.load()
    except Exception as exc:
        findings.append(_fail(spec, "corrupt-image", f"cannot decode ({type(exc).__name__}: {exc})",
                              "re-download or re-extract this file"))
    return Probed(row, findings, not any(f.severity == FAIL for f in findings))


#: IHDR (bit depth, colour type) bytes of the PNGs the fast reader takes for masks and parses: 8-bit grey, palette
_FAST_PNG = {b"\x08\x00", b"\x08\x03"}


#: per process: folders whose last PNG held Average / Paeth rows (PIL's encoder writes them for grey images):
#: their next file goes straight to PIL's C row decoder instead of being inflated twice
_SLOW_ROW_DIRS: dict[str, bool] = {}


def _fast_png(data: bytes, path: str):
    """``(array, (format, mode, w, h))`` of an 8-bit grey / palette PNG via :mod:`vtondata.pngfast`.

    ``(None, None)`` when the file is outside the fast subset *or* broken: PIL then decodes it as before, so the
    verdict and message on any unusual or corrupt file are PIL's (the fast path never accepts more).
    """
    folder = path.rpartition("/")[0]
    try:
        if _SLOW_ROW_DIRS.get(folder):
            arr, mode = pngfast.decode(data, rows="pil")
        else:
            try:
                arr, mode = pngfast.decode(data, rows="vectorised")
            except pngfast.PngUnsupported as exc:
                if "Average / Paeth" not in str(exc):
                    raise
                _SLOW_ROW_DIRS[folder] = True
                arr, mode = pngfast.decode(data, rows="pil")
    except (pngfast.PngUnsupported, pngfast.PngCorruptError):
        return None, None
    return arr, ("PNG", mode, arr.shape[1], arr.shape[0])


def _check_mask(arr: np.ndarray, spec: AssetSpec, row: dict) -> list[Finding]:
    row["label_space"] = "binary"
    grey = _grey_region_fraction(arr)
    if grey > MASK_GREY_FRACTION:
        return [_fail(spec, "mask-not-binary", f"mask is not binary: {grey:.1%} of pixels are mid-grey (32..223)",
                      "use the official binary masks (JPEG noise near 0/255 is fine)")]
    return []


_SPACES: dict = {}


def _space(name: str):
    """:func:`vtondata.labels.label_space`, built once per process (it builds a colour table on every call)."""
    sp = _SPACES.get(name)
    if sp is None:
        sp = _SPACES[name] = label_space(name)
    return sp


def _check_ids(ids: np.ndarray, mode: str, spec: AssetSpec, row: dict) -> list[Finding]:
    """Label check of a grey / palette parse: every id (palette index or grey value) < the space's class count."""
    space = _space(spec.label_space or "cihp20")
    row["encoding"] = row.get("encoding") or ("palette_ids" if mode == "P" else "gray_ids")
    if ids.size == 0 or int(ids.max()) < space.num_classes:
        return []
    bad = ids >= space.num_classes
    vals = np.unique(ids[bad])[:8]
    return [_fail(spec, "parse-out-of-space",
                  f"{np.count_nonzero(bad)} pixels outside label space {space.name} (ids {vals.tolist()})",
                  f"check that this parse uses {space.name} (ids 0-{space.num_classes - 1})")]


def _check_parse(im: Image.Image, spec: AssetSpec, row: dict) -> list[Finding]:
    space = _space(spec.label_space or "cihp20")
    if im.mode in ("P", "L"):
        return _check_ids(np.asarray(im), im.mode, spec, row)
    rgb = np.asarray(im.convert("RGB"))
    ids = space.ids_from_colors(rgb)
    row["encoding"] = row.get("encoding") or "rgb_colours"
    bad = ids == 255
    if bad.any():
        return [_fail(spec, "parse-out-of-space",
                      f"{np.count_nonzero(bad)} pixels outside label space {space.name} (colours not in the palette)",
                      f"check that this parse uses {space.name} (ids 0-{space.num_classes - 1})")]
    return []


def iter_files(root: Path, rel: str, suffixes: Iterable[str] = ()) -> list[str]:
    """Sorted names of regular files in ``root/rel`` (not recursive), filtered by suffix."""
    d = root / rel
    if not d.is_dir():
        return []
    suf = tuple(suffixes)
    with os.scandir(d) as it:
        names = [e.name for e in it if e.is_file() and not e.name.startswith(".") and (not suf or e.name.endswith(suf))]
    return sorted(names)
