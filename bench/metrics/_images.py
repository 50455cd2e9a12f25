"""Image tensors at the metric boundary: validation, grayscale and resize recipes of the references.

Accepted input (every metric): ``N x C x H x W`` tensors on any device, either ``uint8`` in
[0, 255] or floating point in [0, 1] (``C`` = 3 for RGB, 1 for grayscale). Both are mapped to
float32 in [0, 1]; a data range of 1 on that scale is exactly "the range of the stored dtype"
(255 for uint8 files, 1 for [0, 1] floats), so PSNR / SSIM equal scikit-image's on the stored
arrays. Floats outside [0, 1] (for example [-1, 1] or [0, 255] tensors) are refused instead of
silently scored with the wrong peak (a [-1, 1] tensor scored with peak 1 loses 6.02 dB).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from vtondata.errors import MetricInputError

_TOL = 1e-4


def as_unit(x: torch.Tensor, name: str = "pred", dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Validate an ``N x C x H x W`` image batch; float in [0, 1] on the same device (float32, or
    float64 when given float64; ``dtype`` forces one, converting uint8 exactly)."""
    if not isinstance(x, torch.Tensor):
        raise MetricInputError(f"{name} must be a torch.Tensor, got {type(x).__name__}",
                               fix="convert with torch.as_tensor(...).permute(0, 3, 1, 2)")
    if x.ndim != 4:
        raise MetricInputError(f"{name} must be N x C x H x W, got shape {tuple(x.shape)}",
                               fix="add the batch dimension with x.unsqueeze(0)")
    if x.shape[1] not in (1, 3):
        raise MetricInputError(f"{name} must have 1 or 3 channels in dim 1, got shape {tuple(x.shape)}",
                               fix="pass channels first (N x C x H x W)")
    if x.dtype == torch.uint8:
        return x.to(dtype or torch.float32) / 255.0
    if x.dtype == torch.bool:
        return x.to(dtype or torch.float32)
    if not torch.is_floating_point(x):
        raise MetricInputError(f"{name} must be uint8 or floating point, got {x.dtype}")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise MetricInputError(f"{name} holds non-finite values")
        if lo < -_TOL or hi > 1 + _TOL:
            raise MetricInputError(
                f"{name} has values in [{lo:.4g}, {hi:.4g}]; float images must be in [0, 1]",
                fix="pass uint8 tensors, or map [-1, 1] with (x + 1) / 2 and [0, 255] with x / 255")
    if dtype is not None:
        return x.to(dtype)
    return x if x.dtype == torch.float64 else x.to(torch.float32)


def check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    """Paired metrics need equal shapes."""
    if pred is None or target is None:
        raise MetricInputError("this metric is paired: pass both pred and target")
    if tuple(pred.shape) != tuple(target.shape):
        raise MetricInputError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape",
                               fix="resize the ground truth to the prediction size (see the preset's pairing.gt_resize)")


def check_mask(mask: Optional[torch.Tensor], like: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """A ``N x 1 x H x W`` mask (bool, uint8 0/255 or float [0, 1]) as float [0, 1] on ``like``'s device."""
    if mask is None:
        raise MetricInputError(f"this metric needs {name}= (N x 1 x H x W)")
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != like.shape[0] or mask.shape[2:] != like.shape[2:]:
        raise MetricInputError(f"{name} must be N x 1 x H x W matching {tuple(like.shape)}, got {tuple(mask.shape)}")
    return as_unit(mask, name).to(like.device)


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> the nearest uint8 levels, still float in [0, 1]."""
    return torch.round(x * 255.0) / 255.0


def gray_pil(x: torch.Tensor) -> torch.Tensor:
    """RGB -> grayscale exactly as ``PIL.Image.convert('L')`` does on uint8 (ITU-R 601-2, fixed point).

    ``x``: ``N x 3 x H x W`` in [0, 1]; returns ``N x 1 x H x W`` in [0, 1] on uint8 levels.
    """
    if x.shape[1] == 1:
        return to_levels(x)
    v = torch.round(x * 255.0).to(torch.int64)
    lum = (v[:, 0] * 19595 + v[:, 1] * 38470 + v[:, 2] * 7471 + 0x8000) >> 16
    return (lum.to(x.dtype) / 255.0).unsqueeze(1)


_PIL_FILTERS = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def pil_resize(x: torch.Tensor, size: Sequence[int], filter: str = "bilinear", mode: str = "uint8") -> torch.Tensor:
    """Resize with PIL on the CPU, as the reference scripts do, and return to ``x``'s device.

    ``size`` = (height, width). ``mode="uint8"``: the image is quantised to uint8 and resized as a
    PIL RGB / L image (torchvision ``Resize`` on PIL images; HR-VITON's LPIPS 128x128 and IS 299).
    ``mode="float"``: each channel is resized as a 32-bit float ``'F'`` image on the 0-255 scale and
    clipped to [0, 255] (clean-fid ``mode="clean"``). ``x``: ``N x C x H x W`` in [0, 1].
    """
    from PIL import Image

    if filter not in _PIL_FILTERS:
        raise MetricInputError(f"unknown PIL filter {filter!r}; known: {sorted(_PIL_FILTERS)}")
    h, w = int(size[0]), int(size[1])
    resample = _PIL_FILTERS[filter]
    arr = x.detach().to("cpu", torch.float32).numpy()
    out = np.empty((arr.shape[0], arr.shape[1], h, w), dtype=np.float32)
    for i in range(arr.shape[0]):
        if mode == "uint8":
            u8 = np.clip(np.rint(arr[i] * 255.0), 0, 255).astype(np.uint8)
            img = Image.fromarray(u8[0] if u8.shape[0] == 1 else u8.transpose(1, 2, 0))
            res = np.asarray(img.resize((w, h), resample=resample), dtype=np.float32) / 255.0
            out[i] = res[None] if res.ndim == 2 else res.transpose(2, 0, 1)
        elif mode == "float":
            for c in range(arr.shape[1]):
                img = Image.fromarray(arr[i, c] * 255.0, mode="F")
                res = np.asarray(img.resize((w, h), resample=resample), dtype=np.float32)
                out[i, c] = np.clip(res, 0.0, 255.0) / 255.0
        else:
            raise MetricInputError(f"unknown PIL resize mode {mode!r}; known: uint8, float")
    return torch.from_numpy(out).to(x.device)


def resize(x: torch.Tensor, size: Optional[Sequence[int]], how: Optional[str]) -> torch.Tensor:
    """Dispatch a preset resize recipe (``how``) to ``size`` = (height, width).

    Recipes: ``None`` (no resize), ``"torch-bilinear"`` (``F.interpolate`` bilinear,
    ``align_corners=False``, no antialias: pytorch-fid), ``"torch-bilinear-antialias"``
    (torchmetrics >= 1.8), ``"pil-bilinear"`` / ``"pil-bicubic"`` / ``"pil-lanczos"`` (uint8 PIL),
    ``"pil-bicubic-float"`` (clean-fid).
    """
    if how is None or size is None:
        return x
    h, w = int(size[0]), int(size[1])
    if how == "torch-bilinear":
        if tuple(x.shape[2:]) == (h, w):
            return x
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    if how == "torch-bilinear-antialias":
        if tuple(x.shape[2:]) == (h, w):
            return x
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    if how.startswith("pil-"):
        rest = how[4:]
        mode = "float" if rest.endswith("-float") else "uint8"
        filt = rest[: -len("-float")] if mode == "float" else rest
        return pil_resize(x, (h, w), filt, mode)
    raise MetricInputError(f"unknown resize recipe {how!r}",
                           fix="use torch-bilinear, torch-bilinear-antialias, pil-bilinear, pil-bicubic, "
                               "pil-lanczos or pil-bicubic-float")


def size_tuple(size) -> Optional[Tuple[int, int]]:
    """``128`` -> (128, 128); ``[h, w]`` -> (h, w); ``None`` -> None."""
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))
