"""Result records with provenance: one JSON file per evaluated run, written atomically.

``leaderboards/results/<run-name>__<setting>__<preset>__<UTC stamp>.json`` (directory: ``$VTONDATA_RESULTS``
or the repository's ``leaderboards/results``) holds::

    cells        the table cells this result fills ([{"table", "cell"}])
    model, variant, dataset, split, setting, train_split, profile, seed, run_name, run_dir
    metrics      {metric: {value, std, preset, preset_fingerprint, comparable, display_scale, params, ...}}
    preset       the metric preset (never compared across presets)
    code         {git_commit, git_dirty, source_hash}
    config_hash, config
    data         {manifest_fingerprint, generated, n_train, n_eval, root}
    weights      {metrics: real|random, model: {...}, all_real}
    hardware     {device, gpus, world_size, torch, cuda, cpu, cpu_count, platform}
    wall_s       {train, infer, score, total}; train_stats per stage (samples/s, data-wait share)
    comparable   False when the profile is smoke, the data generated or any weights random; reasons listed
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import torch

from vtondata.manifest import atomic_write_json

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("bench", "vtondata")


def results_dir() -> Path:
    return Path(os.environ.get("VTONDATA_RESULTS") or REPO / "leaderboards" / "results")


def reported_dir() -> Path:
    return Path(os.environ.get("VTONDATA_REPORTED") or REPO / "leaderboards" / "reported")


def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 (16 hex) over the package sources (.py, .json): identifies the code with or without git."""
    h = hashlib.sha256()
    files = []
    for d in SOURCE_DIRS:
        root = REPO / d
        files += [p for p in root.rglob("*") if p.suffix in (".py", ".json") and "__pycache__" not in p.parts]
    cli = REPO / "cli.py"
    if cli.exists():
        files.append(cli)
    for p in sorted(files):
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def code_version() -> dict:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None,
            "source_hash": source_hash()}


def hardware(device: torch.device, world: int) -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw = {"device": device.type, "world_size": world, "torch": torch.__version__, "cuda": torch.version.cuda,
          "cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if device.type == "cuda":
        hw["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return hw


def comparability(profile: str, generated: bool, weights_all_real: bool, metrics: dict) -> tuple[bool, list[str]]:
    why = []
    if profile != "full":
        why.append(f"profile {profile}")
    if generated:
        why.append("generated data")
    if not weights_all_real:
        why.append("random weights")
    if any(not m.get("comparable", False) for m in metrics.values()):
        why.append("a metric is not comparable (random weights or error)")
    return not why, why


def write(record: dict[str, Any], directory: Optional[Path] = None) -> Path:
    """Write one record atomically; returns its path."""
    d = Path(directory) if directory is not None else results_dir()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{record['run_name']}__{record['setting']}__{record['preset']}__{stamp}.json"
    path = d / name
    record = dict(record, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    atomic_write_json(path, record)
    return path
