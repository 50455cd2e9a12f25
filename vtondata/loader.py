"""``vtondata.load``: a torch ``Dataset`` over the tuples of a prepared dataset.

One item per row of the manifest's ``tuples`` table for the split and setting, as a dict of tensors.
Person fields come from the tuple's ``person`` sample, garment fields from its ``garment`` sample (STRAT:
``foreground`` / ``background`` / ``composite``), and for triplets every person field is also available for
the ``target_person`` with the prefix ``target_`` (``target_person``, ``target_pose``, ...). Fields and their
types are data (``vtondata/data/fields.json``):

=============== ==================== ===========================================================
type            shape (one item)     values
=============== ==================== ===========================================================
image           float32 3 x H x W    RGB in [-1, 1] (``x / 127.5 - 1``)
mask            float32 1 x H x W    {0, 1}
parse           int64 H x W          label ids of the dataset's label space (or ``label_space=``)
pose            float32 K x 3        x, y in pixels of the returned frame, confidence; missing = 0, 0, 0
densepose       float32 3 x H x W    part index I (0-24, 0 = background), U, V in [0, 1]
maps            float32 C x H x W    heatmaps in [0, 1] (``pose_disc`` / ``pose_gauss``: C = 18)
flow            float32 2 x H x W    (dx, dy) in pixels of the returned frame (``smpl_flow``)
=============== ==================== ===========================================================

plus ``tuple_id``, ``split``, ``setting`` and the sample ids ``person_id``, ``garment_id`` (... ``_id``) as
strings. The default collate gives ``N x C x H x W`` batches.

Sources: a field whose cache kind was built (``vtondata cache build``) is read from the cache (arrays stored
decoded, no per-sample decoding of colours or JSON); otherwise the raw file is decoded (:mod:`vtondata.decode`).
Fields that exist only as caches (``pose_disc``, ``smpl_flow`` ...) need the cache.

Derived splits (``<out>/splits/<split>.parquet``, e.g. ``train-clean``, ``hardpose``) select the tuple ids they
list; one with a ``garment_dataset`` column (``spg-deepfashion``, :mod:`vtondata.splits_spg`) also gives each tuple
the ``garment`` / ``garment_mask`` of another prepared dataset (raw files; ``garment_id`` = ``"<dataset>:<id>"``).

Resizing (``size=(H, W)`` or ``"HxW"``): images with PIL bilinear (antialiased when shrinking); masks, parses
and DensePose with PIL nearest; heatmaps with torch bilinear (binary disc maps: nearest); flow with torch
nearest (vectors scaled); keypoints scaled by ``W / w`` and ``H / h`` (missing joints stay 0). Deterministic: no randomness anywhere, so it works as is
with ``DistributedSampler``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch

from . import decode
from .errors import UnknownNameError, VtonDataError
from .labels import mapping as label_mapping
from .manifest import Manifest, open_manifest

DEFAULT_FIELDS = ("person", "garment", "garment_mask", "parse", "pose")
SIDES = ("person", "garment", "target_person", "foreground", "background", "composite")


def _none(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def parse_size(size) -> Optional[tuple[int, int]]:
    """``None``, ``(H, W)`` or ``"HxW"`` -> ``(H, W)`` or ``None``."""
    if size is None:
        return None
    if isinstance(size, str):
        try:
            h, w = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise VtonDataError(f"bad size {size!r}", fix="write HxW, e.g. 256x192") from None
        return h, w
    h, w = (int(v) for v in size)
    if h <= 0 or w <= 0:
        raise VtonDataError(f"bad size {size!r}", fix="give a positive (H, W)")
    return h, w


def field_spec(name: str) -> tuple[dict, str]:
    """``(spec, side)`` of a field name (``target_`` prefix resolved)."""
    table = decode.field_table()["fields"]
    base, side = name, None
    if name not in table and name.startswith("target_") and name[len("target_"):] in table:
        base, side = name[len("target_"):], "target_person"
    if base not in table:
        raise UnknownNameError(f"unknown loader field {name!r}",
                               fix=f"use one of {sorted(table)} (and target_<field> for triplets)")
    spec = dict(table[base], name=name, base=base)
    # caches to try, in order: the field's own kind, then the `decoded` cache of its role
    spec["caches"] = ([tuple(spec["cache"])] if spec.get("cache") else []) + (
        [("decoded", spec["role"])] if spec.get("role") and spec["type"] in ("image", "mask", "pose") else [])
    if side is None:
        side = spec["side"]
    elif spec["side"] != "person":
        raise UnknownNameError(f"field {name!r}: only person fields have a target_ version",
                               fix="e.g. target_person, target_parse, target_pose")
    return spec, side


# ----------------------------------------------------------------------------- resizing helpers


_resize_image = decode.resize_image
_resize_nearest = decode.resize_nearest


def _resize_chw(t: torch.Tensor, hw, mode: str = "bilinear") -> torch.Tensor:
    if hw is None or tuple(t.shape[-2:]) == tuple(hw):
        return t
    kw = {"align_corners": False} if mode == "bilinear" else {}
    return torch.nn.functional.interpolate(t[None].float(), size=tuple(hw), mode=mode, **kw)[0]


def _writable(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    return arr if arr.flags.writeable else arr.copy()


def _image_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(_writable(arr)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def _mask_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(_writable(arr)).float().clamp_(0, 1)[None]


# ----------------------------------------------------------------------------- the dataset


class VtonDataset(torch.utils.data.Dataset):
    """Map-style dataset of tuples; see the module docstring for fields, shapes and ranges."""

    def __init__(self, manifest: Manifest, split: str, setting: str = "paired",
                 fields: Sequence[str] = DEFAULT_FIELDS, size=None, label_space: Optional[str] = None,
                 caches: Union[str, bool, dict] = "auto"):
        self.dataset = manifest.dataset
        self.split, self.setting = split, setting
        self.size = parse_size(size)
        self.fields = tuple(fields)
        self.label_space = label_space
        self.root = str(manifest.root)
        tuples = manifest.tuples
        external: dict[str, dict] = {}
        derived = manifest.out / "splits" / f"{split}.parquet"
        if split not in set(tuples["split"]) and derived.exists():
            # a derived split (e.g. train-clean from `vtondata review splits`): the tuple ids it lists
            listed = pd.read_parquet(derived)
            sel = tuples[tuples["tuple_id"].isin(set(listed["tuple_id"])) & (tuples["setting"] == setting)]
            if "garment_dataset" in listed.columns and not sel.empty:
                # garments of another prepared dataset (spg-deepfashion: MPV clothes on DeepFashion pairs)
                from .splits_spg import external_garments

                sel, external = external_garments(sel, listed)
        else:
            sel = tuples[(tuples["split"] == split) & (tuples["setting"] == setting)]
        if sel.empty:
            have = sorted({f"{s}/{t}" for s, t in zip(tuples["split"], tuples["setting"])})
            raise VtonDataError(f"{self.dataset}: no tuples for split {split!r}, setting {setting!r}",
                                file=manifest.dir / "tuples.parquet", fix=f"available split/setting: {have}")
        sel = sel.sort_values("tuple_id", kind="stable")
        self._specs = [field_spec(f) for f in self.fields]
        # asset lookup: sample_id -> role -> compact record
        assets = manifest.assets
        size_of: dict[str, tuple] = {}
        self._assets: dict[str, dict[str, tuple]] = {}
        for r in assets.itertuples(index=False):
            rec = (r.path, _none(r.encoding), _none(r.label_space), _none(r.width), _none(r.height))
            self._assets.setdefault(r.sample_id, {})[r.role] = rec
            if _none(r.width) and r.role in ("person", "garment", "foreground", "background", "composite"):
                size_of.setdefault(r.sample_id, (int(r.height), int(r.width)))
        self._assets.update(external)  # keys "<dataset>:<sample id>", absolute paths
        self._frame = size_of
        self._caches = _open_caches(manifest, self._specs, caches)
        self._luts = {}
        self.items: list[dict] = []
        missing: dict[str, int] = {}  # field name -> number of tuples lacking it
        for t in sel.itertuples(index=False):
            item = {"tuple_id": t.tuple_id}
            for s in SIDES:
                item[s] = _none(getattr(t, s, None))
            src = {}
            for spec, side in self._specs:
                key = item["tuple_id"] if side == "tuple" else item.get(side)
                src[spec["name"]] = self._source(spec, key)
                if src[spec["name"]] is False:
                    missing[spec["name"]] = missing.get(spec["name"], 0) + 1
            item["_src"] = src
            self.items.append(item)
        if missing:
            specs = {s["name"]: s for s, _ in self._specs}
            kinds = sorted({c[0] for n in missing for c in specs[n]["caches"] if c[0] != "decoded"})
            how = (" ; ".join(f"`vtondata cache build --kind {k} --dataset {self.dataset}`" for k in kinds)
                   if kinds else "choose fields this dataset ships (see `vtondata info`)")
            raise VtonDataError(f"{self.dataset} {split}/{setting}: field(s) unavailable (tuples lacking them): "
                                + ", ".join(f"{k}: {v}/{len(self.items)}" for k, v in sorted(missing.items())),
                                file=manifest.dir / "assets.parquet", fix=how)

    def _source(self, spec: dict, key: Optional[str]):
        """The cache (kind, array) holding ``key``'s field, None for the raw file, False when neither exists."""
        if key is None:
            return False
        for kind, array in spec["caches"]:
            r = self._caches.get(kind)
            if r is not None and r.has(key, array):
                return (kind, array)
        if spec.get("role") is not None and spec["role"] in self._assets.get(key, {}):
            return None
        return False

    def sources(self) -> dict:
        """Field -> where its values come from for the first item (``"raw"`` or the cache kind)."""
        if not self.items:
            return {}
        return {n: ("raw" if v is None else v[0]) for n, v in self.items[0]["_src"].items()}

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        src = self.sources()
        return (f"VtonDataset({self.dataset!r}, split={self.split!r}, setting={self.setting!r}, n={len(self)}, "
                f"size={self.size}, fields={src})")

    # -- one field
    def _lut(self, src: Optional[str]) -> Optional[np.ndarray]:
        if self.label_space is None or src is None or src == self.label_space:
            return None
        if src not in self._luts:
            self._luts[src] = label_mapping(src, self.label_space)
        return self._luts[src]

    def _frame_hw(self, sid: str) -> Optional[tuple[int, int]]:
        return self._frame.get(sid)

    def _field(self, spec: dict, side: str, item: dict):
        ftype, hw = spec["type"], self.size
        key = item["tuple_id"] if side == "tuple" else item[side]
        where = item["_src"][spec["name"]]
        arr = None if where is None else self._caches[where[0]].get(key, where[1])
        rec = None
        if arr is None:
            rec = self._assets[key][spec["role"]]
            path = Path(self.root) / rec[0]
        if ftype == "image":
            if arr is None:
                arr = decode.read_image(path)
            return _image_tensor(_resize_image(arr, hw))
        if ftype == "mask":
            if arr is None:
                arr = decode.read_mask(path)
            arr = arr[0] if arr.ndim == 3 else arr
            return _mask_tensor(_resize_nearest(arr.astype(np.uint8, copy=False), hw))
        if ftype == "parse":
            space = rec[2] if rec else self._caches[where[0]].label_space(key, where[1])
            if arr is None:
                fh = self._frame_hw(key) or (None, None)
                arr = decode.read_parse(path, rec[1], rec[2], rec[3] or fh[1], rec[4] or fh[0])
            lut = self._lut(space)
            if lut is not None:
                arr = lut[arr]
            return torch.from_numpy(_writable(_resize_nearest(arr, hw))).long()
        if ftype == "pose":
            kp = decode.read_pose(path, rec[1])[0] if arr is None else arr
            kp = np.array(kp, np.float32)
            fh = self._frame_hw(key)
            if hw is not None and fh is not None and tuple(fh) != tuple(hw):
                sy, sx = hw[0] / fh[0], hw[1] / fh[1]
                kp[:, 0] *= sx
                kp[:, 1] *= sy
            return torch.from_numpy(kp)
        if ftype == "densepose":
            if arr is None:
                arr = decode.iuv_to_uint8(*decode.read_densepose(path, rec[1]))
            arr = _resize_nearest(arr, hw)
            t = torch.from_numpy(_writable(arr)).permute(2, 0, 1).float()
            t[1:] /= 255.0
            return t
        if ftype == "maps":
            t = torch.from_numpy(_writable(arr)).float()  # caches store values in [0, 1]
            return _resize_chw(t, hw, "nearest" if arr.dtype == bool else "bilinear")
        if ftype == "flow":
            t = torch.from_numpy(_writable(arr)).float()
            if hw is not None and tuple(t.shape[-2:]) != tuple(hw):
                h0, w0 = t.shape[-2:]
                t = _resize_chw(t, hw, "nearest")
                t[0] *= hw[1] / w0
                t[1] *= hw[0] / h0
            return t
        raise UnknownNameError(f"unknown field type {ftype!r}", fix="see vtondata/data/fields.json")

    def __getitem__(self, idx: int) -> dict:
        item = self.items[idx]
        out = {"tuple_id": item["tuple_id"], "split": self.split, "setting": self.setting}
        for s in SIDES:
            if item.get(s) is not None:
                out[f"{s}_id"] = item[s]
        for spec, side in self._specs:
            out[spec["name"]] = self._field(spec, side, item)
        return out


def _open_caches(manifest: Manifest, specs, caches) -> dict:
    """kind -> reader for the cache kinds the fields can use (``caches``: "auto", False, or {kind: fingerprint})."""
    if caches is False or caches is None:
        return {}
    kinds = sorted({c[0] for s, _ in specs for c in s["caches"]})
    if not kinds:
        return {}
    try:
        from .caches.store import open_reader
    except ImportError:
        return {}
    out = {}
    for kind in kinds:
        fp = caches.get(kind) if isinstance(caches, dict) else None
        if isinstance(caches, dict) and kind not in caches:
            continue
        reader = open_reader(manifest, kind, fp)
        if reader is not None:
            out[kind] = reader
    return out


def load(dataset: Optional[str], split: str, setting: str = "paired", fields: Iterable[str] = DEFAULT_FIELDS,
         size=None, manifest: Optional[Union[str, Path, Manifest]] = None, label_space: Optional[str] = None,
         caches: Union[str, bool, dict] = "auto") -> VtonDataset:
    """A torch ``Dataset`` of the tuples of ``dataset`` (prepared name, or ``manifest=DIR``) for one split / setting.

    ``fields``: names from ``vtondata/data/fields.json`` (default person, garment, garment_mask, parse, pose);
    ``size``: ``(H, W)`` / ``"HxW"`` to resize to, or ``None`` for the files' own size; ``label_space``: map
    parses to this space (e.g. ``"lip20"``); ``caches``: ``"auto"`` reads every built cache, ``False`` only raw
    files, ``{kind: fingerprint}`` pins caches. Items: see the module docstring.
    """
    if isinstance(manifest, Manifest):
        m = manifest
    else:
        m = open_manifest(dataset, Path(manifest) if manifest is not None else None)
    if dataset is not None and m.dataset != dataset:
        raise VtonDataError(f"manifest is for {m.dataset!r}, not {dataset!r}", file=m.dir,
                            fix="pass the matching dataset name or manifest")
    return VtonDataset(m, split, setting, fields=fields, size=size, label_space=label_space, caches=caches)
