"""LPIPS (v0.1), re-implemented batched on any device and checked against the ``lpips`` package.

    d(x0, x1) = sum_l mean_{h,w} sum_c w_{l,c} (n(f_l(x0)) - n(f_l(x1)))^2,  n(f) = f / (||f||_c + eps)

with the v0.1 scaling layer ``(x - shift) / scale`` (shift -0.030, -0.088, -0.188; scale 0.458,
0.448, 0.450) on inputs in [-1, 1], the ReLU taps of the torchvision trunk (alex: features
[0:2] [2:5] [5:8] [8:10] [10:12]; vgg16: [0:4] [4:9] [9:16] [16:23] [23:30]; squeezenet1_1:
[0:2] [2:5] [5:8] [8:10] [10:11] [11:12] [12:13]) and the learned 1x1 "lin" heads shipped in
the ``lpips`` 0.1.4 wheel (``lpips/weights/v0.1/<net>.pth``). ``eps="lpips"`` uses
``f / (sqrt(sum f^2) + 1e-10)`` (lpips); ``eps="torchmetrics"`` uses ``f / sqrt(sum f^2 + 1e-8)``.

Trunk weights are torchvision's ImageNet files from the torch hub cache (``bench.weights``);
``random_weights=True`` uses a seeded random trunk (tests only; results ``comparable: false``).
``resize`` = (h, w) with ``resize_filter`` (``pil-bilinear`` = HR-VITON's torchvision
``Resize((128, 128))`` on PIL images) is applied to both images before scoring.

Inputs: ``pred``, ``target`` ``N x 3 x H x W`` uint8 or float in [0, 1] (mapped to [-1, 1]).
Output: per-pair distance (lower is better), ``value`` = mean over pairs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from bench.metrics._images import as_unit, check_pair, resize, size_tuple
from bench.metrics.base import Metric
from bench.metrics.inception import _seeded
from vtondata.errors import MetricInputError, WeightsMissingError

TAPS = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30), "squeeze": (2, 5, 8, 10, 11, 12, 13)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512),
            "squeeze": (64, 128, 256, 384, 384, 512, 512)}
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def lin_weights_path(net: str, version: str = "0.1") -> Path:
    """The linear-head file inside the installed lpips package."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissingError("the lpips package is not installed; its wheel ships the LPIPS linear heads",
                                  fix="pip install lpips==0.1.4")
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / f"v{version}" / f"{net}.pth"


def _trunk(net: str) -> nn.Sequential:
    from torchvision import models

    if net == "alex":
        return models.alexnet(weights=None).features
    if net == "vgg":  # the features only: building vgg16's 120M-parameter classifier is wasted time
        from torchvision.models.vgg import cfgs, make_layers

        return make_layers(cfgs["D"], batch_norm=False)
    return models.squeezenet1_1(weights=None).features


class LPIPSNet(nn.Module):
    """The LPIPS network: ``forward(x0, x1)`` on ``N x 3 x H x W`` in [-1, 1] -> ``N`` distances."""

    def __init__(self, net: str = "alex", version: str = "0.1", eps: str = "lpips", weights: Optional[str] = None,
                 random_weights: bool = False, seed: int = 0) -> None:
        super().__init__()
        if net not in TAPS:
            raise MetricInputError(f"unknown LPIPS net {net!r}; known: {', '.join(TAPS)}")
        if version != "0.1":
            raise MetricInputError(f"only LPIPS v0.1 is supported, got {version!r} (v0.0 had a scaling bug)")
        if eps not in ("lpips", "torchmetrics"):
            raise MetricInputError(f"LPIPS eps must be 'lpips' or 'torchmetrics', got {eps!r}")
        self.net_name, self.eps_mode = net, eps
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        with _seeded(seed):
            self.features = _trunk(net)
        self.trunk_file: Optional[str] = None
        if not random_weights:
            from bench.weights import LPIPS_TRUNK, resolve

            path = resolve(LPIPS_TRUNK[net], weights)
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            trunk = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
            self.features.load_state_dict(trunk)
            self.trunk_file = str(path)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        lin_path = lin_weights_path(net, version)
        if not lin_path.is_file():
            raise WeightsMissingError(f"LPIPS linear heads {lin_path.name} missing from the lpips package",
                                      file=lin_path, fix="pip install --force-reinstall lpips==0.1.4")
        lin_state = torch.load(str(lin_path), map_location="cpu", weights_only=True)
        for i, lin in enumerate(self.lins):
            lin.weight.data.copy_(lin_state[f"lin{i}.model.1.weight"])
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def _taps(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs, start = [], 0
        for end in TAPS[self.net_name]:
            for i in range(start, end):
                x = self.features[i](x)
            outs.append(x)
            start = end
        return outs

    def _unit(self, f: torch.Tensor) -> torch.Tensor:
        sq = (f * f).sum(1, keepdim=True)
        if self.eps_mode == "lpips":
            return f / (sq.sqrt() + 1e-10)
        return f / (sq + 1e-8).sqrt()

    @torch.no_grad()
    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        f0 = self._taps((x0 - self.shift) / self.scale)
        f1 = self._taps((x1 - self.shift) / self.scale)
        total = torch.zeros(x0.shape[0], dtype=torch.float32, device=x0.device)
        for lin, a, b in zip(self.lins, f0, f1):
            total = total + lin((self._unit(a) - self._unit(b)) ** 2).mean((1, 2, 3))
        return total


_NETS: Dict[tuple, LPIPSNet] = {}


def get_lpips_net(net: str = "alex", version: str = "0.1", eps: str = "lpips", weights: Optional[str] = None,
                  random_weights: bool = False, device: Optional[torch.device] = None) -> LPIPSNet:
    key = (net, version, eps, str(weights), bool(random_weights), str(device))
    if key not in _NETS:
        model = LPIPSNet(net, version, eps, weights, random_weights)
        _NETS[key] = model.to(device) if device is not None else model
    return _NETS[key]


def lpips(pred: torch.Tensor, target: torch.Tensor, net: str = "alex", version: str = "0.1", eps: str = "lpips",
          resize_to: Optional[Sequence[int]] = None, resize_filter: str = "pil-bilinear",
          weights: Optional[str] = None, random_weights: bool = False) -> torch.Tensor:
    """Per-pair LPIPS, shape ``N`` (float32)."""
    check_pair(pred, target)
    p, t = as_unit(pred, "pred"), as_unit(target, "target")
    size = size_tuple(resize_to)
    p, t = resize(p, size, resize_filter if size else None), resize(t, size, resize_filter if size else None)
    model = get_lpips_net(net, version, eps, weights, random_weights, p.device)
    return model(2 * p - 1, 2 * t - 1)


class LPIPS(Metric):
    """Mean LPIPS over pairs (``std`` over pairs, ddof 0)."""

    name = "lpips"
    higher_is_better = False

    def __init__(self, net: str = "alex", version: str = "0.1", eps: str = "lpips",
                 resize: Optional[Sequence[int]] = None, resize_filter: str = "pil-bilinear",
                 random_weights: bool = False, weights: Optional[str] = None) -> None:
        super().__init__()
        self.kw = dict(net=net, version=version, eps=eps, resize_to=size_tuple(resize), resize_filter=resize_filter,
                       weights=weights, random_weights=bool(random_weights))
        if net not in TAPS:
            raise MetricInputError(f"unknown LPIPS net {net!r}; known: {', '.join(TAPS)}")
        self.comparable = not random_weights
        if random_weights:
            self.notes.append("random trunk weights: not comparable with published numbers")
        self.add_mean_state()

    def params(self) -> Dict[str, Any]:
        p = dict(self.kw)
        p["resize"] = list(p.pop("resize_to")) if p.get("resize_to") else None
        p["weights"] = "random" if p.pop("random_weights") else (p.get("weights") or "standard cache")
        return p

    def prepare(self, device=None) -> None:
        get_lpips_net(self.kw["net"], self.kw["version"], self.kw["eps"], self.kw["weights"],
                      self.kw["random_weights"], device)

    def _update(self, pred, target, **ctx) -> None:
        v = lpips(pred, target, **self.kw).to(torch.float64)
        self._add_values(v)

    def _compute(self, state) -> Dict[str, Any]:
        return self._mean_result(state)


class WarpedLPIPS(LPIPS):
    """LPIPS between warped garments and the ground-truth garment (3D-GCL warping evaluation).

    ``pred`` = the warped garment, ``target`` = the target person's garment extracted by the
    parser (Graphonomy in 3D-GCL); same computation as ``lpips``, separate name in results.
    """

    name = "warped_lpips"
