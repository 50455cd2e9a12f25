"""The fast PNG reader against PIL: every filter type, grey / palette / RGB(A) / LA, odd widths, real files,
and corrupt or unusual files (a clear error, or a fall-back to PIL in the probe with the old verdict)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vtondata import pngfast
from vtondata.pngfast import PngCorruptError, PngUnsupported, decode
from vtondata.probe import AssetSpec, probe


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(ctype)))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filter_rows(pix: np.ndarray, filters: list[int], bpp: int) -> bytes:
    """Reference PNG encoder side: filter each row of ``pix`` (H, stride) with the given filter type."""
    h, stride = pix.shape
    out = bytearray()
    prev = [0] * stride
    for r in range(h):
        cur = pix[r].tolist()
        f = filters[r % len(filters)]
        row = []
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = (0, a, b, (a + b) >> 1, _paeth(a, b, c))[f]
            row.append((cur[x] - pred) & 255)
        out += bytes([f]) + bytes(row)
        prev = cur
    return bytes(out)


def _png(pix: np.ndarray, ctype: int, filters: list[int], *, extra: bytes = b"", palette: int = 20) -> bytes:
    h, w = pix.shape[:2]
    spp = pngfast.COLOR_TYPES[ctype][1]
    raw = _filter_rows(pix.reshape(h, w * spp), filters, spp)
    data = pngfast.SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
    if ctype == 3:
        data += _chunk(b"PLTE", bytes(range(palette * 3)))
    return data + extra + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def _pil(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


@pytest.mark.parametrize("ctype", [0, 2, 3, 4, 6])
@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [2, 2, 1, 2, 4, 2, 2, 3, 0]])
@pytest.mark.parametrize("w", [1, 7, 33])
def test_matches_pil_every_filter(ctype, filters, w):
    rng = np.random.default_rng(w * 31 + ctype)
    spp = pngfast.COLOR_TYPES[ctype][1]
    h = 11
    hi = 20 if ctype == 3 else 256
    pix = rng.integers(0, hi, size=(h, w, spp) if spp > 1 else (h, w), dtype=np.uint8)
    data = _png(pix, ctype, filters)
    ref = _pil(data)
    got, mode = decode(data, allow_slow=True)
    assert mode == Image.open(io.BytesIO(data)).mode
    assert got.dtype == np.uint8 and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, pix)
    for rows in ("auto", "numpy", "pil"):  # every route gives PIL's array
        np.testing.assert_array_equal(decode(data, rows=rows)[0], ref)
    if 3 in filters or 4 in filters:  # Average / Paeth: not vectorised
        with pytest.raises(PngUnsupported):
            decode(data, rows="vectorised")
    else:
        np.testing.assert_array_equal(decode(data, rows="vectorised")[0], ref)


def test_pil_written_files_match(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 20, size=(37, 29), dtype=np.uint8)
    ids[10:20, 5:25] = 7  # flat regions: PIL's encoder picks different filters per row
    for mode in ("L", "P"):
        im = Image.fromarray(ids, mode=mode)
        if mode == "P":
            im.putpalette(list(range(60)))
        buf = io.BytesIO()
        im.save(buf, "PNG", optimize=False)
        got, m = decode(buf.getvalue(), allow_slow=True)
        assert m == mode
        np.testing.assert_array_equal(got, _pil(buf.getvalue()))


def test_real_pngs_match_pil(realdata):
    files = sorted(Path(realdata).rglob("*.png"))
    assert files, "no real PNG files found"
    checked = 0
    for p in files:
        data = p.read_bytes()
        try:
            got, mode = decode(data, allow_slow=True)
        except PngUnsupported:
            continue
        ref = _pil(data)
        assert mode == Image.open(p).mode, p
        np.testing.assert_array_equal(got, ref, err_msg=str(p))
        checked += 1
    assert checked >= 20  # grey CP-VTON+ / MPV parses and masks (filter Sub), RGB parses (Up / Paeth)


def test_corrupt_files_raise_clear_errors():
    pix = np.arange(60, dtype=np.uint8).reshape(6, 10) % 20
    good = _png(pix, 0, [1])
    with pytest.raises(PngCorruptError, match="no PNG signature"):
        decode(b"GIF89a" + good[6:])
    bad_crc = bytearray(good)
    bad_crc[-20] ^= 0xFF  # inside the IDAT body
    with pytest.raises(PngCorruptError, match="CRC mismatch"):
        decode(bytes(bad_crc), file="x.png")
    with pytest.raises(PngCorruptError, match="runs past the end"):
        decode(good[:-30])
    # a valid chunk structure around a zlib stream of the wrong length / an unknown filter type
    short = _png(pix, 0, [1])[:33] + _chunk(b"IDAT", zlib.compress(b"\x00" * 30)) + _chunk(b"IEND", b"")
    with pytest.raises(PngCorruptError, match="truncated"):
        decode(short)
    bad_filter = _png(pix, 0, [1])[:33] + _chunk(b"IDAT", zlib.compress(b"\x07" + b"\x00" * 10 + b"\x00" * 55)) \
        + _chunk(b"IEND", b"")
    with pytest.raises(PngCorruptError, match="unknown filter type 7"):
        decode(bad_filter)
    garbage = _png(pix, 0, [1])[:33] + _chunk(b"IDAT", b"not zlib at all") + _chunk(b"IEND", b"")
    err = pytest.raises(PngCorruptError, decode, garbage, file="train/image-parse/1.png").value
    assert "train/image-parse/1.png" in str(err) and "zlib" in str(err) and "re-download" in str(err)
    for bad in (short, garbage):  # PIL's C decoder route refuses them too
        with pytest.raises(PngCorruptError, match="cannot be decoded"):
            decode(bad, rows="pil")


def test_unusual_files_are_unsupported():
    pix = np.zeros((4, 5), np.uint8)
    with pytest.raises(PngUnsupported):  # an ancillary chunk: PIL parses it, the fast path does not
        decode(_png(pix, 0, [0], extra=_chunk(b"tEXt", b"k\x00v")))
    buf = io.BytesIO()
    Image.fromarray(pix.astype(np.uint16) * 300).save(buf, "PNG")
    with pytest.raises(PngUnsupported):  # 16-bit
        decode(buf.getvalue())
    interlaced = bytearray(_png(pix, 0, [0]))
    interlaced[28] = 1  # IHDR interlace method (Adam7), CRC fixed below
    interlaced[29:33] = struct.pack(">I", zlib.crc32(bytes(interlaced[12:29])))
    with pytest.raises(PngUnsupported, match="interlaced"):
        decode(bytes(interlaced))


def _probe_png(tmp_path: Path, data: bytes, check: str, space: str = "cihp20"):
    p = tmp_path / "f.png"
    p.write_bytes(data)
    spec = AssetSpec("a", "train", "parse" if check == "parse" else "garment_mask", "s", "f.png", check=check,
                     label_space=space if check == "parse" else "binary")
    return probe(tmp_path, spec)


def test_probe_fast_path_same_verdicts_as_pil(tmp_path):
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 20, size=(64, 48), dtype=np.uint8)
    ok = _probe_png(tmp_path, _png(ids, 3, [0, 1, 2]), "parse")
    assert ok.ok and ok.row["mode"] == "P" and ok.row["encoding"] == "palette_ids" and ok.row["width"] == 48
    ids[3, 4], ids[40, 2] = 20, 25
    bad = _probe_png(tmp_path, _png(ids, 0, [1]), "parse")
    assert not bad.ok and bad.findings[0].code == "parse-out-of-space"
    assert "2 pixels outside label space cihp20 (ids [20, 25])" in bad.findings[0].message
    assert bad.row["encoding"] == "gray_ids"
    # Paeth rows: PIL decides (same verdict)
    slow = _probe_png(tmp_path, _png(ids, 0, [4]), "parse")
    assert not slow.ok and "ids [20, 25]" in slow.findings[0].message
    # grey PNG mask with a mid-grey region fails, a binary one with 1/254 noise passes
    m = np.zeros((64, 48), np.uint8)
    m[10:50, 10:40] = 255
    m[0, 0], m[1, 1] = 1, 254
    assert _probe_png(tmp_path, _png(m, 0, [1, 2]), "mask").ok
    m[20:40, 15:35] = 128
    grey = _probe_png(tmp_path, _png(m, 0, [1, 2]), "mask")
    assert not grey.ok and grey.findings[0].code == "mask-not-binary"
    # a corrupt parse is rejected exactly as before (PIL's message)
    broken = bytearray(_png(ids, 3, [1]))
    broken[-20] ^= 0xFF
    res = _probe_png(tmp_path, bytes(broken), "parse")
    assert not res.ok and res.findings[0].code == "corrupt-image"


@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_probe_matches_per_file_probe_and_fingerprint(tmp_path, workers):
    """The streamed probe (what prepare uses: specs probed as the scan declares them, on worker processes, rows
    spooled to disk) gives the per-file probe's rows and findings in declaration order, and the fingerprint built
    from the sizes / mtimes taken while reading equals the one of a separate stat pass."""
    import pyarrow as pa

    from vtondata.datasets import get_ingester
    from vtondata.findings import Report
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import fingerprint, fingerprint_header
    from vtondata.probefeed import ProbeFeed, streaming
    from vtondata.schema import ASSETS

    root = make_fixture("viton-hd", tmp_path / "vh", n=4, size="64x48", seed=0)
    parse = sorted((root / "train" / "image-parse-v3").iterdir())[0]
    ids = np.asarray(Image.open(parse)).copy()
    ids[0, 0] = 30
    parse.write_bytes(_png(ids, 0, [1, 4]))  # a grey parse with Sub + Paeth rows and an id outside CIHP-20
    (root / "train" / "openpose_json" / "00001_00_keypoints.json").unlink()
    ing = get_ingester("viton-hd")
    scan = ing.scan(root, "official", Report())  # a plain scan: the specs, for the reference
    feed = ProbeFeed(root, "viton-hd", tmp_path / "spool.arrow", workers=workers, chunk=5, inline_below=7)
    with streaming(feed):
        streamed = ing.scan(root, "official", Report())
    feed.finish()
    assert streamed.assets is feed and feed.n == len(scan.assets) > 7
    with pytest.raises(TypeError):
        list(streamed.assets)  # a streamed scan keeps no specs
    rows = [dict(probe(root, s).row, dataset="viton-hd") for s in scan.assets]
    assert pa.Table.from_batches(list(feed.batches()), ASSETS).equals(pa.Table.from_pylist(rows, schema=ASSETS))
    assert feed.batch_rows[0] == 5 and sum(feed.batch_rows) == len(rows)
    assert sorted(f.code for f in feed.findings) == ["missing-file", "parse-out-of-space"]
    assert feed.rows_at([3, 0]) == [rows[3], rows[0]]
    opts = {"deep": False, "strict": True}
    assert fingerprint(ing, root, scan, opts) == feed.digest(fingerprint_header(ing, "official", opts), scan.list_files)
