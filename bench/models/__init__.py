"""The benchmarked models. Importing this package registers every model (``bench.harness.registry``).

Each model is one module plus its JSON spec (``<name>.py`` + ``<name>.json``); shared networks live in
``bench.models.blocks``.
"""

from importlib import import_module

MODULES = ("cpvton",)

for _m in MODULES:
    import_module(f"{__name__}.{_m}")
