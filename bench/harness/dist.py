"""Distributed execution: process-group setup from the torchrun environment, batch norm synchronised across
ranks on any backend, and the ``--gpus N`` launcher.

One process per device. ``init()`` reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (set by torchrun) and
starts NCCL on CUDA, gloo on CPU. A global batch ``B`` is split into ``B / world`` samples per rank, DDP
averages the gradients, and batch norm statistics are reduced over the whole global batch, so ``N`` processes
train exactly like one process with batch ``B`` (up to float summation order).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn as nn

from vtondata.errors import VtonDataError


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def pick_device(name: Optional[str]) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else CPU; or an explicit ``cpu`` / ``cuda`` / ``cuda:1``."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VtonDataError("--device cuda asked for, but torch sees no CUDA device",
                            fix="use --device cpu, or install a CUDA build of torch 2.14.1")
    return dev


def init(device: Optional[str] = None) -> Context:
    """Join the torchrun process group when ``WORLD_SIZE > 1``; otherwise a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = pick_device(device)
    if world <= 1:
        return Context(device=dev)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank=rank, world=world, local_rank=local, device=dev)


def barrier(ctx: Context) -> None:
    if ctx.active:
        dist.barrier()


def broadcast_object(ctx: Context, obj):
    if not ctx.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward is again a sum over ranks: each rank's loss depends on every rank's
    activations through the shared statistics."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


def sum_over_ranks(x: torch.Tensor) -> torch.Tensor:
    return _SumOverRanks.apply(x)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the batch of every rank (two-pass mean / variance through
    autograd-aware all-reduces). Works with gloo on CPU, where ``nn.SyncBatchNorm`` refuses to run; with one
    process it is exactly ``nn.BatchNorm2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        all_reduce = sum_over_ranks
        n_local = x.shape[0] * x.shape[2] * x.shape[3]
        count = all_reduce(torch.tensor([float(n_local)], device=x.device))
        xf = x.float()
        mean = all_reduce(xf.sum(dim=(0, 2, 3))) / count
        centred = xf - mean.view(1, -1, 1, 1)
        var = all_reduce((centred * centred).sum(dim=(0, 2, 3))) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
        y = centred / torch.sqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every ``BatchNorm2d`` by its cross-rank version (``nn.SyncBatchNorm`` on CUDA,
    :class:`GlobalBatchNorm2d` elsewhere), keeping parameters and buffers."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.to(next(iter(child.state_dict().values())).device)
            setattr(module, name, new)
        else:
            sync_batchnorm(child, device)
    return module


def launch(gpus: int, worker_args: list[str]) -> int:
    """Run ``python -m bench.harness.worker ARGS`` under torchrun with ``gpus`` processes on this machine."""
    if gpus < 1:
        raise VtonDataError(f"--gpus must be >= 1, got {gpus}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
           "-m", "bench.harness.worker", *worker_args]
    return subprocess.call(cmd)
