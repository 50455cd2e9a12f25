"""Face identity loss of SPG-VTON (§III-D, ``L_id = ||F(Î_t^F) - F(I_t^F)||_1``), F = SphereFace (sphere20a).

:class:`Sphere20a`: the 20-layer SphereFace trunk (Liu et al., CVPR 2017) as in the PyTorch port
clcarwin/sphereface_pytorch: four stages, each a 3x3 stride-2 conv + PReLU followed by residual units of two
3x3 convs + PReLU (1, 2, 4, 1 units; 64, 128, 256, 512 channels at ``width = 1``), then ``fc5`` to a 512-d
embedding. Input ``N x 3 x 112 x 96`` in [-1, 1] (the port feeds ``(x - 127.5) / 128``). Module names follow
the port's state-dict keys (``conv1_1``, ``relu1_1``, ..., ``fc5``) so its file ``sphere20a_20171020.pth`` loads.

Weights: ``weights="sphereface"`` reads ``$TORCH_HOME/hub/checkpoints/sphere20a_20171020.pth`` through
:mod:`bench.weights` (key ``sphereface``, listed by ``vtondata weights status``; the port publishes it only inside
a 7z archive, so it is placed by hand; missing -> :class:`~vtondata.errors.WeightsMissingError` naming the file,
its folder and the source); ``"random"`` builds it randomly initialised (tests, smoke; results not comparable).

:func:`face_crops`: the face + hair region (a ``N x 1 x H x W`` mask from the semantic map) is cropped at its
bounding box and resized to ``size`` with ``roi_align`` (ASSUMED: a box crop instead of the 5-landmark
similarity alignment SphereFace was trained with; images without a face region use the whole image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from vtondata.errors import UnknownNameError, WeightsMissingError

WEIGHTS_KEY = "sphereface"  # bench.weights: sphere20a_20171020.pth in $TORCH_HOME/hub/checkpoints
UNITS = (1, 2, 4, 1)


class Sphere20a(nn.Module):
    """``N x 3 x h x w`` -> ``N x 512`` embedding (``width`` scales the channel counts; 1 = the published net)."""

    def __init__(self, size=(112, 96), width: float = 1.0, embedding: int = 512):
        super().__init__()
        chans = [max(4, int(round(c * width))) for c in (64, 128, 256, 512)]
        cin = 3
        h, w = size
        for s, (c, units) in enumerate(zip(chans, UNITS), start=1):
            setattr(self, f"conv{s}_1", nn.Conv2d(cin, c, 3, 2, 1))
            setattr(self, f"relu{s}_1", nn.PReLU(c))
            for u in range(units):
                for j in (2 * u + 2, 2 * u + 3):
                    setattr(self, f"conv{s}_{j}", nn.Conv2d(c, c, 3, 1, 1))
                    setattr(self, f"relu{s}_{j}", nn.PReLU(c))
            cin = c
            h, w = (h + 1) // 2, (w + 1) // 2
        self.fc5 = nn.Linear(cin * h * w, embedding)
        self.size = tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for s, units in enumerate(UNITS, start=1):
            x = getattr(self, f"relu{s}_1")(getattr(self, f"conv{s}_1")(x))
            for u in range(units):
                a, b = 2 * u + 2, 2 * u + 3
                y = getattr(self, f"relu{s}_{a}")(getattr(self, f"conv{s}_{a}")(x))
                x = x + getattr(self, f"relu{s}_{b}")(getattr(self, f"conv{s}_{b}")(y))
        return self.fc5(x.flatten(1))


def load_sphereface(weights: str = "sphereface", size=(112, 96), width: float = 1.0,
                    path: Optional[Path] = None) -> tuple[Sphere20a, dict]:
    """The frozen face network and its provenance ``{"network", "weights", "file"}``."""
    if weights not in ("sphereface", "random"):
        raise UnknownNameError(f"unknown SphereFace weights {weights!r}", fix="use sphereface or random")
    net = Sphere20a(size, width)
    prov = {"network": "sphere20a", "weights": weights, "input": list(size), "width": width}
    if weights == "sphereface":
        if tuple(size) != (112, 96) or width != 1.0:
            raise WeightsMissingError("pretrained SphereFace exists only for 112 x 96 inputs at width 1",
                                      fix="set face_id.size=[112,96] and face_id.width=1, or face_id.weights=random")
        from bench.weights import resolve

        p = resolve(WEIGHTS_KEY, path, otherwise="for tests only --set face_id.weights=random")
        state = torch.load(p, map_location="cpu", weights_only=True)
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc6")}, strict=True)
        prov["file"] = str(p)
    net.eval()
    for q in net.parameters():
        q.requires_grad_(False)
    return net, prov


def mask_boxes(mask: torch.Tensor) -> torch.Tensor:
    """``N x 1 x H x W`` {0, 1} -> ``N x 5`` roi boxes ``(i, x0, y0, x1, y1)`` (whole image when empty)."""
    n, _, h, w = mask.shape
    m = mask[:, 0] > 0.5
    rows, cols = m.any(2), m.any(1)
    ar_h = torch.arange(h, device=mask.device, dtype=torch.float32)
    ar_w = torch.arange(w, device=mask.device, dtype=torch.float32)
    big = 1e9
    y0 = torch.where(rows, ar_h, big).amin(1)
    y1 = torch.where(rows, ar_h, -big).amax(1) + 1
    x0 = torch.where(cols, ar_w, big).amin(1)
    x1 = torch.where(cols, ar_w, -big).amax(1) + 1
    empty = ~rows.any(1)
    y0, x0 = torch.where(empty, 0.0, y0), torch.where(empty, 0.0, x0)
    y1, x1 = torch.where(empty, float(h), y1), torch.where(empty, float(w), x1)
    idx = torch.arange(n, device=mask.device, dtype=torch.float32)
    return torch.stack([idx, x0, y0, x1, y1], 1)


def face_crops(image: torch.Tensor, mask: torch.Tensor, size=(112, 96)) -> torch.Tensor:
    """Crop ``image`` (``N x 3 x H x W``) at the box of ``mask`` and resize to ``N x 3 x size``; the pixels
    outside the mask inside the box are kept (the box is the region, as a face crop)."""
    from torchvision.ops import roi_align

    boxes = mask_boxes(mask.detach()).to(image.dtype)
    return roi_align(image, boxes, output_size=tuple(size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
