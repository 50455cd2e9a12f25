"""``vtondata bench``: train -> infer -> score -> record for one model variant on one dataset split, and
``--table``: every fillable cell of a paper table.

What is evaluated: the table cells registered for ``(model, variant, dataset, split)`` decide the settings,
metrics and presets (e.g. CP-VTON on VITON-HD test: paired LPIPS / SSIM / PSNR and unpaired FID / KID under the
``hr-viton`` preset, SAL-VTON Table 1); without a matching cell the dataset's settings are scored with the
``pytorch-fid`` preset (paired: SSIM, PSNR, LPIPS; unpaired: FID, KID). One record per (setting, preset).

Run directory: ``$VTONDATA_HOME/runs/<model>-<variant>_<batch>x<steps>_<dataset>-<train split>_<HxW>_<profile>/
seed<seed>-<config hash>/`` with ``config.json``, ``checkpoints/``, ``scalars.csv`` and ``eval/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from vtondata.errors import VtonDataError
from vtondata.home import home
from vtondata.manifest import atomic_write_json

from . import checkpoint as ckpt
from . import record as rec
from . import registry as reg
from .config import config_hash, run_name
from .data import open_dataset
from .dist import Context, barrier, init
from .infer import is_done, run_inference
from .model import Model, PrepareEnv
from .scoring import metric_key, preflight, score
from .train import Trainer, unwrap

DEFAULT_PRESET = "pytorch-fid"
DEFAULT_METRICS = {"paired": ("ssim", "psnr", "lpips"), "multi-pose": ("ssim", "psnr", "lpips"),
                   "unpaired": ("fid", "kid"), "glasses": ("lssim", "iou", "disp"), "hat": ("lssim", "iou", "disp"),
                   "tie": ("lssim", "iou", "disp")}  # STRAT: the setting is the sub-dataset


@dataclass
class Request:
    """One ``vtondata bench`` invocation (JSON-serialisable: it is passed to torchrun workers)."""

    model: str
    variant: Optional[str] = None
    dataset: Optional[str] = None
    split: str = "test"
    setting: Optional[str] = None
    profile: Optional[str] = None
    seed: int = 0
    resume: bool = False
    device: Optional[str] = None
    manifest: Optional[str] = None
    overrides: list[str] = field(default_factory=list)
    random_metric_weights: Optional[bool] = None
    train_dataset: Optional[str] = None
    #: last stage to run: train, infer, score or record (default: all four)
    until: str = "record"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Request":
        return cls(**json.loads(text))


@dataclass
class Evaluation:
    setting: str
    preset: str
    metrics: list[dict]
    cells: list[dict]


def default_profile(device: Optional[str]) -> str:
    if device not in (None, "", "auto"):
        return "full" if str(device).startswith("cuda") else "smoke"
    return "full" if torch.cuda.is_available() else "smoke"


def _cell_metrics(cell: dict) -> list[dict]:
    out = []
    for reported, m in cell["metrics"].items():
        if m is None:  # reported-only column (3D-GCL human evaluation "HE (%)"): nothing to score
            continue
        m = {"metric": m} if isinstance(m, str) else dict(m)
        m.setdefault("output", "tryon")
        m["reported"] = reported
        out.append(m)
    return out


def evaluations(model: str, variant: str, dataset: str, split: str, setting: Optional[str]) -> list[Evaluation]:
    """Settings, presets and metrics to score for a run (from the registered tables, else defaults)."""
    groups: dict[tuple[str, str], Evaluation] = {}
    for tid in reg.table_ids():
        table = reg.get_table(tid)
        for cell in table["cells"]:
            if (cell.get("model"), cell.get("variant"), cell.get("dataset"), cell.get("split")) != \
                    (model, variant, dataset, split):
                continue
            if setting is not None and cell["setting"] != setting:
                continue
            if not reg.cell_fillable(cell)[0]:
                continue
            key = (cell["setting"], cell.get("preset", DEFAULT_PRESET))
            ev = groups.setdefault(key, Evaluation(key[0], key[1], [], []))
            for m in _cell_metrics(cell):
                if all((metric_key(m), m["output"]) != (metric_key(x), x["output"]) for x in ev.metrics):
                    ev.metrics.append(m)
            ev.cells.append({"table": tid, "cell": cell["id"]})
    if groups:
        return list(groups.values())
    settings = [setting] if setting else reg.dataset_info(dataset)["settings"]
    return [Evaluation(s, DEFAULT_PRESET, [{"metric": m, "output": "tryon"} for m in DEFAULT_METRICS.get(s, ("ssim",))],
                       []) for s in settings]


@dataclass
class Plan:
    """Everything a run needs, resolved from a request (no side effects)."""

    request: Request
    variant: str
    dataset: str
    train_dataset: str
    profile: str
    config: dict
    config_hash: str
    run_name: str
    run_dir: Path
    evaluations: list[Evaluation]


def plan(req: Request, dataset: str) -> Plan:
    model_cls = reg.get_model(req.model)
    profile = reg.check_profile(req.profile or default_profile(req.device))
    variant = reg.resolve_variant(req.model, dataset, req.variant)
    # a split may name the dataset models are trained on (spg-deepfashion: trained on MPV, as SPG-VTON)
    train_ds = req.train_dataset or reg.catalog()["splits"].get(req.split, {}).get("train_dataset") or dataset
    cfg = reg.resolve_config(req.model, variant, train_ds, profile, req.overrides)
    info = reg.dataset_info(train_ds)
    if reg.catalog()["splits"].get(req.split, {}).get("role") == "train":
        # a derived training split (--split train-clean): train on it, evaluate on the dataset's first eval split
        from dataclasses import replace

        cfg["train_split"] = req.split
        req = replace(req, split=info["eval_splits"][0])
    train_split = cfg.get("train_split", info["train_split"])
    model = model_cls(cfg)
    stages = model.stages()
    h, w = model.size
    ident = {"model": req.model, "variant": variant, "train_dataset": train_ds, "train_split": train_split,
             "profile": profile, "config": cfg}
    chash = config_hash(ident)
    base = run_name(req.model, variant, stages[0].batch_size if stages else 0, [s.steps for s in stages],
                    train_ds, train_split, (h, w), profile)
    run_dir = home() / "runs" / base / f"seed{req.seed}-{chash}"
    evs = evaluations(req.model, variant, dataset, req.split, req.setting)
    name = run_name(req.model, variant, stages[0].batch_size if stages else 0, [s.steps for s in stages],
                    dataset, req.split, (h, w), profile)
    return Plan(req, variant, dataset, train_ds, profile, cfg, chash, name, run_dir, evs)


def datasets_for(req: Request) -> list[str]:
    """``--dataset`` or, for a split spanning datasets (hardpose), each dataset the model runs on."""
    if req.dataset:
        return [req.dataset]
    spans = reg.split_datasets(req.split)
    spec = reg.get_model(req.model).spec()
    if spans:
        chosen = [d for d in spans if d in spec["datasets"]]
        if not chosen:
            raise VtonDataError(f"split {req.split!r} spans {spans}; model {req.model!r} runs on none of them",
                                fix=f"use a model registered for {' or '.join(spans)}, or another split")
        return chosen
    return [spec["default_dataset"]]


def _manifest_info(dataset: str, manifest: Optional[str]) -> dict:
    from vtondata.fixtures import SIDECAR
    from vtondata.manifest import open_manifest

    m = open_manifest(dataset, Path(manifest) if manifest else None)
    return {"manifest_fingerprint": m.fingerprint, "generated": (m.root / SIDECAR).is_dir(), "root": str(m.root),
            "manifest_dir": str(m.dir)}


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def execute(p: Plan, ctx: Context, log: Callable[[str], None] = print) -> list[Path]:
    """Run the four stages of one plan; returns the record paths (rank 0; empty list elsewhere)."""
    req = p.request
    t_all = time.perf_counter()
    model: Model = reg.get_model(req.model)(p.config)
    if ctx.main:
        p.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(p.run_dir / "config.json", {"request": asdict(req), "variant": p.variant,
                                                      "profile": p.profile, "config_hash": p.config_hash,
                                                      "config": p.config})
        log(f"run {p.run_name}  ->  {p.run_dir}")
    barrier(ctx)
    train_info = _manifest_info(p.train_dataset, req.manifest if p.train_dataset == p.dataset else None)
    eval_info = _manifest_info(p.dataset, req.manifest)
    random_w = req.random_metric_weights if req.random_metric_weights is not None else p.profile == "smoke"
    if req.until in ("score", "record") and not random_w:
        for ev in p.evaluations:  # missing metric weights fail now, not after hours of training
            preflight(ev.metrics, ev.preset, ctx.device, random_w)
    torch.manual_seed(req.seed)
    nets = {k: v.to(ctx.device) for k, v in model.build().items()}
    model.setup(ctx.device)
    label_space = model.inputs("train", "paired").label_space
    train_split = p.config.get("train_split", reg.dataset_info(p.train_dataset)["train_split"])
    n_train = {}

    def make_dataset(stage):
        inp = model.inputs("train", stage.setting)
        ds = open_dataset(p.train_dataset, train_split, stage.setting, inp.fields, model.size_for(stage.setting),
                          inp.label_space,
                          req.manifest if p.train_dataset == p.dataset else None)
        n_train[stage.name] = len(ds)
        return ds

    # ---------------------------------------------------------------- train
    t0 = time.perf_counter()
    # derived training data before the first stage (SAL-VTON: teacher P_o, landmark lookup); no-op by default
    model.prepare(PrepareEnv(p.run_dir, p.train_dataset, train_split,
                             req.manifest if p.train_dataset == p.dataset else None, p.profile, req.seed,
                             req.resume, ctx, log if ctx.main else (lambda s: None)))
    trainer = Trainer(model, nets, p.run_dir, ctx, req.seed, p.config_hash, make_dataset, log=log if ctx.main else
                      (lambda s: None))
    # a model may have placed a finished-stage checkpoint in prepare() (SPG-VTON: a shared stage 1)
    stats = trainer.run(req.resume or bool(getattr(model, "warm_started", False)))
    t_train = time.perf_counter() - t0
    if ctx.main:
        atomic_write_json(p.run_dir / "train_stats.json", [s.as_dict() for s in stats])
    final = p.run_dir / "checkpoints" / "last.pt"
    if model.stages():
        state = ckpt.load(final)
        if not state.get("done") or state.get("config_hash") != p.config_hash:
            raise VtonDataError("training did not finish", file=final, fix="run again with --resume")
        for k, sd in state["nets"].items():
            unwrap(nets[k]).load_state_dict(sd)
        digest = _file_digest(final)
    else:  # nothing to train (the ``real`` pseudo-model): outputs depend on the config only
        digest = f"untrained-{p.config_hash}"
    if req.until == "train":
        return []
    # ---------------------------------------------------------------- infer + score + record per setting
    eval_cfg = p.config.get("eval", {})
    paths: list[Path] = []
    by_setting: dict[str, list[Evaluation]] = {}
    for ev in p.evaluations:
        by_setting.setdefault(ev.setting, []).append(ev)
    for setting, evs in by_setting.items():
        inp = model.inputs("eval", setting)
        ds = open_dataset(p.dataset, req.split, setting, inp.fields, model.size_for(setting), label_space,
                          req.manifest)
        out_dir = p.run_dir / "eval" / f"{p.dataset}-{req.split}-{setting}"
        t1 = time.perf_counter()
        if req.resume and is_done(out_dir, len(ds), digest):
            log(f"infer {setting}: outputs already complete, skipped")
        else:
            run_inference(model, nets, ds, out_dir, ctx, int(eval_cfg.get("batch_size", 8)),
                          int(eval_cfg.get("workers", 0)), digest, p.config.get("train", {}).get("amp", "off"))
        t_infer = time.perf_counter() - t1
        if req.until == "infer":
            continue
        for ev in evs:
            t2 = time.perf_counter()
            results = score(model, ds, out_dir, ev.metrics, ev.preset, ctx, random_w,
                            int(eval_cfg.get("batch_size", 8)), int(eval_cfg.get("workers", 0)))
            t_score = time.perf_counter() - t2
            if not ctx.main:
                continue
            if req.until == "score":
                log(f"scored {setting} / {ev.preset} (not recorded): " + json.dumps(
                    {k: v.get("value", v.get("error")) for k, v in results.items()}))
                continue
            metric_weights = "random" if random_w else "real"
            model_prov = model.provenance()
            all_real = not random_w and all(v.get("weights") != "random" for v in model_prov.values())
            ok, why = rec.comparability(p.profile, eval_info["generated"] or train_info["generated"], all_real,
                                        results)
            for m in ev.metrics:
                if m.get("reported") and metric_key(m) in results:
                    results[metric_key(m)].setdefault("reported_as", m["reported"])
            record = {
                "schema": 1, "cells": ev.cells, "model": req.model, "variant": p.variant, "dataset": p.dataset,
                "split": req.split, "setting": setting, "train_dataset": p.train_dataset, "train_split": train_split,
                "profile": p.profile, "seed": req.seed, "run_name": p.run_name, "run_dir": str(p.run_dir),
                "preset": ev.preset, "metrics": results, "code": rec.code_version(), "config_hash": p.config_hash,
                "config": p.config,
                "data": {**eval_info, "train_manifest_fingerprint": train_info["manifest_fingerprint"],
                         "train_generated": train_info["generated"], "n_train": n_train, "n_eval": len(ds)},
                "weights": {"metrics": metric_weights, "model": model_prov, "all_real": all_real},
                "hardware": rec.hardware(ctx.device, ctx.world),
                "wall_s": {"train": round(t_train, 2), "infer": round(t_infer, 2), "score": round(t_score, 2),
                           "total": round(time.perf_counter() - t_all, 2)},
                "train_stats": [s.as_dict() for s in stats], "comparable": ok, "not_comparable_because": why,
                "outputs": str(out_dir)}
            path = rec.write(record)
            paths.append(path)
            log(f"recorded {setting} / {ev.preset}: " + ", ".join(
                f"{k}={v['value']:.4g}" if "value" in v and v["value"] is not None else f"{k}=error"
                for k, v in results.items()) + f"  ->  {path}")
    barrier(ctx)
    return paths


STAGES = ("train", "infer", "score", "record")


def run_bench(req: Request, ctx: Optional[Context] = None, log: Callable[[str], None] = print) -> list[Path]:
    """The API behind ``vtondata bench --model ...`` (in this process; see :func:`launch_or_run` for ``--gpus``)."""
    if req.until not in STAGES:
        raise VtonDataError(f"unknown stage {req.until!r}", fix=f"use one of {STAGES}")
    ctx = ctx or init(req.device)
    paths: list[Path] = []
    for ds in datasets_for(req):
        paths += execute(plan(req, ds), ctx, log)
    return paths


# ----------------------------------------------------------------------------- tables


def _recorded(p: Plan, results) -> bool:
    """True when every evaluation of the plan has a record for the same code, config, data, profile and seed."""
    if results.empty:
        return False
    info = _manifest_info(p.dataset, p.request.manifest)
    same = results[(results["model"] == p.request.model) & (results["variant"] == p.variant)
                   & (results["dataset"] == p.dataset) & (results["split"] == p.request.split)
                   & (results["profile"] == p.profile) & (results["seed"] == p.request.seed)
                   & (results["config_hash"] == p.config_hash) & (results["source_hash"] == rec.source_hash())
                   & (results["manifest_fingerprint"] == info["manifest_fingerprint"])]
    for ev in p.evaluations:
        got = same[(same["setting"] == ev.setting) & (same["preset"] == ev.preset)]
        for m in ev.metrics:
            if got[got["metric"] == metric_key(m)].empty:
                return False
        for c in ev.cells:
            if got[(got["table"] == c["table"]) & (got["cell"] == c["cell"])].empty:
                return False
    return True


def launch_or_run(req: Request, gpus: int = 1, log: Callable[[str], None] = print) -> list[Path]:
    """``--gpus N > 1`` starts torchrun with N workers (records are written by rank 0); else runs here."""
    if gpus > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        from .dist import launch

        before = set(rec.results_dir().glob("*.json"))
        code = launch(gpus, ["--request", req.to_json()])
        if code != 0:
            raise VtonDataError(f"torchrun exited with code {code}", fix="see the worker output above")
        return sorted(set(rec.results_dir().glob("*.json")) - before)
    return run_bench(req, log=log)


def run_table(table_id: str, *, force: bool = False, profile: Optional[str] = None, seed: int = 0,
              device: Optional[str] = None, gpus: int = 1, overrides: Optional[list[str]] = None,
              resume: bool = False, random_metric_weights: Optional[bool] = None,
              log: Callable[[str], None] = print) -> list[Path]:
    """Run every fillable cell of a table (one run per model/variant/dataset/split), skipping recorded ones."""
    from bench.leaderboard import load_results

    table = reg.get_table(table_id)
    groups: dict[tuple, list[dict]] = {}
    for cell in table["cells"]:
        ok, why = reg.cell_fillable(cell)
        if not ok:
            log(f"skip {cell['id']}: {why}")
            continue
        groups.setdefault((cell["model"], cell["variant"], cell["dataset"], cell["split"]), []).append(cell)
    results = load_results()
    paths: list[Path] = []
    for (model, variant, dataset, split), cells in groups.items():
        req = Request(model=model, variant=variant, dataset=dataset, split=split, profile=profile, seed=seed,
                      device=device, overrides=list(overrides or []), resume=resume,
                      random_metric_weights=random_metric_weights)
        p = plan(req, dataset)
        missing = reg.get_model(model)(p.config).missing_data(p.train_dataset, req.manifest)
        if missing:  # e.g. SAL-VTON without SAL-HG landmarks: the other cells of the table still run
            log(f"skip {model}/{variant} on {dataset}-{split}: {missing}")
            continue
        if not force and _recorded(p, results):
            log(f"skip {model}/{variant} on {dataset}-{split}: already recorded for this code, config and data "
                "(--force to redo)")
            continue
        paths += launch_or_run(req, gpus, log)
    return paths
