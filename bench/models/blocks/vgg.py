"""VGG19 perceptual loss in the pix2pixHD / CP-VTON convention (``docs/models.md`` section 1.8a).

Five slices of torchvision's VGG19 ``features`` ending at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1,
weights 1/32, 1/16, 1/8, 1/4, 1, L1 between the features of the prediction and of the (detached) target.
Inputs ``N x 3 x H x W`` in [-1, 1], fed as they are (the reference does not re-normalise to ImageNet
statistics). ``layer_weights`` reverses the weights for other papers (Tree-Block); ``layers < 5`` keeps only
the first slices (cheap smoke runs; recorded in the provenance).

Weights: torchvision's ImageNet file ``vgg19-dcbb9e9d.pth``, read from the standard torch hub cache
(``$TORCH_HOME/hub/checkpoints``, where ``torchvision.models.vgg19(weights=...)`` stores it) with
``torch.load(weights_only=True)`` through :mod:`bench.weights` (key ``vgg19``: listed by ``vtondata weights
status``, fetched by ``vtondata weights fetch vgg19``, SHA-256 prefix checked). Nothing is downloaded during a
run: a missing or corrupt file raises :class:`~vtondata.errors.WeightsMissingError` naming the file and where to
put it. ``weights="random"`` builds
the same network with random initialisation (tests, smoke runs); every result made that way is recorded as
not comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vtondata.errors import UnknownNameError

WEIGHTS_KEY = "vgg19"  # bench.weights: torchvision's vgg19-dcbb9e9d.pth in $TORCH_HOME/hub/checkpoints
SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
PIX2PIXHD_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
WEIGHT_MODES = ("imagenet", "random")


def load_features(weights: str = "imagenet", path: Optional[Path] = None) -> tuple[nn.Sequential, dict]:
    """VGG19 ``features[:30]`` (frozen, eval mode) and its provenance ``{"weights", "file", "sha256"}``."""
    # only the convolutional trunk: building torchvision's full vgg19 would initialise 120M classifier weights
    from torchvision.models.vgg import cfgs, make_layers

    if weights not in WEIGHT_MODES:
        raise UnknownNameError(f"unknown VGG weights {weights!r}", fix=f"use one of {WEIGHT_MODES}")
    prov = {"network": "vgg19", "weights": weights}
    net = None
    if weights == "imagenet":
        from bench.weights import WEIGHTS, resolve

        p = resolve(WEIGHTS_KEY, path, otherwise="for tests only --set vgg.weights=random")
        digest = WEIGHTS[WEIGHTS_KEY].sha256_prefix
        state = torch.load(p, map_location="cpu", weights_only=True)
        net = make_layers(cfgs["E"], batch_norm=False)[:30]
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        feats = {k: v for k, v in feats.items() if int(k.split(".")[0]) < 30}
        net.load_state_dict(feats, strict=True)
        prov.update(file=str(p), sha256=digest)
    else:
        net = make_layers(cfgs["E"], batch_norm=False)[:30]
    net.eval()
    for q in net.parameters():
        q.requires_grad_(False)
    return net, prov


class VGGLoss(nn.Module):
    """``loss(pred, target)``: weighted L1 between VGG19 features; inputs ``N x 3 x H x W`` in [-1, 1]."""

    def __init__(self, weights: str = "imagenet", layer_weights: Sequence[float] = PIX2PIXHD_WEIGHTS,
                 path: Optional[Path] = None, layers: int = 5):
        super().__init__()
        features, self.provenance = load_features(weights, path)
        n = min(int(layers), len(layer_weights))
        self.slices = nn.ModuleList(features[a:b] for a, b in SLICES[:n])
        self.layer_weights = tuple(float(w) for w in layer_weights[:n])
        self.provenance["layers"] = n

    def train(self, mode: bool = True):  # the loss network always stays in eval mode
        return super().train(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x, y = pred, target.detach()
        loss = pred.new_zeros(())
        for w, s in zip(self.layer_weights, self.slices):
            x, y = s(x), s(y)
            loss = loss + w * F.l1_loss(x, y.detach())
        return loss


def perceptual_loss_for(model, device: torch.device, terms: Sequence[str]) -> Optional[VGGLoss]:
    """The model's VGG19 perceptual loss (``config["vgg"]``: weights, layers) on ``device`` when any of its
    training stages weights one of the loss ``terms``; ``None`` otherwise (nothing to load)."""
    if not any(s.losses.get(t, 0) for s in model.stages() for t in terms):
        return None
    v = model.config["vgg"]
    return VGGLoss(weights=v["weights"], layers=int(v.get("layers", 5))).to(device)


def perceptual_provenance(vgg: Optional[nn.Module], key: str = "vgg19_perceptual_loss") -> dict:
    """``{key: weights provenance}`` of a perceptual loss for the run record, ``{}`` when there is none."""
    return {} if vgg is None else {key: dict(vgg.provenance)}
