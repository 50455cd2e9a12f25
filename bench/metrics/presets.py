"""Protocol presets: every choice that changes a number, as data (``bench/presets/<name>.json``).

A preset pins the networks and their pre-processing (``extractors``), each metric's parameters
(``metrics``), the masks' data (PG2 limbs, parsing regions), how prediction and ground truth are
paired (``pairing``: match by file stem, ground-truth resize filter), which image sets are compared
(``image_sets``, documentation), the print scales (``display``) and the package versions whose
behaviour matters (``versions``). Every score records the preset name and its fingerprint; the
leaderboard must refuse to compare numbers from different presets.

Shipped: ``pytorch-fid`` (default), ``hr-viton``, ``clean``. A path to a JSON file of the same
shape is accepted wherever a preset name is.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Union

from vtondata.errors import UnknownNameError, VtonDataError

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
DEFAULT_PRESET = "pytorch-fid"
_REQUIRED = ("name", "description", "versions", "image_sets", "pairing", "extractors", "metrics", "display",
             "default_metrics")


def list_presets() -> List[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


@lru_cache(maxsize=32)
def _read(path: str) -> Dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise VtonDataError(f"cannot read preset: {exc}", file=path) from exc
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise VtonDataError(f"preset lacks {missing}", file=path, fix=f"a preset needs {', '.join(_REQUIRED)}")
    from bench.metrics import METRICS

    unknown = [m for m in data["metrics"] if m not in METRICS]
    if unknown:
        raise VtonDataError(f"preset names unknown metrics {unknown}", file=path,
                            fix=f"known metrics: {', '.join(sorted(METRICS))}")
    for name, params in data["metrics"].items():
        ref = params.get("extractor")
        if ref is not None and ref not in data["extractors"]:
            raise VtonDataError(f"metric {name} refers to undefined extractor {ref!r}", file=path)
    return data


def load_preset(name: Union[str, Path, None] = None) -> Dict[str, Any]:
    """The preset as a dict (a deep copy); ``name`` is a shipped name or a JSON path."""
    name = name or DEFAULT_PRESET
    p = Path(str(name))
    if p.suffix == ".json" and p.is_file():
        return copy.deepcopy(_read(str(p.resolve())))
    path = PRESET_DIR / f"{name}.json"
    if not path.is_file():
        raise UnknownNameError(f"unknown preset {name!r}", fix=f"use one of: {', '.join(list_presets())} "
                                                                 "or a path to a preset .json")
    return copy.deepcopy(_read(str(path)))


def fingerprint(preset: Dict[str, Any]) -> str:
    """16 hex of the SHA-256 of the canonical JSON: two scores compare only if these agree."""
    return hashlib.sha256(json.dumps(preset, sort_keys=True).encode()).hexdigest()[:16]


def metric_params(preset: Dict[str, Any], metric: str) -> Dict[str, Any]:
    """Constructor parameters of ``metric`` under ``preset`` (extractor references resolved)."""
    if metric not in preset["metrics"]:
        raise UnknownNameError(f"metric {metric!r} is not defined by preset {preset['name']!r}",
                               fix=f"the preset defines: {', '.join(sorted(preset['metrics']))}")
    params = copy.deepcopy(preset["metrics"][metric])
    if "extractor" in params:
        params["extractor"] = copy.deepcopy(preset["extractors"][params["extractor"]])
    return params


def installed_versions(preset: Dict[str, Any]) -> Dict[str, str]:
    """Installed versions of the packages the preset pins (``"not installed"`` when absent)."""
    out = {}
    for pkg in preset.get("versions", {}):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def version_mismatches(preset: Dict[str, Any]) -> List[str]:
    """Pinned packages whose installed version differs (exact pins and ``>=`` bounds are checked)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # packaging is near-universal but not a declared dependency: compare strings
        Version, InvalidVersion = str, ValueError

    bad = []
    for pkg, have in installed_versions(preset).items():
        want = str(preset["versions"][pkg]).split(" ")[0]
        if want in ("*", "") or "behaviour reproduced" in str(preset["versions"][pkg]):
            continue
        if have == "not installed":
            bad.append(f"{pkg}: not installed (preset pins {want})")
            continue
        try:
            ok = Version(have) >= Version(want[2:]) if want.startswith(">=") else Version(have) == Version(want)
        except InvalidVersion:
            ok = have == want
        if not ok:
            bad.append(f"{pkg}: installed {have}, preset pins {want}")
    return bad
