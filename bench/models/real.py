"""``real``: the "Real data" rows of the papers' tables (Tree-Block Table 1, SPG-VTON Tables II-III, ...).

A pseudo-model with no networks and no training stages: its "try-on" IS the ground-truth target image of each
evaluation tuple, so the harness scores the real test images exactly as it scores a model's outputs (same
PNG round trip, same presets, masks and metrics). Paired metrics are then 1 (SSIM) by construction and the
unpaired ones (IS, mask-IS, FID ...) measure the real data, as the papers' "Real data" rows do.

Ground truth per setting: ``multi-pose`` -> ``target_person`` (parse / pose of the target person for masked
metrics); ``paired`` / ``unpaired`` and every other setting -> ``person``. Output ``tryon``:
``N x 3 x H x W`` in [-1, 1].
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from bench.harness.model import Inputs, Model, Stage
from bench.harness.registry import register_model
from bench.models.blocks.person import to_coco18


@register_model
class RealData(Model):
    name = "real"
    spec_file = "real.json"
    outputs = ("tryon",)

    @staticmethod
    def _prefix(batch: Mapping[str, Any]) -> str:
        return "target_" if "target_person" in batch else ""

    def inputs(self, purpose: str, setting: str) -> Inputs:
        if setting == "multi-pose":
            fields = ("target_person", "target_parse", "target_pose")
        else:
            fields = ("person", "parse", "pose")
        return Inputs(fields=fields, label_space=self.config.get("parse_space"))

    def build(self) -> dict[str, nn.Module]:
        return {}

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        raise ValueError("the real pseudo-model has no training stages")

    @torch.no_grad()
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"tryon": batch[self._prefix(batch) + "person"]}

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {"tryon": batch[self._prefix(batch) + "person"]}

    def metric_context(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        pre = self._prefix(batch)
        return {"parse": batch[pre + "parse"], "pose": to_coco18(batch[pre + "pose"])}
