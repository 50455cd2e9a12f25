"""``agnostic``: the VITON-HD / HR-VITON cloth-agnostic inputs, computed from parse + OpenPose keypoints.

The recipe of the VITON-HD and HR-VITON data loaders (``docs/datasets.md`` 2.1), at the image's own
resolution with its radii scaled by ``width / 768`` (exact at the released 768 x 1024):

``agnostic`` (``agnostic-v3.2``): the person with the upper body painted grey (128, 128, 128) -- a band between
    the shoulders, arms (bands and discs along the detected shoulder-elbow-wrist joints), the torso (hips moved
    so the hip width equals the shoulder width, ellipses at the hips, bands and the shoulder-hip polygon) and a
    square at the neck -- then the head (CIHP 4, 13) and lower body (9, 12, 16-19) pasted back.
``parse_agnostic`` (``image-parse-agnostic-v3.2``): the CIHP parse with upper clothes (5, 6, 7) and neck (10)
    set to background, and the arm labels (14, 15) cleared inside bands / discs around the arm joints.
``agnostic_mask``: 1 where the agnostic image was painted grey (the region a try-on model fills).

Keypoints: BODY_25 (COCO-18 files are converted; hips are BODY_25 9 and 12). Parses in LIP are mapped to CIHP.
When the dataset ships these files, :func:`agreement` compares ours with theirs (mask IoU, parse pixel
agreement, mean absolute image error) and the build writes ``agreement.json`` into the cache directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .. import decode
from ..labels import mapping
from ..manifest import Manifest, atomic_write_bytes
from ..pose import visible
from .base import Producer, WorkItem, asset_records

GREY = (128, 128, 128)
HEAD, LOWER, UPPER, NECK = (4, 13), (9, 12, 16, 17, 18, 19), (5, 6, 7), (10,)
#: COCO-18 index -> BODY_25 index
_COCO_TO_BODY25 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]


def to_body25(kp: np.ndarray) -> np.ndarray:
    """``(18 | 25) x 3`` -> ``25 x 3`` BODY_25 layout (mid-hip from the hips, feet missing for COCO-18)."""
    if len(kp) == 25:
        return np.asarray(kp, np.float32)
    out = np.zeros((25, 3), np.float32)
    out[_COCO_TO_BODY25] = kp
    if visible(out[[9, 12]]).all():
        out[8] = (out[9] + out[12]) / 2
    return out


def _missing(p) -> bool:
    return p[0] == 0.0 and p[1] == 0.0


def _disc(draw, p, rx, ry, fill) -> None:
    draw.ellipse((p[0] - rx, p[1] - ry, p[0] + rx, p[1] + ry), fill, fill)


def agnostic_image(person: np.ndarray, parse: np.ndarray, body25: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(agnostic H x W x 3 uint8, agnostic_mask H x W uint8 {0,1})`` from the person, CIHP parse and BODY_25."""
    h, w = parse.shape
    s = w / 768.0
    r = 20 * s
    p = np.array(body25[:, :2], np.float64)
    len_a = np.linalg.norm(p[5] - p[2])
    len_b = np.linalg.norm(p[12] - p[9])
    if len_b > 0:
        mid = (p[9] + p[12]) / 2
        p[9] = mid + (p[9] - mid) / len_b * len_a
        p[12] = mid + (p[12] - mid) / len_b * len_a
    img = Image.fromarray(person.copy())
    mask = Image.new("L", (w, h), 0)
    draws = [(ImageDraw.Draw(img), GREY), (ImageDraw.Draw(mask), 255)]
    t = lambda *idx: [tuple(p[i]) for i in idx]  # noqa: E731
    wide = max(1, int(round(r * 10)))
    for d, fill in draws:
        d.line(t(2, 5), fill, width=wide)
        for i in (2, 5):
            _disc(d, p[i], r * 5, r * 5, fill)
        for i in (3, 4, 6, 7):
            if _missing(p[i - 1]) or _missing(p[i]):
                continue
            d.line(t(i - 1, i), fill, width=wide)
            _disc(d, p[i], r * 5, r * 5, fill)
        for i in (9, 12):
            _disc(d, p[i], r * 3, r * 6, fill)
        d.line(t(2, 9), fill, width=max(1, int(round(r * 6))))
        d.line(t(5, 12), fill, width=max(1, int(round(r * 6))))
        d.line(t(9, 12), fill, width=max(1, int(round(r * 12))))
        d.polygon(t(2, 5, 12, 9), fill, fill)
        x, y = p[1]
        d.rectangle((x - r * 7, y - r * 7, x + r * 7, y + r * 7), fill, fill)
    keep = np.isin(parse, HEAD + LOWER)
    out = np.asarray(img).copy()
    out[keep] = person[keep]
    m = (np.asarray(mask) > 0) & ~keep
    return out, m.astype(np.uint8)


def parse_agnostic(parse: np.ndarray, body25: np.ndarray) -> np.ndarray:
    """``H x W`` uint8 CIHP parse with upper clothes, neck and the arms near the arm joints cleared."""
    h, w = parse.shape
    r = 10 * (w / 768.0)
    p = np.array(body25[:, :2], np.float64)
    out = parse.copy()
    for pid, ids in ((14, (2, 5, 6, 7)), (15, (5, 2, 3, 4))):
        arm = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(arm)
        prev = ids[0]
        for i in ids[1:]:
            if _missing(p[prev]) or _missing(p[i]):
                continue
            d.line([tuple(p[prev]), tuple(p[i])], 255, width=max(1, int(round(r * 10))))
            rad = r * 4 if i == ids[-1] else r * 15
            _disc(d, p[i], rad, rad, 255)
            prev = i
        out[(np.asarray(arm) > 0) & (parse == pid)] = 0
    out[np.isin(parse, UPPER + NECK)] = 0
    return out


class AgnosticProducer(Producer):
    kind = "agnostic"
    name = "vitonhd-agnostic"
    version = "1"
    unit = "sample"
    needs = ("person", "parse", "pose")
    arrays = {"agnostic": "uint8 H x W x 3", "parse_agnostic": "uint8 H x W CIHP ids",
              "agnostic_mask": "bool H x W"}
    defaults = {}

    def produce(self, items: list[WorkItem], root: Path) -> list[dict]:
        hw = self.size
        outs = []
        for it in items:
            person = decode.decode_asset(it.inputs["person"], root)
            prec = dict(it.inputs["parse"])
            if prec.get("width") is None:
                prec["width"], prec["height"] = person.shape[1], person.shape[0]
            parse = decode.decode_asset(prec, root)
            space = prec.get("label_space") or "cihp20"
            if space != "cihp20":
                parse = mapping(space, "cihp20")[parse]
            kp = to_body25(decode.decode_asset(it.inputs["pose"], root))
            img, m = agnostic_image(person, parse, kp)
            pa = parse_agnostic(parse, kp)
            outs.append({"agnostic": decode.resize_image(img, hw), "agnostic_mask": decode.resize_nearest(m, hw).astype(bool),
                         "parse_agnostic": decode.resize_nearest(pa, hw), "_meta": {"label_space": "cihp20"}})
        return outs

    def after_build(self, manifest: Manifest, reader) -> list[str]:
        rep = agreement(manifest, reader)
        if not rep["n"]:
            return []
        atomic_write_bytes(reader.dir / "agreement.json", json.dumps(rep, indent=1, sort_keys=True).encode())
        return [agreement_line(rep)]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    u = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / u) if u else 1.0


def agreement(manifest: Manifest, reader) -> dict:
    """Ours (cache) vs the shipped ``agnostic`` / ``parse_agnostic`` / ``agnostic_mask`` files, per sample and mean.

    ``mask_iou``: our agnostic mask vs the grey region of their agnostic image (all channels within 128 +- 10 and
    not grey in the person image); ``image_mae``: mean |ours - theirs| in 0-255 over all pixels;
    ``parse_agreement``: fraction of equal parse-agnostic ids; ``file_mask_iou``: vs their agnostic-mask file
    (the better of the two polarities, as releases differ).
    """
    recs = asset_records(manifest)
    rows = []
    root = manifest.root
    for key in sorted(reader._meta):
        r = recs.get(key, {})
        if not any(x in r for x in ("agnostic", "parse_agnostic", "agnostic_mask")):
            continue
        row = {"key": key}
        ours_img = reader.get(key, "agnostic")
        ours_m = reader.get(key, "agnostic_mask").astype(bool)
        hw = ours_m.shape
        if "agnostic" in r:
            theirs = decode.resize_image(decode.decode_asset(r["agnostic"], root), hw).astype(np.int16)
            person = decode.resize_image(decode.decode_asset(r["person"], root), hw).astype(np.int16)
            grey = (np.abs(theirs - 128) <= 10).all(-1) & ~(np.abs(person - 128) <= 10).all(-1)
            row["mask_iou"] = _iou(ours_m, grey)
            row["image_mae"] = float(np.abs(theirs - ours_img.astype(np.int16)).mean())
        if "parse_agnostic" in r:
            pr = dict(r["parse_agnostic"])
            theirs_p = decode.resize_nearest(decode.decode_asset(pr, root), hw)
            row["parse_agreement"] = float(np.mean(theirs_p == reader.get(key, "parse_agnostic")))
        if "agnostic_mask" in r:
            fm = decode.resize_nearest(decode.decode_asset(r["agnostic_mask"], root), hw).astype(bool)
            row["file_mask_iou"] = max(_iou(ours_m, fm), _iou(ours_m, ~fm))
        rows.append(row)
    mean = {}
    for col in ("mask_iou", "image_mae", "parse_agreement", "file_mask_iou"):
        vals = [x[col] for x in rows if col in x]
        if vals:
            mean[col] = round(float(np.mean(vals)), 4)
    return {"n": len(rows), "mean": mean, "per_sample": rows}


def agreement_line(rep: dict) -> str:
    m = rep["mean"]
    parts = [f"{k} {v}" for k, v in m.items()]
    return f"agreement with the shipped agnostic files (n={rep['n']}): " + ", ".join(parts)
