"""DensePose files in try-on data: three incompatible encodings decoded into one canonical IUV.

Canonical IUV (:class:`IUV`): ``i`` (H, W) uint8 part index 0-24 (0 = background, 1-24 the DensePose
chart parts), ``u`` and ``v`` (H, W) float32 in [0, 1] (0 where ``i == 0``), ``uv_valid`` False when the
file carries no UV (then ``u`` and ``v`` are NaN everywhere).

Encodings (``docs/datasets.md`` 0.3; the manifest's ``encoding`` column names one per file):

``detectron_iuv``   Detectron1 ``*_IUV.png``: the array ``[I, U*255, V*255]`` written by ``cv2.imwrite``, so
                    the file (read as RGB) holds **R = V*255, G = U*255, B = I** (MPV competition ``all_densepose``).
``pws_iuv``         Pose-with-Style ``*_iuv.png``: saved with PIL, **R = I, G = U*255, B = V*255**, zero outside
                    the person (DeepFashion ``densepose/{train,test}/<stem>_iuv.png``).
``vitonhd_dp_segm`` VITON-HD ``image-densepose/*.jpg``: a colour *picture* of I (detectron2 ``apply_net show
                    dp_segm``: I scaled by 255/24, an OpenCV colormap, black where I = 0), JPEG-compressed. I is
                    decoded approximately as the nearest colour of a table in ``data/densepose_colormaps.json``
                    (``parula`` by default, detectron2's default; ``viridis``; ``vtondata-fixture`` for the
                    synthetic fixtures). U, V are not in the file: NaN and ``uv_valid = False``.

:func:`detect_encoding` guesses the encoding from the values (channel holding 0-24 with zeros elsewhere at
the background) and falls back to the file-name conventions; :func:`encode_iuv` writes any encoding (fixtures).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from .errors import DensePoseFormatError, ImageReadError

ENCODINGS = ("detectron_iuv", "pws_iuv", "vitonhd_dp_segm")
NUM_PARTS = 24  # chart parts 1-24; 0 is background
#: RGB channel holding I, U*255 and V*255 in the file, per IUV encoding
_CHANNELS = {"pws_iuv": (0, 1, 2), "detectron_iuv": (2, 1, 0)}
#: a dp_segm pixel farther than this (RGB Euclidean) from every table colour counts as "not a colour of the table"
SEGM_MAX_DIST = 60.0


@dataclass
class IUV:
    """Canonical DensePose: ``i`` (H, W) uint8 0-24; ``u``, ``v`` (H, W) float32 in [0, 1] or NaN."""

    i: np.ndarray
    u: np.ndarray
    v: np.ndarray
    uv_valid: bool
    encoding: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.i.shape

    @property
    def foreground(self) -> np.ndarray:
        """(H, W) bool: pixels on the body (I > 0)."""
        return self.i > 0


@lru_cache(maxsize=1)
def _tables() -> dict:
    return json.loads(resources.files("vtondata").joinpath("data/densepose_colormaps.json").read_text())


def colormap(name: str = "parula") -> np.ndarray:
    """(25, 3) uint8 RGB colour of each part index in a dp_segm picture (index 0 = black background)."""
    maps = _tables()["colormaps"]
    if name not in maps:
        raise DensePoseFormatError(f"unknown dp_segm colormap {name!r}", fix=f"use one of {sorted(maps)}")
    return np.asarray(maps[name], np.uint8)


def _rgb(arr: np.ndarray, file=None) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
        raise DensePoseFormatError(f"expected an (H, W, 3) uint8 RGB array, got {a.shape} {a.dtype}", file=file,
                                   fix="DensePose files are 3-channel 8-bit images")
    return a[..., :3]


def decode_iuv(rgb: np.ndarray, encoding: str, *, cmap: str = "parula", file=None) -> IUV:
    """Decode an (H, W, 3) uint8 RGB array (as PIL reads the file) of ``encoding`` into :class:`IUV`.

    Raises :class:`DensePoseFormatError` when the values cannot be of that encoding (part index above 24).
    """
    a = _rgb(rgb, file)
    if encoding in _CHANNELS:
        ci, cu, cv = _CHANNELS[encoding]
        i = np.ascontiguousarray(a[..., ci])
        if i.size and int(i.max()) > NUM_PARTS:
            raise DensePoseFormatError(
                f"part index up to {int(i.max())} in the {'red' if ci == 0 else 'blue'} channel; {encoding} holds 0-24 "
                f"there", file=file, fix="check the encoding (detect_encoding) or re-export the DensePose file")
        fg = i > 0
        u = np.where(fg, a[..., cu].astype(np.float32) / 255.0, np.float32(0)).astype(np.float32)
        v = np.where(fg, a[..., cv].astype(np.float32) / 255.0, np.float32(0)).astype(np.float32)
        return IUV(i, u, v, True, encoding)
    if encoding == "vitonhd_dp_segm":
        i, _ = segm_to_index(a, cmap)
        nan = np.full(i.shape, np.nan, np.float32)
        return IUV(i, nan, nan.copy(), False, encoding)
    raise DensePoseFormatError(f"unknown DensePose encoding {encoding!r}", file=file, fix=f"use one of {ENCODINGS}")


def segm_to_index(rgb: np.ndarray, cmap: str = "parula") -> tuple[np.ndarray, np.ndarray]:
    """Nearest table colour per pixel: ``(index (H, W) uint8 0-24, distance (H, W) float32)``."""
    table = colormap(cmap).astype(np.float32)
    flat = _rgb(rgb).reshape(-1, 3)
    # decode each distinct colour once (JPEG pictures hold a few thousand distinct colours)
    key = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    uniq, inv = np.unique(key, return_inverse=True)
    cols = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], 1).astype(np.float32)
    d2 = ((cols[:, None, :] - table[None, :, :]) ** 2).sum(-1)
    best = d2.argmin(1)
    dist = np.sqrt(d2[np.arange(len(uniq)), best]).astype(np.float32)
    h, w = rgb.shape[:2]
    return best.astype(np.uint8)[inv].reshape(h, w), dist[inv].reshape(h, w)


def encode_iuv(i: np.ndarray, u: Optional[np.ndarray] = None, v: Optional[np.ndarray] = None, *,
               encoding: str, cmap: str = "parula") -> np.ndarray:
    """Canonical I (H, W) 0-24 and U, V (H, W) in [0, 1] -> the (H, W, 3) uint8 RGB array to save with PIL.

    U, V are stored as ``floor(x * 255)`` (as the releases do); ``vitonhd_dp_segm`` ignores them.
    """
    i = np.asarray(i)
    if i.ndim != 2 or (i.size and (int(i.min()) < 0 or int(i.max()) > NUM_PARTS)):
        raise DensePoseFormatError("I must be an (H, W) array of part indices 0-24", fix="clip or relabel the parts")
    i8 = i.astype(np.uint8)
    if encoding == "vitonhd_dp_segm":
        return colormap(cmap)[i8]
    if encoding not in _CHANNELS:
        raise DensePoseFormatError(f"unknown DensePose encoding {encoding!r}", fix=f"use one of {ENCODINGS}")
    if u is None or v is None:
        raise DensePoseFormatError(f"{encoding} needs U and V", fix="pass u= and v= arrays in [0, 1]")
    fg = i8 > 0
    uu = np.where(fg, np.floor(np.clip(u, 0, 1) * 255), 0).astype(np.uint8)
    vv = np.where(fg, np.floor(np.clip(v, 0, 1) * 255), 0).astype(np.uint8)
    out = np.zeros(i8.shape + (3,), np.uint8)
    ci, cu, cv = _CHANNELS[encoding]
    out[..., ci], out[..., cu], out[..., cv] = i8, uu, vv
    return out


def _is_iuv(a: np.ndarray, ci: int) -> bool:
    i = a[..., ci]
    if not i.any() or int(i.max()) > NUM_PARTS:
        return False
    others = [c for c in range(3) if c != ci]
    return not a[i == 0][:, others].any()


def detect_encoding(rgb: np.ndarray, name: Optional[str] = None, *, cmap: str = "parula") -> str:
    """Guess the encoding of an (H, W, 3) RGB DensePose array (``name``: the file name, a tie-breaker).

    ``pws_iuv`` when the red channel holds 0-24 and the other channels are 0 where it is 0; ``detectron_iuv``
    the same with the blue channel; ``vitonhd_dp_segm`` when most body pixels are near a colormap colour.
    Raises :class:`DensePoseFormatError` when nothing fits (e.g. an all-black picture).
    """
    a = _rgb(rgb)
    pws, det = _is_iuv(a, 0), _is_iuv(a, 2)
    if pws and det:  # only when U and V are tiny everywhere: let the file name decide
        return "detectron_iuv" if "_IUV." in (name or "") else "pws_iuv"
    if pws:
        return "pws_iuv"
    if det:
        return "detectron_iuv"
    body = a.reshape(-1, 3).max(1) > 24
    if body.any():
        _, dist = segm_to_index(a.reshape(-1, 1, 3)[body], cmap)
        if float(np.mean(dist <= SEGM_MAX_DIST)) >= 0.9:
            return "vitonhd_dp_segm"
    raise DensePoseFormatError("cannot tell the DensePose encoding: no channel holds part indices 0-24 and the "
                               "colours are not those of a dp_segm picture", file=name,
                               fix=f"pass the encoding explicitly (one of {ENCODINGS})")


def check(rgb: np.ndarray, encoding: str, *, cmap: str = "parula") -> Optional[str]:
    """Why an array is not valid ``encoding`` (a message), or None when it is (used by the file probe)."""
    a = _rgb(rgb)
    if encoding in _CHANNELS:
        ci = _CHANNELS[encoding][0]
        i = a[..., ci]
        if i.size and int(i.max()) > NUM_PARTS:
            return f"part index up to {int(i.max())}, {encoding} holds 0-24 in the {'red' if ci == 0 else 'blue'} channel"
        others = [c for c in range(3) if c != ci]
        n = int(np.count_nonzero(a[i == 0][:, others].any(1)))
        if n:
            return f"{n} background pixels (I = 0) carry non-zero U/V; not {encoding}"
        return None
    if encoding == "vitonhd_dp_segm":
        body = a.reshape(-1, 3).max(1) > 24
        if body.any():
            _, dist = segm_to_index(a.reshape(-1, 1, 3)[body], cmap)
            far = float(np.mean(dist > SEGM_MAX_DIST))
            if far > 0.1:
                return f"{far:.0%} of the body pixels are not colours of the {cmap} dp_segm table"
        return None
    return f"unknown DensePose encoding {encoding!r}"


def read_iuv(path: Union[str, Path], encoding: Optional[str] = None, *, cmap: str = "parula") -> IUV:
    """Read a DensePose file into :class:`IUV`; ``encoding=None`` detects it (:func:`detect_encoding`)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise ImageReadError("DensePose file not found", file=path, fix="check the path") from None
    except Exception as exc:  # PIL raises many types for garbage
        raise ImageReadError(f"not a readable image ({type(exc).__name__}: {exc})", file=path,
                             fix="re-download or re-extract this file") from None
    enc = encoding or detect_encoding(rgb, path.name, cmap=cmap)
    return decode_iuv(rgb, enc, cmap=cmap, file=path)


def write_iuv(path: Union[str, Path], i: np.ndarray, u=None, v=None, *, encoding: str, cmap: str = "parula",
              quality: int = 95) -> None:
    """Save canonical IUV in ``encoding`` (PNG; ``vitonhd_dp_segm`` as JPEG when the suffix is .jpg)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = encode_iuv(i, u, v, encoding=encoding, cmap=cmap)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        Image.fromarray(arr).save(path, "JPEG", quality=quality)
    else:
        Image.fromarray(arr).save(path, "PNG")
