"""Metrics exactly as the papers compute them: one small module per metric, one registry.

Interface (``bench.metrics.base.Metric``): ``update(pred, target, **ctx)`` on batches of
``N x C x H x W`` tensors (uint8, or float in [0, 1]) on any device, ``compute()`` once, state
synchronised across ranks under ``torch.distributed``. Functional forms: ``bench.metrics.functional``.

==============  ==========================================  ============================================
name            module                                      what
==============  ==========================================  ============================================
psnr            psnr.PSNR                                   per-image PSNR, mean over images
ssim            ssim.SSIM                                   skimage-faithful SSIM (preset: window, colour, crop)
mask_ssim       mask_ssim.MaskSSIM                          PG2 mask-SSIM (``mask=``)
lpips           lpips.LPIPS                                 LPIPS v0.1 (lpips 0.1.4 heads)
warped_lpips    lpips.WarpedLPIPS                           LPIPS of warped vs parsed GT garment (3D-GCL)
fid             fid.FID                                     Frechet Inception Distance
kid             kid.KID                                     Kernel Inception Distance (raw value)
is              inception_score.InceptionScore              Inception Score (mean, std over splits)
mask_is         mask_is.MaskIS                              IS of background-zeroed images (``mask=``)
miou            miou.MIoU                                   warped-garment segmentation mIoU (3D-GCL)
iou             iou.IoU                                     STRAT warped-mask IoU (UNVERIFIED definition)
disp            disp.Disp                                   STRAT vertex displacement (UNVERIFIED definition)
lssim           lssim.LSSIM                                 STRAT local SSIM (UNVERIFIED definition)
landmarks       annotate.landmarks.metrics.evaluate_files   hook: PCK / NME / OKS-AP, provided by ``annotate``
==============  ==========================================  ============================================

``build_metric(name, preset=...)`` builds a metric with the preset's parameters (overrides are
checked against the constructor); unknown metric or parameter names are refused with the list of
valid ones. ``landmarks`` is file-based (ground-truth and prediction landmark files, any format
``annotate.landmarks`` reads): ``landmarks_evaluator()`` returns that function.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any, Callable, Dict, List, Optional

from vtondata.errors import UnknownNameError

METRICS: Dict[str, str] = {
    "psnr": "bench.metrics.psnr:PSNR",
    "ssim": "bench.metrics.ssim:SSIM",
    "mask_ssim": "bench.metrics.mask_ssim:MaskSSIM",
    "lpips": "bench.metrics.lpips:LPIPS",
    "warped_lpips": "bench.metrics.lpips:WarpedLPIPS",
    "fid": "bench.metrics.fid:FID",
    "kid": "bench.metrics.kid:KID",
    "is": "bench.metrics.inception_score:InceptionScore",
    "mask_is": "bench.metrics.mask_is:MaskIS",
    "miou": "bench.metrics.miou:MIoU",
    "iou": "bench.metrics.iou:IoU",
    "disp": "bench.metrics.disp:Disp",
    "lssim": "bench.metrics.lssim:LSSIM",
    "landmarks": "annotate.landmarks.metrics:evaluate_files",
}
HOOKS = {"landmarks"}
# parameters every learned metric accepts from the caller rather than from the preset
RUNTIME = ("random_weights", "weights", "device")


def canonical(name: str) -> str:
    """``"mask-SSIM"`` -> ``"mask_ssim"``; refuses unknown names (with a suggestion)."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in METRICS:
        close = difflib.get_close_matches(key, list(METRICS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownNameError(f"unknown metric {name!r}{hint}", fix=f"use one of: {', '.join(sorted(METRICS))}")
    return key


def available() -> List[str]:
    return sorted(METRICS)


def _load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def metric_class(name: str):
    key = canonical(name)
    if key in HOOKS:
        raise UnknownNameError(f"{key!r} is a hook provided by {METRICS[key].split(':')[0]}, not a tensor metric",
                               fix="call bench.metrics.landmarks_evaluator()(gt_path, pred_path)")
    return _load(METRICS[key])


def landmarks_evaluator() -> Callable[..., Dict[str, dict]]:
    """``annotate.landmarks.metrics.evaluate_files(gt_path, pred_path)``: PCK@0.05/0.1, NME, OKS-AP."""
    try:
        return _load(METRICS["landmarks"])
    except (ImportError, AttributeError) as exc:
        raise UnknownNameError("the landmarks metrics (annotate.landmarks.metrics) are not available",
                               fix="install the annotate package of this repository") from exc


def _accepted(cls) -> set:
    """Named constructor parameters along the class hierarchy (``**ssim_params`` adds SSIM's)."""
    names: set = set()
    for c in cls.__mro__:
        if c is object or "__init__" not in vars(c):
            continue
        for p in inspect.signature(c.__init__).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
            elif p.kind == p.VAR_KEYWORD and p.name == "ssim_params":
                names |= _accepted(_load("bench.metrics.ssim:SSIM"))
    return names


def build_metric(name: str, preset: Any = None, *, random_weights: bool = False, weights: Optional[str] = None,
                 device: Optional[str] = None, **overrides: Any):
    """A metric configured by ``preset`` (name, path or dict; default ``pytorch-fid``) plus ``overrides``."""
    from bench.metrics.presets import load_preset, metric_params

    key = canonical(name)
    cls = metric_class(key)
    p = preset if isinstance(preset, dict) else load_preset(preset)
    params = {**metric_params(p, key), **overrides}
    accepted = _accepted(cls)
    bad = [k for k in params if k not in accepted]
    if bad:
        raise UnknownNameError(f"unknown parameter(s) {bad} for metric {key!r}",
                               fix=f"accepted: {', '.join(sorted(accepted - set(RUNTIME)))}")
    runtime = {"random_weights": random_weights, "weights": weights, "device": device}
    for k, v in runtime.items():
        if k in accepted:
            params[k] = v
    metric = cls(**params)
    metric.preset = p["name"]
    metric.display_scale = float(p.get("display", {}).get(key, 1))
    return metric
