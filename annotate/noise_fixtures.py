"""Inject known noise into a copy of a generated triplet dataset (MPV), to evaluate the noise ranking.

The five kinds of SPG-VTON's section IV.A (``annotate/data/noise_signals.json`` names them):

================ ==================================================================================
kind             what is changed (in the copy; the source fixture is never touched)
================ ==================================================================================
accessory        pose B wears things pose A lacks: sunglasses, hat, scarf, gloves (drawn on the image
                 and labelled in the parse with CIHP 4 / 1 / 11 / 3) or a bag beside the body (not in
                 the parse: CIHP has no bag class)
pose_clothes     pose B wears other upper clothes (new colours and pattern in the upper-clothes region)
cloth_mismatch   the in-shop garment (and its mask) is replaced by a different garment
background       pose B's background is cluttered (rectangles, discs and bars of many colours)
identity         pose B is another person: other skin tone (face, neck, arms) and hair colour
================ ==================================================================================

``severity`` (0-1, default 1) weakens the edits: one accessory instead of two (below 0.5), 4 + 36 x severity
clutter shapes, skin / hair colours moved that fraction of the way, the new clothes pattern blended in with weight
0.4 + 0.6 x severity (a different in-shop garment stays a different garment).

``nuisance`` (0-1) first applies harmless variation to *every* image of the copy, as photographs have: a global
brightness change (up to +-15 %), a white-balance shift (+-6 % per channel) and sensor noise (sigma 4 grey
levels); clean triplets then no longer have identical colours in their two images.

Files are located through the dataset's ingester scan (any layout it reads); images are re-saved in their own
format (JPEG quality 95), parses in theirs (grey ids, palette or colour picture). The truth goes to
``<dst>/.vtondata-fixture/noise.json``: ``{"triplets": {tuple_id: kind}, "changed": {kind: [paths]}}``; every
tuple that uses a changed file is noisy (MPV items share their images between two triplets).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
from PIL import Image, ImageDraw

from vtondata.errors import VtonDataError

KINDS = ("accessory", "pose_clothes", "cloth_mismatch", "background", "identity")

# CIHP ids
BG, HAT, HAIR, GLOVE, SUNGLASSES, UPPER, NECK, SCARF, FACE, L_ARM, R_ARM = 0, 1, 2, 3, 4, 5, 10, 11, 13, 14, 15


# ----------------------------------------------------------------------------- array edits (pure functions)


def _bbox(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _colour(rng: np.random.Generator, lo: int = 20, hi: int = 235) -> tuple:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _paint(img: np.ndarray, parse: np.ndarray, shape_mask: np.ndarray, colour, label: Optional[int]) -> None:
    img[shape_mask] = colour
    if label is not None:
        parse[shape_mask] = label


def _shape(h: int, w: int, kind: str, box) -> np.ndarray:
    im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(im)
    (d.ellipse if kind == "ellipse" else d.rectangle)([float(v) for v in box], fill=255)
    return np.asarray(im) > 0


def add_accessories(img: np.ndarray, parse: np.ndarray, rng: np.random.Generator, n: int = 2) -> list[str]:
    """Draw ``n`` accessories on a person (in place); returns their names."""
    H, W = parse.shape
    face = _bbox(parse == FACE)
    options = ["hat", "glove", "bag"] + (["sunglasses", "scarf"] if face else [])
    chosen = list(rng.choice(options, size=min(n, len(options)), replace=False))
    for acc in chosen:
        col = _colour(rng)
        if acc == "sunglasses" and face:
            x0, y0, x1, y1 = face
            fh = y1 - y0
            m = _shape(H, W, "rect", (x0 - 1, y0 + 0.25 * fh, x1, y0 + 0.48 * fh))
            _paint(img, parse, m & np.isin(parse, [FACE, HAIR, BG]), (18, 18, 22), SUNGLASSES)
        elif acc == "hat":
            head = _bbox(np.isin(parse, [HAIR, FACE]))
            if head is None:
                continue
            x0, y0, x1, y1 = head
            hh = y1 - y0
            m = _shape(H, W, "ellipse", (x0 - 0.15 * (x1 - x0), y0 - 0.2 * hh, x1 + 0.15 * (x1 - x0), y0 + 0.45 * hh))
            _paint(img, parse, m & np.isin(parse, [HAIR, FACE, BG]), col, HAT)
        elif acc == "scarf" and face:
            x0, y0, x1, y1 = face
            fw = x1 - x0
            m = _shape(H, W, "rect", (x0 - 0.2 * fw, y1 - 2, x1 + 0.2 * fw, y1 + 0.45 * (y1 - y0)))
            _paint(img, parse, m & np.isin(parse, [NECK, UPPER, FACE, BG]), col, SCARF)
        elif acc == "glove":
            for arm in (L_ARM, R_ARM):
                b = _bbox(parse == arm)
                if b is None:
                    continue
                x0, y0, x1, y1 = b
                m = np.zeros_like(parse, bool)
                m[int(y1 - 0.3 * (y1 - y0)):y1, x0:x1] = True
                _paint(img, parse, m & (parse == arm), col, GLOVE)
        elif acc == "bag":
            body = _bbox(parse != BG)
            if body is None:
                continue
            x0, y0, x1, y1 = body
            bw, bh = 0.22 * W, 0.16 * H
            left = rng.random() < 0.5
            bx = max(1.0, x0 - 0.6 * bw) if left else min(W - bw - 1.0, x1 - 0.4 * bw)
            by = y0 + 0.45 * (y1 - y0)
            m = _shape(H, W, "rect", (bx, by, bx + bw, by + bh))
            strap = _shape(H, W, "rect", (bx + 0.4 * bw, by - 0.5 * bh, bx + 0.6 * bw, by))
            img[m | strap] = col
            img[strap] = (np.asarray(col) * 0.6).astype(np.uint8)
    return chosen


def _pattern(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A garment pattern unlike the fixture's stripes: checks or dots in two random colours."""
    a, b = np.array(_colour(rng)), np.array(_colour(rng))
    while np.abs(a.astype(int) - b).sum() < 120:
        b = np.array(_colour(rng))
    yy, xx = np.mgrid[0:h, 0:w]
    p = int(rng.integers(5, 12))
    if rng.random() < 0.5:
        on = ((xx // p) + (yy // p)) % 2 == 0
    else:
        on = ((xx % p - p / 2) ** 2 + (yy % p - p / 2) ** 2) < (p / 3) ** 2
    return np.where(on[..., None], a, b).astype(np.uint8)


def other_clothes(img: np.ndarray, parse: np.ndarray, rng: np.random.Generator, severity: float = 1.0) -> bool:
    """Re-dress the upper-clothes region with another pattern (in place); False if there is none.

    ``severity`` < 1 blends the new pattern with the old clothes (weight 0.4 + 0.6 * severity).
    """
    up = parse == UPPER
    if up.sum() < 50:
        return False
    pat = _pattern(*parse.shape, rng).astype(np.float32) * 0.92
    a = 0.4 + 0.6 * severity
    img[up] = np.clip((1 - a) * img[up] + a * pat[up], 0, 255).astype(np.uint8)
    return True


def busy_background(img: np.ndarray, parse: np.ndarray, rng: np.random.Generator, n: int = 40) -> None:
    """Clutter the background (parse 0) with shapes of many colours (in place)."""
    H, W = parse.shape
    canvas = Image.fromarray(img.copy())
    d = ImageDraw.Draw(canvas)
    for _ in range(n):
        x, y = rng.uniform(-0.1 * W, W), rng.uniform(-0.1 * H, H)
        w, h = rng.uniform(0.05, 0.35) * W, rng.uniform(0.03, 0.3) * H
        box = [x, y, x + w, y + h]
        c = _colour(rng, 0, 255)
        r = rng.random()
        if r < 0.4:
            d.rectangle(box, fill=c)
        elif r < 0.8:
            d.ellipse(box, fill=c)
        else:
            d.line([(x, y), (x + w, y + h)], fill=c, width=int(rng.integers(2, 6)))
    arr = np.asarray(canvas)
    bg = parse == BG
    img[bg] = arr[bg]


def other_identity(img: np.ndarray, parse: np.ndarray, rng: np.random.Generator, severity: float = 1.0) -> None:
    """Another person: shift the skin regions towards a distant skin tone and re-colour the hair (in place);
    ``severity`` is the fraction of the way to the new colours."""
    skin = np.isin(parse, [FACE, NECK, L_ARM, R_ARM])
    if skin.any():
        cur = img[skin].reshape(-1, 3).mean(0)
        tones = np.array([[245, 215, 190], [200, 150, 110], [140, 95, 65], [95, 60, 40], [230, 180, 140]], float)
        target = tones[np.argmax(np.abs(tones - cur).sum(1))] + rng.uniform(-8, 8, 3)
        target = cur + severity * (target - cur)
        img[skin] = np.clip(img[skin].astype(float) - cur + target, 0, 255).astype(np.uint8)
    hair = parse == HAIR
    if hair.any():
        cur = img[hair].reshape(-1, 3).mean(0)
        cands = np.array([[230, 200, 120], [150, 40, 20], [20, 20, 20], [200, 200, 200], [120, 70, 30]], float)
        target = cur + severity * (cands[np.argmax(np.abs(cands - cur).sum(1))] - cur)
        img[hair] = np.clip(img[hair].astype(float) - cur + target, 0, 255).astype(np.uint8)


def other_garment(shape: tuple[int, int], rng: np.random.Generator, avoid: Optional[np.ndarray] = None):
    """A different in-shop garment ``(image H x W x 3, mask H x W 0/255)`` from the fixture drawer."""
    from vtondata.fixtures.synth import Body, Garment, draw

    H, W = shape
    for _ in range(10):
        g = Garment.sample(rng)
        if avoid is None or np.abs(np.asarray(g.base, float) - avoid).sum() > 150:
            break
    d = draw(Body.sample(rng, W, H), g, H, W)
    return d.garment, d.garment_mask


def photometric_jitter(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Brightness, white balance and noise changes that do not make a triplet noisy (returns a new array)."""
    gain = (1.0 + rng.uniform(-0.15, 0.15) * strength) * (1.0 + rng.uniform(-0.06, 0.06, 3) * strength)
    out = img.astype(np.float32) * gain + rng.normal(0.0, 4.0 * strength, img.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- file I/O in the file's own format


def _read_parse(path: Path, encoding: Optional[str], space: Optional[str]) -> tuple[np.ndarray, dict]:
    from vtondata import decode

    im = Image.open(path)
    info = {"mode": im.mode, "palette": im.getpalette() if im.mode == "P" else None}
    ids = decode.read_parse(path, encoding, space)
    return np.array(ids, np.uint8), info


def _write_parse(path: Path, ids: np.ndarray, info: dict, space: Optional[str]) -> None:
    from vtondata.labels import label_space

    if info["mode"] == "P":
        im = Image.fromarray(ids, mode="P")
        im.putpalette(info["palette"])
    elif info["mode"] == "L":
        im = Image.fromarray(ids, mode="L")
    else:
        im = Image.fromarray(label_space(space or "cihp20").colorize(ids))
    im.save(path, "PNG")


def _write_image(path: Path, arr: np.ndarray) -> None:
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.fromarray(arr).save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def _write_mask(path: Path, mask01: np.ndarray) -> None:
    arr = (np.asarray(mask01) > 0).astype(np.uint8) * 255
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.fromarray(arr, mode="L").save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))


# ----------------------------------------------------------------------------- the injector


def inject(src: Path, dst: Path, *, dataset: str = "mpv", kinds: Iterable[str] = KINDS, per_kind: int = 2,
           seed: int = 0, nuisance: float = 0.0, severity: float = 1.0, overwrite: bool = False) -> dict:
    """Copy ``src`` to ``dst`` and inject ``per_kind`` noisy triplets of each kind; returns the truth record.

    Each injection picks a triplet none of whose images were changed before, so every noisy triplet has
    exactly one kind.
    """
    from vtondata.datasets import get_ingester
    from vtondata.findings import Report

    src, dst = Path(src), Path(dst)
    kinds = list(kinds)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise VtonDataError(f"unknown noise kind(s) {sorted(unknown)}", fix=f"use {list(KINDS)}")
    if dst.exists():
        if not overwrite:
            raise VtonDataError("destination exists", file=dst, fix="pick a new directory or pass overwrite=True")
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    ing = get_ingester(dataset)
    layout = ing.detect(dst)
    if layout is None:
        raise VtonDataError(f"no {dataset} layout in the copy", file=dst, fix="generate it with `vtondata fixtures make`")
    scan = ing.scan(dst, layout, Report())
    files: dict[str, dict] = {}
    for a in scan.assets:
        files.setdefault(a.sample_id, {})[a.role] = a
    trip = [t for t in scan.tuples if t.get("kind") == "triplet" and t.get("target_person") and t.get("garment")]
    if not trip:
        raise VtonDataError(f"{dataset} copy has no triplets", file=dst, fix="use a triplet dataset (MPV)")
    rng = np.random.default_rng(seed)
    if nuisance > 0:
        for a in scan.assets:
            if a.role in ("person", "garment"):
                p = dst / a.path
                _write_image(p, photometric_jitter(np.asarray(Image.open(p).convert("RGB")), rng, nuisance))
    order = [trip[i] for i in rng.permutation(len(trip))]
    touched: set[str] = set()
    changed: dict[str, list[str]] = {k: [] for k in kinds}
    changed_samples: dict[str, str] = {}  # sample id -> kind
    details: dict[str, str] = {}
    pos = 0
    for kind in kinds:
        done = 0
        while done < per_kind and pos < len(order):
            t = order[pos]
            pos += 1
            sids = [t["person"], t["target_person"], t["garment"]]
            if touched & set(sids):
                continue
            ok = _apply(kind, dst, files, t, rng, changed[kind], details, severity)
            touched |= set(sids)
            if ok:
                changed_samples[t["garment"] if kind == "cloth_mismatch" else t["target_person"]] = kind
                done += 1
        if done < per_kind:
            raise VtonDataError(f"only {done} of {per_kind} {kind} injections fit in {len(trip)} triplets",
                                fix="generate more triplets (--n) or lower per_kind")
    truth = {}
    for t in scan.tuples:
        for col in ("person", "target_person", "garment"):
            k = changed_samples.get(t.get(col) or "")
            if k:
                truth[t["tuple_id"]] = k
    record = {"dataset": dataset, "layout": layout, "seed": seed, "per_kind": per_kind, "kinds": kinds,
              "nuisance": nuisance, "severity": severity,
              "triplets": dict(sorted(truth.items())), "changed": changed, "details": details,
              "n_triplets": len(trip)}
    side = dst / ".vtondata-fixture"
    side.mkdir(exist_ok=True)
    (side / "noise.json").write_text(json.dumps(record, indent=2))
    return record


def _apply(kind: str, root: Path, files: dict, t: dict, rng, changed: list, details: dict, severity: float) -> bool:
    if kind == "cloth_mismatch":
        g = files.get(t["garment"], {})
        if "garment" not in g:
            return False
        gpath = root / g["garment"].path
        old = np.asarray(Image.open(gpath).convert("RGB"))
        mask = None
        if "garment_mask" in g:
            from vtondata import decode

            mask = decode.read_mask(root / g["garment_mask"].path) > 0
        avoid = old[mask].reshape(-1, 3).mean(0) if mask is not None and mask.any() else None
        img, m = other_garment(old.shape[:2], rng, avoid)
        _write_image(gpath, img)
        changed.append(g["garment"].path)
        if "garment_mask" in g:
            _write_mask(root / g["garment_mask"].path, m)
            changed.append(g["garment_mask"].path)
        details[t["tuple_id"]] = "other in-shop garment"
        return True
    p = files.get(t["target_person"], {})
    if "person" not in p or "parse" not in p:
        return False
    ipath, ppath = root / p["person"].path, root / p["parse"].path
    img = np.array(Image.open(ipath).convert("RGB"))
    parse, info = _read_parse(ppath, p["parse"].encoding, p["parse"].label_space)
    if kind == "accessory":
        what = add_accessories(img, parse, rng, n=1 if severity < 0.5 else 2)
        details[t["tuple_id"]] = "+".join(what)
    elif kind == "pose_clothes":
        if not other_clothes(img, parse, rng, severity):
            return False
        details[t["tuple_id"]] = "other upper clothes on pose B"
    elif kind == "background":
        busy_background(img, parse, rng, n=int(round(4 + 36 * severity)))
        details[t["tuple_id"]] = "cluttered background on pose B"
    elif kind == "identity":
        other_identity(img, parse, rng, severity)
        details[t["tuple_id"]] = "other skin tone and hair on pose B"
    _write_image(ipath, img)
    changed.append(p["person"].path)
    if kind == "accessory":
        _write_parse(ppath, parse, info, p["parse"].label_space)
        changed.append(p["parse"].path)
        if "parse_vis" in p:
            from vtondata.labels import label_space

            _write_image(root / p["parse_vis"].path, label_space(p["parse"].label_space or "cihp20").colorize(parse))
    return True
