"""Masks for the masked metrics: PG2's pose mask and parsing-region masks.

* ``pose_mask`` reproduces PG2's ``_getPoseMask`` (charliememory/Pose-Guided-Person-Image-Generation
  ``datasets/convert_market.py`` / ``convert_DF.py``): for every limb whose two keypoints are both
  present, solid discs of radius ``r`` are drawn at both ends (centre truncated to int) and at the
  ``int(len / r) - 1`` interior points ``p0 + (p1 - p0) * i / int(len / r)``; then a morphological
  closing (``dilation`` then ``erosion`` with a ``closing`` x ``closing`` square, scikit-image).
  The 23 limbs (18 COCO / OpenPose keypoints) come from the preset (data, not code).
* ``region_mask`` selects label ids of a parsing map (LIP / CIHP 20-label space), e.g. the
  SPG-VTON face region (13) or its "w/o clothes" region. Which labels form "w/o clothes" is
  UNVERIFIED (the paper does not list them); the presets carry the working choice.

Keypoints: ``K x 2`` or ``K x 3`` array of (x, y[, confidence]) in pixels; a keypoint is missing when
its confidence is <= 0 or a coordinate is negative (OpenPose writes 0, 0, 0 for missing points).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from vtondata.errors import MetricInputError, PoseFormatError


def _present(kp: np.ndarray) -> np.ndarray:
    ok = (kp[:, 0] >= 0) & (kp[:, 1] >= 0)
    if kp.shape[1] >= 3:
        ok &= kp[:, 2] > 0
    return ok


def _disc(dense: np.ndarray, r_c: float, c_c: float, radius: int) -> None:
    h, w = dense.shape
    r0, c0 = int(r_c), int(c_c)
    for i in range(-radius, radius + 1):
        for j in range(-radius, radius + 1):
            if np.sqrt(float(i * i + j * j)) <= radius and 0 <= r0 + i < h and 0 <= c0 + j < w:
                dense[r0 + i, c0 + j] = 1.0


def pose_mask(keypoints, size: Tuple[int, int], limbs: Sequence[Sequence[int]], radius: int = 4,
              closing: int = 5) -> np.ndarray:
    """PG2 pose mask, ``H x W`` bool. ``limbs``: 0-based keypoint index pairs; ``size`` = (H, W)."""
    from skimage.morphology import dilation, erosion

    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise PoseFormatError(f"keypoints must be K x 2 or K x 3, got shape {kp.shape}")
    h, w = int(size[0]), int(size[1])
    ok = _present(kp)
    dense = np.zeros((h, w), dtype=np.float64)
    for a, b in limbs:
        if a >= len(kp) or b >= len(kp):
            raise PoseFormatError(f"limb ({a}, {b}) refers past the {len(kp)} keypoints given")
        if not (ok[a] and ok[b]):
            continue
        (c0, r0), (c1, r1) = kp[a, :2], kp[b, :2]
        _disc(dense, r0, c0, radius)
        _disc(dense, r1, c1, radius)
        steps = int(np.sqrt((r0 - r1) ** 2 + (c0 - c1) ** 2) / radius)
        for i in range(1, steps):
            _disc(dense, r0 + (r1 - r0) * i / steps, c0 + (c1 - c0) * i / steps, radius)
    square = np.ones((closing, closing), dtype=bool)
    dense = erosion(dilation(dense, square), square)
    return dense > 0


def read_openpose_18(path: Union[str, Path]) -> np.ndarray:
    """The first person's 18 COCO keypoints (x, y, conf) from an OpenPose JSON (old or 1.3 format)."""
    try:
        data = json.loads(Path(path).read_text())
        person = data["people"][0]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise PoseFormatError(f"cannot read an OpenPose person: {exc}", file=path) from exc
    for key in ("pose_keypoints", "pose_keypoints_2d"):
        if key in person:
            flat = np.asarray(person[key], dtype=np.float64)
            break
    else:
        raise PoseFormatError("no pose_keypoints / pose_keypoints_2d", file=path)
    if flat.size != 54:
        raise PoseFormatError(f"expected 18 keypoints (54 numbers), got {flat.size}", file=path,
                              fix="convert BODY_25 to the 18-point COCO order first")
    return flat.reshape(18, 3)


def region_mask(parse, labels: Iterable[int]) -> np.ndarray:
    """Bool mask of the pixels of a label map (``H x W`` ints) whose label is in ``labels``."""
    arr = parse.cpu().numpy() if isinstance(parse, torch.Tensor) else np.asarray(parse)
    if arr.ndim != 2:
        raise MetricInputError(f"parse must be an H x W label map, got shape {arr.shape}")
    return np.isin(arr, np.asarray(list(labels)))


def apply_mask(images: torch.Tensor, mask: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """Zero the background as PG2 does: ``uint8(mask / 255 * img)`` (truncation) when ``quantize``.

    ``images``: ``N x C x H x W`` in [0, 1]; ``mask``: ``N x 1 x H x W`` in [0, 1]. Returns [0, 1].
    """
    if quantize:
        levels = torch.round(images * 255.0)
        return torch.floor(mask * levels + 1e-6) / 255.0
    return images * mask


def masks_to_tensor(masks: Sequence[np.ndarray], device: Optional[torch.device] = None) -> torch.Tensor:
    """Stack ``H x W`` bool masks into ``N x 1 x H x W`` float."""
    return torch.from_numpy(np.stack([np.asarray(m, dtype=np.float32) for m in masks])[:, None]).to(device or "cpu")
