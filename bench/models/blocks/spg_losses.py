"""SPG-VTON loss pieces (§III-B..D; ``docs/models.md`` section 5.3): focal loss, LSGAN with R1 penalty,
discriminator calls that do not train the discriminator, random erasing of the coarse result.

* :func:`focal_loss` -- ``mean(-(1 - p_y)^γ log p_y)`` over pixels, logits ``N x K x H x W``, labels
  ``N x H x W`` int64 (ASSUMED γ = 2; the paper does not give it). :func:`binary_focal_loss` for the 1-channel
  body-shape variant (``w/o S_t-hat``).
* LSGAN (§III-E: "LSGAN + gradient penalty"): generator term ``mean((D(fake) - 1)²)``, discriminator term
  ``mean((D(real) - 1)²) + mean(D(fake)²)`` averaged over the scales of a multi-scale D; the penalty is R1,
  ``mean_n ||∇_x mean_patches D(real)||²`` (ASSUMED R1 of the patch-averaged output; its weight sits in the
  stage loss weights).
* :func:`frozen_call` evaluates a discriminator with detached parameters, so a generator loss computed through
  it moves the generator only. With that and detached fakes in the discriminator loss, one optimiser step on the
  summed loss updates G and D simultaneously (the harness runs one optimiser per stage): simultaneous gradient
  GAN training (ASSUMED; the paper does not say whether G and D alternate).
* :func:`random_erase` -- per image, one rectangle of area fraction in ``scale`` and aspect ratio in ``ratio``
  set to 0 (mid-grey in [-1, 1]); torchvision RandomErasing's sampling with p = 1 (ASSUMED parameters).
"""

from __future__ import annotations

import math
from typing import List, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

Maps = Union[torch.Tensor, Sequence[torch.Tensor]]


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    logp = F.log_softmax(logits.float(), 1).gather(1, labels.unsqueeze(1)).squeeze(1)
    return (-(1 - logp.exp()) ** gamma * logp).mean()


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    p = torch.sigmoid(logits.float())
    pt = torch.where(target > 0.5, p, 1 - p)
    ce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    return ((1 - pt) ** gamma * ce).mean()


def _list(x: Maps) -> List[torch.Tensor]:
    return [x] if isinstance(x, torch.Tensor) else list(x)


def lsgan_g(fake_maps: Maps) -> torch.Tensor:
    maps = _list(fake_maps)
    return sum(((m - 1) ** 2).mean() for m in maps) / len(maps)


def lsgan_d(real_maps: Maps, fake_maps: Maps) -> torch.Tensor:
    r, f = _list(real_maps), _list(fake_maps)
    return sum(((a - 1) ** 2).mean() + (b ** 2).mean() for a, b in zip(r, f)) / len(r)


def frozen_call(d: nn.Module, x: torch.Tensor):
    """``d(x)`` with the parameters detached: gradients reach ``x`` only."""
    base = d.module if isinstance(d, nn.parallel.DistributedDataParallel) else d
    params = {k: v.detach() for k, v in base.named_parameters()}
    return functional_call(base, params, (x,))


def d_terms(d: nn.Module, real: torch.Tensor, fake: torch.Tensor, gp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminator LSGAN loss on ``real`` and detached ``fake``, and the R1 penalty on ``real`` (0 if not gp)."""
    real = real.detach()
    if gp:
        real = real.requires_grad_(True)
    out_r = d(real)
    out_f = d(fake.detach())
    loss = lsgan_d(out_r, out_f)
    if not gp:
        return loss, loss.new_zeros(())
    total = sum(m.mean() for m in _list(out_r))  # per-patch average: the penalty does not grow with H x W
    (g,) = torch.autograd.grad(total, real, create_graph=True)
    return loss, g.pow(2).flatten(1).sum(1).mean()


def random_erase(x: torch.Tensor, scale=(0.02, 0.33), ratio=(0.3, 3.3), value: float = 0.0) -> torch.Tensor:
    """One random rectangle per image set to ``value`` (uses the global torch RNG). ``N x C x H x W``."""
    n, _, h, w = x.shape
    mask = torch.ones(n, 1, h, w, device=x.device, dtype=x.dtype)
    area = h * w
    for i in range(n):
        for _ in range(10):
            a = area * float(torch.empty(1).uniform_(*scale))
            r = math.exp(float(torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]))))
            eh, ew = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
            if 0 < eh < h and 0 < ew < w:
                y0 = int(torch.randint(0, h - eh + 1, (1,)))
                x0 = int(torch.randint(0, w - ew + 1, (1,)))
                mask[i, :, y0:y0 + eh, x0:x0 + ew] = 0
                break
    return x * mask + value * (1 - mask)
