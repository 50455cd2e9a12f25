"""Person representations computed on the fly from loader tensors (vectorised torch, any device).

Inputs at the boundary: ``person`` ``N x 3 x H x W`` in [-1, 1]; ``parse`` ``N x H x W`` int64 label ids;
``pose`` ``N x K x 3`` (x, y in pixels of the same frame, confidence; missing joints are 0, 0, 0), K = 18
(COCO-18) or 25 (BODY_25, converted). Outputs are float tensors in [-1, 1] unless stated.

CP-VTON's cloth-agnostic representation (sergeywong/cp-vton ``cp_dataset.py``) is ``cat(shape, head, pose
maps)`` = 1 + 3 + 18 = 22 channels: :func:`body_shape`, :func:`keep_region` of the head labels, and
:func:`pose_maps`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from vtondata.pose import BODY25_TO_COCO18


def to_coco18(pose: torch.Tensor) -> torch.Tensor:
    """``N x 25 x 3`` BODY_25 or ``N x 18 x 3`` COCO-18 -> ``N x 18 x 3`` COCO-18."""
    k = pose.shape[-2]
    if k == 18:
        return pose
    if k == 25:
        return pose[..., torch.as_tensor(BODY25_TO_COCO18, device=pose.device), :]
    raise ValueError(f"pose must have 18 or 25 keypoints, got {k}")


def pose_maps(pose: torch.Tensor, height: int, width: int, radius: float = 5.0, shape: str = "disc",
              min_xy: float = 1.0) -> torch.Tensor:
    """One map per keypoint: ``N x K x H x W``, 1 inside a disc (or square) of ``radius`` px, -1 elsewhere.

    A joint is drawn when ``x > min_xy`` and ``y > min_xy`` (the reference's test, which also skips missing
    joints stored as 0, 0). ``shape="disc"``: ``dx² + dy² <= radius²``; ``"square"``: ``max(|dx|, |dy|) <= radius``.
    """
    if shape not in ("disc", "square"):
        raise ValueError(f"shape must be disc or square, got {shape!r}")
    x = pose[..., 0, None, None]
    y = pose[..., 1, None, None]
    valid = ((pose[..., 0] > min_xy) & (pose[..., 1] > min_xy))[..., None, None]
    ys = torch.arange(height, device=pose.device, dtype=pose.dtype).view(1, 1, height, 1)
    xs = torch.arange(width, device=pose.device, dtype=pose.dtype).view(1, 1, 1, width)
    dx, dy = xs - x, ys - y
    if shape == "disc":
        inside = dx * dx + dy * dy <= radius * radius
    else:
        inside = (dx.abs() <= radius) & (dy.abs() <= radius)
    return torch.where(inside & valid, 1.0, -1.0).to(torch.float32)


def region_mask(parse: torch.Tensor, ids: Sequence[int]) -> torch.Tensor:
    """``N x H x W`` ids -> ``N x 1 x H x W`` float {0, 1}: pixels whose label is in ``ids``."""
    ids_t = torch.as_tensor(list(ids), device=parse.device, dtype=parse.dtype)
    return torch.isin(parse, ids_t).unsqueeze(1).float()


def body_shape(parse: torch.Tensor, factor: int = 16) -> torch.Tensor:
    """Blurred silhouette: foreground (label > 0) downsampled ``factor`` times (antialiased bilinear, like PIL)
    and upsampled back (bilinear). ``N x H x W`` -> ``N x 1 x H x W`` in [-1, 1]."""
    sil = (parse > 0).unsqueeze(1).float()
    h, w = sil.shape[-2:]
    small = F.interpolate(sil, size=(max(1, h // factor), max(1, w // factor)), mode="bilinear",
                          align_corners=False, antialias=True)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False) * 2 - 1


def keep_region(image: torch.Tensor, mask: torch.Tensor, fill: float = -1.0) -> torch.Tensor:
    """``image`` where ``mask`` is 1, ``fill`` elsewhere (``N x C x H x W``, mask ``N x 1 x H x W``)."""
    return image * mask + fill * (1 - mask)
