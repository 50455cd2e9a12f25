"""One place where models, datasets, splits, profiles and tables are registered by name.

Models register with :func:`register_model` (refusing duplicates and malformed specs); datasets, splits and
profiles come from ``bench/harness/catalog.json``; tables from ``bench/tables/<table_id>.json``. Every lookup
refuses an unknown name with the list of valid ones.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Optional

from vtondata.errors import UnknownNameError, VtonDataError

from .config import apply_overrides, merge

_MODELS: dict[str, type] = {}
PROFILES = ("smoke", "full")


def _unknown(kind: str, name: str, valid) -> UnknownNameError:
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}{hint}", fix=f"use one of: {', '.join(valid) or '(none)'}")


def register_model(cls):
    """Class decorator: register a :class:`~bench.harness.model.Model` subclass under ``cls.name``."""
    from .model import Model

    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise TypeError(f"{cls!r} is not a bench Model")
    name = getattr(cls, "name", "")
    if not name or not name.replace("-", "").replace("_", "").isalnum() or name != name.lower():
        raise VtonDataError(f"bad model name {name!r}", fix="lower-case letters, digits, - and _")
    if name in _MODELS and _MODELS[name] is not cls:
        raise VtonDataError(f"model {name!r} is registered twice ({_MODELS[name].__module__}, {cls.__module__})")
    spec = cls.spec()
    for key in ("config", "variants", "profiles", "datasets", "default_variant"):
        if key not in spec:
            raise VtonDataError(f"model spec {cls.spec_file} lacks {key!r}", file=cls.spec_file)
    bad = [d for d in spec["datasets"] if d not in catalog()["datasets"]]
    if bad:
        raise VtonDataError(f"model spec {cls.spec_file} names unknown datasets {bad}", file=cls.spec_file)
    _MODELS[name] = cls
    return cls


def _load_models() -> None:
    import bench.models  # noqa: F401  (imports every model module, which registers it)


def model_names() -> list[str]:
    _load_models()
    return sorted(_MODELS)


def get_model(name: str) -> type:
    _load_models()
    if name not in _MODELS:
        raise _unknown("model", name, _MODELS)
    return _MODELS[name]


@lru_cache(maxsize=1)
def catalog() -> dict:
    return json.loads(resources.files("bench.harness").joinpath("catalog.json").read_text())


def dataset_info(name: str) -> dict:
    ds = catalog()["datasets"]
    if name not in ds:
        raise _unknown("dataset", name, ds)
    return ds[name]


def split_datasets(split: str) -> Optional[list[str]]:
    """Datasets a split spans (``None`` = any dataset's own split)."""
    sp = catalog()["splits"]
    if split in sp:
        d = sp[split]["datasets"]
        return None if d == "*" else list(d)
    return None


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise _unknown("profile", profile, PROFILES)
    return profile


def variants(model: str) -> dict[str, dict]:
    spec = get_model(model).spec()
    return {k: v for k, v in spec["variants"].items() if not k.startswith("_")}


def resolve_variant(model: str, dataset: str, variant: Optional[str]) -> str:
    spec = get_model(model).spec()
    names = variants(model)
    if variant is None:
        dv = spec["default_variant"]
        variant = dv.get(dataset, dv.get("*"))
    if variant not in names:
        raise _unknown(f"variant of {model}", variant, names)
    return variant


def resolve_config(model: str, variant: str, dataset: str, profile: str, overrides=()) -> dict:
    """The model's config after profile, per-dataset, variant and ``--set`` overrides (see ``config.py``)."""
    cls = get_model(model)
    spec = cls.spec()
    if dataset not in spec["datasets"]:
        raise UnknownNameError(f"model {model!r} does not run on dataset {dataset!r}",
                               fix=f"use one of {spec['datasets']}")
    check_profile(profile)
    cfg = merge({}, spec["config"])
    prof = spec["profiles"].get(profile, {})
    cfg = merge(cfg, {k: v for k, v in prof.items() if k != "per_dataset"})
    cfg = merge(cfg, prof.get("per_dataset", {}).get(dataset, {}))
    cfg = merge(cfg, variants(model)[variant])
    return apply_overrides(cfg, overrides)


# ----------------------------------------------------------------------------- tables


def table_ids() -> list[str]:
    root = resources.files("bench.tables")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".json") and not p.name.startswith("_"))


def get_table(table_id: str) -> dict:
    ids = table_ids()
    if table_id not in ids:
        raise _unknown("table", table_id, ids)
    return json.loads(resources.files("bench.tables").joinpath(f"{table_id}.json").read_text())


def cell_fillable(cell: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether a table cell can be run now, and why not."""
    if cell.get("fillable") is False:
        return False, cell.get("reason", "not reproducible")
    model = cell.get("model")
    if not model:
        return False, cell.get("reason", "no model")
    _load_models()
    if model not in _MODELS:
        return False, f"model {model!r} not implemented yet"
    return True, ""
