"""Decode any manifest asset into its canonical array, by role and encoding.

Canonical arrays (native resolution of the file):

======== ===================================================================================
image    ``H x W x 3`` uint8 RGB
mask     ``H x W`` uint8 in {0, 1} (greyscale thresholded at 128, so JPEG noise is removed)
parse    ``H x W`` uint8 label ids of the asset's label space (palette / grey ids as stored, RGB colour
         renderings mapped through the space's colours, VITON ``.mat`` through the VITON reader)
pose     ``K x 3`` float32 (x, y, confidence) in pixels of the file's image, K = 18 or 25
densepose ``(I, U, V)``: I uint8 ``H x W`` part index 0-24, U and V float32 ``H x W`` in [0, 1]
======== ===================================================================================
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from .errors import ImageReadError, UnknownNameError, VtonDataError
from .labels import label_space

PathLike = Union[str, Path]


@lru_cache(maxsize=1)
def field_table() -> dict:
    """The loader field definitions and role types (``data/fields.json``)."""
    return json.loads(resources.files("vtondata").joinpath("data/fields.json").read_text())


def role_type(role: str) -> str:
    """``image`` / ``mask`` / ``parse`` / ``pose`` / ``densepose`` / ``file`` for a manifest role."""
    types = field_table()["role_types"]
    if role not in types:
        raise UnknownNameError(f"unknown asset role {role!r}", fix=f"use one of {sorted(types)}")
    return types[role]


def _open(path: PathLike) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
        return im
    except FileNotFoundError:
        raise ImageReadError("file not found", file=path, fix="re-run `vtondata prepare` (the root changed?)") from None
    except Exception as exc:  # PIL raises many types for garbage
        raise ImageReadError(f"cannot decode image ({type(exc).__name__}: {exc})", file=path,
                             fix="re-download or re-extract this file") from None


def read_image(path: PathLike) -> np.ndarray:
    """``H x W x 3`` uint8 RGB."""
    im = _open(path)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def read_mask(path: PathLike) -> np.ndarray:
    """``H x W`` uint8 in {0, 1}: grey >= 128 (``1``-mode and palette masks by their values)."""
    im = _open(path)
    if im.mode == "1":
        return np.asarray(im).astype(np.uint8)
    if im.mode == "P":
        arr = np.asarray(im)
        return (arr > 0).astype(np.uint8) if arr.max(initial=0) <= 1 else (arr >= 128).astype(np.uint8)
    if im.mode != "L":
        im = im.convert("L")
    return (np.asarray(im) >= 128).astype(np.uint8)


def read_parse(path: PathLike, encoding: Optional[str] = None, space: Optional[str] = None,
               width: Optional[int] = None, height: Optional[int] = None) -> np.ndarray:
    """``H x W`` uint8 ids of ``space`` (default cihp20) from a palette / grey / RGB-colour PNG or a VITON ``.mat``.

    ``width`` / ``height`` are needed for ``.mat`` files only (the VITON segment arrays are stored transposed).
    RGB colours outside the space raise :class:`VtonDataError` naming the file.
    """
    path = Path(path)
    if path.suffix.lower() == ".mat" or encoding == "viton_mat":
        from .datasets.viton import read_segment_mat  # lazy: written by the VITON ingester

        if width is None or height is None:
            raise VtonDataError("a VITON .mat parse needs the image width and height", file=path,
                                fix="pass width= and height= (the person image's size)")
        return np.asarray(read_segment_mat(path, int(width), int(height)), np.uint8)
    im = _open(path)
    if encoding != "rgb_colours" and im.mode in ("P", "L"):
        return np.asarray(im).astype(np.uint8, copy=False)
    if encoding != "rgb_colours" and im.mode == "I;16":
        return np.asarray(im).astype(np.uint8)
    ls = label_space(space or "cihp20")
    ids = ls.ids_from_colors(np.asarray(im.convert("RGB")))
    if (ids == 255).any():
        raise VtonDataError(f"{int((ids == 255).sum())} pixels have colours outside label space {ls.name}", file=path,
                            fix=f"check the manifest's label_space for this parse (declared {ls.name})")
    return ids


def read_pose(path: PathLike, encoding: Optional[str] = None) -> tuple[np.ndarray, str]:
    """``(K x 3 float32, format)``; see :func:`vtondata.pose.read_openpose` (VITON ``pose/*.mat``: COCO-18)."""
    from .pose import read_openpose

    if encoding == "openpose_mat" or Path(path).suffix.lower() == ".mat":
        from .datasets.viton import read_pose_mat  # the original VITON release's per-image pose files

        return read_pose_mat(path), "coco18"
    return read_openpose(path)


def read_densepose(path_or_array, encoding: Optional[str], cmap: str = "parula"
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(I uint8 H x W in 0-24, U, V float32 in [0, 1])`` via :mod:`vtondata.densepose`.

    ``path_or_array``: a file, or an ``H x W x 3`` uint8 RGB array as PIL reads it; ``encoding=None`` detects it.
    Encodings without UV (VITON-HD ``vitonhd_dp_segm`` pictures) give U = V = NaN.
    """
    try:
        from . import densepose as dp  # lazy: written with the DeepFashion / STRAT ingesters
    except ImportError:
        raise VtonDataError("DensePose decoding is not available in this installation (vtondata.densepose)",
                            file=path_or_array if isinstance(path_or_array, (str, Path)) else None,
                            fix="update vtondata; the densepose module ships with the DeepFashion ingester") from None
    if isinstance(path_or_array, (str, Path)):
        iuv = dp.read_iuv(path_or_array, encoding, cmap=cmap)
    else:
        arr = np.asarray(path_or_array)
        iuv = dp.decode_iuv(arr, encoding or dp.detect_encoding(arr, cmap=cmap), cmap=cmap)
    return np.asarray(iuv.i, np.uint8), np.asarray(iuv.u, np.float32), np.asarray(iuv.v, np.float32)


def iuv_to_uint8(I: np.ndarray, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Canonical cache form of IUV: ``H x W x 3`` uint8 ``[I, round(U*255), round(V*255)]`` (NaN UV -> 0)."""
    u = np.nan_to_num(np.asarray(U, np.float32), nan=0.0)
    v = np.nan_to_num(np.asarray(V, np.float32), nan=0.0)
    return np.stack([np.asarray(I, np.uint8), np.round(np.clip(u, 0, 1) * 255).astype(np.uint8),
                     np.round(np.clip(v, 0, 1) * 255).astype(np.uint8)], -1)


def resize_image(arr: np.ndarray, hw) -> np.ndarray:
    """``H x W x C`` uint8 to ``hw = (H, W)`` with PIL bilinear (antialiased when shrinking); None keeps it."""
    if hw is None or arr.shape[:2] == tuple(hw):
        return arr
    return np.asarray(Image.fromarray(arr).resize((int(hw[1]), int(hw[0])), Image.BILINEAR))


def resize_nearest(arr: np.ndarray, hw) -> np.ndarray:
    """Labels / masks / IUV (uint8, ``H x W`` or ``H x W x 3``) to ``hw`` with PIL nearest."""
    if hw is None or arr.shape[:2] == tuple(hw):
        return arr
    return np.asarray(Image.fromarray(arr).resize((int(hw[1]), int(hw[0])), Image.NEAREST))


def decode_asset(row, root: PathLike):
    """Decode one manifest asset row (a dict or pandas row) into its canonical array (see module docstring)."""
    def get(k):
        v = row.get(k) if hasattr(row, "get") else row[k]
        return None if v is None or (isinstance(v, float) and np.isnan(v)) else v

    path = Path(root) / get("path")
    kind = role_type(get("role"))
    if kind == "image":
        return read_image(path)
    if kind == "mask":
        return read_mask(path)
    if kind == "parse":
        w, h = get("width"), get("height")
        return read_parse(path, get("encoding"), get("label_space"), w and int(w), h and int(h))
    if kind == "pose":
        return read_pose(path, get("encoding"))[0]
    if kind == "densepose":
        return read_densepose(path, get("encoding"))
    return path.read_bytes()
