"""The benchmarked models. Importing this package registers every model (``bench.harness.registry``).

Each model is one module plus its JSON spec (``<name>.py`` + ``<name>.json``); shared networks live in
``bench.models.blocks``. Every module of this package that has a JSON spec beside it is imported, so a new
model is added by dropping in its two files.
"""

from importlib import import_module, resources

MODULES = tuple(sorted(p.name[:-3] for p in resources.files(__name__).iterdir()
                       if p.name.endswith(".py") and not p.name.startswith("_")
                       and resources.files(__name__).joinpath(p.name[:-3] + ".json").is_file()))

for _m in MODULES:
    import_module(f"{__name__}.{_m}")
