"""Tree-Block face refinement G_F (seed 001 section 3.2.3, Eqs. 9-10; docs/models.md section 3.2 (IV)).

The face region = parsing labels {hat, hair, sunglasses, face} (official ``utils/transforms.py``
``create_part(..., 'face')``: the image multiplied by the region mask, i.e. 0 outside it).
``G_F`` (a :class:`~bench.models.blocks.treeblock_nets.TreeResnetGenerator` with tanh) maps
``cat(source face I_ps^f, generated target face I~_pt^f)`` (``N x 6 x H x W``) to a face; the refined image is
the generated image with its face region replaced by G_F's output inside the target face mask:
``I~_pt^r = I~_pt * (1 - m) + G_F(.) * m``. All images in [-1, 1].
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .person import region_mask


def part(image: torch.Tensor, parse: torch.Tensor, ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``image * mask`` and ``mask`` (``N x 1 x H x W``) for the labels ``ids`` of ``parse`` (``N x H x W``)."""
    m = region_mask(parse, ids).to(image.dtype)
    return image * m, m


def refine(g_face: nn.Module, source: torch.Tensor, source_parse: torch.Tensor, generated: torch.Tensor,
           target_parse: torch.Tensor, face_ids: Sequence[int]) -> dict[str, torch.Tensor]:
    """Run G_F: returns ``refined`` (``N x 3 x H x W``), ``face`` (G_F output inside the mask), ``mask``."""
    src_face, _ = part(source, source_parse, face_ids)
    gen_face, m = part(generated, target_parse, face_ids)
    out = g_face(torch.cat([src_face, gen_face], 1))
    face = out * m
    refined = generated * (1 - m) + face
    return {"refined": refined, "face": face, "mask": m, "source_face": src_face}
