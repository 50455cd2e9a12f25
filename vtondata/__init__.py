"""vtondata: the data layer of the toolkit (schema, manifests, ingesters, validation, caches, fixtures).

Data flows one way: official files -> manifest -> caches -> loaders. This package never imports
``bench`` or ``annotate``.
"""

__version__ = "0.1.0"
