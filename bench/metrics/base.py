"""The metric interface: declared state, batch updates, one compute, synchronisation across ranks.

Every metric follows the torchmetrics pattern:

* ``update(pred, target, **ctx)`` accumulates a batch (``N x C x H x W`` tensors on any device,
  see ``bench.metrics._images`` for the accepted dtypes and ranges);
* ``compute()`` returns one result dict, stamped with the metric name, the preset, the parameters
  and ``comparable`` (``False`` whenever random network weights were used);
* state lives in slots declared with ``add_state``: ``"sum"`` slots are tensors added across
  ranks, ``"cat"`` slots are lists of per-sample rows gathered from every rank (padded to the
  longest rank, then trimmed) so that rank 0 sees exactly the rows a single process would.

Under ``torch.distributed`` (gloo or NCCL) ``compute()`` synchronises copies of the state (the
local state is left untouched, so ``update`` may continue afterwards). Metrics whose final step is
costly (FID, KID, IS) set ``compute_on_rank0``: rank 0 computes and broadcasts the result.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Dict, List, Optional

import torch

REDUCTIONS = ("sum", "cat")


def _dist_active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(local: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """All-gather a ``n_rank x ...`` tensor whose first dimension differs between ranks.

    Ranks with no rows pass ``None``. Returns the rows of every rank in rank order, on the local
    tensor's device (CPU when the local rank had none), or ``None`` when no rank had rows.
    """
    import torch.distributed as dist

    world = dist.get_world_size()
    meta = None if local is None else (tuple(local.shape), str(local.dtype).replace("torch.", ""))
    metas: List[Any] = [None] * world
    dist.all_gather_object(metas, meta)
    present = [m for m in metas if m is not None]
    if not present:
        return None
    trailing, dtype_name = present[0][0][1:], present[0][1]
    dtype = getattr(torch, dtype_name)
    counts = [0 if m is None else m[0][0] for m in metas]
    longest = max(counts)
    dev = _comm_device()
    buf = torch.zeros((longest, *trailing), dtype=dtype, device=dev)
    if local is not None and local.shape[0]:
        buf[: local.shape[0]] = local.to(dev)
    parts = [torch.empty_like(buf) for _ in range(world)]
    dist.all_gather(parts, buf)
    out = torch.cat([p[:c] for p, c in zip(parts, counts)], dim=0)
    return out.to(local.device if local is not None else torch.device("cpu"))


def mean_std(total: float, total_sq: float, count: float, ddof: int = 0) -> Dict[str, float]:
    """Mean and standard deviation from running sums (``std`` uses ``ddof``, default population)."""
    if count <= 0:
        return {"value": float("nan"), "std": float("nan")}
    mean = total / count
    if count - ddof <= 0:
        return {"value": mean, "std": float("nan")}
    var = max(total_sq / count - mean * mean, 0.0) * count / (count - ddof)
    return {"value": mean, "std": math.sqrt(var)}


class Metric(abc.ABC):
    """Base class. Subclasses declare state in ``__init__`` and implement ``_update`` / ``_compute``.

    Class attributes: ``name`` (registry name), ``higher_is_better``, ``paired`` (needs ``pred``
    and ``target`` of the same samples), ``compute_on_rank0``.
    """

    name: str = "metric"
    higher_is_better: bool = True
    paired: bool = True
    compute_on_rank0: bool = False

    def __init__(self) -> None:
        self._state_specs: Dict[str, str] = {}
        self._state_defaults: Dict[str, Any] = {}
        self.preset: Optional[str] = None
        self.display_scale: float = 1.0
        self.comparable: bool = True
        self.notes: List[str] = []

    # ------------------------------------------------------------------ state
    def add_state(self, name: str, default: Any, reduce: str) -> None:
        """Declare a state slot: ``reduce="sum"`` (a float64 tensor) or ``"cat"`` (a list of rows)."""
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        if reduce == "cat" and default != []:
            raise ValueError("a 'cat' state starts as an empty list")
        self._state_specs[name] = reduce
        self._state_defaults[name] = default
        setattr(self, name, self._fresh(name))

    def _fresh(self, name: str) -> Any:
        default = self._state_defaults[name]
        if self._state_specs[name] == "cat":
            return []
        return torch.as_tensor(default, dtype=torch.float64).clone()

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        for name in self._state_specs:
            setattr(self, name, self._fresh(name))

    def _add(self, name: str, value: torch.Tensor) -> None:
        """Add ``value`` to a ``sum`` slot, moving the slot to ``value``'s device on first use."""
        cur = getattr(self, name)
        value = value.to(torch.float64)
        if cur.device != value.device:
            cur = cur.to(value.device)
        setattr(self, name, cur + value)

    # ------------------------------------------------------------------ per-image means (SSIM, PSNR, LPIPS, ...)
    def add_mean_state(self) -> None:
        """Declare ``total`` / ``total_sq`` / ``count``: one value per image, reported as mean and std."""
        for name in ("total", "total_sq", "count"):
            self.add_state(name, 0.0, "sum")

    def _add_values(self, values: torch.Tensor) -> None:
        """Accumulate per-image ``values`` (any shape; every element is one image) into the mean state."""
        self._add("total", values.sum())
        self._add("total_sq", (values ** 2).sum())
        self._add("count", torch.tensor(float(values.numel()), device=values.device))

    def _mean_result(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """``{"value": mean, "std": population std, "n": images}`` of the mean state."""
        n = float(state["count"])
        return {**mean_std(float(state["total"]), float(state["total_sq"]), n), "n": int(n)}

    def _append(self, name: str, rows: torch.Tensor) -> None:
        getattr(self, name).append(rows.detach())

    def state(self) -> Dict[str, Any]:
        """The (synchronised, under torch.distributed) state: sums as tensors, cat slots concatenated."""
        out: Dict[str, Any] = {}
        active = _dist_active()
        shapes: Dict[str, tuple] = {}
        if active:
            # a rank that saw no data still holds the scalar default of a vector sum: agree on shapes
            import torch.distributed as dist

            local = {n: tuple(getattr(self, n).shape) for n, r in self._state_specs.items() if r == "sum"}
            every: List[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(every, local)
            for name in local:
                shapes[name] = max((e[name] for e in every), key=lambda s: math.prod(s))
        for name, reduce in self._state_specs.items():
            cur = getattr(self, name)
            if reduce == "sum":
                if active:
                    import torch.distributed as dist

                    t = cur.to(_comm_device()).expand(shapes[name]).clone()
                    dist.all_reduce(t)
                    cur = t.to(cur.device)
                out[name] = cur
            else:
                local_rows = torch.cat(cur, dim=0) if cur else None
                out[name] = gather_rows(local_rows) if active else local_rows
        return out

    # ------------------------------------------------------------------ api
    def update(self, pred: Optional[torch.Tensor], target: Optional[torch.Tensor] = None, **ctx: Any) -> None:
        """Accumulate one batch. ``pred`` / ``target``: ``N x C x H x W``; see the subclass."""
        with torch.no_grad():
            self._update(pred, target, **ctx)

    def compute(self) -> Dict[str, Any]:
        """Synchronise, compute once, and return the stamped result dict."""
        state = self.state()
        if self.compute_on_rank0 and _dist_active():
            import torch.distributed as dist

            box: List[Any] = [None]
            if dist.get_rank() == 0:
                try:
                    box[0] = self._compute(state)
                except Exception as exc:  # every rank raises it, none waits forever
                    box[0] = exc
            dist.broadcast_object_list(box, src=0)
            if isinstance(box[0], Exception):
                raise box[0]
            result = box[0]
        else:
            result = self._compute(state)
        return self.stamp(result)

    def stamp(self, result: Dict[str, Any]) -> Dict[str, Any]:
        """Add name, preset, parameters and comparability to a result dict."""
        stamped = {"metric": self.name, **result}
        stamped["preset"] = self.preset
        stamped["comparable"] = bool(self.comparable and result.get("comparable", True))
        stamped["higher_is_better"] = self.higher_is_better
        stamped["display_scale"] = self.display_scale
        stamped["params"] = self.params()
        if self.notes:
            stamped["notes"] = list(self.notes)
        return stamped

    def params(self) -> Dict[str, Any]:
        """The parameters that change the number (recorded with every result)."""
        return {}

    def prepare(self, device: Optional[torch.device] = None) -> None:
        """Load networks / weights now (learned metrics), so missing weights stop a run before it starts."""

    @abc.abstractmethod
    def _update(self, pred, target, **ctx) -> None:
        """Accumulate a batch into the declared state."""

    @abc.abstractmethod
    def _compute(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """Turn the synchronised state into ``{"value": ..., ...}``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params()})"
