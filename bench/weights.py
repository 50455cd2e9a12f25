"""Pretrained weights of the learned metrics and of the models' fixed networks (the accessory model's ResNet-18,
the VGG19 of the perceptual losses, SPG-VTON's SphereFace): where the reference packages cache them, status,
fetch.

Files live exactly where the reference packages put them, so a cache filled by pytorch-fid,
torchvision or lpips on a connected machine is used as is:

* ``torch.hub.get_dir()/checkpoints/`` (``$TORCH_HOME/hub/checkpoints``, default
  ``~/.cache/torch/hub/checkpoints``) for pytorch-fid's Inception and torchvision backbones,
  the cache of ``torch.hub.load_state_dict_from_url``;
* ``tempfile.gettempdir()`` for clean-fid's TorchScript Inception (clean-fid's own location);
* the installed ``lpips`` wheel for the LPIPS linear heads (shipped with the package).

Verification: torch hub file names end in ``-<first 8 hex of the SHA-256>``; the file's SHA-256 is
checked against that prefix (``check_hash`` convention). Files without a published hash are
size-checked only where a size is known. ``resolve`` raises ``WeightsMissingError`` naming the
file, the directory to put it in and the download URL. ``fetch`` (on a connected machine) uses
the reference packages' own download paths.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from vtondata.errors import UnknownNameError, WeightsMissingError

_HASH_RE = re.compile(r"-([a-f0-9]*)\.")


@dataclass(frozen=True)
class WeightFile:
    key: str
    filename: str
    url: str
    location: str  # "hub" | "tmp" | "lpips"
    used_by: str
    fetch_via: str
    size: Optional[int] = None

    @property
    def sha256_prefix(self) -> Optional[str]:
        if self.location != "hub":
            return None
        m = _HASH_RE.search(self.filename)
        return m.group(1) if m and m.group(1) else None


_TV = "https://download.pytorch.org/models/"
WEIGHTS: Dict[str, WeightFile] = {w.key: w for w in (
    WeightFile("fid-inception", "pt_inception-2015-12-05-6726825d.pth",
               "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               "pt_inception-2015-12-05-6726825d.pth", "hub",
               "FID / KID / IS (TF Inception ported by pytorch-fid; presets pytorch-fid, hr-viton)",
               "pytorch_fid.inception.fid_inception_v3()"),
    WeightFile("fid-inception-torchscript", "inception-2015-12-05.pt",
               "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
               "tmp", "FID / KID (clean-fid's TorchScript Inception; preset clean)",
               "urllib download into tempfile.gettempdir(), as cleanfid.downloads_helper does"),
    WeightFile("inception-v3-torchvision", "inception_v3_google-0cc3c7bd.pth", _TV + "inception_v3_google-0cc3c7bd.pth",
               "hub", "IS with torchvision's Inception (preset hr-viton)",
               "torchvision Inception_V3_Weights.IMAGENET1K_V1.get_state_dict()"),
    WeightFile("alexnet", "alexnet-owt-7be5be79.pth", _TV + "alexnet-owt-7be5be79.pth", "hub",
               "LPIPS alex trunk", "torchvision AlexNet_Weights.IMAGENET1K_V1.get_state_dict()"),
    WeightFile("vgg16", "vgg16-397923af.pth", _TV + "vgg16-397923af.pth", "hub",
               "LPIPS vgg trunk", "torchvision VGG16_Weights.IMAGENET1K_V1.get_state_dict()"),
    WeightFile("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth", _TV + "squeezenet1_1-b8a52dc0.pth", "hub",
               "LPIPS squeeze trunk", "torchvision SqueezeNet1_1_Weights.IMAGENET1K_V1.get_state_dict()"),
    WeightFile("resnet18", "resnet18-f37072fd.pth", _TV + "resnet18-f37072fd.pth", "hub",
               "accessory model (seed 004): encoders E_b / E_f",
               "torchvision ResNet18_Weights.IMAGENET1K_V1.get_state_dict()"),
    WeightFile("vgg19", "vgg19-dcbb9e9d.pth", _TV + "vgg19-dcbb9e9d.pth", "hub",
               "perceptual / feature-matching losses (VGG19 relu1_1..relu5_1, pix2pixHD weights): SAL-VTON, PF-AFN, "
               "StyleFlow, CP-VTON, 3D-GCL, SPG-VTON, Tree-Block training",
               "torchvision VGG19_Weights.IMAGENET1K_V1.get_state_dict()"),
    WeightFile("sphereface", "sphere20a_20171020.pth",
               "(no direct download: clcarwin/sphereface_pytorch model/sphere20a_20171020.7z, extract the .pth)",
               "hub", "SPG-VTON identity loss (SphereFace sphere20a on 112x96 face crops)",
               "extract the .pth from the 7z archive of clcarwin/sphereface_pytorch by hand"),
    WeightFile("lpips-lin-alex", "alex.pth", "(shipped in the lpips 0.1.4 wheel: lpips/weights/v0.1/alex.pth)",
               "lpips", "LPIPS alex linear heads v0.1", "pip install lpips==0.1.4", 6009),
    WeightFile("lpips-lin-vgg", "vgg.pth", "(shipped in the lpips 0.1.4 wheel: lpips/weights/v0.1/vgg.pth)",
               "lpips", "LPIPS vgg linear heads v0.1", "pip install lpips==0.1.4", 7289),
    WeightFile("lpips-lin-squeeze", "squeeze.pth",
               "(shipped in the lpips 0.1.4 wheel: lpips/weights/v0.1/squeeze.pth)",
               "lpips", "LPIPS squeeze linear heads v0.1", "pip install lpips==0.1.4", 10811),
)}

LPIPS_TRUNK = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


def _entry(key: str) -> WeightFile:
    if key not in WEIGHTS:
        raise UnknownNameError(f"unknown weights {key!r}; known: {', '.join(sorted(WEIGHTS))}")
    return WEIGHTS[key]


def cache_dir(key: str) -> Path:
    """The directory the reference package reads / writes this file in."""
    w = _entry(key)
    if w.location == "hub":
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    if w.location == "tmp":
        return Path(tempfile.gettempdir())
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return Path("<lpips not installed>")
    return Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1"


def cache_path(key: str) -> Path:
    return cache_dir(key) / _entry(key).filename


_VERIFIED: Dict[tuple, bool] = {}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(key: str, path: Path) -> bool:
    """True when the file matches the hash prefix (or the known size); memoised per (path, mtime)."""
    w = _entry(key)
    st = path.stat()
    memo = (str(path), st.st_mtime_ns, st.st_size, key)
    if memo not in _VERIFIED:
        if w.sha256_prefix:
            ok = sha256(path).startswith(w.sha256_prefix)
        elif w.size is not None:
            ok = st.st_size == w.size
        else:
            ok = st.st_size > 0
        _VERIFIED[memo] = ok
    return _VERIFIED[memo]


def resolve(key: str, path: Optional[os.PathLike] = None, check: bool = True,
            otherwise: str = "pass --weights PATH; tests may use --random-weights") -> Path:
    """The verified local file of ``key`` (an explicit ``path`` wins over the cache); ``otherwise``: the caller's
    alternatives (explicit file, random-init switch), named in the error."""
    w = _entry(key)
    p = Path(path).expanduser() if path else cache_path(key)
    if not p.is_file():
        fix = (f"on a connected machine run `vtondata weights fetch {key}` (or download {w.url}) and copy the "
               f"file to {cache_dir(key)}/, or {otherwise} (results are then marked not comparable)")
        raise WeightsMissingError(f"{w.filename} ({w.used_by}) is not present", file=p, fix=fix)
    if check and not verify(key, p):
        what = f"SHA-256 prefix {w.sha256_prefix}" if w.sha256_prefix else f"size {w.size}"
        raise WeightsMissingError(f"{p.name} does not match the expected {what} of {w.filename}", file=p,
                                  fix=f"delete it and download {w.url} again")
    return p


def status(keys: Optional[Sequence[str]] = None) -> List[dict]:
    """One row per weights file: key, file, path, present, verified, used_by, url."""
    rows = []
    for key in keys or list(WEIGHTS):
        w = _entry(key)
        p = cache_path(key)
        present = p.is_file()
        rows.append({"key": key, "file": w.filename, "path": str(p), "present": present,
                     "verified": bool(present and verify(key, p)), "used_by": w.used_by, "url": w.url,
                     "sha256_prefix": w.sha256_prefix, "fetch_via": w.fetch_via})
    return rows


def print_status(as_json: bool = False) -> List[dict]:
    """Print the status table (or JSON) and return the rows."""
    rows = status()
    if as_json:
        print(json.dumps(rows, indent=2))
        return rows
    from rich.console import Console
    from rich.table import Table

    table = Table(title="pretrained weights (metrics, model backbones)")
    for col in ("key", "state", "file", "used by"):
        table.add_column(col)
    for r in rows:
        state = "[green]ok[/]" if r["verified"] else ("[red]hash mismatch[/]" if r["present"] else "[yellow]missing[/]")
        table.add_row(r["key"], state, r["file"], r["used_by"])
    console = Console()
    console.print(table)
    for d in sorted({str(Path(r["path"]).parent) for r in rows}):
        keys = ", ".join(r["key"] for r in rows if str(Path(r["path"]).parent) == d)
        console.print(f"directory {d}: {keys}", soft_wrap=True)
    missing = [r for r in rows if not r["verified"]]
    if missing:
        console.print("missing files download from (or run `vtondata weights fetch` on a connected machine):")
        for r in missing:
            console.print(f"  {r['key']}: {r['url']}", soft_wrap=True)
    return rows


def _fetch_one(key: str) -> Path:
    w = _entry(key)
    if key == "fid-inception":
        from pytorch_fid.inception import fid_inception_v3

        fid_inception_v3()
    elif key == "fid-inception-torchscript":
        import shutil
        import urllib.request

        dest = cache_path(key)
        tmp = dest.with_name(dest.name + ".part")
        with urllib.request.urlopen(w.url) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
        os.replace(tmp, dest)
    elif w.location == "hub":
        from torchvision import models

        enum = {"inception-v3-torchvision": models.Inception_V3_Weights, "alexnet": models.AlexNet_Weights,
                "vgg16": models.VGG16_Weights, "squeezenet1_1": models.SqueezeNet1_1_Weights,
                "resnet18": models.ResNet18_Weights, "vgg19": models.VGG19_Weights}[key]
        enum.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    return resolve(key)


def fetch(keys: Optional[Sequence[str]] = None) -> List[Path]:
    """Download missing files through the reference packages (needs network); returns their paths."""
    out = []
    for key in keys or list(WEIGHTS):
        w = _entry(key)
        p = cache_path(key)
        if p.is_file() and verify(key, p):
            print(f"{key}: present ({p})")
            out.append(p)
            continue
        if w.location == "lpips":
            raise WeightsMissingError(f"{w.filename} belongs to the lpips wheel and is missing", file=p,
                                      fix="reinstall with `pip install --force-reinstall lpips==0.1.4`")
        if not w.url.startswith("http"):
            raise WeightsMissingError(f"{w.filename} has no direct download", file=p,
                                      fix=f"{w.fetch_via}; copy it to {cache_dir(key)}/")
        print(f"{key}: downloading {w.url}")
        try:
            out.append(_fetch_one(key))
        except OSError as exc:
            raise WeightsMissingError(f"download of {w.filename} failed: {exc}", file=p,
                                      fix=f"download {w.url} on a connected machine and copy it to {cache_dir(key)}/"
                                      ) from exc
    return out
