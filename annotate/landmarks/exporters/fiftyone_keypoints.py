"""FiftyOne ``Keypoints`` for the browse app (fiftyone is imported only when these are called).

One ``fo.Keypoint`` per record: ``label`` = side, ``points`` = K (x, y) in relative [0, 1] coordinates
(``(nan, nan)`` for absent points, FiftyOne's convention), and the custom attributes ``attribute_codes``
(the K codes), ``scheme`` and ``point_names``. ``skeleton(scheme)`` gives the matching ``fo.KeypointSkeleton``.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

import numpy as np
import pandas as pd

from vtondata.errors import VtonDataError

from ..definition import load_definition
from ..table import to_arrays


def _fo():
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    import fiftyone as fo

    return fo


def skeleton(scheme: str = "sal32"):
    """``fo.KeypointSkeleton`` with the scheme's point names and edges (set on ``dataset.skeletons``)."""
    fo = _fo()
    d = load_definition(scheme)
    return fo.KeypointSkeleton(labels=list(d.names), edges=[list(e) for e in d.skeleton])


def to_fiftyone_keypoints(df: pd.DataFrame) -> Dict[str, "object"]:
    """``{image: fo.Keypoints}``: both sides of an image in one ``Keypoints`` (usually one side each)."""
    fo = _fo()
    out: Dict[str, list] = {}
    for scheme, sub in df.groupby("scheme", sort=True):
        d = load_definition(scheme)
        keys, xy, attr = to_arrays(sub, d)
        if "width" not in keys.columns or keys["width"].isna().any():
            raise VtonDataError("FiftyOne keypoints need the image sizes (relative coordinates)",
                                fix="convert with --dataset or --root first so width and height are known")
        rel = xy / np.stack([keys["width"].to_numpy(np.float64), keys["height"].to_numpy(np.float64)], 1)[:, None, :]
        rel[attr == 0] = np.nan
        for i, r in keys.iterrows():
            kw = {}
            if "score" in keys.columns and np.isfinite(r["score"]):
                kw["confidence"] = [float(r["score"])] * d.num_points
            kp = fo.Keypoint(label=r["side"], points=[tuple(p) for p in rel[i].tolist()],
                             attribute_codes=attr[i].tolist(), scheme=scheme, point_names=list(d.names), **kw)
            out.setdefault(str(r["image"]), []).append(kp)
    return {img: fo.Keypoints(keypoints=kps) for img, kps in out.items()}


def record_points(kp) -> Tuple[np.ndarray, np.ndarray]:
    """Inverse helper for tests and the browse app: relative points (K, 2) and attribute codes (K,)."""
    return np.asarray(kp.points, dtype=np.float64), np.asarray(kp["attribute_codes"], dtype=np.int64)
