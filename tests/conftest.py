"""Shared test fixtures: real sample files, an isolated data home, generated datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

REPO = Path(__file__).resolve().parents[1]
REALDATA = (REPO.parent / "shared" / "realdata").resolve()


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real sample files not found at {REALDATA} (they live in the steering repo's shared/realdata)")
    return REALDATA


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own VTONDATA_HOME so nothing touches ~/.vtondata."""
    monkeypatch.setenv("VTONDATA_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="session")
def vitonhd_root(tmp_path_factory) -> Path:
    """A generated VITON-HD (official layout), 12 persons at 256x192; treat as read-only."""
    from vtondata.fixtures import make_fixture

    return make_fixture("viton-hd", tmp_path_factory.mktemp("vitonhd") / "zalando-hd-resized", n=12,
                        size="256x192", seed=1)
