"""What a cache producer is: the roles it needs, the keys it makes, and a batched ``produce``.

A producer turns manifest assets into named arrays per *key* (a ``sample_id`` for per-sample kinds, a
``tuple_id`` for per-tuple kinds such as ``smpl-flow``). Its identity for the cache fingerprint is its
``name``, ``version``, the hash of its weights file (plugins) and its ``params``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import VtonDataError
from ..manifest import Manifest


@dataclass
class WorkItem:
    """One key to produce: its split and the asset records it reads (``inputs[name] = record dict``)."""

    key: str
    split: str
    inputs: dict = field(default_factory=dict)

    def input_hash_list(self) -> list:
        return [[k, self.inputs[k].get("hash")] for k in sorted(self.inputs)]


def _clean(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def asset_records(manifest: Manifest) -> dict[str, dict[str, dict]]:
    """``sample_id -> role -> record`` (path, hash, encoding, label_space, keypoint_format, width, height, asset_id)."""
    out: dict[str, dict[str, dict]] = {}
    cols = ["asset_id", "sample_id", "role", "path", "hash", "encoding", "label_space", "keypoint_format",
            "width", "height"]
    a = manifest.assets
    for row in a[cols].itertuples(index=False):
        rec = {c: _clean(getattr(row, c)) for c in cols}
        out.setdefault(rec["sample_id"], {})[rec["role"]] = rec
    return out


class Producer:
    """Base class. Subclasses set ``kind``, ``name``, ``version``, ``unit``, ``needs``, ``arrays``, ``defaults``."""

    kind: str = ""
    name: str = ""
    version: str = "1"
    unit: str = "sample"  # "sample" or "tuple"
    needs: tuple = ()  # roles every key needs (per-sample kinds: roles of that sample)
    arrays: dict = {}  # array name -> "dtype shape: meaning"
    defaults: dict = {}
    sample_kinds: tuple = ("person",)  # samples.kind values a per-sample producer applies to
    accepts_plugin: bool = False  # parse and densepose take an external model (--plugin)

    def __init__(self, **params):
        allowed = set(self.defaults) | {"size"} | ({"plugin"} if self.accepts_plugin else set())
        unknown = {k for k, v in params.items() if v is not None} - allowed
        if unknown:
            raise VtonDataError(f"cache kind {self.kind!r} has no parameter(s) {sorted(unknown)}",
                                fix=f"parameters: {sorted(allowed)}")
        p = dict(self.defaults)
        p.update({k: v for k, v in params.items() if v is not None})
        p.setdefault("size", None)
        if p.get("size") is not None:
            from ..loader import parse_size

            p["size"] = list(parse_size(p["size"]))
        self.params = {k: p[k] for k in sorted(p)}
        self._plugin = None

    # ---- identity
    @property
    def plugin(self):
        """The external plugin (loaded on first use), or None."""
        spec = self.params.get("plugin")
        if spec and self._plugin is None:
            from .plugins import load_plugin

            self._plugin = load_plugin(spec)
        return self._plugin

    def weights_hash(self) -> Optional[str]:
        return self.plugin.weights_hash() if self.params.get("plugin") else None

    def producer_name(self) -> str:
        return f"{self.name}+{self.plugin.name}" if self.params.get("plugin") else self.name

    def identity(self) -> dict:
        return {"kind": self.kind, "producer": self.producer_name(), "version": self.version,
                "weights_hash": self.weights_hash(), "params": self.params}

    # ---- work
    def required_roles(self) -> tuple:
        return tuple(self.needs)

    def skip_reason(self, manifest: Manifest) -> Optional[str]:
        """Why this kind does not apply to a dataset (None when it does)."""
        roles = set(manifest.assets["role"].unique())
        miss = [r for r in self.required_roles() if r not in roles]
        if miss:
            return (f"{self.kind}: dataset {manifest.dataset} has no {', '.join(miss)} files "
                    f"(needs roles {', '.join(self.required_roles())})")
        return None

    def items(self, manifest: Manifest) -> list[WorkItem]:
        """Per-sample default: every sample of ``sample_kinds`` with all required roles, sorted by key."""
        recs = asset_records(manifest)
        s = manifest.samples
        s = s[s["kind"].isin(self.sample_kinds)]
        need = self.required_roles()
        out = []
        for sid, split in zip(s["sample_id"], s["split"]):
            r = recs.get(sid, {})
            if all(n in r for n in need):
                out.append(WorkItem(sid, split, {n: r[n] for n in need}))
        return sorted(out, key=lambda w: w.key)

    def produce(self, items: list[WorkItem], root: Path) -> list[dict]:
        """Arrays for each item: ``[{array_name: np.ndarray, "_meta": {...}}]`` (same order)."""
        raise VtonDataError(f"producer {self.name} does not implement produce()")

    # ---- helpers
    @property
    def size(self) -> Optional[tuple[int, int]]:
        s = self.params.get("size")
        return tuple(s) if s else None


def params_json(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
