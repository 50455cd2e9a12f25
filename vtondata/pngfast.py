"""A small, strict PNG reader for 8-bit non-interlaced files: chunks, zlib and row unfiltering in numpy.

Why: ``prepare`` decodes every parse and PNG mask to check its values, and at 256x192 PIL's per-file overhead
(open, plugin dispatch, decoder set-up, ``tobytes``) costs more than the decode itself. Released parses and masks
are plain 8-bit grey or palette PNGs (CP-VTON+ / MPV parses: grey, filter "Sub" on every row; VITON-HD:
palette), which this module decodes with one ``zlib.decompress`` and a few vectorised numpy operations.

:func:`decode` returns the raw sample array, exactly what ``np.asarray(PIL.Image.open(f))`` gives for the same
file (palette *indices* for palette files, never the colours):

- shape ``(H, W)`` uint8 for grey (mode ``L``) and palette (mode ``P``) files, ``(H, W, C)`` uint8 for grey+alpha
  (``LA``, C=2), ``RGB`` (C=3) and ``RGBA`` (C=4); possibly read-only (a view of Pillow's buffer).

Supported: bit depth 8, colour types 0 / 2 / 3 / 4 / 6, no interlacing, and only the chunks ``IHDR``, ``PLTE``,
``IDAT`` (consecutive) and ``IEND`` (last, at the end of the data). All five row filters are decoded: None and
Sub rows in one vectorised step (they do not depend on the row above), runs of Up rows as one cumulative sum
down the columns; Average and Paeth depend on the left neighbour's *decoded* value and run as a per-row Python
loop (the reference, slow); by default a file with such rows goes to PIL's C ``zip`` decoder instead (the
decoder PIL's PNG plugin uses, minus its per-file overhead), see ``rows`` in :func:`decode`.

Two outcomes besides success, both deliberate:

- :class:`PngUnsupported` -- anything outside the subset above (interlaced, 16-bit, other chunks); the caller
  falls back to PIL. Not an error in the file.
- :class:`PngCorruptError` (an :class:`~vtondata.errors.ImageReadError`) -- the file breaks the PNG format
  (bad signature, chunk running past the end, CRC mismatch, zlib stream broken or of the wrong length, unknown
  filter type). :mod:`vtondata.probe` still lets PIL give the verdict and the message for such files, so
  accepting a file here never accepts more than PIL would: every check here is at least as strict as PIL's.
"""

from __future__ import annotations

import zlib
from typing import Optional

import numpy as np

from .errors import ImageReadError

try:  # zlib-ng's inflate gives the same bytes as zlib's, 4-7x faster on these small streams; zlib is the fallback
    from zlib_ng import zlib_ng as _inflater
except ImportError:  # pragma: no cover - zlib-ng is a dependency; the module still works without it
    _inflater = zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: colour type -> (PIL mode, samples per pixel), bit depth 8 only
COLOR_TYPES = {0: ("L", 1), 2: ("RGB", 3), 3: ("P", 1), 4: ("LA", 2), 6: ("RGBA", 4)}
_ALLOWED = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


class PngUnsupported(Exception):
    """The file is outside the fast reader's subset (not an error in the file): decode it with PIL instead."""


class PngCorruptError(ImageReadError):
    """The bytes are not a valid PNG (names what is broken)."""


def _corrupt(msg: str, file: Optional[str]) -> PngCorruptError:
    return PngCorruptError(f"corrupt PNG: {msg}", file=file, fix="re-download or re-extract this file")


def read_chunks(data: bytes, file: Optional[str] = None) -> tuple[tuple, bytes, bool]:
    """``(ihdr, idat, has_plte)`` of a PNG in the supported chunk subset; CRCs of every chunk verified.

    ``ihdr`` = (width, height, bit_depth, colour_type, compression, filter_method, interlace).
    """
    if data[:8] != SIGNATURE:
        raise _corrupt("no PNG signature", file)
    n = len(data)
    i = 8
    ihdr = None
    idat: list[bytes] = []
    idat_done = False
    plte = False
    crc32 = zlib.crc32
    while True:
        if i + 12 > n:
            raise _corrupt(f"chunk header runs past the end of the data at byte {i}", file)
        length = int.from_bytes(data[i:i + 4], "big")
        ctype = data[i + 4:i + 8]
        end = i + 12 + length
        if end > n:
            raise _corrupt(f"chunk {ctype!r} of {length} bytes runs past the end of the data", file)
        body = data[i + 8:i + 8 + length]
        if crc32(body, crc32(ctype)) != int.from_bytes(data[end - 4:end], "big"):
            raise _corrupt(f"CRC mismatch in chunk {ctype!r} at byte {i}", file)
        if ctype not in _ALLOWED:
            raise PngUnsupported(f"chunk {ctype!r}")
        if ihdr is None:
            if ctype != b"IHDR" or length != 13:
                raise PngUnsupported("first chunk is not a 13-byte IHDR")
            ihdr = (int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big"), *body[8:13])
        elif ctype == b"IHDR":
            raise PngUnsupported("second IHDR")
        elif ctype == b"IDAT":
            if idat_done:
                raise PngUnsupported("IDAT chunks are not consecutive")
            idat.append(body)
        elif ctype == b"PLTE":
            if plte or idat or length % 3 or not 3 <= length <= 768:
                raise PngUnsupported("unusual PLTE chunk")
            plte = True
        elif ctype == b"IEND":
            if end != n or length:
                raise PngUnsupported("data after IEND or non-empty IEND")
            break
        if idat and ctype != b"IDAT":
            idat_done = True
        i = end
    if not idat:
        raise _corrupt("no IDAT chunk", file)
    return ihdr, b"".join(idat), plte


def unfilter(raw: np.ndarray, bpp: int, allow_slow: bool = False) -> np.ndarray:
    """Undo the PNG row filters of ``raw`` (H, 1 + stride) uint8 -> (H, stride) uint8 (``bpp`` bytes per pixel)."""
    ft = raw[:, 0]
    h, stride = raw.shape[0], raw.shape[1] - 1
    if h == 0:
        return raw[:, 1:].copy()
    if int(ft.max()) > 4:
        raise ValueError(f"unknown filter type {int(ft.max())} in row {int(np.argmax(ft > 4))}")
    kinds = np.bincount(ft, minlength=5)
    if (kinds[3] or kinds[4]) and not allow_slow:
        raise PngUnsupported("Average / Paeth rows (sequential decode)")
    if kinds[1] == h and bpp == 1:  # every row Sub (OpenCV's writer): one prefix sum, summed in uint16 (numpy's
        # uint8 cumsum runs ~3x slower) and wrapped to uint8 (mod 256) on the cast
        return np.cumsum(raw[:, 1:], axis=1, dtype=np.uint16).astype(np.uint8)
    out = raw[:, 1:].copy()
    if kinds[1]:  # Sub: prefix sums along the row, per byte of the pixel (mod 256 through uint8 wrap-around)
        sub = ft == 1
        if bpp == 1:
            out[sub] = np.cumsum(out[sub], axis=1, dtype=np.uint16)  # wraps to uint8 on assignment
        else:
            rows = out[sub]
            w = stride // bpp
            out[sub] = np.cumsum(rows.reshape(len(rows), w, bpp), axis=1, dtype=np.uint16).reshape(len(rows), stride)
    if kinds[2] or kinds[3] or kinds[4]:
        dep = np.flatnonzero(ft >= 2)  # rows that need the decoded row above, in order
        k = 0
        while k < len(dep):
            r = int(dep[k])
            if ft[r] == 2:  # a run of consecutive Up rows: one cumulative sum down the columns
                e = k
                while e + 1 < len(dep) and dep[e + 1] == dep[e] + 1 and ft[dep[e + 1]] == 2:
                    e += 1
                r1 = int(dep[e]) + 1
                acc = np.cumsum(out[r:r1], axis=0, dtype=np.uint8)
                if r > 0:
                    acc += out[r - 1]
                out[r:r1] = acc
                k = e + 1
                continue
            prior = out[r - 1].tolist() if r > 0 else [0] * stride
            cur = out[r].tolist()
            if ft[r] == 3:  # Average
                for x in range(stride):
                    left = cur[x - bpp] if x >= bpp else 0
                    cur[x] = (cur[x] + ((left + prior[x]) >> 1)) & 255
            else:  # Paeth
                for x in range(stride):
                    a = cur[x - bpp] if x >= bpp else 0
                    b = prior[x]
                    c = prior[x - bpp] if x >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                    cur[x] = (cur[x] + pred) & 255
            out[r] = cur
            k += 1
    return out


ROWS = ("auto", "numpy", "pil", "vectorised")


def _pil_rows(idat: bytes, mode: str, w: int, h: int, file: Optional[str]) -> np.ndarray:
    """Inflate + unfilter with PIL's C ``zip`` decoder -- the very decoder ``PngImagePlugin`` uses for this tile
    (same raw mode, non-interlaced), without the plugin's per-file overhead."""
    from PIL import Image

    try:
        im = Image.frombytes(mode, (w, h), idat, "zip", mode)
    except (ValueError, OSError) as exc:
        raise _corrupt(f"image data cannot be decoded ({exc})", file) from None
    return pil_array(im)


def pil_array(im) -> np.ndarray:
    """``np.asarray(im)``; for 1-byte modes (``L``, ``P``) a read-only zero-copy view through Pillow's Arrow
    export, several times faster than ``np.asarray`` (which goes through ``tobytes``) on small images."""
    if im.mode in ("L", "P"):
        try:
            import pyarrow as pa

            w, h = im.size
            flat = pa.array(im).to_numpy(zero_copy_only=True)
            if flat.dtype == np.uint8 and flat.size == w * h:
                return flat.reshape(h, w)
        except Exception:  # older Pillow, or an image not held in one block
            pass
    return np.asarray(im)


def decode(data: bytes, *, rows: str = "auto", allow_slow: bool = False,
           file: Optional[str] = None) -> tuple[np.ndarray, str]:
    """``(array, PIL mode)`` of an 8-bit non-interlaced PNG held in ``data`` (see the module docstring).

    ``rows`` picks the row decoder: ``"vectorised"`` numpy for None / Sub / Up rows and :class:`PngUnsupported`
    for Average / Paeth rows (unless ``allow_slow``: then the per-row Python loop, the reference); ``"numpy"`` =
    ``"vectorised"`` with ``allow_slow``; ``"pil"`` PIL's C decoder on the checked chunks (one inflate, every filter
    at C speed); ``"auto"`` (default) numpy, and PIL's C decoder for a file that turns out to hold Average / Paeth
    rows (inflated twice: callers that expect such files pass ``"pil"``). Every route returns the same array.
    Raises :class:`PngUnsupported` (use PIL) or :class:`PngCorruptError` (the file is broken).
    """
    if rows not in ROWS:
        raise ValueError(f"rows must be one of {ROWS}")
    (w, h, depth, ctype, comp, fmethod, interlace), idat, plte = read_chunks(data, file)
    if depth != 8 or ctype not in COLOR_TYPES:
        raise PngUnsupported(f"bit depth {depth}, colour type {ctype}")
    if comp or fmethod or interlace:
        raise PngUnsupported("interlaced, or non-standard compression / filter method")
    if not w or not h:
        raise PngUnsupported("empty image")
    if (ctype == 3) != plte:
        raise PngUnsupported("palette image without PLTE, or PLTE in a non-palette image")
    mode, spp = COLOR_TYPES[ctype]
    if rows == "pil":
        return _pil_rows(idat, mode, w, h, file), mode
    stride = w * spp
    expected = h * (stride + 1)
    dec = _inflater.decompressobj()
    try:
        buf = dec.decompress(idat, expected + 1)
    except (zlib.error, _inflater.error) as exc:
        raise _corrupt(f"broken zlib stream ({exc})", file) from None
    if len(buf) != expected or not dec.eof or dec.unused_data or dec.unconsumed_tail:
        what = "truncated" if len(buf) < expected or not dec.eof else "longer than the image"
        raise _corrupt(f"image data {what} ({len(buf)} bytes decompressed, {expected} expected for {w}x{h} {mode})",
                       file)
    try:
        pix = unfilter(np.frombuffer(buf, np.uint8).reshape(h, stride + 1), spp, allow_slow or rows == "numpy")
    except ValueError as exc:
        raise _corrupt(str(exc), file) from None
    except PngUnsupported:
        if rows != "auto":
            raise
        return _pil_rows(idat, mode, w, h, file), mode
    return (pix if spp == 1 else pix.reshape(h, w, spp)), mode


__all__ = ["decode", "pil_array", "ROWS", "read_chunks", "unfilter", "PngUnsupported", "PngCorruptError", "COLOR_TYPES"]
