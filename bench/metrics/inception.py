"""Inception feature extractors for FID, KID and IS, with each reference library's pre-processing.

Networks (``network=``):

* ``"pytorch-fid"``: the TF ``inception-2015-12-05`` graph as ported by pytorch-fid 0.3.0:
  torchvision's Inception v3 (1008 classes, no aux head) whose Mixed_5b-5d, 6b-6e and 7b blocks
  average-pool with ``count_include_pad=False`` and whose Mixed_7c pool branch max-pools (a quirk
  of the TF graph). Weights ``pt_inception-2015-12-05-6726825d.pth``.
* ``"clean-fid"``: clean-fid's TorchScript export of the same TF graph (``inception-2015-12-05.pt``),
  called as ``layers((x - 128) / 128)`` on 299 x 299 inputs in [0, 255] like ``InceptionV3W``.
* ``"torchvision"``: torchvision's ImageNet Inception v3 (1000 classes, fc with bias,
  ``transform_input=False``), as HR-VITON's IS script uses it. Not comparable with the TF graph.

Outputs (``forward`` returns a dict of float32 ``N x D`` tensors): ``pool3`` (2048, the FID / KID
feature; ``dims`` = 64 / 192 / 768 takes pytorch-fid's earlier blocks, spatially averaged), ``logits_unbiased`` (pool3 @ fc.weight^T, the TF IS logits without bias, 1008 classes;
pytorch-fid network only) and ``logits`` (fc with bias; 1008 or 1000 classes).

Pre-processing (``resize=``, see ``bench.metrics._images.resize``) happens on [0, 1] images, then
``normalize``: ``"2x-1"`` (pytorch-fid, torchvision ``Normalize(0.5, 0.5)``) or ``"x255-128/128"``
(clean-fid, torch-fidelity). Convolutions run with TF32 disabled (cuDNN enables it by default on
Ampere and newer, which moves FID by ~1e-3 relative).

``random_weights=True`` builds the same architecture with seeded random initialisation: for
tests and timing only, every result is then stamped ``comparable: false``. The clean-fid network
has no architecture here, so its random variant is the pytorch-fid architecture.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import inception as tv_inception

from bench.metrics._images import as_unit, resize
from vtondata.errors import MetricInputError

NETWORKS = ("pytorch-fid", "clean-fid", "torchvision")
NORMALIZE = ("2x-1", "x255-128/128")
WEIGHT_KEYS = {"pytorch-fid": "fid-inception", "clean-fid": "fid-inception-torchscript",
               "torchvision": "inception-v3-torchvision"}


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool ignores the zero padding in its mean
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(tv_inception.InceptionA):
    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class _BlockC(tv_inception.InceptionC):
    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_tf_avg_pool(x))], 1)


class _BlockE(tv_inception.InceptionE):
    """Mixed_7b (TF average pool) or, with ``max_pool``, Mixed_7c (max pool in the pool branch)."""

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


def build_fid_inception() -> tv_inception.Inception3:
    """The pytorch-fid architecture, uninitialised weights (PyTorch default init)."""
    net = tv_inception.Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
    net.Mixed_5b = _BlockA(192, pool_features=32)
    net.Mixed_5c = _BlockA(256, pool_features=64)
    net.Mixed_5d = _BlockA(288, pool_features=64)
    net.Mixed_6b = _BlockC(768, channels_7x7=128)
    net.Mixed_6c = _BlockC(768, channels_7x7=160)
    net.Mixed_6d = _BlockC(768, channels_7x7=160)
    net.Mixed_6e = _BlockC(768, channels_7x7=192)
    net.Mixed_7b = _BlockE(1280, max_pool=False)
    net.Mixed_7c = _BlockE(2048, max_pool=True)
    return net


def build_torchvision_inception() -> tv_inception.Inception3:
    return tv_inception.Inception3(num_classes=1000, aux_logits=True, transform_input=False, init_weights=False)


_TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
          "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
          "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")
# pytorch-fid ``--dims``: the block whose spatially averaged output is the feature
DIMS_LAST_LAYER = {64: "maxpool1", 192: "maxpool2", 768: "Mixed_6e", 2048: "Mixed_7c"}


def _pool3(net: tv_inception.Inception3, x: torch.Tensor, dims: int = 2048) -> torch.Tensor:
    last = DIMS_LAST_LAYER[dims]
    for name in _TRUNK:
        x = getattr(net, name)(x)
        if name == last:
            break
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


def random_init(net: nn.Module) -> None:
    """He-normal convolutions and 1/sqrt(fan_in) linear layers: activations keep an O(1) scale
    through the eval-mode batch norms, so random-weight features are informative for tests."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=m.in_features ** -0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _seeded(seed: int):
    """Build modules under a fixed seed without disturbing the caller's RNG."""
    @contextlib.contextmanager
    def ctx():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    return ctx()


@contextlib.contextmanager
def no_tf32():
    """Disable TF32 for cuDNN convolutions and matmuls (reference numerics)."""
    old = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


class InceptionExtractor(nn.Module):
    """Images ``N x 3 x H x W`` (uint8 or float [0, 1]) -> dict of ``N x D`` float32 features."""

    def __init__(self, network: str = "pytorch-fid", resize: Optional[str] = "torch-bilinear", size: int = 299,
                 normalize: str = "2x-1", dims: int = 2048, weights: Optional[str] = None,
                 random_weights: bool = False, seed: int = 0) -> None:
        super().__init__()
        if network not in NETWORKS:
            raise MetricInputError(f"unknown Inception network {network!r}; known: {', '.join(NETWORKS)}")
        if normalize not in NORMALIZE:
            raise MetricInputError(f"unknown normalisation {normalize!r}; known: {', '.join(NORMALIZE)}")
        if int(dims) not in DIMS_LAST_LAYER or (network != "pytorch-fid" and int(dims) != 2048):
            raise MetricInputError(f"dims must be one of {sorted(DIMS_LAST_LAYER)} (pytorch-fid network) or 2048, "
                                   f"got {dims}")
        self.network, self.resize_how, self.size, self.normalize = network, resize, int(size), normalize
        self.dims = int(dims)
        self.random_weights = bool(random_weights)
        self.weights_file: Optional[str] = None
        self.script = None
        if network == "clean-fid" and not random_weights:
            from bench.weights import resolve

            path = resolve(WEIGHT_KEYS[network], weights)
            self.script = torch.jit.load(str(path), map_location="cpu").eval()
            self.net = None
            self.weights_file = str(path)
        else:
            build = build_torchvision_inception if network == "torchvision" else build_fid_inception
            with _seeded(seed):
                self.net = build()
                if random_weights:
                    random_init(self.net)
            if not random_weights:
                from bench.weights import resolve

                path = resolve(WEIGHT_KEYS[network], weights)
                state = torch.load(str(path), map_location="cpu", weights_only=True)
                self.net.load_state_dict(state)
                self.weights_file = str(path)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def config(self) -> Dict[str, Any]:
        return {"network": self.network, "resize": self.resize_how, "size": self.size, "dims": self.dims,
                "normalize": self.normalize, "weights": "random" if self.random_weights else self.weights_file}

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = as_unit(images, "images")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = resize(x, (self.size, self.size), self.resize_how)
        if tuple(x.shape[2:]) != (self.size, self.size):
            raise MetricInputError(f"Inception input must be {self.size}x{self.size} after the resize step, "
                                   f"got {tuple(x.shape[2:])}", fix="set a resize recipe in the preset")
        if self.normalize == "2x-1":
            return 2 * x - 1
        return (x * 255.0 - 128.0) / 128.0

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        tensors = list(self.parameters()) + list(self.buffers())
        dev = tensors[0].device if tensors else torch.device("cpu")
        x = self.preprocess(images.to(dev))
        with no_tf32():
            if self.script is not None:
                pool3 = self.script.layers.forward(x).reshape(x.shape[0], 2048)
                return {"pool3": pool3.float()}
            pool3 = _pool3(self.net, x, self.dims)
            if self.dims != 2048:
                return {"pool3": pool3.float()}
            out = {"pool3": pool3.float(), "logits": self.net.fc(pool3).float()}
            if self.network == "pytorch-fid":
                out["logits_unbiased"] = (pool3 @ self.net.fc.weight.T).float()
            return out


_CACHE: Dict[tuple, InceptionExtractor] = {}


def get_extractor(config: Dict[str, Any], device: Optional[torch.device] = None, random_weights: bool = False,
                  weights: Optional[str] = None) -> InceptionExtractor:
    """A shared extractor per (config, device, weights) so FID, KID and IS run the network once."""
    key = (tuple(sorted(config.items())), str(device), bool(random_weights), str(weights))
    if key not in _CACHE:
        ext = InceptionExtractor(**config, weights=weights, random_weights=random_weights)
        _CACHE[key] = ext.to(device) if device is not None else ext
    return _CACHE[key]
