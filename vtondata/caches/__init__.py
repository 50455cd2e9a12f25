"""Conditioning caches: reproducible, fingerprinted, fast-to-read derived inputs (see :mod:`.store`).

Kinds (``vtondata cache build --kind KIND``):

================ ======== ===================================================================================
kind             key      arrays
================ ======== ===================================================================================
decoded          sample   every image role ``H x W x 3`` uint8, mask role ``H x W`` bool, ``pose`` ``K x 3`` float32
parse            sample   ``parse`` ``H x W`` uint8 ids (shipped files decoded, or an external parser plugin)
densepose        sample   ``iuv`` ``H x W x 3`` uint8 ``[I, U*255, V*255]`` (decoded files, or a plugin)
smpl-flow        tuple    ``flow`` ``2 x H x W`` float32 (target pixel -> source pixel), ``mask`` ``H x W`` bool
agnostic         sample   ``agnostic`` ``H x W x 3`` uint8, ``parse_agnostic`` ``H x W`` uint8, ``agnostic_mask`` bool
pose-maps        sample   ``disc`` ``18 x H x W`` bool, ``limb_mask`` ``H x W`` bool (``gauss`` float16 on request)
landmark-maps    sample   ``maps`` ``K x H x W`` float16 Gaussian heatmaps of the ``landmarks`` table
================ ======== ===================================================================================

Boolean arrays are stored bit-packed. Every kind takes ``size`` (HxW to store at; default the files' own size).
"""

from __future__ import annotations

import importlib

from ..errors import UnknownNameError

#: kind -> (module in this package, producer class)
KINDS = {
    "decoded": ("decoded", "DecodedProducer"),
    "parse": ("parse", "ParseProducer"),
    "densepose": ("densepose", "DensePoseProducer"),
    "smpl-flow": ("smpl_flow", "SmplFlowProducer"),
    "agnostic": ("agnostic", "AgnosticProducer"),
    "pose-maps": ("pose_maps", "PoseMapsProducer"),
    "landmark-maps": ("landmark_maps", "LandmarkMapsProducer"),
}


def producer_class(kind: str):
    if kind not in KINDS:
        raise UnknownNameError(f"unknown cache kind {kind!r}", fix=f"use one of {sorted(KINDS)}")
    mod, cls = KINDS[kind]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), cls)


def make_producer(kind: str, **params):
    """The producer of ``kind`` with ``params`` (unknown parameters raise, defaults filled in)."""
    return producer_class(kind)(**params)
