"""Losses of the Tree-Block pipeline (seed 001, Eqs. 5-10; docs/models.md section 3.2).

* :class:`PerceptualStyleLoss` -- ``L_feat`` and ``L_style``: L1 between VGG19 features (relu1_1 ... relu5_1
  slices of :mod:`bench.models.blocks.vgg`) and between their Gram matrices, slice weights
  ``[1, 1/4, 1/8, 1/16, 1/32]`` shallow -> deep (the official ``utils/loss.py``: the reverse of pix2pixHD's).
  Inputs ``N x 3 x H x W`` in [-1, 1]; returns ``(feat, style)`` scalars.
* LSGAN (``[18]``, "adversarial loss using MSE"): :func:`d_loss` = ``0.5 (MSE(D(real), 1) + MSE(D(fake), 0))``
  on a detached fake; :func:`g_loss` = ``MSE(D(fake), 1)`` evaluated with the discriminator's parameters
  detached, so that one optimiser over G and D together (the harness trains one parameter list per stage)
  gives G only the generator gradient and D only the discriminator gradient (a simultaneous GAN update).
* :func:`weighted_ce` -- the parsing network's class-weighted pixel cross-entropy on softmax probabilities
  (``-sum_c w_c y_c log p_c`` averaged over pixels, as the official ``PixelSoftmaxLoss``).
* :func:`tv` -- total variation ``mean |dM/dx| + mean |dM/dy|`` of the composition mask (Eq. 5, optional).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from .vgg import SLICES, load_features

TB_VGG_WEIGHTS = (1.0, 1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32)


def gram(x: torch.Tensor) -> torch.Tensor:
    """``N x C x h x w`` -> ``N x C x C`` normalised by ``C h w``."""
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


class PerceptualStyleLoss(nn.Module):
    """``(pred, target) -> (L_feat, L_style)`` with VGG19 (ImageNet weights or ``weights="random"`` for tests)."""

    def __init__(self, weights: str = "imagenet", layer_weights: Sequence[float] = TB_VGG_WEIGHTS, layers: int = 5):
        super().__init__()
        features, self.provenance = load_features(weights)
        n = min(int(layers), len(layer_weights))
        self.slices = nn.ModuleList(features[a:b] for a, b in SLICES[:n])
        self.layer_weights = tuple(float(w) for w in layer_weights[:n])
        self.provenance["layers"] = n
        self.provenance["layer_weights"] = list(self.layer_weights)

    def train(self, mode: bool = True):  # the loss network always stays in eval mode
        return super().train(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = pred, target.detach()
        feat = pred.new_zeros(())
        style = pred.new_zeros(())
        for w, s in zip(self.layer_weights, self.slices):
            x, y = s(x), s(y).detach()
            feat = feat + w * F.l1_loss(x, y)
            style = style + w * F.l1_loss(gram(x.float()), gram(y.float()))
        return feat, style


def _plain(d: nn.Module) -> nn.Module:
    return d.module if isinstance(d, nn.parallel.DistributedDataParallel) else d


def d_loss(d: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN discriminator loss; ``fake`` is detached here. One call on ``cat(real, fake)`` (instance norm is
    per sample, so this equals two calls) -- a DDP-wrapped ``d`` must run forward once per step."""
    pr, pf = d(torch.cat([real, fake.detach()], 0)).chunk(2, 0)
    return 0.5 * (F.mse_loss(pr, torch.ones_like(pr)) + F.mse_loss(pf, torch.zeros_like(pf)))


def g_loss(d: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN generator loss through a frozen copy of ``d``'s parameters (no gradient reaches ``d``)."""
    m = _plain(d)
    params = {k: v.detach() for k, v in m.named_parameters()}
    params.update(dict(m.named_buffers()))
    pf = functional_call(m, params, (fake,))
    return F.mse_loss(pf, torch.ones_like(pf))


def weighted_ce(prob: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor,
                eps: float = 1e-8) -> torch.Tensor:
    """``prob`` ``N x C x H x W`` softmax output, ``target`` ``N x H x W`` ids -> scalar weighted CE."""
    logp = torch.log(prob.clamp_min(eps))
    picked = logp.gather(1, target.long().unsqueeze(1)).squeeze(1)  # N x H x W
    w = class_weights.to(prob.dtype)[target.long()]
    return -(w * picked).mean()


def tv(mask: torch.Tensor) -> torch.Tensor:
    """Total variation of ``N x 1 x H x W``."""
    return (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean() + (mask[..., :, 1:] - mask[..., :, :-1]).abs().mean()
