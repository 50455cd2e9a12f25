"""The infer stage: the trained networks on the evaluation split, one PNG per tuple and output.

Layout: ``<run>/eval/<dataset>-<split>-<setting>/<output>/<key>.png`` where ``key`` is the tuple id without
its ``<split>/<setting>/`` prefix (``00006_00__00017_00``). Images are written as uint8 RGB, i.e. what a paper's
released results are, and what the score stage reads back. A ``done.json`` with the checkpoint digest marks
a complete set (``--resume`` skips it).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from vtondata.manifest import atomic_write_json

from .data import ShardBatches, loader, to_device
from .dist import Context, barrier
from .model import Model


def key_of(tuple_id: str) -> str:
    """File stem of a tuple's outputs: the tuple id without ``split/setting/``, ``/`` -> ``__``."""
    parts = tuple_id.split("/", 2)
    return (parts[2] if len(parts) == 3 else tuple_id).replace("/", "__")


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``N x C x H x W`` in [-1, 1] -> uint8 in [0, 255] (round half up, as ``(x + 1) * 127.5``)."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _write_png(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(arr).save(tmp, "PNG")
    os.replace(tmp, path)


def read_png(path: Path) -> torch.Tensor:
    """``3 x H x W`` uint8."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def run_inference(model: Model, nets: Mapping[str, nn.Module], dataset, out_dir: Path, ctx: Context,
                  batch_size: int, workers: int, digest: str, amp: str = "off", progress: bool = True) -> int:
    """Write every output of every tuple of ``dataset`` (sharded over ranks); returns the number of tuples."""
    from .train import _autocast, _progress

    out_dir = Path(out_dir)
    for name in model.outputs:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    for n in nets.values():
        n.eval()
    batches = loader(dataset, ShardBatches(len(dataset), batch_size, ctx.rank, ctx.world), workers, ctx)
    bar = _progress(len(dataset), 0, "infer", progress and ctx.main)
    written = 0
    with ThreadPoolExecutor(max_workers=2) as pool, torch.no_grad():
        futures = []
        for batch in batches:
            keys = [key_of(t) for t in batch["tuple_id"]]
            with _autocast(ctx, amp):
                outs = model.infer(nets, to_device(batch, ctx.device))
            for name in model.outputs:
                if name not in outs:
                    continue
                arr = to_uint8(outs[name]).permute(0, 2, 3, 1).cpu().numpy()
                for k, a in zip(keys, arr):
                    futures.append(pool.submit(_write_png, out_dir / name / f"{k}.png", a))
            for name in model.array_outputs:  # e.g. predicted vertices, scored from the files like images
                if name in outs:
                    (out_dir / name).mkdir(parents=True, exist_ok=True)
                    for k, a in zip(keys, outs[name].float().cpu().numpy()):
                        np.save(out_dir / name / f"{k}.npy", a)
            written += len(keys)
            bar.update(len(keys) * ctx.world)
        for f in futures:
            f.result()
    bar.close()
    barrier(ctx)
    if ctx.main:
        atomic_write_json(out_dir / "done.json", {"n": len(dataset), "checkpoint": digest,
                                                  "outputs": list(model.outputs)})
    barrier(ctx)
    return len(dataset)


def is_done(out_dir: Path, n: int, digest: str) -> bool:
    p = Path(out_dir) / "done.json"
    if not p.exists():
        return False
    d = json.loads(p.read_text())
    return d.get("n") == n and d.get("checkpoint") == digest
