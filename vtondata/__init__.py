"""vtondata: the data layer of the toolkit (schema, manifests, ingesters, validation, caches, fixtures).

Data flows one way: official files -> manifest -> caches -> loaders. This package never imports
``bench`` or ``annotate``.
"""

__version__ = "0.1.0"


def __getattr__(name):
    """Lazy exports: ``vtondata.load`` (imports torch only when used)."""
    if name == "load":
        from .loader import load

        return load
    raise AttributeError(f"module 'vtondata' has no attribute {name!r}")
