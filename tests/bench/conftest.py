"""Shared set-up of the bench end-to-end tests: a generated, prepared dataset under its own data home, the
VTONDATA_HOME / VTONDATA_RESULTS pair, CLI calls that must succeed, the JSON records, one torch thread, and the
test-split batch / trained-checkpoint plumbing of the "training beats initialisation" tests.

The helpers are plain functions, handed to tests and fixtures through the session fixture ``kit`` (with
``--import-mode=importlib`` a test module cannot import this file); ``env`` and ``one_thread`` are fixtures.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch


def prepare_fixture(home: Path, root: Path, dataset: str, *, n: int, size: str, seed: int,
                    layout: str | None = None) -> Path:
    """Generates ``dataset`` at ``root`` (``make_fixture``) and prepares it into ``home/dataset``; the root."""
    from vtondata.fixtures import make_fixture
    from vtondata.prepare import prepare

    kw = {"layout": layout} if layout is not None else {}
    data = make_fixture(dataset, root, n=n, size=size, seed=seed, **kw)
    prepare(dataset, data, out=home / dataset, quiet=True)
    return data


def prepared(tmp_path_factory, tag: str, dataset: str, n: int, size: str, seed: int, layout: str | None = None,
             data_dir: str = "data") -> SimpleNamespace:
    """A fresh ``tag`` folder with the generated ``dataset`` prepared into its ``home``:
    ``SimpleNamespace(base, home, results, data)`` (``results`` not created)."""
    base = tmp_path_factory.mktemp(tag)
    home, results = base / "home", base / "results"
    data = prepare_fixture(home, base / data_dir, dataset, n=n, size=size, seed=seed, layout=layout)
    return SimpleNamespace(base=base, home=home, results=results, data=data)


@contextlib.contextmanager
def bench_env(home: Path, results: Path):
    """VTONDATA_HOME and VTONDATA_RESULTS set for the block (a ``MonkeyPatch`` context, yielded)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VTONDATA_HOME", str(home))
        mp.setenv("VTONDATA_RESULTS", str(results))
        yield mp


@contextlib.contextmanager
def one_thread():
    """torch on one thread for the block (one core: no spinning second thread), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def read_records(results: Path, by: str | None = None, **where) -> list[dict] | dict[str, dict]:
    """The JSON records in ``results`` (sorted by file name) whose fields equal ``where``; keyed by the field
    ``by`` when given."""
    recs = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    recs = [r for r in recs if all(r[k] == v for k, v in where.items())]
    return recs if by is None else {r[by]: r for r in recs}


def cli(args: list[str]):
    """``CliRunner().invoke(cli.app, args)``."""
    from typer.testing import CliRunner

    from cli import app

    return CliRunner().invoke(app, args)


def cli_ok(args: list[str]):
    """``cli(args)``, asserting exit code 0 (the output as the message)."""
    res = cli(args)
    assert res.exit_code == 0, res.output
    return res


def execute_cpu(p, metrics: tuple[str, ...], log=lambda s: None) -> list[Path]:
    """Executes plan ``p`` on the CPU, keeping only its first evaluation and of it only ``metrics``."""
    from bench.harness.dist import Context
    from bench.harness.run import Evaluation, execute

    ev = p.evaluations[0]
    p.evaluations = [Evaluation(ev.setting, ev.preset, [m for m in ev.metrics if m["metric"] in metrics], ev.cells)]
    return execute(p, Context(device=torch.device("cpu")), log=log)


def full_batch(model, dataset: str, split: str, setting: str, purpose: str = "eval") -> dict:
    """Every item of ``dataset``/``split`` in ``model``'s inputs for ``purpose``, collated into one batch."""
    from bench.harness.data import open_dataset

    inp = model.inputs(purpose, setting)
    ds = open_dataset(dataset, split, setting, inp.fields, model.size, inp.label_space)
    return torch.utils.data.default_collate([ds[i] for i in range(len(ds))])


def load_last(nets: dict, run_dir: Path) -> dict:
    """Loads the run's ``checkpoints/last.pt`` into ``nets`` (in place); ``nets``."""
    from bench.harness import checkpoint as ckpt

    for k, sd in ckpt.load(run_dir / "checkpoints" / "last.pt")["nets"].items():
        nets[k].load_state_dict(sd)
    return nets


def warp_l1_and_ssim(model, nets, batch, preset: str) -> tuple[float, float]:
    """Eval mode; L1 of the warped garment against its reference and SSIM (``preset``) of the try-on."""
    from bench.metrics import build_metric

    for n in nets.values():
        n.eval()
    out, ref = model.infer(nets, batch), model.references(batch)
    ssim = build_metric("ssim", preset)
    ssim.update(((out["tryon"] + 1) / 2).clamp(0, 1), (ref["tryon"] + 1) / 2)
    return (out["warped_garment"] - ref["warped_garment"]).abs().mean().item(), ssim.compute()["value"]


def built_model(name: str, variant: str, dataset: str, profile: str = "smoke", seed: int = 0) -> tuple:
    """``(model, nets)``: the registered model at its resolved config, nets built after ``torch.manual_seed(seed)``,
    then the model set up on the CPU."""
    from bench.harness import registry as reg

    model = reg.get_model(name)(reg.resolve_config(name, variant, dataset, profile))
    torch.manual_seed(seed)
    nets = model.build()
    model.setup(torch.device("cpu"))
    return model, nets


def garment_parse_and_pose(size: tuple[int, int], n: int = 2, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeds torch with ``seed``; ``n`` synthetic parsings (upper-clothes 5 over pants 9) and 18 visible
    keypoints inside ``size`` (h, w), the keypoints drawn from torch's RNG."""
    torch.manual_seed(seed)
    h, w = size
    parse = torch.zeros(n, h, w, dtype=torch.long)
    parse[:, 10:50, 10:38] = 5
    parse[:, 50:60, 12:36] = 9
    kp = torch.rand(n, 18, 3) * torch.tensor([w - 4.0, h - 4.0, 0]) + torch.tensor([2.0, 2.0, 1.0])
    return parse, kp


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The helpers above, for test modules (which cannot import a conftest under importlib import mode)."""
    return SimpleNamespace(prepare_fixture=prepare_fixture, prepared=prepared, bench_env=bench_env,
                           one_thread=one_thread, read_records=read_records, cli=cli, cli_ok=cli_ok,
                           execute_cpu=execute_cpu, full_batch=full_batch, load_last=load_last,
                           warp_l1_and_ssim=warp_l1_and_ssim, garment_parse_and_pose=garment_parse_and_pose,
                           built_model=built_model)


@pytest.fixture()
def env(smoke, monkeypatch):
    """The requesting module's ``smoke`` dict, with its "home" / "results" as VTONDATA_HOME / VTONDATA_RESULTS."""
    monkeypatch.setenv("VTONDATA_HOME", str(smoke["home"]))
    monkeypatch.setenv("VTONDATA_RESULTS", str(smoke["results"]))
    return smoke


@pytest.fixture(name="one_thread")
def _one_thread_fixture():
    """torch on one thread for the test (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    with one_thread():
        yield
