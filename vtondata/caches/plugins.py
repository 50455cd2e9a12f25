"""External parsers and DensePose runs as cache plugins (``--plugin SPEC``).

vtondata ships no parsing or DensePose network: you run yours (SCHP, Graphonomy, CIHP_PGN, detectron2
DensePose ...) through a plugin and the cache records its name and the hash of its weights, so the inputs are
reproducible and traceable. Three ways to name a plugin:

``package.module:attr``
    A Python object, or a zero-argument factory returning one, with::

        name: str                      # e.g. "schp-lip"
        task: str                      # "parse" or "densepose"
        label_space: str               # parse plugins: the space of the returned ids (e.g. "lip20")
        weights: str | None            # checkpoint file; hashed into the cache fingerprint
        def __call__(self, images):    # list of H x W x 3 uint8 RGB arrays ->
            ...                        #   parse: list of H x W uint8 ids; densepose: list of (I, U, V)
                                       #   or H x W x 3 uint8 arrays with R = I, G = U*255, B = V*255

``NAME``
    An entry point of group ``vtondata.plugins`` (declared in the plugin package's ``pyproject.toml``:
    ``[project.entry-points."vtondata.plugins"] schp = "my_pkg.schp:make"``).

``cmd:TEMPLATE``
    A shell command run once per batch: ``{input}`` is a directory of ``000000.png ...`` RGB images and the
    command writes ``{output}/000000.png ...`` (parse: ids as mode L or P; densepose: R = I, G = U*255,
    B = V*255). Append ``#task=densepose`` / ``#label_space=lip20`` to say what it returns (default parse,
    cihp20). Its weights hash covers every existing file named in the command (script and checkpoint).
"""

from __future__ import annotations

import hashlib
import importlib
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..errors import UnknownNameError, VtonDataError, WeightsMissingError

GROUP = "vtondata.plugins"


def file_hash(path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class Plugin:
    """A loaded plugin: ``name``, ``task``, ``label_space``, ``weights_hash()``, ``run(images)``."""

    def __init__(self, spec: str, obj=None, command: Optional[str] = None, name: Optional[str] = None,
                 task: str = "parse", label_space: Optional[str] = None, weights: Optional[str] = None):
        self.spec, self.obj, self.command = spec, obj, command
        self.name = name or getattr(obj, "name", None) or spec
        self.task = getattr(obj, "task", task) if obj is not None else task
        self.label_space = getattr(obj, "label_space", label_space) if obj is not None else label_space
        self.weights = getattr(obj, "weights", weights) if obj is not None else weights
        if self.task not in ("parse", "densepose"):
            raise VtonDataError(f"plugin {self.name}: task must be 'parse' or 'densepose', not {self.task!r}")

    def weights_hash(self) -> Optional[str]:
        if self.command is not None:
            files = [t for t in shlex.split(self.command) if "{" not in t and Path(t).is_file()]
            if not files:
                return None
            h = hashlib.blake2b(digest_size=16)
            for f in sorted(files):
                h.update(f"{Path(f).name}:{file_hash(f)}\n".encode())
            return h.hexdigest()
        if not self.weights:
            return None
        p = Path(self.weights).expanduser()
        if not p.is_file():
            raise WeightsMissingError(f"plugin {self.name}: weights file not found", file=p,
                                      fix="download the checkpoint yourself and point the plugin's `weights` at it")
        return file_hash(p)

    def run(self, images: list[np.ndarray]) -> list:
        if self.command is None:
            out = list(self.obj(images))
        else:
            out = self._run_command(images)
        if len(out) != len(images):
            raise VtonDataError(f"plugin {self.name} returned {len(out)} results for {len(images)} images")
        return out

    def _run_command(self, images: list[np.ndarray]) -> list:
        with tempfile.TemporaryDirectory(prefix="vtondata-plugin-") as tmp:
            src, dst = Path(tmp) / "input", Path(tmp) / "output"
            src.mkdir()
            dst.mkdir()
            for j, im in enumerate(images):
                Image.fromarray(im).save(src / f"{j:06d}.png")
            cmd = self.command.format(input=shlex.quote(str(src)), output=shlex.quote(str(dst)))
            proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
            if proc.returncode != 0:
                raise VtonDataError(f"plugin command failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}",
                                    fix=f"run it by hand: {cmd}")
            out = []
            for j in range(len(images)):
                p = dst / f"{j:06d}.png"
                if not p.exists():
                    raise VtonDataError(f"plugin command wrote no {p.name}", file=p,
                                        fix="write {output}/<same name as the input>.png for every input")
                with Image.open(p) as im:
                    out.append(np.asarray(im.convert("RGB")) if self.task == "densepose"
                               else np.asarray(im if im.mode in ("L", "P") else im.convert("L")))
            return out


def load_plugin(spec: str) -> Plugin:
    """Load a plugin from ``module:attr``, an entry point name, or ``cmd:TEMPLATE`` (see module docstring)."""
    if spec.startswith("cmd:"):
        body, _, opts = spec[4:].partition("#")
        kw = dict(o.split("=", 1) for o in opts.split(",") if "=" in o)
        first = shlex.split(body)[0] if body.strip() else "cmd"
        return Plugin(spec, command=body.strip(), name=f"cmd:{Path(first).name}", task=kw.get("task", "parse"),
                      label_space=kw.get("label_space", "cihp20"))
    if ":" in spec:
        mod, _, attr = spec.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as exc:
            raise UnknownNameError(f"cannot import plugin {spec!r} ({exc})",
                                   fix="give package.module:attr importable from this Python") from None
    else:
        from importlib.metadata import entry_points

        eps = [e for e in entry_points(group=GROUP) if e.name == spec]
        if not eps:
            raise UnknownNameError(f"no plugin named {spec!r} (entry point group {GROUP})",
                                   fix="install the plugin package, or pass package.module:attr or cmd:TEMPLATE")
        obj = eps[0].load()
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "task")):
        obj = obj()
    return Plugin(spec, obj=obj)
