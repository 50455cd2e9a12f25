"""Configs as data: deep merge of JSON layers, ``key.sub=value`` overrides, a stable hash, run names.

A resolved config is plain JSON (dicts, lists, numbers, strings). Layers are applied in this order:
the model's ``config`` -> the profile (``smoke`` / ``full``) -> the profile's per-dataset block -> the
variant's overrides -> command-line ``--set key=value`` overrides. Keys starting with ``_`` are comments
(kept out of the hash).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Iterable, Mapping

from vtondata.errors import VtonDataError


def merge(base: Mapping, over: Mapping) -> dict:
    """Recursive merge: dicts merge key by key, everything else is replaced by ``over``."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_overrides(cfg: Mapping, overrides: Iterable[str]) -> dict:
    """``["gmm.ngf=32", "vgg.weights=random"]`` -> a new config. Values are JSON (bare words are strings).

    Only existing keys may be set, so a typo fails instead of silently doing nothing.
    """
    out = copy.deepcopy(dict(cfg))
    for item in overrides:
        if "=" not in item:
            raise VtonDataError(f"bad override {item!r}", fix="write key.sub=value, e.g. gmm.ngf=32")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for i, p in enumerate(parts[:-1]):
            if not isinstance(node.get(p), dict):
                raise VtonDataError(f"override {key!r}: {'.'.join(parts[:i + 1])!r} is not a config section",
                                    fix=f"existing keys here: {sorted(node)}")
            node = node[p]
        if parts[-1] not in node:
            raise VtonDataError(f"override {key!r}: unknown key {parts[-1]!r}", fix=f"existing keys: {sorted(node)}")
        node[parts[-1]] = _parse_value(text)
    return out


def strip_comments(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: strip_comments(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, list):
        return [strip_comments(v) for v in obj]
    return obj


def config_hash(obj: Any, n: int = 12) -> str:
    """SHA-256 of the canonical JSON (sorted keys, comments removed), first ``n`` hex digits."""
    text = json.dumps(strip_comments(obj), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def human_steps(n: int) -> str:
    """200000 -> ``200k``, 1500 -> ``1.5k``, 150 -> ``150``."""
    if n >= 1000 and n % 100 == 0:
        k = n / 1000
        return f"{k:g}k"
    return str(n)


def run_name(model: str, variant: str, batch: int, steps: list[int], dataset: str, split: str,
             size: tuple[int, int], profile: str) -> str:
    """``<model>-<variant>_<batch>x<steps>_<dataset>-<split>_<HxW>_<profile>`` (steps of every stage, ``+``).

    Variant names as the papers print them (``w/o Tree-Block``) become one path component: every run of
    characters other than letters, digits and ``.=+-`` turns into ``-`` (``w-o-Tree-Block``)."""
    import re

    s = "+".join(human_steps(x) for x in steps)
    variant = re.sub(r"[^A-Za-z0-9.=+-]+", "-", variant).strip("-") or "default"
    return f"{model}-{variant}_{batch}x{s}_{dataset}-{split}_{size[0]}x{size[1]}_{profile}"
