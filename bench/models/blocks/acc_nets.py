"""Networks of the accessory model (seed 004 §3, Fig. 2; docs/models.md §6.2).

* :class:`ResNet18Encoder` -- torchvision ``resnet18`` trunk (``width`` 64; smaller only for smoke tests); ``forward(x) -> [f1, f2, f3, f4, f5]`` at strides
  2, 4, 8, 16, 32 with 64, 64, 128, 256, 512 channels (224 input: 112, 56, 28, 14, 7). ``in_channels=4`` for
  ``cat(I_f, M_f)`` widens conv1 (ImageNet: RGB filters kept, the mask filter zero -- ASSUMED). Weights:
  ``"imagenet"`` loads torchvision's ``resnet18-f37072fd.pth`` from the torch hub cache through ``bench.weights``
  (key ``resnet18``; sha256-prefix checked, never downloaded; missing -> :class:`~vtondata.errors.WeightsMissingError`
  naming the file and its directory), ``"random"`` only on explicit
  request (runs then stamped not comparable by the model's provenance).
* :class:`ResDecoder` -- GCA-Matting-style residual decoder (Yaoyi-Li/GCA-Matting ``res_shortcut_dec.py``):
  four stages of ``blocks`` residual blocks (first block of a stage upsamples x2 with a 4x4 stride-2
  ConvTranspose, shortcut = nearest upsample + 1x1 conv + BN), BN, LeakyReLU(0.2), optional spectral norm,
  encoder shortcuts added after stages 1-3 (the encoder's last three stages before the bottleneck, ASSUMED
  f4, f3, f2); stage 5 = ConvTranspose x2 + BN + LeakyReLU, then a 3x3 conv to ``out_channels``. ``extra``:
  per-stage features of another decoder added to this one's stage outputs (the semantic decoder's, §3.3).
* :class:`DAF` -- Dual Attention Fusion (Eq. 6): ``S = F_f + F_b``, CBAM channel then spatial attention,
  3x3 conv, sigmoid -> ``M``; ``F = M * F_b + (1 - M) * F_f``. ``simple=True`` (DAF(s)): conv + sigmoid on S.
* :class:`KeypointNet` -- the whole network: ``forward(bg, fg, fg_mask) -> (heatmaps N x 4 x H x W,
  semantic logits N x C x H x W or None)``; inputs in [-1, 1] (ImageNet-normalised inside).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from vtondata.errors import UnknownNameError

WEIGHTS_KEY = "resnet18"  # bench.weights: torchvision's resnet18-f37072fd.pth in $TORCH_HOME/hub/checkpoints
WEIGHT_MODES = ("imagenet", "random")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_resnet18_state(weights: str = "imagenet", path: Optional[Path] = None):
    """torchvision's ImageNet ``resnet18`` state dict (``None`` for ``"random"``) and its provenance; the file is
    resolved and hash-checked by :func:`bench.weights.resolve` (``vtondata weights status`` lists it)."""
    from bench.weights import WEIGHTS, resolve

    if weights not in WEIGHT_MODES:
        raise UnknownNameError(f"unknown ResNet-18 weights {weights!r}", fix=f"use one of {WEIGHT_MODES}")
    prov = {"network": "resnet18", "weights": weights}
    if weights == "random":
        return None, prov
    p = resolve(WEIGHTS_KEY, path, otherwise="for tests only --set encoder.weights=random")
    prov.update(file=str(p), sha256=WEIGHTS[WEIGHTS_KEY].sha256_prefix)
    return torch.load(p, map_location="cpu", weights_only=True), prov


class ResNet18Encoder(nn.Module):
    """ResNet-18 trunk made of torchvision's ``BasicBlock`` with torchvision's parameter names, so that
    ``width=64`` is exactly ``torchvision.models.resnet18`` (ImageNet weights load strictly, ``fc`` dropped);
    ``width < 64`` scales every stage (smoke tests only, random init)."""

    def __init__(self, in_channels: int = 3, weights: str = "imagenet", width: int = 64):
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        if weights == "imagenet" and width != 64:
            raise UnknownNameError(f"ImageNet ResNet-18 weights need width 64, not {width}",
                                   fix="set encoder.width=64 or encoder.weights=random")
        w = int(width)
        self.channels = (w, w, 2 * w, 4 * w, 8 * w)
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], w
        for i, c in enumerate(self.channels[1:]):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != c:
                down = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))
            layers.append(nn.Sequential(BasicBlock(cin, c, stride, down), BasicBlock(c, c)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        state, self.provenance = load_resnet18_state(weights)
        if state is not None:
            self.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=True)
        if in_channels != 3:  # widen conv1; the extra (mask) filters start at zero
            old = self.conv1.weight.data
            self.conv1 = nn.Conv2d(in_channels, w, 7, 2, 3, bias=False)
            with torch.no_grad():
                self.conv1.weight.zero_()
                self.conv1.weight[:, :3] = old
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        rgb = ((x[:, :3] + 1) / 2 - self.mean) / self.std
        x = torch.cat([rgb, (x[:, 3:] + 1) / 2], 1) if x.shape[1] > 3 else rgb
        f1 = self.relu(self.bn1(self.conv1(x)))
        feats, h = [f1], self.maxpool(f1)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            h = layer(h)
            feats.append(h)
        return feats


def _sn(m: nn.Module, on: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(m) if on else m


class _Block(nn.Module):
    """GCA residual block: conv (or 4x4 s2 deconv) - BN - LReLU - conv - BN, + shortcut, LReLU."""

    def __init__(self, cin: int, cout: int, up: bool, sn: bool):
        super().__init__()
        c1 = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False) if up else nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.body = nn.Sequential(_sn(c1, sn), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True),
                                  _sn(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), sn), nn.BatchNorm2d(cout))
        self.short = None
        if up or cin != cout:
            layers = ([nn.Upsample(scale_factor=2, mode="nearest")] if up else []) + [
                _sn(nn.Conv2d(cin, cout, 1, bias=False), sn), nn.BatchNorm2d(cout)]
            self.short = nn.Sequential(*layers)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        return self.act(self.body(x) + s)


class ResDecoder(nn.Module):
    """Five-stage decoder; ``forward(feats, extra=None) -> (output, [stage features s1..s5])``."""

    def __init__(self, out_channels: int, enc_channels: Sequence[int] = (64, 64, 128, 256, 512),
                 widths: Sequence[int] = (256, 128, 64, 32), blocks: Sequence[int] = (2, 3, 3, 2),
                 spectral_norm: bool = False):
        super().__init__()
        widths = [int(w) for w in widths]
        cin = enc_channels[-1]
        self.stages = nn.ModuleList()
        for w, nb in zip(widths, blocks):
            self.stages.append(nn.Sequential(*[_Block(cin if i == 0 else w, w, i == 0, spectral_norm)
                                               for i in range(int(nb))]))
            cin = w
        # encoder shortcuts after stages 1-3: f4 (1/16), f3 (1/8), f2 (1/4); projected when widths differ
        self.skips = nn.ModuleList([
            nn.Identity() if enc_channels[3 - i] == widths[i] else nn.Conv2d(enc_channels[3 - i], widths[i], 1)
            for i in range(3)])
        self.up = nn.Sequential(_sn(nn.ConvTranspose2d(cin, cin, 4, 2, 1, bias=False), spectral_norm),
                                nn.BatchNorm2d(cin), nn.LeakyReLU(0.2, inplace=True))
        self.head = nn.Conv2d(cin, out_channels, 3, 1, 1)
        self.widths = widths

    def forward(self, feats: Sequence[torch.Tensor], bottleneck: torch.Tensor,
                extra: Optional[Sequence[torch.Tensor]] = None):
        x, outs = bottleneck, []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < 3:
                x = x + self.skips[i](feats[3 - i])
            if extra is not None:
                x = x + extra[i]
            outs.append(x)
        x = self.up(x)
        if extra is not None:
            x = x + extra[4]
        outs.append(x)
        return self.head(x), outs


class _ChannelAttention(nn.Module):
    def __init__(self, c: int, reduction: int = 16):
        super().__init__()
        r = max(1, c // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(c, r, 1), nn.ReLU(inplace=True), nn.Conv2d(r, c, 1))

    def forward(self, x):
        a = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(a)


class _SpatialAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(2, 1, 7, 1, 3, bias=False), nn.BatchNorm2d(1))

    def forward(self, x):
        s = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
        return x * torch.sigmoid(self.conv(s))


class DAF(nn.Module):
    """Dual Attention Fusion of ``F_b`` and ``F_f`` (``N x C x h x w`` each) -> ``N x C x h x w``."""

    def __init__(self, channels: int = 512, simple: bool = False, reduction: int = 16):
        super().__init__()
        self.simple = simple
        self.attn = None if simple else nn.Sequential(_ChannelAttention(channels, reduction), _SpatialAttention())
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.last_map: Optional[torch.Tensor] = None

    def forward(self, fb, ff):
        s = fb + ff
        if self.attn is not None:
            s = self.attn(s)
        m = torch.sigmoid(self.conv(s))
        self.last_map = m.detach()
        return m * fb + (1 - m) * ff


class KeypointNet(nn.Module):
    """Background U-Net + optional foreground encoder / fusion + optional semantic decoder.

    ``fg_mode``: ``none`` (no foreground branch), ``add`` (``F_b + F_f``), ``daf``, ``daf_simple``.
    """

    FG_MODES = ("none", "add", "daf", "daf_simple")

    def __init__(self, n_keypoints: int = 4, n_classes: int = 12, use_sm: bool = True, fg_mode: str = "daf",
                 weights: str = "imagenet", widths: Sequence[int] = (256, 128, 64, 32),
                 blocks: Sequence[int] = (2, 3, 3, 2), spectral_norm: bool = False, enc_width: int = 64):
        super().__init__()
        if fg_mode not in self.FG_MODES:
            raise UnknownNameError(f"unknown foreground injection {fg_mode!r}", fix=f"use one of {self.FG_MODES}")
        self.fg_mode, self.use_sm = fg_mode, use_sm
        self.enc_b = ResNet18Encoder(3, weights, enc_width)
        self.enc_f = ResNet18Encoder(4, weights, enc_width) if fg_mode != "none" else None
        top = self.enc_b.channels[-1]
        self.fuse = DAF(top, simple=fg_mode == "daf_simple") if fg_mode in ("daf", "daf_simple") else None
        kw = dict(widths=widths, blocks=blocks, spectral_norm=spectral_norm, enc_channels=self.enc_b.channels)
        self.dec_hm = ResDecoder(n_keypoints, **kw)
        self.dec_sm = ResDecoder(n_classes, **kw) if use_sm else None

    @property
    def provenance(self) -> dict:
        return dict(self.enc_b.provenance)

    def forward(self, bg: torch.Tensor, fg: Optional[torch.Tensor] = None, fg_mask: Optional[torch.Tensor] = None):
        fb = self.enc_b(bg)
        bottleneck = fb[-1]
        if self.enc_f is not None:
            ff = self.enc_f(torch.cat([fg, fg_mask * 2 - 1], 1))[-1]
            bottleneck = bottleneck + ff if self.fuse is None else self.fuse(bottleneck, ff)
        sem, extra = None, None
        if self.dec_sm is not None:
            sem, extra = self.dec_sm(fb, fb[-1])
        hm, _ = self.dec_hm(fb, bottleneck, extra)
        return hm, sem
