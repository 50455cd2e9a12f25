"""The canonical manifest: one schema for VITON, VITON-HD, MPV, DeepFashion and STRAT.

A prepared dataset is a directory ``<out>/manifest/`` holding Parquet tables (pyarrow, readable
with pandas) and one JSON record:

``assets.parquet`` -- one row per file of the release
    ============== ======== ==============================================================
    asset_id       string   ``<split>/<role>/<name>``; unique within a dataset
    dataset        string   ``viton``, ``viton-hd``, ``mpv``, ``deepfashion``, ``strat``
    split          string   ``train`` / ``test`` (STRAT: ``<subset>-train`` is not used: see ``subset``)
    role           string   see :data:`ROLES` (person, garment, garment_mask, parse, pose, ...)
    sample_id      string   the person / garment / accessory sample this file belongs to
    path           string   POSIX path relative to the dataset root (never absolute, never ``..``)
    width, height  int32    pixels, from the file header (null for non-images)
    format         string   ``JPEG``, ``PNG``, ``JSON``, ``MAT``, ``NPY``, ...
    mode           string   PIL mode (``RGB``, ``L``, ``P``, ``RGBA``) or null
    bytes          int64    file size
    hash           string   BLAKE2b-128 of the file bytes (hex), the content identity
    label_space    string   for parses and masks: ``cihp20``, ``lip20``, ``atr18``, ``face12``, ``body8``, ``binary``
    keypoint_format string  for poses: ``coco18`` / ``body25`` (+ ``_old`` for the ``pose_keypoints`` key)
    encoding       string   for DensePose / parse files: ``detectron_iuv``, ``pws_iuv``, ``vitonhd_dp_segm``,
                            ``palette_ids``, ``gray_ids``, ``rgb_colours``
    ============== ======== ==============================================================

``samples.parquet`` -- one row per person, garment, background or accessory sample
    sample_id, dataset, split, kind (``person`` / ``garment`` / ``foreground`` / ``background``),
    name (file stem as released), item (garment item / identity id when the release has one),
    view (``front`` / ``back`` / ``side`` / ...), framing (``half`` / ``whole`` / null),
    category (garment category / STRAT subset / DeepFashion category), gender.

``tuples.parquet`` -- one row per training or evaluation unit
    tuple_id, dataset, split, kind (``pair`` / ``triplet`` / ``accessory``), setting
    (``paired`` / ``unpaired`` / ``multi-pose``), person, garment, target_person, foreground,
    background, composite (sample ids; null when not part of the unit), source (the list file, relative
    to the root) and line (1-based line number in it).

``findings.parquet`` -- the validation findings (severity, code, file, line, message, fix).

``meta.json`` -- dataset, layout (the variant detected), root, tool and ingester version, counts per
table / split / role / setting, the input fingerprint, creation time (UTC ISO 8601), the options and the
validation summary.

Ingesters may add extra tables (``Scan.tables``; rows of dropped samples / tuples are filtered like the core
tables): ``keypoints.parquet`` and ``inshop_annotations.parquet`` (DeepFashion, by ``sample_id``),
``strat_params.parquet`` (STRAT vertices and homographies, by ``tuple_id``).

Later tables join by ``asset_id`` / ``sample_id``: ``landmarks.parquet`` (annotate), derived splits under
``<out>/splits/`` and caches under ``<out>/caches/``.
"""

from __future__ import annotations

import pyarrow as pa

#: every role an asset can have; names are the field words of the project
ROLES = (
    "person", "garment", "garment_mask", "person_mask", "parse", "parse_vis", "parse_agnostic",
    "agnostic", "agnostic_mask", "pose", "pose_render", "densepose", "silhouette",
    "foreground", "foreground_mask", "background", "background_parse", "composite_parse", "composite",
    "annotation",
)

ASSETS = pa.schema([
    ("asset_id", pa.string()), ("dataset", pa.string()), ("split", pa.string()), ("role", pa.string()),
    ("sample_id", pa.string()), ("path", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("format", pa.string()), ("mode", pa.string()), ("bytes", pa.int64()), ("hash", pa.string()),
    ("label_space", pa.string()), ("keypoint_format", pa.string()), ("encoding", pa.string()),
])

SAMPLES = pa.schema([
    ("sample_id", pa.string()), ("dataset", pa.string()), ("split", pa.string()), ("kind", pa.string()),
    ("name", pa.string()), ("item", pa.string()), ("view", pa.string()), ("framing", pa.string()),
    ("category", pa.string()), ("gender", pa.string()),
])

TUPLES = pa.schema([
    ("tuple_id", pa.string()), ("dataset", pa.string()), ("split", pa.string()), ("kind", pa.string()),
    ("setting", pa.string()), ("person", pa.string()), ("garment", pa.string()),
    ("target_person", pa.string()), ("foreground", pa.string()), ("background", pa.string()),
    ("composite", pa.string()), ("source", pa.string()), ("line", pa.int32()),
])

FINDINGS = pa.schema([
    ("severity", pa.string()), ("code", pa.string()), ("file", pa.string()), ("line", pa.int32()),
    ("message", pa.string()), ("fix", pa.string()),
])

TABLES = {"assets": ASSETS, "samples": SAMPLES, "tuples": TUPLES, "findings": FINDINGS}

SCHEMA_VERSION = 1


def to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table from row dicts; missing keys become nulls, unknown keys are an error."""
    names = schema.names
    for r in rows[:1]:
        extra = set(r) - set(names)
        if extra:
            raise KeyError(f"unknown manifest columns {sorted(extra)} for schema {names}")
    cols = {n: [r.get(n) for r in rows] for n in names}
    return pa.Table.from_pydict(cols, schema=schema)
