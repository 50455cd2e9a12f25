"""CP-VTON+ and PF-AFN warping stages adapted to accessory try-on on STRAT (the accessory paper's Table 1
baselines, section 4.3; docs/models.md 6.5 "BASELINE rows").

One warper per sub-dataset (stage = loader setting = subset, as :class:`~bench.models.accessory.Accessory`).
No pose: the condition is ``cat(background, one-hot ground-truth background parsing)`` (``N x (3 + C) x H x W``,
C = 12 face classes for glasses / hat, 8 body classes for tie; parsing supplied at train and test time).

* ``CP-VTON+`` (method ``cpvton_plus``): CP-VTON's GMM (:class:`~bench.models.blocks.gmm.GMM`, TPS 5x5) with the
  foreground mask as its garment input (``N x 1 x H x W``, as CP-VTON+); losses ``l1`` (warped foreground on
  white vs the ground-truth warped foreground on white) and ``gic`` (CP-VTON+'s grid-interval consistency,
  weight 40).
* ``PF-AFN`` (method ``pfafn``): the AFWM appearance-flow warper (:class:`~bench.models.blocks.afwm_flow.AFWMWarper`)
  on ``cat(foreground on white, mask)``; losses of :func:`~bench.models.blocks.pfafn_losses.warp_terms`
  (``l1`` 1, ``vgg`` 0.2, ``mask`` 2, ``smooth`` 6, ``tv`` 0.01 as PF-AFN's parser-based warping stage).

Both warps give, for every background pixel ``p``, a foreground pixel ``q(p)`` (TPS grid / flow ``p + f(p)``).
Try-on ``tryon`` = the warped foreground composited with the warped foreground mask (``M~ I~_f + (1 - M~) I_b``,
in [-1, 1]). Vertices (array output ``vertices``, scored by the inherited :meth:`Accessory.score_inputs`: Disp,
IoU, LSSIM): a homography fitted by least squares (:func:`~bench.models.blocks.acc_geometry.dlt_homography`) to
the correspondences ``q(p) -> p`` sampled every ``homography.stride`` pixels where the warped mask exceeds 0.5
(all sampled points when fewer than ``homography.min_points`` lie there), applied to STRAT's ``init_vertex``.

ASSUMED (stratwarp.json ``_doc``): supervision = the foreground and mask warped by the ground-truth homography
(white outside the mask, as the garments of both papers); CP-VTON+'s GIC averaged (not summed) over the grid;
sampling stride 4 px; one stage per sub-dataset with the source papers' optimisers.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.harness.config import merge
from bench.harness.model import Inputs, Model, Stage
from bench.harness.registry import register_model
from bench.models.accessory import Accessory
from bench.models.blocks import acc_geometry as G
from bench.models.blocks import gmm as gmm_block
from bench.models.blocks.acc_data import StratVertices
from bench.models.blocks.afwm_flow import AFWMWarper
from bench.models.blocks.gcl_corr import resize_flow, warp as flow_warp
from bench.models.blocks.pfafn_losses import warp_terms
from bench.models.blocks.vgg import perceptual_loss_for, perceptual_provenance
from vtondata.errors import VtonDataError

METHODS = ("cpvton_plus", "pfafn")


def gic_loss(grid: torch.Tensor) -> torch.Tensor:
    """CP-VTON+'s grid-interval consistency on a sampling grid ``N x H x W x 2``: mean of
    ``| |g(x+1) - g(x)| - |g(x) - g(x-1)| |`` along rows (x component) and columns (y component)."""
    gx, gy = grid[..., 0], grid[..., 1]
    dx = (gx[:, :, 2:] - gx[:, :, 1:-1]).abs() - (gx[:, :, 1:-1] - gx[:, :, :-2]).abs()
    dy = (gy[:, 2:] - gy[:, 1:-1]).abs() - (gy[:, 1:-1] - gy[:, :-2]).abs()
    return dx.abs().mean() + dy.abs().mean()


def pixel_grid(h: int, w: int, device=None) -> torch.Tensor:
    """``H x W x 2`` (x, y) integer pixel coordinates (the ``align_corners=True`` / cv2 convention)."""
    yy, xx = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([xx, yy], -1)


def fit_homography(src: torch.Tensor, weight: torch.Tensor, stride: int = 4, min_points: int = 8) -> torch.Tensor:
    """Least-squares homography ``N x 3 x 3`` mapping the foreground frame to the background frame from a dense
    correspondence map ``src`` (``N x H x W x 2``: the foreground pixel each background pixel samples), using
    the background pixels on a ``stride`` lattice with ``weight`` (``N x 1 x H x W``) > 0.5, or all lattice
    pixels when fewer than ``min_points`` qualify."""
    n, h, w, _ = src.shape
    dst = pixel_grid(h, w, src.device)[::stride, ::stride].reshape(-1, 2).double()
    s = src[:, ::stride, ::stride].reshape(n, -1, 2).double()
    keep = weight[:, 0, ::stride, ::stride].reshape(n, -1) > 0.5
    out = []
    for i in range(n):
        k = keep[i] if int(keep[i].sum()) >= min_points else torch.ones_like(keep[i])
        out.append(G.dlt_homography(s[i, k][None], dst[k][None])[0])
    return torch.stack(out)


@register_model
class StratWarp(Accessory):
    """Outputs, vertex plumbing and scoring inherited from :class:`Accessory` (its constructor is skipped)."""

    name = "stratwarp"
    spec_file = "stratwarp.json"

    def __init__(self, config: Mapping[str, Any]):
        Model.__init__(self, config)
        self.method = self.config["method"]
        if self.method not in METHODS:
            raise VtonDataError(f"unknown stratwarp method {self.method!r}", fix=f"use one of {METHODS}")
        self.verts, self._mean, self._prov, self.vgg = StratVertices(None), {}, {}, None

    @property
    def use_sm(self) -> bool:  # no semantic decoder; parsing is an input (read by inputs())
        return False

    def stages(self) -> list[Stage]:
        """Per-subset stages with ``method_schedule[method]`` (the method's own schedule: steps, batch,
        optimiser) merged in; zero-weight loss terms (e.g. no VGG in CP-VTON+) are not computed."""
        extra = self.config.get("method_schedule", {}).get(self.method, {})
        out = []
        for name, d in self.config["stages"].items():
            if name.startswith("_") or not d.get("enabled", True):
                continue
            s = Stage.from_config(name, merge(d, extra), self.config.get("train_setting", "paired"))
            out.append(Stage(**{**s.__dict__, "losses": {k: v for k, v in s.losses.items() if float(v)}}))
        return out

    def inputs(self, purpose: str, setting: str) -> Inputs:
        return Inputs(fields=("background", "foreground", "foreground_mask", "composite", "background_parse"),
                      label_space=None)

    def classes(self, setting: str) -> int:
        return int(self.config["subsets"][setting]["classes"])

    def build(self) -> dict[str, nn.Module]:
        n, nets = self.config["net"], {}
        for s in self.stages():
            h, w = self.size_for(s.setting)
            cond = 3 + self.classes(s.setting)
            if self.method == "cpvton_plus":
                nets[s.name] = gmm_block.GMM(h, w, in_person=cond, in_garment=1, ngf=int(n["ngf"]),
                                             grid_size=int(n["grid_size"]))
            else:
                nets[s.name] = AFWMWarper(4, cond, tuple(n["chans"]), int(n["fpn"]), tuple(n["head"]),
                                          int(n.get("radius", 3)))
        return nets

    def setup(self, device: torch.device) -> None:
        super().setup(device)
        self.vgg = perceptual_loss_for(self, device, ("vgg",))
        self._prov.update(perceptual_provenance(self.vgg))

    # ------------------------------------------------------------------ computation
    def condition(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """``cat(background, one-hot parsing)`` ``N x (3 + C) x H x W``; ids >= C are all-zero."""
        bg, c = batch["background"], self.classes(batch["setting"][0])
        parse = batch["background_parse"].long()
        parse = parse[:, 0] if parse.dim() == 4 else parse
        hot = F.one_hot(parse.clamp(0, c), c + 1)[..., :c].permute(0, 3, 1, 2).to(bg.dtype)
        return torch.cat([bg, hot], 1)

    @staticmethod
    def on_white(batch: Mapping[str, Any]) -> torch.Tensor:
        m = batch["foreground_mask"]
        return batch["foreground"] * m + (1 - m)

    def warp_field(self, net: nn.Module, batch: Mapping[str, Any]):
        """(correspondences ``N x H x W x 2`` foreground pixels per background pixel, warp function, extras)."""
        fg, mask = batch["foreground"], batch["foreground_mask"]
        h, w = fg.shape[-2:]
        if self.method == "cpvton_plus":
            grid, _ = net(self.condition(batch), mask)
            src = (grid + 1) / 2 * grid.new_tensor([w - 1, h - 1])
            return src, lambda x, fill=0.0: gmm_block.warp(x - fill, grid, "zeros") + fill, grid
        flows = net(torch.cat([self.on_white(batch), mask], 1), self.condition(batch))
        full = resize_flow(flows[-1], (h, w))
        src = pixel_grid(h, w, fg.device) + full.permute(0, 2, 3, 1)
        return src, lambda x, fill=0.0: flow_warp(x, full, fill=fill), flows

    def supervision(self, batch: Mapping[str, Any]):
        """Foreground on white and mask warped by the ground-truth homography (``N x 3``, ``N x 1 x H x W``)."""
        bg = batch["background"]
        hom = self.verts.homographies(batch, tuple(bg.shape[-2:]), bg.device).to(bg.dtype)
        comp, _, wmask = G.composite(batch["foreground"], batch["foreground_mask"], torch.ones_like(bg), hom)
        return comp, wmask

    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        net = self._net(nets, stage.setting)
        target, tmask = self.supervision(batch)
        _, warp_fn, extra = self.warp_field(net, batch)
        if self.method == "cpvton_plus":
            terms = {"l1": F.l1_loss(warp_fn(self.on_white(batch), 1.0), target)}
            if "gic" in stage.losses:
                terms["gic"] = gic_loss(extra)
            return terms
        t = warp_terms(extra, self.on_white(batch), batch["foreground_mask"], target, tmask,
                       self.vgg if "vgg" in stage.losses else None)
        return {k: v for k, v in t.items() if k in stage.losses}

    def forward_tryon(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]):
        """(composite ``N x 3 x H x W`` in [-1, 1] with the warped mask, fitted vertices ``N x 4 x 2``, warped mask)."""
        bg = batch["background"]
        src, warp_fn, _ = self.warp_field(self._net(nets, batch["setting"][0]), batch)
        wfg = warp_fn(batch["foreground"])
        wmask = warp_fn(batch["foreground_mask"]).clamp(0, 1)
        tryon = wmask * wfg + (1 - wmask) * bg
        h = self.config["homography"]
        hom = fit_homography(src, wmask, int(h["stride"]), int(h["min_points"]))
        init, _ = self.verts.vertices(batch, tuple(bg.shape[-2:]), bg.device)
        return tryon.clamp(-1, 1), G.apply_homography(hom, init.double()).float(), wmask

    def predict_vertices(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> torch.Tensor:
        return self.forward_tryon(nets, batch)[1]
