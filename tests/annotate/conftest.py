"""Shared fixtures of the annotate tests."""

import os

import pytest



@pytest.fixture(scope="session")
def fo(tmp_path_factory):
    """FiftyOne on an embedded database in this worker's temp dir (never ~/.fiftyone, never a user URI)."""
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    db = tmp_path_factory.getbasetemp() / "fiftyone-db"
    os.environ["FIFTYONE_DATABASE_DIR"] = str(db)
    from annotate import browse

    fom = browse.fiftyone()
    fom.config.database_uri = None
    fom.config.database_dir = str(db)
    return browse.connect()
