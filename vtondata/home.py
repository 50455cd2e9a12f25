"""Where prepared data lives: ``$VTONDATA_HOME`` (default ``~/.vtondata``).

Layout::

    <home>/<dataset>/manifest/      assets.parquet, samples.parquet, tuples.parquet, findings.parquet, meta.json
    <home>/<dataset>/caches/<kind>/<fingerprint>/
    <home>/<dataset>/splits/
    <home>/<dataset>/reports/
    <home>/runs/<run-name>/
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The data home, from ``$VTONDATA_HOME`` or ``~/.vtondata``."""
    return Path(os.environ.get("VTONDATA_HOME", "~/.vtondata")).expanduser()


def dataset_dir(dataset: str) -> Path:
    """Default output directory of a prepared dataset."""
    return home() / dataset
