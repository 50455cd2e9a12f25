"""The training stage: every declared model stage in order, with AMP on CUDA, DDP under torchrun, atomic
checkpoints, exact resume, a progress bar and a scalar log.

Per stage: seed ``seed + 1000 * index`` (restored from the checkpoint on resume), networks of
``stage.uses`` frozen in eval mode, those of ``stage.trains`` in train mode (batch norm synchronised across
ranks and wrapped in DDP when ``world > 1``), the stage's optimiser, learning rate ``stage.lr(step)`` set
before every step, loss = sum of ``weight * term`` over ``stage.losses``. A checkpoint (``last.pt``) is
written every ``train.checkpoint_every`` steps and at the stage end (plus ``<stage>.pt``).

Scalars go to ``<run>/scalars.csv`` (``stage,step,tag,value,wall_s``; rows past the resume point are dropped
on resume) and, when the ``tensorboard`` package is installed, to TensorBoard event files in ``<run>/tb``.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch
import torch.nn as nn

from . import checkpoint as ckpt
from .data import StepBatches, loader, to_device
from .dist import Context, barrier, sync_batchnorm
from .model import Model, Stage


@dataclass
class StageStats:
    name: str
    steps: int = 0
    samples: int = 0
    wall_s: float = 0.0
    data_wait_s: float = 0.0
    final_loss: float = float("nan")
    resumed_from: int = 0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def data_wait_share(self) -> float:
        return self.data_wait_s / self.wall_s if self.wall_s > 0 else float("nan")

    def as_dict(self) -> dict:
        return {"stage": self.name, "steps": self.steps, "samples": self.samples, "wall_s": round(self.wall_s, 3),
                "samples_per_s": round(self.samples_per_s, 3), "data_wait_share": round(self.data_wait_share, 4),
                "final_loss": self.final_loss, "resumed_from": self.resumed_from}


class ScalarLog:
    """CSV scalars (+ TensorBoard when available); rank 0 only."""

    FIELDS = ("stage", "step", "tag", "value", "wall_s")

    def __init__(self, run_dir: Path, enabled: bool):
        self.path = Path(run_dir) / "scalars.csv"
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except Exception:  # tensorboard not installed: CSV only
                self.tb = None

    def truncate(self, stage_order: list[str], stage: str, step: int) -> None:
        """Drop rows written after the checkpoint we resume from."""
        if not (self.enabled and self.path.exists()):
            return
        keep_idx = stage_order.index(stage)
        rows = []
        with open(self.path, newline="") as fh:
            for r in csv.DictReader(fh):
                i = stage_order.index(r["stage"]) if r["stage"] in stage_order else -1
                if i < keep_idx or (i == keep_idx and int(r["step"]) <= step):
                    rows.append(r)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, self.FIELDS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, stage: str, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        new = not self.path.exists()
        wall = round(time.perf_counter() - self.t0, 3)
        with open(self.path, "a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(self.FIELDS)
            for tag, v in values.items():
                w.writerow([stage, step, tag, f"{v:.6g}", wall])
        if self.tb is not None:
            for tag, v in values.items():
                self.tb.add_scalar(f"{stage}/{tag}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    show = enabled and (sys.stderr.isatty() or os.environ.get("VTONDATA_PROGRESS") == "1")
    return tqdm(total=total, initial=initial, desc=desc, unit="img", unit_scale=False, disable=not show,
                dynamic_ncols=True, mininterval=0.5, file=sys.stderr)


def _autocast(ctx: Context, amp: str):
    if ctx.device.type != "cuda" or amp in ("off", "", None):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _state(nets: Mapping[str, nn.Module]) -> dict[str, dict]:
    return {k: unwrap(v).state_dict() for k, v in nets.items()}


def unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


@dataclass
class Trainer:
    """Runs the stages of ``model`` on ``nets``; ``make_dataset(stage)`` returns the training Dataset."""

    model: Model
    nets: dict[str, nn.Module]
    run_dir: Path
    ctx: Context
    seed: int
    config_hash: str
    make_dataset: Callable[[Stage], Any]
    log: Callable[[str], None] = print
    stats: list[StageStats] = field(default_factory=list)

    @property
    def ckpt_dir(self) -> Path:
        return Path(self.run_dir) / "checkpoints"

    def run(self, resume: bool) -> list[StageStats]:
        stages = self.model.stages()
        order = [s.name for s in stages]
        state = None
        last = self.ckpt_dir / "last.pt"
        if resume and last.exists():
            state = ckpt.load(last)
            if state.get("config_hash") != self.config_hash:
                from vtondata.errors import VtonDataError

                raise VtonDataError("the checkpoint was written by another config", file=last,
                                    fix="resume with the same options, or drop --resume to start over")
            for k, sd in state["nets"].items():
                self.nets[k].load_state_dict(sd)
        scalars = ScalarLog(self.run_dir, self.ctx.main)
        if state is not None:
            scalars.truncate(order, state["stage"], int(state["step"]))
        elif self.ctx.main and scalars.path.exists():
            scalars.path.unlink()
        train_cfg = self.model.config.get("train", {})
        try:
            for i, stage in enumerate(stages):
                st = None
                if state is not None:
                    si = int(state["stage_index"])
                    if i < si or (i == si and state["done"]):
                        self.log(f"stage {stage.name}: already trained (checkpoint), skipped")
                        continue
                    if i == si:
                        st = state
                self.stats.append(self._stage(i, stage, st, train_cfg, scalars))
                state = None
        finally:
            scalars.close()
        return self.stats

    def _stage(self, index: int, stage: Stage, state: Optional[dict], train_cfg: Mapping,
               scalars: ScalarLog) -> StageStats:
        ctx = self.ctx
        start = int(state["step"]) if state else 0
        if state is None:
            torch.manual_seed(self.seed + 1000 * index)
        for name in stage.uses:
            self.nets[name].eval()
            for p in self.nets[name].parameters():
                p.requires_grad_(False)
        view: dict[str, nn.Module] = {n: self.nets[n] for n in stage.uses}
        params = []
        for name in stage.trains:
            net = self.nets[name]
            net.train()
            for p in net.parameters():
                p.requires_grad_(True)
            if ctx.active:
                net = sync_batchnorm(net, ctx.device)
                self.nets[name] = net
                net = nn.parallel.DistributedDataParallel(
                    net, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
            view[name] = net
            params.append({"params": list(self.nets[name].parameters()),
                           "lr_mult": float((stage.lr_mult or {}).get(name, 1.0))})
        opt = stage.make_optimizer(params)
        amp = train_cfg.get("amp", "off") if ctx.device.type == "cuda" else "off"
        scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
        if state is not None:
            opt.load_state_dict(state["optim"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            ckpt.set_rng_state(state.get("rng"))
        stats = StageStats(stage.name, resumed_from=start)
        every = int(train_cfg.get("checkpoint_every", 1000))
        log_every = int(train_cfg.get("log_every", 20))
        ds = self.make_dataset(stage)
        sampler = StepBatches(len(ds), stage.batch_size, self.seed * 1000 + index, start, stage.steps,
                              ctx.rank, ctx.world)
        batches = loader(ds, sampler, int(train_cfg.get("workers", 0)), ctx, seed=self.seed)
        bar = _progress(stage.steps * stage.batch_size, start * stage.batch_size, f"train {stage.name}", ctx.main)
        t_stage = time.perf_counter()
        t_ready = t_stage
        step = start
        it = iter(batches)
        try:
            while step < stage.steps:
                t_wait = time.perf_counter()
                batch = next(it)
                batch = to_device(batch, ctx.device)
                stats.data_wait_s += time.perf_counter() - t_wait
                for g in opt.param_groups:
                    g["lr"] = stage.lr(step) * g.get("lr_mult", 1.0)
                with _autocast(ctx, amp):
                    terms = self.model.losses(stage, view, batch)
                loss = sum(w * terms[k].float() for k, w in stage.losses.items() if w)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                step += 1
                stats.steps += 1
                stats.samples += stage.batch_size
                if ctx.main and (step % log_every == 0 or step == stage.steps):
                    vals = {k: float(v.detach()) for k, v in terms.items()}
                    vals["loss"] = float(loss.detach())
                    vals["lr"] = stage.lr(step - 1)
                    scalars.write(stage.name, step, vals)
                    stats.final_loss = vals["loss"]
                    bar.set_postfix(loss=f"{vals['loss']:.4f}", refresh=False)
                bar.update(stage.batch_size)
                if step % every == 0 or step == stage.steps:
                    self._save(index, stage, step, step == stage.steps, opt, scaler)
        finally:
            bar.close()
            stats.wall_s = time.perf_counter() - t_stage
            for name in stage.trains:
                self.nets[name] = unwrap(self.nets[name])
        if ctx.main:
            self.log(f"stage {stage.name}: {stats.steps} steps, {stats.samples_per_s:.2f} samples/s "
                     f"({stats.samples_per_s / ctx.world:.2f} per process), data wait {100 * stats.data_wait_share:.1f}%, "
                     f"final loss {stats.final_loss:.4f}")
        return stats

    def _save(self, index: int, stage: Stage, step: int, done: bool, opt, scaler) -> None:
        if self.ctx.main:
            state = {"stage": stage.name, "stage_index": index, "step": step, "done": done,
                     "config_hash": self.config_hash, "nets": _state(self.nets), "optim": opt.state_dict(),
                     "scaler": scaler.state_dict() if scaler is not None else None, "rng": ckpt.rng_state()}
            ckpt.save(self.ckpt_dir / "last.pt", state)
            if done:
                ckpt.save(self.ckpt_dir / f"{stage.name}.pt", {"stage": stage.name, "stage_index": index,
                                                                "step": step, "done": True,
                                                                "config_hash": self.config_hash,
                                                                "nets": state["nets"]})
        barrier(self.ctx)
