"""HRNet landmark estimator of SAL-VTON stage 1 (``docs/models.md`` sections 1.5 and 2.2).

:class:`HRNet` follows leoxiaobin/deep-high-resolution-net ``pose_hrnet.py`` in structure: a stem of two
stride-2 3x3 convs (to 1/4), ``layer1`` of Bottlenecks, then stages 2..S with ``stage_modules[i]``
multi-resolution modules; branch ``b`` has ``width * 2**b`` channels at 1/4 / 2**b resolution, every branch
``blocks`` BasicBlocks, SUM fusion (1x1 conv + upsample upwards, strided 3x3 convs downwards). HRNet-W48 =
``width=48, stage_modules=(1, 4, 3), blocks=4, branches=4``. Heads:

* heatmap head: 1x1 conv on the 1/4 branch -> ``K`` logits ``N x K x H/4 x W/4`` (sigmoid = heatmap);
* attribute head: on the lowest-resolution branch two stride-2 conv-BN-PReLU, global average pool, 1x1 conv
  to half the channels, PReLU, 1x1 conv to ``K * classes`` -> logits ``N x classes x K``. (modelscope
  ``landmark.py`` pools to ``1 x classes`` and convolves to ``K``; that reads the classes off the pooled
  width, which collapses to one column at small inputs -- DECIDED: global pool, classes in the channels.)

The heatmap logits start at ``heat_prior_bias`` (sigmoid 0.01, the RetinaNet prior; DECIDED) so the binary
cross-entropy of the sparse Gaussian targets does not begin with every pixel at 0.5.

Upsampling uses explicit target sizes, so any input size works (64x48 included).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, momentum=0.1)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, c: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = _bn(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = _bn(c)
        self.down = None
        if stride != 1 or cin != c:
            self.down = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), _bn(c))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.down is None else self.down(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, c, 1, bias=False), _bn(c), nn.ReLU(True),
                                  nn.Conv2d(c, c, 3, 1, 1, bias=False), _bn(c), nn.ReLU(True),
                                  nn.Conv2d(c, c * 4, 1, bias=False), _bn(c * 4))
        self.down = None if cin == c * 4 else nn.Sequential(nn.Conv2d(cin, c * 4, 1, bias=False), _bn(c * 4))

    def forward(self, x):
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


class HRModule(nn.Module):
    """Parallel branches of BasicBlocks plus all-to-all SUM fusion."""

    def __init__(self, chans: Sequence[int], blocks: int):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*[BasicBlock(c, c) for _ in range(blocks)]) for c in chans)
        n = len(chans)
        self.fuse = nn.ModuleList()
        for i in range(n):
            row = nn.ModuleList()
            for j in range(n):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:  # lower resolution -> 1x1 conv, upsampled in forward
                    row.append(nn.Sequential(nn.Conv2d(chans[j], chans[i], 1, bias=False), _bn(chans[i])))
                else:  # higher resolution -> (i - j) stride-2 convs
                    ops = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        cout = chans[i] if last else chans[j]
                        ops += [nn.Conv2d(chans[j], cout, 3, 2, 1, bias=False), _bn(cout)]
                        if not last:
                            ops.append(nn.ReLU(True))
                    row.append(nn.Sequential(*ops))
            self.fuse.append(row)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [b(x) for b, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse):
            acc = xs[i]
            for j, op in enumerate(row):
                if j == i:
                    continue
                y = op(xs[j])
                if y.shape[-2:] != acc.shape[-2:]:
                    y = F.interpolate(y, size=acc.shape[-2:], mode="nearest")
                acc = acc + y
            out.append(F.relu(acc))
        return out


class HRNet(nn.Module):
    """``forward(x: N x in_ch x H x W) -> (heatmap logits N x K x H/4 x W/4, attribute logits N x classes x K)``."""

    def __init__(self, in_ch: int, num_points: int = 32, attr_classes: int = 2, width: int = 48, stem: int = 64,
                 stage_modules: Sequence[int] = (1, 4, 3), blocks: int = 4, branches: int = 4,
                 heat_prior_bias: float = -4.6):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, stem, 3, 2, 1, bias=False), _bn(stem), nn.ReLU(True),
                                  nn.Conv2d(stem, stem, 3, 2, 1, bias=False), _bn(stem), nn.ReLU(True))
        self.layer1 = nn.Sequential(*[Bottleneck(stem if i == 0 else stem * 4, stem) for i in range(blocks)])
        chans_all = [width * 2 ** b for b in range(branches)]
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        prev = [stem * 4]
        n_stages = min(len(stage_modules), branches - 1)
        for s in range(n_stages):
            chans = chans_all[:s + 2]
            trans = nn.ModuleList()
            for b, c in enumerate(chans):
                if b < len(prev):
                    trans.append(nn.Identity() if prev[b] == c else
                                 nn.Sequential(nn.Conv2d(prev[b], c, 3, 1, 1, bias=False), _bn(c), nn.ReLU(True)))
                else:  # new branch from the lowest existing one
                    trans.append(nn.Sequential(nn.Conv2d(prev[-1], c, 3, 2, 1, bias=False), _bn(c), nn.ReLU(True)))
            self.transitions.append(trans)
            self.stages.append(nn.Sequential(*[HRModule(chans, blocks) for _ in range(int(stage_modules[s]))]))
            prev = chans
        self.heat = nn.Conv2d(prev[0], num_points, 1)
        nn.init.constant_(self.heat.bias, heat_prior_bias)
        low = prev[-1]
        self.num_points, self.attr_classes = num_points, attr_classes
        self.attr = nn.Sequential(nn.Conv2d(low, low, 3, 2, 1, bias=False), _bn(low), nn.PReLU(low),
                                  nn.Conv2d(low, low, 3, 2, 1, bias=False), _bn(low), nn.PReLU(low),
                                  nn.AdaptiveAvgPool2d(1),
                                  nn.Conv2d(low, max(1, low // 2), 1), nn.PReLU(max(1, low // 2)),
                                  nn.Conv2d(max(1, low // 2), num_points * attr_classes, 1))

    def forward(self, x: torch.Tensor):
        x = self.layer1(self.stem(x))
        xs = [x]
        for trans, stage in zip(self.transitions, self.stages):
            xs = [t(xs[b] if b < len(xs) else xs[-1]) for b, t in enumerate(trans)]
            xs = stage(xs)
        heat = self.heat(xs[0])
        attr = self.attr(xs[-1]).view(x.shape[0], self.attr_classes, self.num_points)
        return heat, attr
