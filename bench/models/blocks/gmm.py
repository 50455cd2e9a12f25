"""CP-VTON's Geometric Matching Module (GMM), reusable by the models that embed it (Tree-Block, SPG-VTON).

Shapes at ``H x W`` (256 x 192 in the paper): two feature extractors (4 stride-2 4x4 convs ngf -> 2ngf -> 4ngf ->
8ngf, then two 3x3 convs at 8ngf; conv -> ReLU -> BatchNorm as in the reference) map the person representation
(``N x C_a x H x W``) and the garment (``N x C_b x H x W``) to ``N x 8ngf x H/16 x W/16``; both are
L2-normalised over channels; the correlation volume has ``(H/16)(W/16)`` channels (192 at 256 x 192); the
regression head (4x4 s2 conv -> 512, 4x4 s2 conv -> 256, 3x3 -> 128, 3x3 -> 64, BatchNorm + ReLU each, then a
linear layer and tanh) predicts ``2g²`` TPS offsets; :class:`~bench.models.blocks.tps.TpsGrid` turns them
into a sampling grid. Channel widths scale with ``ngf / 64`` (``ngf = 64`` is the paper).

Reference: sergeywong/cp-vton ``networks.py`` (``FeatureExtraction``, ``FeatureL2Norm``, ``FeatureCorrelation``,
``FeatureRegression``, ``GMM``), re-written here.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .tps import TpsGrid


def _init_normal(m: nn.Module) -> None:
    """The reference's ``weights_init_normal`` (conv N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0)."""
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class FeatureExtraction(nn.Module):
    """``N x C_in x H x W`` -> ``N x 8ngf x H/16 x W/16`` (ReLU activations; last layer without norm)."""

    def __init__(self, in_channels: int, ngf: int = 64, n_layers: int = 3):
        super().__init__()
        top = 8 * ngf
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ngf, 4, 2, 1), nn.ReLU(True), nn.BatchNorm2d(ngf)]
        for i in range(n_layers):
            cin = min(2 ** i * ngf, top)
            cout = min(2 ** (i + 1) * ngf, top)
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.ReLU(True), nn.BatchNorm2d(cout)]
        layers += [nn.Conv2d(top, top, 3, 1, 1), nn.ReLU(True), nn.BatchNorm2d(top),
                   nn.Conv2d(top, top, 3, 1, 1), nn.ReLU(True)]
        self.model = nn.Sequential(*layers)
        self.model.apply(_init_normal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def l2_normalise(feature: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Divide by ``sqrt(sum_c f² + eps)`` per position."""
    return feature / torch.sqrt((feature * feature).sum(1, keepdim=True) + eps)


def correlation(feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """``N x C x h x w`` twice -> ``N x hw x h x w``: channel ``k`` = position of ``feat_a`` (column-major, as
    the reference), spatial position = position of ``feat_b``."""
    n, c, h, w = feat_a.shape
    a = feat_a.transpose(2, 3).reshape(n, c, h * w)
    b = feat_b.reshape(n, c, h * w).transpose(1, 2)
    mul = torch.bmm(b, a)  # N x hw(b) x hw(a)
    return mul.view(n, h, w, h * w).permute(0, 3, 1, 2)


def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


class FeatureRegression(nn.Module):
    """Correlation ``N x hw x h x w`` -> ``N x out_dim`` in (-1, 1)."""

    def __init__(self, in_channels: int, feat_hw: tuple[int, int], out_dim: int, width: float = 1.0):
        super().__init__()
        c1, c2, c3, c4 = (max(8, int(round(c * width))) for c in (512, 256, 128, 64))
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, c1, 4, 2, 1), nn.BatchNorm2d(c1), nn.ReLU(True),
            nn.Conv2d(c1, c2, 4, 2, 1), nn.BatchNorm2d(c2), nn.ReLU(True),
            nn.Conv2d(c2, c3, 3, padding=1), nn.BatchNorm2d(c3), nn.ReLU(True),
            nn.Conv2d(c3, c4, 3, padding=1), nn.BatchNorm2d(c4), nn.ReLU(True))
        h, w = feat_hw
        for _ in range(2):
            h, w = _conv_out(h, 4, 2, 1), _conv_out(w, 4, 2, 1)
        if h < 1 or w < 1:
            raise ValueError(f"GMM input too small: correlation map {feat_hw} vanishes in the regression head")
        self.linear = nn.Linear(c4 * h * w, out_dim)  # 64 * 4 * 3 at 256 x 192, as the reference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return torch.tanh(self.linear(x.flatten(1)))


class GMM(nn.Module):
    """Geometric matching: ``(person_repr N x C_a x H x W, garment N x C_b x H x W)`` -> ``(grid N x H x W x 2,
    theta N x 2g²)``. Warp with ``F.grid_sample(x, grid, align_corners=True)``."""

    def __init__(self, height: int, width: int, in_person: int = 22, in_garment: int = 3, ngf: int = 64,
                 grid_size: int = 5):
        super().__init__()
        if height % 16 or width % 16:
            raise ValueError(f"GMM needs H and W divisible by 16, got {height}x{width}")
        self.extraction_a = FeatureExtraction(in_person, ngf)
        self.extraction_b = FeatureExtraction(in_garment, ngf)
        fh, fw = height // 16, width // 16
        self.regression = FeatureRegression(fh * fw, (fh, fw), 2 * grid_size ** 2, width=ngf / 64)
        self.tps = TpsGrid(height, width, grid_size)

    def forward(self, person_repr: torch.Tensor, garment: torch.Tensor):
        fa = l2_normalise(self.extraction_a(person_repr))
        fb = l2_normalise(self.extraction_b(garment))
        theta = self.regression(correlation(fa, fb))
        # the TPS solve runs in float32 even under autocast (a 5x5 grid is ill-conditioned in half precision)
        grid = self.tps(theta.float())
        return grid, theta


def warp(image: torch.Tensor, grid: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Sample ``image`` (``N x C x H x W``) at ``grid`` (``N x H x W x 2``) like the reference."""
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=True)
