"""Score a folder of generated images against a folder of ground truth with a protocol preset.

``score_folders(pred_dir, gt_dir, preset=...)`` streams both folders in batches (decoding in a
small thread pool, one batch ahead) through the metric modules, so memory stays flat however
many images there are (FID keeps running sums; KID / IS keep one feature row per image).

Pairing: paired metrics (PSNR, SSIM, LPIPS, mask-SSIM, LSSIM, mIoU, IoU) match files by name
without extension (``person_001.png`` <-> ``person_001.jpg``); unmatched names stop the run with
a list of them. When every requested metric is a distribution metric (FID, KID, IS), the folders
are read independently and may differ in size (the unpaired setting). A ground-truth image whose
size differs from its prediction is resized with the preset's ``pairing.gt_resize`` PIL filter
(HR-VITON: bilinear, CatVTON: LANCZOS), or refused when the preset sets none.

Masks (mask-SSIM, mask-IS, LSSIM) come from ``mask_dir`` (matched by name with the prediction):
binary images (> 127, or > 0 when the file's maximum is 1) or, with ``mask_labels``, parsing
label maps from which those labels are selected. mIoU reads ``pred`` / ``gt`` as label maps, IoU
as binary masks. Disp (vertices) and landmarks are not image metrics: see ``bench.metrics``.

Every result records the preset name and fingerprint, the installed versions of the packages
the preset pins, and ``comparable`` (false with random weights, in the top level and in each
metric's entry).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from vtondata.errors import ImageReadError, MetricInputError

# pytorch-fid's image extensions
IMAGE_EXTS = (".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
DISTRIBUTION = ("fid", "kid", "is", "mask_is")
NEEDS_MASK = ("mask_ssim", "mask_is", "lssim")
LABEL_METRICS = ("miou",)
MASK_METRICS = ("iou",)
NOT_FROM_FOLDERS = {"disp": "Disp compares vertex coordinates, not images: use bench.metrics.disp.Disp",
                    "landmarks": "landmark metrics read landmark files: use `vtondata landmarks eval`"}


def list_images(folder: Path) -> Dict[str, Path]:
    """Images of a folder (not recursive) keyed by name without extension, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MetricInputError("image folder not found", file=folder)
    out: Dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            if p.stem in out:
                raise MetricInputError(f"two images share the name {p.stem!r}: {out[p.stem].name}, {p.name}",
                                       file=folder, fix="keep one file per name")
            out[p.stem] = p
    if not out:
        raise MetricInputError(f"no images ({', '.join(IMAGE_EXTS)}) in the folder", file=folder)
    return out


def match(pred: Dict[str, Path], gt: Dict[str, Path], pred_dir: Path, gt_dir: Path) -> List[str]:
    """Names present in both folders; refuses any unmatched name (lists up to 20 per side)."""
    only_pred = sorted(set(pred) - set(gt))
    only_gt = sorted(set(gt) - set(pred))
    if only_pred or only_gt:
        parts = []
        for label, names, where in (("only in --pred", only_pred, pred_dir), ("only in --gt", only_gt, gt_dir)):
            if names:
                more = f" ... and {len(names) - 20} more" if len(names) > 20 else ""
                parts.append(f"{len(names)} {label} ({where}): {', '.join(names[:20])}{more}")
        raise MetricInputError("prediction and ground-truth names do not match: " + "; ".join(parts),
                               fix="score matching folders, or ask only distribution metrics (fid, kid, is) "
                                   "for unpaired sets")
    return sorted(pred)


def _read(path: Path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except OSError as exc:
        raise ImageReadError(f"cannot decode image: {exc}", file=path) from exc


def _rgb(im) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def _labels(im, path: Path) -> torch.Tensor:
    if im.mode not in ("L", "P", "I", "I;16"):
        raise MetricInputError(f"label maps must be single-channel (L / P / I), got mode {im.mode}", file=path)
    return torch.from_numpy(np.asarray(im, dtype=np.int64).copy()).unsqueeze(0)


def _binary(im, labels: Optional[Sequence[int]], path: Path) -> torch.Tensor:
    if labels:
        arr = _labels(im, path).numpy()
        m = np.isin(arr, np.asarray(list(labels)))
    else:
        arr = np.asarray(im.convert("L"))
        m = arr > (0 if arr.max() <= 1 else 127)
    return torch.from_numpy(m.astype(np.float32)).reshape(1, *arr.shape[-2:])


def _pil_resize(im, size_wh: Tuple[int, int], how: Optional[str], path: Path):
    from PIL import Image

    if how is None:
        raise MetricInputError(f"ground truth is {im.size[0]}x{im.size[1]} (WxH) but the prediction is "
                               f"{size_wh[0]}x{size_wh[1]}", file=path,
                               fix="resize one side, or use a preset whose pairing.gt_resize is set (hr-viton, clean)")
    filters = {"pil-bilinear": Image.BILINEAR, "pil-bicubic": Image.BICUBIC, "pil-lanczos": Image.LANCZOS,
               "pil-nearest": Image.NEAREST}
    if how not in filters:
        raise MetricInputError(f"unknown pairing.gt_resize {how!r}; known: {', '.join(filters)}")
    return im.resize(size_wh, resample=filters[how])


class _Item:
    __slots__ = ("name", "pred", "gt", "mask")

    def __init__(self, name, pred=None, gt=None, mask=None):
        self.name, self.pred, self.gt, self.mask = name, pred, gt, mask


def _decode(name: str, pred_path: Optional[Path], gt_path: Optional[Path], mask_path: Optional[Path],
            kinds: set, gt_resize: Optional[str], mask_labels) -> _Item:
    item = _Item(name)
    pim = _read(pred_path) if pred_path else None
    gim = _read(gt_path) if gt_path else None
    if pim is not None and gim is not None and pim.size != gim.size:
        nearest = kinds <= {"labels", "binary"}
        gim = _pil_resize(gim, pim.size, "pil-nearest" if nearest and gt_resize else gt_resize, gt_path)
    for side, im, path in (("pred", pim, pred_path), ("gt", gim, gt_path)):
        if im is None:
            continue
        out = {}
        if "rgb" in kinds:
            out["rgb"] = _rgb(im)
        if "labels" in kinds:
            out["labels"] = _labels(im, path)
        if "binary" in kinds:
            out["binary"] = _binary(im, None, path)
        setattr(item, side, out)
    if mask_path is not None:
        mim = _read(mask_path)
        if pim is not None and mim.size != pim.size:
            mim = _pil_resize(mim, pim.size, "pil-nearest", mask_path)
        item.mask = _binary(mim, mask_labels, mask_path)
    return item


def _batches(jobs: List[tuple], batch_size: int, workers: int) -> Iterator[List[_Item]]:
    """Decode ``jobs`` in a thread pool, one batch ahead of the consumer."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        chunks = [jobs[i:i + batch_size] for i in range(0, len(jobs), batch_size)]
        pending = [pool.submit(_decode, *j) for j in chunks[0]] if chunks else []
        for k in range(len(chunks)):
            current = pending
            pending = [pool.submit(_decode, *j) for j in chunks[k + 1]] if k + 1 < len(chunks) else []
            yield [f.result() for f in current]


def _groups(items: List[_Item], side: str, kind: str) -> Iterator[List[_Item]]:
    """Split a batch into runs of equal image size (tensors of one batch must share a shape)."""
    by: Dict[tuple, List[_Item]] = {}
    for it in items:
        d = getattr(it, side)
        if d is not None:
            by.setdefault(tuple(d[kind].shape), []).append(it)
    yield from by.values()


def _stack(items: List[_Item], side: str, kind: str, device) -> torch.Tensor:
    return torch.stack([getattr(it, side)[kind] for it in items]).to(device)


def _device(device: Optional[str]) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def score_folders(pred_dir, gt_dir, preset=None, metrics: Optional[Sequence[str]] = None,
                  random_weights: bool = False, weights: Optional[str] = None, device: Optional[str] = None,
                  batch_size: int = 16, workers: int = 2, mask_dir=None, mask_labels: Optional[Sequence[int]] = None,
                  progress: bool = True) -> Dict[str, Any]:
    """Score ``pred_dir`` against ``gt_dir``; returns the result record (see the module docstring)."""
    from bench.metrics import build_metric, canonical
    from bench.metrics.presets import fingerprint, installed_versions, load_preset, version_mismatches

    p = load_preset(preset)
    names = [canonical(m) for m in (metrics or p["default_metrics"])]
    names = list(dict.fromkeys(names))
    for m in names:
        if m in NOT_FROM_FOLDERS:
            raise MetricInputError(f"{m} cannot be scored from two image folders: {NOT_FROM_FOLDERS[m]}")
    need_mask = [m for m in names if m in NEEDS_MASK]
    if need_mask and mask_dir is None:
        raise MetricInputError(f"{', '.join(need_mask)} need masks: pass --mask DIR (and --mask-labels for parsing maps)")
    dev = _device(device)
    built = {m: build_metric(m, p, random_weights=random_weights, weights=weights, device=str(dev)) for m in names}
    for metric in built.values():
        metric.prepare(dev)

    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    preds, gts = list_images(pred_dir), list_images(gt_dir)
    masks = list_images(Path(mask_dir)) if mask_dir is not None else {}
    paired = any(m not in DISTRIBUTION for m in names) or bool(need_mask)
    kinds = {"labels" if m in LABEL_METRICS else "binary" if m in MASK_METRICS else "rgb" for m in names}
    gt_resize = p["pairing"].get("gt_resize")
    if paired:
        common = match(preds, gts, pred_dir, gt_dir)
        if need_mask:
            missing = [n for n in common if n not in masks]
            if missing:
                raise MetricInputError(f"{len(missing)} predictions have no mask: {', '.join(missing[:20])}",
                                       file=mask_dir)
        jobs = [(n, preds[n], gts[n], masks.get(n) if need_mask else None, kinds, gt_resize, mask_labels)
                for n in common]
    else:
        jobs = [(n, path, None, None, kinds, gt_resize, None) for n, path in preds.items()]
        jobs += [(n, None, path, None, kinds, gt_resize, None) for n, path in gts.items()]

    # one network pass per extractor configuration feeds every distribution metric that uses it
    extractor_users: Dict[tuple, List[str]] = {}
    for m in names:
        if m in ("fid", "kid", "is"):
            key = tuple(sorted(built[m].extractor_config.items()))
            extractor_users.setdefault(key, []).append(m)

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=f"score ({p['name']})", unit="img", disable=not progress)
    with torch.no_grad():
        for batch in _batches(jobs, batch_size, workers):
            for side in ("pred", "gt"):
                for group in _groups(batch, side, "rgb" if "rgb" in kinds else next(iter(kinds))):
                    _feed(built, names, extractor_users, group, side, paired, dev)
            bar.update(len(batch))
    bar.close()

    results = {m: built[m].compute() for m in names}
    comparable = all(r.get("comparable", True) for r in results.values())
    return {
        "kind": "vtondata.score",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "preset": p["name"],
        "preset_fingerprint": fingerprint(p),
        "preset_versions": dict(p["versions"]),
        "installed_versions": installed_versions(p),
        "version_mismatches": version_mismatches(p),
        "pred": str(pred_dir),
        "gt": str(gt_dir),
        "mask": str(mask_dir) if mask_dir is not None else None,
        "paired": paired,
        "n_pred": len(preds),
        "n_gt": len(gts),
        "n_pairs": len(jobs) if paired else None,
        "device": str(dev),
        "random_weights": bool(random_weights),
        "comparable": comparable,
        "metrics": results,
    }


def _feed(built, names, extractor_users, group: List[_Item], side: str, paired: bool, dev) -> None:
    """Send one equal-size group of decoded items to every metric."""
    if paired and side == "gt":
        return  # paired metrics see pred and gt together from the pred pass
    rgb = _stack(group, side, "rgb", dev) if group and getattr(group[0], side).get("rgb") is not None else None
    gt_rgb = _stack(group, "gt", "rgb", dev) if paired and rgb is not None else None
    mask = torch.stack([it.mask for it in group]).to(dev) if paired and group[0].mask is not None else None
    for key, users in extractor_users.items():
        feats = built[users[0]].extractor(rgb)(rgb)
        gt_feats = None
        if paired and any(u in ("fid", "kid") for u in users):
            gt_feats = built[users[0]].extractor(gt_rgb)(gt_rgb)
        for u in users:
            metric = built[u]
            if u in ("fid", "kid"):
                pred_f = feats["pool3"] if side == "pred" else None
                tgt_f = feats["pool3"] if side == "gt" else (gt_feats["pool3"] if gt_feats is not None else None)
                metric.update_features(pred_f, tgt_f)
            elif side == "pred":
                metric.update_features(feats[metric.feature])
    if side != "pred":
        return
    for m in names:
        if m in ("fid", "kid", "is"):
            continue
        metric = built[m]
        if m == "mask_is":
            metric.update(rgb, mask=mask)
        elif m in LABEL_METRICS:
            metric.update(_stack(group, "pred", "labels", dev), _stack(group, "gt", "labels", dev))
        elif m in MASK_METRICS:
            metric.update(_stack(group, "pred", "binary", dev), _stack(group, "gt", "binary", dev))
        else:
            metric.update(rgb, gt_rgb, mask=mask)


def write_json(path, record: Dict[str, Any]) -> Path:
    """Write ``record`` atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def print_result(record: Dict[str, Any]) -> None:
    """A table of the scores (values times the preset's display scale)."""
    from rich.console import Console
    from rich.table import Table

    title = f"preset {record['preset']} ({record['preset_fingerprint']}), {record['n_pred']} predictions"
    table = Table(title=title)
    for col in ("metric", "value", "std", "n", "note"):
        table.add_column(col)
    for name, r in record["metrics"].items():
        scale = float(r.get("display_scale", 1) or 1)
        val = r.get("value")
        shown = "-" if val is None else f"{val * scale:.4f}" + (f" (x{scale:g})" if scale != 1 else "")
        std = r.get("std")
        std_s = "-" if std is None or std != std else f"{std * scale:.4f}"
        n = r.get("n", r.get("n_pred", "-"))
        note = "" if r.get("comparable", True) else "NOT COMPARABLE (random weights)"
        if r.get("warnings"):
            note = (note + " " + "; ".join(r["warnings"])).strip()
        table.add_row(name, shown, std_s, str(n), note)
    console = Console()
    console.print(table)
    for line in record.get("version_mismatches", []):
        console.print(f"[yellow]version differs from the preset: {line}[/]")
    if not record["comparable"]:
        console.print("[red]comparable: false (random network weights): never report these numbers[/]")


def run_score(pred_dir, gt_dir, preset=None, metrics=None, random_weights: bool = False, weights=None,
              device=None, batch_size: int = 16, mask_dir=None, mask_labels=None, out=None) -> Dict[str, Any]:
    """The ``vtondata score`` command: score, print, and write the JSON record when ``out`` is given."""
    record = score_folders(pred_dir, gt_dir, preset, metrics, random_weights=random_weights, weights=weights,
                           device=device, batch_size=batch_size, mask_dir=mask_dir, mask_labels=mask_labels)
    print_result(record)
    if out is not None:
        print(f"wrote {write_json(out, record)}")
    return record
