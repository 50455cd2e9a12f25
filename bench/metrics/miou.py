"""mIoU of warped-garment segmentation (3D-GCL warping evaluation).

3D-GCL (seed 002 §4) compares "the segmentation maps of the warped garments with their
ground-truths" (parsing by Graphonomy, 20-label LIP / CIHP space) and prints percentages.
UNVERIFIED (no evaluation code released): the classes that enter the mean and the averaging.
Working definition (configurable, recorded with every result):

* ``classes``: the garment labels {5 upper-clothes, 6 dress, 7 coat, 9 pants, 10 jumpsuit,
  12 skirt} (preset data); every other label counts as "not garment" and is never averaged;
* ``averaging="dataset"`` (default): per-class intersection and union summed over the whole
  test set (an FCN-style confusion matrix), IoU per class, mean over the classes whose union is
  non-empty; ``averaging="per-image"``: the mean over classes present in the image, then the
  mean over images (images with no listed class are skipped, ``n_skipped``);
* ``value`` is a fraction; the preset's ``display_scale`` (100) gives the papers' percentages.

Inputs: ``pred``, ``target`` label maps ``N x 1 x H x W`` (or ``N x H x W``), integer dtype.
The prediction is typically the source parsing warped by the model's flow (nearest sampling).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import torch

from bench.metrics.base import Metric
from vtondata.errors import MetricInputError


def _labels(x: torch.Tensor, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise MetricInputError(f"{name} label map must be N x 1 x H x W, got {tuple(x.shape)}")
        x = x[:, 0]
    if x.ndim != 3 or torch.is_floating_point(x):
        raise MetricInputError(f"{name} must be an integer label map N x H x W, got {x.dtype} {tuple(x.shape)}")
    return x.long()


def class_iou_counts(pred: torch.Tensor, target: torch.Tensor, classes: Sequence[int]):
    """Per-image, per-class intersection and union, each ``N x K`` (float64)."""
    p, t = _labels(pred, "pred"), _labels(target, "target")
    if p.shape != t.shape:
        raise MetricInputError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    cls = torch.as_tensor(list(classes), device=p.device).view(1, -1, 1, 1)
    pk = p.unsqueeze(1) == cls
    tk = t.to(p.device).unsqueeze(1) == cls
    inter = (pk & tk).flatten(2).sum(2).to(torch.float64)
    union = (pk | tk).flatten(2).sum(2).to(torch.float64)
    return inter, union


class MIoU(Metric):
    """Mean IoU over garment classes (dataset-level by default)."""

    name = "miou"
    higher_is_better = True

    def __init__(self, classes: Sequence[int] = (5, 6, 7, 9, 10, 12), averaging: str = "dataset") -> None:
        super().__init__()
        if averaging not in ("dataset", "per-image"):
            raise MetricInputError(f"miou averaging must be 'dataset' or 'per-image', got {averaging!r}")
        if not classes:
            raise MetricInputError("miou needs at least one class")
        self.classes = [int(c) for c in classes]
        self.averaging = averaging
        k = len(self.classes)
        self.add_state("inter", [0.0] * k, "sum")
        self.add_state("union", [0.0] * k, "sum")
        self.add_state("image_total", 0.0, "sum")
        self.add_state("image_count", 0.0, "sum")
        self.add_state("image_skipped", 0.0, "sum")

    def params(self) -> Dict[str, Any]:
        return {"classes": list(self.classes), "averaging": self.averaging, "definition": "UNVERIFIED (3D-GCL)"}

    def _update(self, pred, target, **ctx) -> None:
        inter, union = class_iou_counts(pred, target, self.classes)
        self._add("inter", inter.sum(0))
        self._add("union", union.sum(0))
        present = union > 0
        per_image = (torch.where(present, inter / union.clamp(min=1), torch.zeros_like(union)).sum(1)
                     / present.sum(1).clamp(min=1))
        has = present.any(1)
        self._add("image_total", per_image[has].sum())
        self._add("image_count", has.sum().to(torch.float64))
        self._add("image_skipped", (~has).sum().to(torch.float64))

    def _compute(self, state) -> Dict[str, Any]:
        inter, union = state["inter"].cpu(), state["union"].cpu()
        per_class = {str(c): (float(i / u) if u > 0 else None) for c, i, u in zip(self.classes, inter, union)}
        if self.averaging == "dataset":
            ok = union > 0
            value = float((inter[ok] / union[ok]).mean()) if ok.any() else float("nan")
        else:
            n = float(state["image_count"])
            value = float(state["image_total"]) / n if n else float("nan")
        return {"value": value, "per_class": per_class, "n": int(float(state["image_count"])),
                "n_skipped": int(float(state["image_skipped"]))}
