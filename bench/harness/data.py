"""Data for the bench: ``vtondata.load`` datasets, a deterministic step-indexed batch order, device transfer.

Training order is a function of ``(seed, step)`` only: the index stream is the concatenation of one
permutation per epoch (``torch.randperm`` seeded with ``seed`` and the epoch) and step ``s`` takes the global
batch ``stream[s*B : (s+1)*B]``; rank ``r`` of ``W`` takes the ``r``-th contiguous ``B/W`` of it. Hence a
resumed run sees exactly the batches it would have seen, and ``W`` processes see together exactly what one
process sees with batch ``B``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Sampler

from vtondata.errors import VtonDataError

from .dist import Context


class StepBatches(Sampler):
    """Yields the per-rank index lists of steps ``start .. end-1``."""

    def __init__(self, n: int, batch: int, seed: int, start: int, end: int, rank: int = 0, world: int = 1):
        if n <= 0:
            raise VtonDataError("the training split is empty", fix="prepare the dataset's train split")
        if batch % world:
            raise VtonDataError(f"global batch {batch} is not divisible by {world} processes",
                                fix="choose --gpus dividing the stage batch size, or set stages.<name>.batch_size")
        self.n, self.batch, self.seed = n, batch, seed
        self.start, self.end = start, end
        self.rank, self.world = rank, world
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g)}
        return self._perms[epoch]

    def global_batch(self, step: int) -> list[int]:
        out, pos = [], step * self.batch
        while len(out) < self.batch:
            epoch, off = divmod(pos, self.n)
            take = min(self.batch - len(out), self.n - off)
            out += self._perm(epoch)[off:off + take].tolist()
            pos += take
        return out

    def __iter__(self) -> Iterator[list[int]]:
        per = self.batch // self.world
        for s in range(self.start, self.end):
            yield self.global_batch(s)[self.rank * per:(self.rank + 1) * per]

    def __len__(self) -> int:
        return max(0, self.end - self.start)


class ShardBatches(Sampler):
    """Evaluation: rank ``r`` takes items ``r, r + W, ...`` in batches (no padding, no duplicates)."""

    def __init__(self, n: int, batch: int, rank: int = 0, world: int = 1):
        self.idx = list(range(rank, n, world))
        self.batch = batch

    def __iter__(self):
        for i in range(0, len(self.idx), self.batch):
            yield self.idx[i:i + self.batch]

    def __len__(self) -> int:
        return (len(self.idx) + self.batch - 1) // self.batch


def open_dataset(dataset: str, split: str, setting: str, fields: Sequence[str], size, label_space: Optional[str],
                 manifest: Optional[Path] = None):
    """``vtondata.load`` with the bench's arguments (images in [-1, 1], parse int64, pose K x 3)."""
    import vtondata

    load = getattr(vtondata, "load", None)
    if load is None:
        from vtondata.loader import load
    if split == "hardpose":  # a derived split made on first use (3D-GCL HardPose, vtondata.splits_hardpose)
        from vtondata.splits_hardpose import ensure

        ensure(dataset, split, manifest)
    if split == "spg-deepfashion":  # SPG-VTON's DeepFashion pairs with MPV test clothes (vtondata.splits_spg)
        from vtondata.splits_spg import ensure as ensure_spg

        ensure_spg(dataset, split, manifest)
    return load(dataset, split, setting=setting, fields=tuple(fields), size=tuple(size), manifest=manifest,
                label_space=label_space)


def loader(ds, batch_sampler: Sampler, workers: int, ctx: Context, seed: int = 0) -> DataLoader:
    """A DataLoader with its own generator, so creating it never consumes the global torch RNG."""
    return DataLoader(ds, batch_sampler=batch_sampler, num_workers=workers, pin_memory=ctx.device.type == "cuda",
                      persistent_workers=False, prefetch_factor=4 if workers else None,
                      generator=torch.Generator().manual_seed(seed))


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
