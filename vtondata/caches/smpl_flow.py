"""``smpl-flow``: dense 2D correspondence between the source and target person of a triplet, with visibility.

For every pixel p of the *target* person, ``flow[:, p] = q - p`` where q is the pixel of the same body-surface
point in the *source* person (so ``grid_sample(source, p + flow)`` warps the source into the target pose), and
``mask[p] = 1`` where that point exists and is visible in the source (3D-GCL's SMPL flow ``f_gt`` and ``V``).

``source=mesh`` (``--param meshes=DIR``): body meshes of both persons as saved by an SMPL regressor, one file per
person sample named ``<sample name>.npz`` (``vertices`` ``V x 3``: x, y in image pixels and a depth z where smaller
is nearer; ``faces`` ``F x 3``) or a FrankMocap ``<name>.pkl`` (``pred_output_list[0]`` with
``pred_vertices_img`` and ``faces``; pickles are code: only point this at files you trust; its depth sign is
UNVERIFIED, set ``z_near=max`` if flows look inside out). Both meshes are rasterized with the z-buffer of
:mod:`.raster`; each target pixel's face and barycentric coordinates locate the surface point on the source
mesh; it is visible when its depth is within ``depth_tol`` of the source z-buffer at one of the 4 pixels around it.
The SMPL model file is not needed.

``source=iuv`` (default): from the DensePose IUV of both persons: per part, the source pixel whose (U, V) is
nearest the target pixel's; valid when the part exists in both and the UV distance is at most ``max_uv_dist``.

Arrays per tuple: ``flow`` ``2 x H x W`` float32 (dx, dy in pixels), ``mask`` ``H x W`` uint8 {0, 1}. Device:
``$VTONDATA_DEVICE`` (default cpu; cuda runs the rasterizer on the GPU).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import decode
from ..errors import VtonDataError
from ..manifest import Manifest
from .base import Producer, WorkItem, asset_records
from .raster import rasterize

_HASHES: dict[tuple, str] = {}


def flow_from_meshes(src: torch.Tensor, tgt: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                     depth_tol: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched mesh flow. ``src``, ``tgt``: ``B x V x 3`` (same topology), ``faces`` ``F x 3``.

    Returns ``flow`` ``B x 2 x H x W`` float32 (target pixel -> source pixel) and ``mask`` ``B x H x W`` bool.
    """
    if src.dim() == 2:
        f, m = flow_from_meshes(src[None], tgt[None], faces, height, width, depth_tol)
        return f[0], m[0]
    B = src.shape[0]
    dev = src.device
    faces = faces.to(dev).long()
    face_t, bary_t, _ = rasterize(tgt, faces, height, width)
    _, _, z_s = rasterize(src, faces, height, width)
    cov = face_t >= 0
    vid = faces[face_t.clamp(min=0)]  # B x H x W x 3
    bidx = torch.arange(B, device=dev).view(B, 1, 1, 1).expand_as(vid)
    q = (src[bidx, vid] * bary_t[..., None]).sum(-2)  # B x H x W x 3 (x, y, z on the source)
    yy, xx = torch.meshgrid(torch.arange(height, device=dev, dtype=src.dtype),
                            torch.arange(width, device=dev, dtype=src.dtype), indexing="ij")
    flow = torch.stack([q[..., 0] - xx, q[..., 1] - yy], 1)
    flow = torch.where(cov[:, None], flow, torch.zeros_like(flow))
    vis = torch.zeros_like(cov)
    x0, y0 = torch.floor(q[..., 0]).long(), torch.floor(q[..., 1]).long()
    bb = torch.arange(B, device=dev).view(B, 1, 1).expand_as(x0)
    for dy in (0, 1):
        for dx in (0, 1):
            xs, ys = x0 + dx, y0 + dy
            inb = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
            zz = z_s[bb, ys.clamp(0, height - 1), xs.clamp(0, width - 1)]
            vis |= inb & (q[..., 2] <= zz + depth_tol)
    return flow.float(), cov & vis


def flow_from_iuv(I_s: np.ndarray, U_s: np.ndarray, V_s: np.ndarray, I_t: np.ndarray, U_t: np.ndarray,
                  V_t: np.ndarray, max_uv_dist: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Per-part nearest-UV correspondence. Inputs ``H x W`` (I 0-24, U / V in [0, 1]); source and target may
    differ in size. Returns ``flow`` ``2 x H_t x W_t`` float32 and ``mask`` ``H_t x W_t`` uint8."""
    from scipy.spatial import cKDTree

    H, W = I_t.shape
    flow = np.zeros((2, H, W), np.float32)
    mask = np.zeros((H, W), np.uint8)
    for p in range(1, 25):
        tys, txs = np.nonzero(I_t == p)
        if not len(tys):
            continue
        sys_, sxs = np.nonzero(I_s == p)
        if not len(sys_):
            continue
        tree = cKDTree(np.c_[U_s[sys_, sxs], V_s[sys_, sxs]].astype(np.float64))
        d, j = tree.query(np.c_[U_t[tys, txs], V_t[tys, txs]].astype(np.float64), k=1)
        ok = d <= max_uv_dist
        flow[0, tys, txs] = np.where(ok, sxs[j] - txs, 0)
        flow[1, tys, txs] = np.where(ok, sys_[j] - tys, 0)
        mask[tys, txs] = ok
    return flow, mask


def _file_hash(path: Path) -> str:
    st = path.stat()
    k = (str(path), st.st_size, st.st_mtime_ns)
    if k not in _HASHES:
        _HASHES[k] = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    return _HASHES[k]


def read_mesh(path: Path, z_near: str = "min") -> tuple[np.ndarray, np.ndarray]:
    """``(vertices V x 3 float32, faces F x 3 int64)`` from ``.npz`` or FrankMocap ``.pkl``; z flipped for ``max``."""
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path) as z:
                v, f = z["vertices"], z["faces"]
        else:
            with open(path, "rb") as fh:
                obj = pickle.load(fh)
            rec = obj["pred_output_list"][0] if isinstance(obj, dict) and "pred_output_list" in obj else obj
            v, f = rec["pred_vertices_img"], rec["faces"]
    except (OSError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise VtonDataError(f"cannot read a mesh ({type(exc).__name__}: {exc})", file=path,
                            fix="save vertices (V x 3, image pixels + depth) and faces (F x 3) as .npz") from None
    v = np.asarray(v, np.float32).copy()
    if v.ndim != 2 or v.shape[1] != 3:
        raise VtonDataError(f"mesh vertices must be V x 3, got {v.shape}", file=path, fix="save x, y, z per vertex")
    if z_near == "max":
        v[:, 2] = -v[:, 2]
    return v, np.asarray(f, np.int64)


class SmplFlowProducer(Producer):
    kind = "smpl-flow"
    name = "vtondata-smpl-flow"
    version = "1"
    unit = "tuple"
    needs = ("target_person",)
    arrays = {"flow": "float32 2 x H x W (target pixel -> source pixel)", "mask": "bool H x W visible in the source"}
    defaults = {"source": "iuv", "meshes": None, "depth_tol": 1.0, "max_uv_dist": 0.03, "z_near": "min",
                "cmap": "parula"}

    def _triplets(self, manifest: Manifest):
        t = manifest.tuples
        return t[t["target_person"].notna()].sort_values("tuple_id")

    def skip_reason(self, manifest: Manifest) -> Optional[str]:
        if self._triplets(manifest).empty:
            return (f"smpl-flow: dataset {manifest.dataset} has no tuples with a source and a target person "
                    "(multi-pose triplets: MPV, DeepFashion)")
        src = self.params["source"]
        if src not in ("iuv", "mesh"):
            raise VtonDataError(f"smpl-flow: unknown source {src!r}", fix="--param source=iuv or source=mesh")
        if src == "iuv" and "densepose" not in set(manifest.assets["role"]):
            return f"smpl-flow: dataset {manifest.dataset} has no DensePose files (source=iuv needs them)"
        if src == "mesh" and not self.params.get("meshes"):
            return "smpl-flow: source=mesh needs --param meshes=DIR (one <sample name>.npz per person)"
        return None

    def _mesh_record(self, name: str) -> Optional[dict]:
        d = Path(str(self.params["meshes"])).expanduser()
        for suf in (".npz", ".pkl"):
            p = d / f"{name}{suf}"
            if p.is_file():
                return {"path": str(p), "hash": _file_hash(p)}
        return None

    def items(self, manifest: Manifest) -> list[WorkItem]:
        recs = asset_records(manifest)
        names = dict(zip(manifest.samples["sample_id"], manifest.samples["name"]))
        out = []
        for t in self._triplets(manifest).itertuples(index=False):
            s, g = recs.get(t.person, {}), recs.get(t.target_person, {})
            frame = g.get("person")
            if frame is None or frame.get("width") is None:
                continue
            inputs = {"frame": {"hash": f"{int(frame['width'])}x{int(frame['height'])}",
                                "width": int(frame["width"]), "height": int(frame["height"])}}
            if self.params["source"] == "iuv":
                if "densepose" not in s or "densepose" not in g:
                    continue
                if "vitonhd_dp_segm" in (s["densepose"].get("encoding"), g["densepose"].get("encoding")):
                    continue  # pictures of I only: no UV to match
                inputs.update(source=s["densepose"], target=g["densepose"])
            else:
                ms, mt = self._mesh_record(names.get(t.person, "")), self._mesh_record(names.get(t.target_person, ""))
                if ms is None or mt is None:
                    continue
                inputs.update(source=ms, target=mt)
            out.append(WorkItem(t.tuple_id, t.split, inputs))
        return sorted(out, key=lambda w: w.key)

    def produce(self, items: list[WorkItem], root: Path) -> list[dict]:
        hw = self.size
        if self.params["source"] == "iuv":
            outs = []
            for it in items:
                cm = self.params.get("cmap") or "parula"
                src = decode.read_densepose(Path(root) / it.inputs["source"]["path"],
                                            it.inputs["source"].get("encoding"), cmap=cm)
                tgt = decode.read_densepose(Path(root) / it.inputs["target"]["path"],
                                            it.inputs["target"].get("encoding"), cmap=cm)
                flow, mask = flow_from_iuv(*src, *tgt, max_uv_dist=float(self.params["max_uv_dist"]))
                outs.append(_resized(flow, mask, hw))
            return outs
        dev = os.environ.get("VTONDATA_DEVICE", "cpu")
        loaded = []
        for it in items:
            fr = it.inputs["frame"]
            h, w = hw or (fr["height"], fr["width"])
            vs, fs = read_mesh(Path(it.inputs["source"]["path"]), self.params["z_near"])
            vt, ft = read_mesh(Path(it.inputs["target"]["path"]), self.params["z_near"])
            if vs.shape != vt.shape or not np.array_equal(fs, ft):
                raise VtonDataError("source and target meshes differ in topology", file=it.inputs["target"]["path"],
                                    fix="both meshes must come from the same body model (e.g. SMPL, 6890 vertices)")
            scale = np.array([w / fr["width"], h / fr["height"], 1.0], np.float32)
            loaded.append((h, w, vs * scale, vt * scale, fs))
        # one batched rasterization per group of tuples sharing frame size and mesh topology
        groups: dict[tuple, list[int]] = {}
        for j, (h, w, vs, _, fs) in enumerate(loaded):
            key = (h, w, vs.shape, hashlib.blake2b(fs.tobytes(), digest_size=8).hexdigest())
            groups.setdefault(key, []).append(j)
        outs: list = [None] * len(items)
        for (h, w, _, _), idx in groups.items():
            src = torch.as_tensor(np.stack([loaded[j][2] for j in idx]), device=dev)
            tgt = torch.as_tensor(np.stack([loaded[j][3] for j in idx]), device=dev)
            flow, mask = flow_from_meshes(src, tgt, torch.as_tensor(loaded[idx[0]][4], device=dev), h, w,
                                          float(self.params["depth_tol"]))
            flow, mask = flow.cpu().numpy().astype(np.float32), mask.cpu().numpy().astype(bool)
            for k, j in enumerate(idx):
                outs[j] = {"flow": flow[k], "mask": mask[k]}
        return outs


def _resized(flow: np.ndarray, mask: np.ndarray, hw) -> dict:
    if hw is None or tuple(mask.shape) == tuple(hw):
        return {"flow": flow, "mask": mask.astype(bool)}
    h0, w0 = mask.shape
    t = torch.nn.functional.interpolate(torch.from_numpy(flow)[None], size=tuple(hw), mode="nearest")[0]
    t[0] *= hw[1] / w0
    t[1] *= hw[0] / h0
    return {"flow": t.numpy(), "mask": decode.resize_nearest(mask, hw).astype(bool)}
