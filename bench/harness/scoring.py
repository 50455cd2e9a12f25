"""The score stage: read the generated PNGs back and score them with ``bench.metrics`` under one preset.

For each batch of the evaluation split the model supplies the references (``Model.references``: ground-truth
images, e.g. the person for ``tryon``) and context (``Model.metric_context``: the reference person's parse
and COCO-18 pose). Predictions are the uint8 PNGs written by the infer stage, references are the loader's
images mapped back to uint8, so a score is a function of files, as the papers computed theirs.

Masked metrics (``mask_ssim``, ``mask_is``) get PG2 pose masks of the reference pose with the preset's limbs,
radius and closing (``preset["masks"]["pose_mask"]``). Metrics are synchronised across ranks by
``bench.metrics`` itself. A metric that cannot be computed on the data (e.g. too few images) is recorded with
its error instead of stopping the run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from vtondata.errors import MetricInputError, VtonDataError

from .data import ShardBatches, loader, to_device
from .dist import Context
from .infer import key_of, read_png, to_uint8
from .model import Model

MASKED = ("mask_ssim", "mask_is")
UNPAIRED_ONLY = ("is", "mask_is")  # scored on the generated images alone


def metric_key(m: Mapping[str, Any]) -> str:
    """Record key of a requested metric: ``m["key"]`` if given, else the canonical name, plus ``@<region>`` when
    the metric is masked by a parsing region of the preset (SPG-VTON "Mask-SSIM (Face)" -> ``mask_ssim@face``)."""
    from bench.metrics import canonical

    if m.get("key"):
        return str(m["key"])
    name = canonical(m["metric"])
    return f"{name}@{m['region']}" if m.get("region") else name


def _region_masks(parse: torch.Tensor, region: str, preset: Mapping[str, Any]) -> torch.Tensor:
    """``N x 1 x H x W`` masks of the preset's parsing region (``masks.regions.<region>`` label ids)."""
    regions = preset["masks"]["regions"]
    if region not in regions or not isinstance(regions[region], list):
        raise VtonDataError(f"preset {preset['name']!r} has no parsing region {region!r}",
                            fix=f"use one of {sorted(k for k, v in regions.items() if isinstance(v, list))}")
    ids = torch.as_tensor(regions[region], device=parse.device)
    return torch.isin(parse.long(), ids).unsqueeze(1).float()


def _pose_masks(pose: torch.Tensor, size, preset: Mapping[str, Any]) -> torch.Tensor:
    from bench.metrics.masks import masks_to_tensor, pose_mask

    spec = preset["masks"]["pose_mask"]
    masks = [pose_mask(kp.cpu().numpy(), size, spec["limbs"], int(spec["radius"]), int(spec["closing"]))
             for kp in pose]
    return masks_to_tensor(masks, pose.device)


def score(model: Model, dataset, pred_dir: Path, metrics: Sequence[Mapping[str, str]], preset: str, ctx: Context,
          random_weights: bool, batch_size: int = 8, workers: int = 0) -> dict[str, dict]:
    """Score ``metrics`` (``[{"metric": "ssim", "output": "tryon"}, ...]``) -> ``{metric: result}``.

    ``result`` is ``bench.metrics``' stamped dict (value, std, preset, comparable, params, ...) plus
    ``output`` and ``display_scale``, or ``{"error": ...}``.
    """
    from bench.metrics import build_metric, canonical
    from bench.metrics.presets import fingerprint, load_preset

    p = load_preset(preset)
    fp = fingerprint(p)
    built: dict[str, tuple[Any, str]] = {}
    errors: dict[str, str] = {}
    base: dict[str, str] = {}  # record key -> metric name
    regions: dict[str, Any] = {}  # record key -> parsing region of a masked metric (None: pose mask)
    for m in metrics:
        name = canonical(m["metric"])
        key = metric_key(m)
        base[key], regions[key] = name, m.get("region")
        built[key] = (build_metric(name, p, random_weights=random_weights, device=str(ctx.device)),
                      m.get("output", "tryon"))
    batches = loader(dataset, ShardBatches(len(dataset), batch_size, ctx.rank, ctx.world), workers, ctx)
    t0 = time.perf_counter()
    for batch in batches:
        keys = [key_of(t) for t in batch["tuple_id"]]
        b = to_device(batch, ctx.device)
        refs = model.references(b)
        mctx = model.metric_context(b)
        preds: dict[str, torch.Tensor] = {}
        masks = None
        for name, (metric, output) in built.items():
            if name in errors:
                continue
            if output not in preds:
                files = [Path(pred_dir) / output / f"{k}.png" for k in keys]
                missing = [f for f in files if not f.exists()]
                if missing:
                    raise VtonDataError(f"{len(missing)} generated image(s) missing, e.g. {missing[0].name}",
                                        file=missing[0].parent, fix="run the infer stage again (drop --resume)")
                preds[output] = torch.stack([read_png(f) for f in files]).to(ctx.device)
            pred = preds[output]
            kw: dict[str, Any] = {}
            if base[name] in MASKED and regions[name]:
                kw["mask"] = _region_masks(mctx["parse"], regions[name], p)
            elif base[name] in MASKED:
                if masks is None:
                    masks = _pose_masks(mctx["pose"], tuple(pred.shape[-2:]), p)
                kw["mask"] = masks
            target = None if base[name] in UNPAIRED_ONLY else to_uint8(refs[output])
            custom = model.score_inputs(base[name], output, pred, target, b, Path(pred_dir), keys)
            if custom is not None:  # STRAT IoU / Disp / LSSIM: masks and vertices instead of an image pair
                pred, target, kw = custom
            try:
                metric.update(pred, target, **kw)
            except MetricInputError as exc:
                errors[name] = str(exc)
    if ctx.active:  # every rank must skip the same metrics, or the others would wait in compute()
        import torch.distributed as dist

        seen: list = [None] * ctx.world
        dist.all_gather_object(seen, errors)
        for e in seen:
            errors.update(e)
    out: dict[str, dict] = {}
    for name, (metric, output) in built.items():
        if name in errors:
            out[name] = {"metric": name, "error": errors[name], "preset": p["name"], "comparable": False}
            continue
        try:
            res = metric.compute()
        except MetricInputError as exc:
            res = {"metric": name, "error": str(exc), "preset": p["name"], "comparable": False}
        res["output"] = output
        if regions[name]:
            res["region"] = regions[name]
        res["display_scale"] = getattr(metric, "display_scale", 1.0)
        res["preset_fingerprint"] = fp
        out[name] = res
    if ctx.main:
        print(f"scored {len(dataset)} tuples with preset {p['name']} in {time.perf_counter() - t0:.1f} s")
    return out


def preflight(metrics: Sequence[Mapping[str, str]], preset: str, device, random_weights: bool) -> None:
    """Load every metric network now, so missing weights stop a run before training, not after it."""
    from bench.metrics import build_metric

    for m in metrics:
        metric = build_metric(m["metric"], preset, random_weights=random_weights, device=str(device))
        prepare = getattr(metric, "prepare", None)
        if prepare is not None:
            prepare(device)
