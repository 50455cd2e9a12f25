"""Checkpoints: written atomically (temporary file + ``os.replace``), read with ``torch.load(weights_only=True)``.

A training checkpoint is a plain dict of tensors, numbers and strings::

    {"format": 1, "stage": "gmm", "stage_index": 0, "step": 1200, "done": False, "config_hash": "...",
     "nets": {name: state_dict}, "optim": optimizer.state_dict(), "scaler": {...} | None,
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...]}}

``<run>/checkpoints/last.pt`` is the newest state (every ``checkpoint_every`` steps and at each stage end);
``<run>/checkpoints/<stage>.pt`` is kept at the end of each stage (the weights inference uses).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional

import torch

from vtondata.manifest import atomic_write_bytes
from vtondata.errors import VtonDataError

FORMAT = 1


def save(path: Path, state: dict[str, Any]) -> None:
    """Serialise to memory, then write atomically (temporary sibling + rename, as manifests are written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(dict(state, format=FORMAT), buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code runs)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise VtonDataError("checkpoint not found", file=path, fix="train first (drop --resume)") from None
    except Exception as exc:
        raise VtonDataError(f"unreadable checkpoint ({type(exc).__name__}: {exc})", file=path,
                            fix="delete it and train again") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise VtonDataError("not a vtondata bench checkpoint", file=path, fix="delete it and train again")
    return state


def rng_state() -> dict[str, Any]:
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: Optional[dict[str, Any]]) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
