"""Under torchrun (2 CPU processes, gloo) FID, KID and SSIM equal the single-process values."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent('''
    import json, sys
    import torch
    import torch.distributed as dist
    from bench.metrics import build_metric
    from tests_data import data, shard

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    d = data()
    fid = build_metric("fid", random_weights=True)
    kid = build_metric("kid", random_weights=True, subsets=10, subset_size=12)
    ssim = build_metric("ssim")
    img_fid = build_metric("fid", random_weights=True, extractor=d["cfg"])
    fid.update_features(shard(d["fp"], rank, world), shard(d["ft"], rank, world))
    kid.update_features(shard(d["fp"], rank, world), shard(d["ft"], rank, world))
    ssim.update(shard(d["ip"], rank, world), shard(d["it"], rank, world))
    img_fid.update(shard(d["ip"], rank, world), shard(d["it"], rank, world))
    lopsided = build_metric("fid", random_weights=True)  # rank 1 never sees a generated image
    lopsided.update_features(d["fp"] if rank == 0 else None, shard(d["ft"], rank, world))
    out = {name: m.compute() for name, m in (("fid", fid), ("kid", kid), ("ssim", ssim), ("img_fid", img_fid),
                                             ("lopsided", lopsided))}
    out["ssim_local_n"] = int(float(ssim.count))  # the local state is untouched by compute()
    if rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(out, f)
    dist.destroy_process_group()
''')

DATA = textwrap.dedent('''
    import torch

    def data():
        g = torch.Generator().manual_seed(0)
        return {
            "fp": torch.rand(23, 16, generator=g) * 2,
            "ft": torch.rand(19, 16, generator=g) * 2 + 0.3,
            "ip": torch.randint(0, 256, (7, 3, 40, 32), generator=g, dtype=torch.uint8),
            "it": torch.randint(0, 256, (7, 3, 40, 32), generator=g, dtype=torch.uint8),
            "cfg": {"network": "pytorch-fid", "resize": "torch-bilinear", "size": 299, "normalize": "2x-1",
                    "dims": 64},
        }

    def shard(x, rank, world):
        # consecutive, uneven shards (rank 0 gets the extra row): gathered rows keep the global order
        n = x.shape[0]
        cut = (n + 1) // 2
        return x[:cut] if rank == 0 else x[cut:]
''')


@pytest.mark.distributed
def test_torchrun_two_cpu_ranks_equal_single_process(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "tests_data.py").write_text(DATA)
    out = tmp_path / "ddp.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), "OMP_NUM_THREADS": "1",
           "FIFTYONE_DO_NOT_TRACK": "true"}
    with socket.socket() as sock:  # a free port, so parallel test runs do not collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
           str(tmp_path / "worker.py"), str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp = json.loads(out.read_text())

    sys.path.insert(0, str(tmp_path))
    try:
        from tests_data import data
    finally:
        sys.path.remove(str(tmp_path))
    from bench.metrics import build_metric

    d = data()
    fid = build_metric("fid", random_weights=True)
    kid = build_metric("kid", random_weights=True, subsets=10, subset_size=12)
    ssim = build_metric("ssim")
    img_fid = build_metric("fid", random_weights=True, extractor=d["cfg"])
    fid.update_features(d["fp"], d["ft"])
    kid.update_features(d["fp"], d["ft"])
    ssim.update(d["ip"], d["it"])
    img_fid.update(d["ip"], d["it"])
    single = {"fid": fid.compute(), "kid": kid.compute(), "ssim": ssim.compute(), "img_fid": img_fid.compute()}

    assert ddp["fid"]["n_pred"] == 23 and ddp["fid"]["n_target"] == 19
    assert ddp["fid"]["value"] == pytest.approx(single["fid"]["value"], abs=1e-9)
    assert ddp["lopsided"]["value"] == pytest.approx(single["fid"]["value"], abs=1e-9)
    assert ddp["kid"]["value"] == pytest.approx(single["kid"]["value"], abs=1e-12)
    assert ddp["kid"]["std"] == pytest.approx(single["kid"]["std"], abs=1e-12)
    assert ddp["ssim"]["n"] == 7 and ddp["ssim"]["value"] == pytest.approx(single["ssim"]["value"], abs=1e-12)
    assert ddp["img_fid"]["value"] == pytest.approx(single["img_fid"]["value"], rel=1e-6)
    assert ddp["img_fid"]["comparable"] is False
    assert ddp["ssim_local_n"] == 4
    assert torch.isfinite(torch.tensor(single["fid"]["value"]))
