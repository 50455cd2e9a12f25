"""One ingester per dataset (registry in :mod:`vtondata.datasets.base`)."""

from .base import REGISTRY, Ingester, Scan, get_ingester, read_list, register, safe_relpath  # noqa: F401


def _load_all():
    import importlib

    for mod in ("vitonhd", "viton", "mpv", "deepfashion", "strat"):
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:  # a dataset module not written yet
            if exc.name != f"{__name__}.{mod}":
                raise


_load_all()
