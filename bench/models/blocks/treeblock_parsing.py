"""Tree-Block parsing transformation network G_P (seed 001 section 3.2.1; docs/models.md section 3.2 (I)).

Input (36 channels at ``H x W``): one-hot source parsing without the cloth labels (``K - len(cloth_ids)`` = 17
of the 20 CIHP channels) + 18 target pose maps (binary discs in {0, 1}) + the in-shop cloth mask ``M_c`` (1).
Output: ``N x K x H x W`` softmax probabilities ``S~_pt`` (K = 20). Network: the shared U-Net
(:mod:`bench.models.blocks.unet`, ``num_downs`` downsamplings, InstanceNorm, dropout) -- the official code
uses pix2pix's ``unet_256`` (transposed-conv decoder); the shared block decodes with upsample + 3x3 conv
(ASSUMED equivalent, one U-Net implementation for the whole bench).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .unet import UNet


def one_hot(parse: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``N x H x W`` ids -> ``N x K x H x W`` float {0, 1}."""
    return F.one_hot(parse.long().clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2).float()


def parsing_input(source_parse: torch.Tensor, target_pose_maps: torch.Tensor, cloth_mask: torch.Tensor,
                  num_classes: int, cloth_ids: Sequence[int]) -> torch.Tensor:
    """``(N x H x W ids, N x 18 x H x W in {0,1}, N x 1 x H x W)`` -> ``N x (K - |cloth| + 19) x H x W``."""
    oh = one_hot(source_parse, num_classes)
    keep = [c for c in range(num_classes) if c not in set(int(i) for i in cloth_ids)]
    return torch.cat([oh[:, keep], target_pose_maps.to(oh.dtype), cloth_mask.to(oh.dtype)], 1)


class ParsingNet(nn.Module):
    """``N x C_in x H x W`` -> softmax ``N x K x H x W``."""

    def __init__(self, in_channels: int = 36, num_classes: int = 20, ngf: int = 64, num_downs: int = 6,
                 dropout: bool = True):
        super().__init__()
        self.unet = UNet(in_channels, num_classes, num_downs=num_downs, ngf=ngf, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.unet(x), dim=1)
