"""PF-AFN's warping losses per pyramid level and its adjustable knowledge distillation (geyuying/PF-AFN
``train_PBAFN_stage1.py`` / ``train_PFAFN_*.py``, re-written), for flows of
:class:`~bench.models.blocks.afwm_flow.AFWMWarper` (pixel offsets of each level, coarse first).

:func:`warp_terms`: for level ``num = 0..L-1`` (coarse to fine) the garment and its mask are area-resized to the
level, warped, and compared with the worn garment / its mask: ``(num+1)·L1``, ``(num+1)·VGG`` (only when ``vgg``
is given), ``(num+1)·L1(mask)``, ``(num+1)·second-order smoothness`` and the level's ``TV``; returns the
unweighted sums ``{"l1", "vgg", "mask", "smooth", "tv"}`` plus ``"warped"`` (each level's warped garment).

:func:`distill_gate`: per sample 1 where the teacher's warped garment is closer (L1) to the worn garment than the
student's, else 0 (``N``). :func:`feature_distill`: ``sum_num (L - num)·0.04·||u_t - u_s||²`` of the
condition-encoder pyramids, gated, averaged over the gated samples, channels and pixels. :func:`flow_distill`:
``sum_num (num+1)·||f_t - f_s||_2`` (per-pixel Euclidean norm) over the three finest levels, gated likewise.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .afwm_flow import second_order_smoothness, tv
from .gcl_corr import warp


#: the per-level warp loss terms of PF-AFN (weights 1, 0.2, 2, 6, 0.01 in the stage configs)
WARP_TERMS = ("l1", "vgg", "mask", "smooth", "tv")


def warp_terms(flows: list[torch.Tensor], garment: torch.Tensor, mask: torch.Tensor, target: torch.Tensor,
               target_mask: torch.Tensor, vgg=None) -> dict:
    terms: dict = {"l1": 0, "vgg": 0, "mask": 0, "smooth": 0, "tv": 0, "warped": []}
    for num, f in enumerate(flows):
        size, k = f.shape[-2:], num + 1

        def at(x):
            return F.interpolate(x, size=size, mode="area")

        warped = warp(at(garment), f, fill=1.0)
        t = at(target)
        terms["warped"].append(warped)
        terms["l1"] = terms["l1"] + k * F.l1_loss(warped, t)
        if vgg is not None:
            terms["vgg"] = terms["vgg"] + k * vgg(warped, t)
        terms["mask"] = terms["mask"] + k * F.l1_loss(warp(at(mask), f), at(target_mask))
        terms["smooth"] = terms["smooth"] + k * second_order_smoothness(f)
        terms["tv"] = terms["tv"] + tv(f)
    if vgg is None:
        del terms["vgg"]
    return terms


def distill_gate(teacher_warped: torch.Tensor, student_warped: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``N`` float {0, 1}: 1 where the teacher's warp is better (lower mean L1) than the student's."""
    lt = (teacher_warped - target).abs().flatten(1).mean(1)
    ls = (student_warped.detach() - target).abs().flatten(1).mean(1)
    return (lt < ls).float()


def _gated_mean(err: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``err`` ``N x ...`` averaged over its non-batch dims, summed over the gated samples, divided by their
    count (at least 1, as the reference)."""
    per = err.flatten(1).mean(1)
    return (per * gate).sum() / gate.sum().clamp(min=1.0)


def feature_distill(teacher_feats: list[torch.Tensor], student_feats: list[torch.Tensor],
                    gate: torch.Tensor, step: float = 0.04) -> torch.Tensor:
    n = len(student_feats)
    return sum((n - num) * step * _gated_mean((t.detach() - s) ** 2, gate)
               for num, (t, s) in enumerate(zip(teacher_feats, student_feats)))


def flow_distill(teacher_flows: list[torch.Tensor], student_flows: list[torch.Tensor], gate: torch.Tensor,
                 finest: Optional[int] = 3) -> torch.Tensor:
    n = len(student_flows)
    first = max(0, n - finest) if finest else 0
    return sum((num + 1) * _gated_mean(torch.linalg.vector_norm(teacher_flows[num].detach() - student_flows[num],
                                                                dim=1), gate)
               for num in range(first, n))
