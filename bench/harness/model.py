"""The model interface every benchmarked method implements (CP-VTON first; SAL-VTON, Tree-Block, 3D-GCL,
SPG-VTON and the accessory model plug in the same way).

A model is described by a JSON spec next to its module (``bench/models/<name>.json``):

``config``
    the paper's configuration (resolution, widths, loss weights, the ``stages`` dict in training order);
``variants``
    ``{name: overrides}`` with the names exactly as the papers' tables print them (plus a ``_doc``);
``profiles``
    ``smoke`` / ``full`` overrides, each optionally with ``per_dataset`` blocks;
``default_variant``
    ``{dataset or "*": variant}``; ``datasets``: the datasets the model can run on.

The Python class declares what it reads and computes:

* :meth:`Model.inputs` -- loader fields (and cache kinds) for training or evaluation in a setting;
* :meth:`Model.stages` -- from ``config["stages"]``: modules trained, modules used frozen, steps, batch,
  optimiser, schedule and loss weights (:class:`Stage`);
* :meth:`Model.build` -- every network (``name -> nn.Module``), all checkpointed;
* :meth:`Model.setup` -- loss networks (VGG, ...) that are not checkpointed, with their weight provenance;
* :meth:`Model.losses` -- unweighted loss terms of one stage for one batch (the harness applies weights);
* :meth:`Model.infer` -- output images (``N x 3 x H x W`` in [-1, 1]) for one batch, ``"tryon"`` at least;
* :meth:`Model.references` -- ground-truth images for the outputs that have one (paired metrics).
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar, Mapping, Optional

import torch
import torch.nn as nn

from vtondata.errors import VtonDataError


@dataclass(frozen=True)
class Inputs:
    """What a model reads from ``vtondata.load``: fields, the cache kinds it benefits from, the label space."""

    fields: tuple[str, ...]
    caches: tuple[str, ...] = ()
    label_space: Optional[str] = None


@dataclass(frozen=True)
class Stage:
    """One training stage. ``lr(step)`` follows ``schedule``: constant, then linear decay to ~0 after
    ``decay_after`` steps (CP-VTON: 100k + 100k)."""

    name: str
    trains: tuple[str, ...]
    uses: tuple[str, ...]
    steps: int
    batch_size: int
    optimizer: Mapping[str, Any]
    schedule: Mapping[str, Any]
    losses: Mapping[str, float]
    setting: str = "paired"
    #: per-network learning-rate factors (``{"disc": 4}``: D at 4x the stage lr, SAL-VTON 4e-4 vs 1e-4)
    lr_mult: Optional[Mapping[str, float]] = None

    @classmethod
    def from_config(cls, name: str, d: Mapping[str, Any], setting: str) -> "Stage":
        need = ("trains", "steps", "batch_size", "optimizer", "losses")
        missing = [k for k in need if k not in d]
        if missing:
            raise VtonDataError(f"stage {name!r} lacks {missing}", fix="complete the model's JSON spec")
        return cls(name=name, trains=tuple(d["trains"]), uses=tuple(d.get("uses", ())), steps=int(d["steps"]),
                   batch_size=int(d["batch_size"]), optimizer=dict(d["optimizer"]),
                   schedule=dict(d.get("schedule", {})), losses={k: float(v) for k, v in d["losses"].items()},
                   setting=d.get("setting", setting),
                   lr_mult={k: float(v) for k, v in d.get("lr_mult", {}).items() if not k.startswith("_")})

    def lr(self, step: int) -> float:
        base = float(self.optimizer["lr"])
        start = int(self.schedule.get("decay_after", self.steps))
        if step < start:
            return base
        end = float(self.schedule.get("final_lr", 0.0))  # accessory model: linear decay to 5e-5, not 0
        return base - (base - end) * (step - start) / float(self.steps - start + 1)

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        o = dict(self.optimizer)
        name = o.pop("name", "adam").lower()
        lr = o.pop("lr")
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, betas=tuple(o.get("betas", (0.9, 0.999))),
                                    weight_decay=float(o.get("weight_decay", 0.0)))
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, betas=tuple(o.get("betas", (0.9, 0.999))),
                                     weight_decay=float(o.get("weight_decay", 0.0)))
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=float(o.get("momentum", 0.0)),
                                   weight_decay=float(o.get("weight_decay", 0.0)))
        raise VtonDataError(f"stage {self.name!r}: unknown optimiser {name!r}", fix="use adam, adamw or sgd")


@dataclass
class PrepareEnv:
    """What :meth:`Model.prepare` may use: the run directory, the training data and the run's request."""

    run_dir: Any
    dataset: str
    split: str
    manifest: Optional[str]
    profile: str
    seed: int
    resume: bool
    ctx: Any
    log: Any = print


class Model(abc.ABC):
    """Base class; see the module docstring. Instances hold the resolved config (``self.config``)."""

    name: ClassVar[str] = ""
    #: JSON spec file inside the ``bench.models`` package
    spec_file: ClassVar[str] = ""
    #: output images written by inference (``tryon`` is the one tables score by default)
    outputs: ClassVar[tuple[str, ...]] = ("tryon",)
    #: non-image outputs of inference saved as ``<output>/<key>.npy`` (accessory model: predicted vertices)
    array_outputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)
        self.device = torch.device("cpu")

    # ------------------------------------------------------------------ spec
    @classmethod
    def spec(cls) -> dict:
        text = resources.files("bench.models").joinpath(cls.spec_file).read_text()
        return json.loads(text)

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.config["size"]
        return int(h), int(w)

    def size_for(self, setting: str) -> tuple[int, int]:
        """Input size of a setting: ``config["size_per_setting"][setting]`` or :attr:`size` (STRAT-tie 448)."""
        hw = self.config.get("size_per_setting", {}).get(setting)
        return (int(hw[0]), int(hw[1])) if hw else self.size

    def stages(self) -> list[Stage]:
        setting = self.config.get("train_setting", "paired")
        out = []
        for name, d in self.config["stages"].items():
            if name.startswith("_") or not d.get("enabled", True):
                continue
            out.append(Stage.from_config(name, d, setting))
        return out

    # ------------------------------------------------------------------ declarations
    @abc.abstractmethod
    def inputs(self, purpose: str, setting: str) -> Inputs:
        """Loader fields for ``purpose`` ``"train"`` or ``"eval"`` in ``setting``."""

    @abc.abstractmethod
    def build(self) -> dict[str, nn.Module]:
        """All networks, freshly initialised (call under a seeded RNG)."""

    def setup(self, device: torch.device) -> None:
        """Create loss networks on ``device`` (not checkpointed)."""
        self.device = device

    def missing_data(self, dataset: str, manifest: Optional[str] = None) -> Optional[str]:
        """Why the prepared ``dataset`` lacks data this model needs (a table, a cache), or None; ``--table`` runs
        skip such cells with this reason."""
        return None

    def prepare(self, env: "PrepareEnv") -> None:
        """Derived training data made before the first stage (SAL-VTON: teacher outputs, landmark lookup)."""

    def provenance(self) -> dict:
        """Weights provenance of loss networks etc.: ``{"<name>": {"weights": "imagenet"|"random", ...}}``."""
        return {}

    # ------------------------------------------------------------------ computation
    @abc.abstractmethod
    def losses(self, stage: Stage, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Unweighted loss terms, keys = ``stage.losses`` keys."""

    @abc.abstractmethod
    def infer(self, nets: Mapping[str, nn.Module], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Output images ``N x 3 x H x W`` in [-1, 1], keyed by :attr:`outputs` names."""

    def references(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Ground truth (``N x 3 x H x W`` in [-1, 1]) of the outputs that have one."""
        return {}

    def metric_context(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Extra tensors metrics may need (parse / pose of the reference person for mask-SSIM, mask-IS)."""
        return {}

    def score_inputs(self, metric: str, output: str, pred: torch.Tensor, target, batch: Mapping[str, Any],
                     pred_dir, keys) -> Optional[tuple]:
        """``(pred, target, kwargs)`` for metrics that do not compare two images (STRAT IoU / Disp / LSSIM
        read saved vertices from ``pred_dir``); ``None`` = the default image pair."""
        return None
