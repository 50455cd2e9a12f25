"""SMPL flow: the z-buffer rasterizer, flow from meshes and from IUV against the analytic flow of the mesh fixture."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from vtondata.caches.raster import interpolate, rasterize
from vtondata.caches.smpl_flow import flow_from_iuv, flow_from_meshes
from vtondata.fixtures.mesh import render, true_flow, two_poses

H, W = 256, 192


@pytest.fixture(scope="module")
def poses():
    a, b = two_poses(H, W)
    return a, b, render(a, H, W), render(b, H, W)


def test_rasterizer_barycentric_identity_and_coverage(poses):
    a, _, ra, _ = poses
    v, f = torch.tensor(a.vertices), torch.tensor(a.faces)
    face, bary, depth = rasterize(v, f, H, W)
    cov = face >= 0
    # interpolating the vertex positions gives back each covered pixel's own coordinates
    xy = interpolate(v[:, :2], f, face, bary)
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    assert torch.allclose(xy[cov][:, 0], xx[cov].float(), atol=1e-3)
    assert torch.allclose(xy[cov][:, 1], yy[cov].float(), atol=1e-3)
    assert (bary[cov] >= -1e-5).all() and torch.allclose(bary[cov].sum(-1), torch.ones(int(cov.sum())))
    assert torch.isinf(depth[~cov]).all() and (face[~cov] == -1).all()
    # coverage agrees with scikit-image filling every projected triangle (pixel-centre test)
    from skimage.draw import polygon

    ref = np.zeros((H, W), bool)
    for tri in a.vertices[a.faces][:, :, :2]:
        rr, cc = polygon(tri[:, 1], tri[:, 0], shape=(H, W))
        ref[rr, cc] = True
    ours = cov.numpy()
    assert (ref & ours).sum() / (ref | ours).sum() > 0.98


def test_rasterizer_depth_order_and_batch():
    # two overlapping triangles: the nearer one (smaller z) wins where they overlap, whatever the face order
    v = torch.tensor([[2, 2, 5.0], [30, 2, 5.0], [2, 30, 5.0], [10, 10, 1.0], [40, 10, 1.0], [10, 40, 1.0]])
    for faces in (torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.tensor([[3, 4, 5], [0, 1, 2]])):
        face, _, depth = rasterize(v, faces, 48, 48)
        near = int((faces == 3).any(1).nonzero()[0])
        assert int(face[12, 12]) == near and float(depth[12, 12]) == pytest.approx(1.0)
        assert int(face[3, 3]) == 1 - near and float(depth[3, 3]) == pytest.approx(5.0)
    # a batch gives the same as one at a time
    vb = torch.stack([v, v + torch.tensor([5.0, 3.0, 0.0])])
    fb, bb, _ = rasterize(vb, faces, 48, 48)
    f1, b1, _ = rasterize(vb[1], faces, 48, 48)
    assert torch.equal(fb[1], f1) and torch.allclose(bb[1], b1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_rasterizer_cuda_matches_cpu(poses):
    a, b, _, _ = poses
    v, f = torch.tensor(a.vertices), torch.tensor(a.faces)
    fc, bc, _ = rasterize(v, f, H, W)
    fg, bg, _ = rasterize(v.cuda(), f.cuda(), H, W)
    assert (fg.cpu() == fc).float().mean() > 0.999
    same = fg.cpu() == fc
    assert torch.allclose(bg.cpu()[same], bc[same], atol=1e-4)


def test_mesh_flow_equals_true_flow_and_visibility(poses):
    a, b, ra, rb = poses
    flow, mask = flow_from_meshes(torch.tensor(a.vertices), torch.tensor(b.vertices), torch.tensor(a.faces), H, W)
    flow, mask = flow.numpy(), mask.numpy()
    truth = true_flow(a, b, rb["I"])
    fg = rb["I"] > 0
    assert not (mask & ~fg).any() and mask.sum() > 0.95 * fg.sum()
    err = np.linalg.norm(flow - truth, axis=0)
    assert err[mask].max() < 1e-3
    # the torso seen in pose B behind the forearm of pose A: every such pixel is marked not visible
    q = np.stack(np.mgrid[0:H, 0:W][::-1]).astype(np.float64) + truth
    x0, y0 = np.floor(q[0]).astype(int), np.floor(q[1]).astype(int)
    occluded = np.ones((H, W), bool)
    for dy in (0, 1):
        for dx in (0, 1):
            part = ra["I"][np.clip(y0 + dy, 0, H - 1), np.clip(x0 + dx, 0, W - 1)]
            occluded &= (part != rb["I"]) & (part > 0)
    torso_hidden = fg & occluded & (rb["I"] == 2)
    assert torso_hidden.sum() > 50
    assert (~mask[torso_hidden]).mean() > 0.97


def test_iuv_flow_close_to_true_flow(poses):
    a, b, ra, rb = poses
    flow, mask = flow_from_iuv(ra["I"], ra["U"], ra["V"], rb["I"], rb["U"], rb["V"])
    truth = true_flow(a, b, rb["I"])
    m = mask.astype(bool)
    fg = rb["I"] > 0
    assert m.sum() > 0.9 * fg.sum() and not (m & ~fg).any()
    err = np.linalg.norm(flow - truth, axis=0)[m]
    assert np.median(err) < 0.5 and np.percentile(err, 95) < 1.5
    # quantised to 8 bits as in the files: still within about a pixel
    q = lambda x: np.floor(x * 255) / 255  # noqa: E731
    f8, m8 = flow_from_iuv(ra["I"], q(ra["U"]), q(ra["V"]), rb["I"], q(rb["U"]), q(rb["V"]))
    e8 = np.linalg.norm(f8 - truth, axis=0)[m8.astype(bool)]
    assert np.median(e8) < 1.0 and m8.sum() > 0.9 * fg.sum()


def _mini_triplets(tmp_path, poses, with_iuv: bool):
    """A two-triplet dataset (person A <-> B) with rendered images, meshes and (optionally) pws IUV files."""
    from vtondata import schema
    from vtondata.manifest import open_manifest, write_manifest

    a, b, ra, rb = poses
    root = tmp_path / "root"
    (root / "img").mkdir(parents=True)
    (tmp_path / "meshes").mkdir()
    assets, samples = [], []
    for name, mesh, r in (("A", a, ra), ("B", b, rb)):
        Image.fromarray(r["image"]).save(root / "img" / f"{name}.png")
        np.savez(tmp_path / "meshes" / f"{name}.npz", vertices=mesh.vertices, faces=mesh.faces)
        sid = f"train/person/{name}"
        samples.append({"sample_id": sid, "dataset": "deepfashion", "split": "train", "kind": "person", "name": name})
        files = [("person", f"img/{name}.png", None)]
        if with_iuv:
            from vtondata.densepose import write_iuv

            write_iuv(root / "img" / f"{name}_iuv.png", r["I"], r["U"], r["V"], encoding="pws_iuv")
            files.append(("densepose", f"img/{name}_iuv.png", "pws_iuv"))
        for role, path, enc in files:
            data = (root / path).read_bytes()
            assets.append({"asset_id": f"train/{role}/{name}", "dataset": "deepfashion", "split": "train",
                           "role": role, "sample_id": sid, "path": path, "width": W, "height": H, "format": "PNG",
                           "mode": "RGB", "bytes": len(data), "encoding": enc,
                           "hash": hashlib.blake2b(data, digest_size=16).hexdigest()})
    tuples = [{"tuple_id": f"train/multi-pose/{s}__{t}", "dataset": "deepfashion", "split": "train",
               "kind": "triplet", "setting": "multi-pose", "person": f"train/person/{s}",
               "target_person": f"train/person/{t}"} for s, t in (("A", "B"), ("B", "A"))]
    tables = {"assets": schema.to_table(assets, schema.ASSETS), "samples": schema.to_table(samples, schema.SAMPLES),
              "tuples": schema.to_table(tuples, schema.TUPLES), "findings": schema.FINDINGS.empty_table()}
    write_manifest(tmp_path / "out", tables, {"dataset": "deepfashion", "root": str(root), "fingerprint": "x"})
    return open_manifest(manifest_dir=tmp_path / "out" / "manifest")


def test_smpl_flow_producer_mesh_and_loader(tmp_path, poses):
    import vtondata
    from vtondata.caches import store

    a, b, ra, rb = poses
    man = _mini_triplets(tmp_path, poses, with_iuv=False)
    assert "needs --param meshes" in store.build(man, "smpl-flow", {"source": "mesh"}, quiet=True).skipped
    assert "no DensePose" in store.build(man, "smpl-flow", quiet=True).skipped
    r = store.build(man, "smpl-flow", {"source": "mesh", "meshes": str(tmp_path / "meshes")}, quiet=True)
    assert r.keys == 2 and r.complete
    rd = store.open_reader(man, "smpl-flow")
    flow, mask = rd.get("train/multi-pose/A__B", "flow"), rd.get("train/multi-pose/A__B", "mask")
    truth = true_flow(a, b, rb["I"])
    assert flow.shape == (2, H, W) and mask.dtype == bool
    assert np.abs(flow - truth)[:, mask].max() < 1e-3
    ds = vtondata.load(None, "train", "multi-pose", manifest=man.dir,
                       fields=["person", "target_person", "smpl_flow", "smpl_flow_mask"], size="128x96")
    x = ds[0]
    assert x["smpl_flow"].shape == (2, 128, 96) and x["smpl_flow_mask"].shape == (1, 128, 96)
    assert x["target_person"].shape == (3, 128, 96) and x["target_person_id"] == "train/person/B"
    # flow vectors are rescaled with the frame
    np.testing.assert_allclose(x["smpl_flow"][0, 60, 40].item(), flow[0, 120, 80] * 0.5, atol=1e-5)


def test_smpl_flow_producer_iuv(tmp_path, poses):
    pytest.importorskip("vtondata.densepose", reason="vtondata.densepose (DeepFashion helper) not present")
    from vtondata.caches import store

    a, b, ra, rb = poses
    man = _mini_triplets(tmp_path, poses, with_iuv=True)
    r = store.build(man, "smpl-flow", quiet=True)
    assert r.keys == 2
    rd = store.open_reader(man, "smpl-flow")
    m = rd.get("train/multi-pose/A__B", "mask")
    err = np.linalg.norm(rd.get("train/multi-pose/A__B", "flow") - true_flow(a, b, rb["I"]), axis=0)[m]
    assert np.median(err) < 1.0 and m.sum() > 0.85 * (rb["I"] > 0).sum()
