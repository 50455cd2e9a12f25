"""mIoU, IoU, Disp, the registry, presets, weights status and folder scoring (CLI included)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from bench.metrics import available, build_metric, canonical, landmarks_evaluator
from bench.metrics.disp import displacement, warp_mask, warp_points
from bench.metrics.iou import mask_iou
from bench.metrics.miou import MIoU
from bench.metrics.presets import fingerprint, list_presets, load_preset
from vtondata.errors import MetricInputError, UnknownNameError, VtonDataError

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata"
MPV_PARSE = REAL / "mpv" / "detail_carving_sample" / "parse_cihp"
VITON_IMAGES = REAL / "viton" / "cpvtonplus_sample" / "test" / "image"


def _real_parses():
    if not MPV_PARSE.is_dir():
        pytest.skip(f"real parses not found at {MPV_PARSE}")
    files = sorted(p for p in MPV_PARSE.glob("*.png") if not p.stem.endswith("_vis"))
    return [np.asarray(Image.open(p), dtype=np.int64) for p in files]


def test_miou_dataset_and_per_image_averaging_on_real_cihp_parses():
    parses = _real_parses()
    classes = [5, 6, 7, 9, 10, 12]
    gt = np.stack(parses)
    pred = np.roll(gt, 3, axis=2)  # a garment warped 3 px off
    pred[0][pred[0] == 5] = 0  # and one image missing its upper clothes
    m = MIoU(classes=classes)
    m.update(torch.from_numpy(pred[:2, None]), torch.from_numpy(gt[:2, None]))
    m.update(torch.from_numpy(pred[2:, None]), torch.from_numpy(gt[2:, None]))
    res = m.compute()
    inter = {c: sum(((p == c) & (g == c)).sum() for p, g in zip(pred, gt)) for c in classes}
    union = {c: sum(((p == c) | (g == c)).sum() for p, g in zip(pred, gt)) for c in classes}
    present = [c for c in classes if union[c] > 0]
    assert present, "the real parses hold garment labels"
    assert res["value"] == pytest.approx(np.mean([inter[c] / union[c] for c in present]), abs=1e-12)
    per = build_metric("miou", averaging="per-image")
    per.update(torch.from_numpy(pred), torch.from_numpy(gt))
    ref = []
    for p, g in zip(pred, gt):
        ious = [((p == c) & (g == c)).sum() / ((p == c) | (g == c)).sum() for c in classes if ((p == c) | (g == c)).any()]
        if ious:
            ref.append(np.mean(ious))
    assert per.compute()["value"] == pytest.approx(np.mean(ref), abs=1e-12)
    assert per.compute()["value"] != pytest.approx(res["value"], abs=1e-6)
    assert "UNVERIFIED" in res["params"]["definition"] and build_metric("miou").display_scale == 100


def test_iou_of_masks_and_empty_pairs():
    a = torch.zeros(3, 1, 10, 10)
    b = torch.zeros(3, 1, 10, 10)
    a[0, :, :5] = 1
    b[0, :, :, :5] = 1
    a[1, :, 2:4, 2:4] = 1
    b[1, :, 2:4, 2:4] = 1
    v = mask_iou(a, b)
    assert v.tolist() == pytest.approx([25 / 75, 1.0, 1.0])


def test_disp_normalised_by_image_size_and_homography_helpers():
    size = (224, 224)
    init = torch.tensor([[[50.0, 60.0], [150.0, 60.0], [150.0, 120.0], [50.0, 120.0]]])
    shift = torch.tensor([[[1.0, 0, 11.2], [0, 1.0, 0], [0, 0, 1.0]]])
    gt = warp_points(torch.eye(3)[None], init, size)
    pred = warp_points(shift, init, size)
    assert torch.allclose(pred - gt, torch.tensor([11.2, 0.0]).expand(1, 4, 2).double(), atol=1e-6)
    assert float(displacement(pred, gt, size)) == pytest.approx(11.2 / 224, rel=1e-6)
    assert float(displacement(pred, gt, size, norm="diag")) == pytest.approx(11.2 / (224 * 2 ** 0.5), rel=1e-6)
    clipped = warp_points(torch.tensor([[[1.0, 0, 500.0], [0, 1.0, 0], [0, 0, 1.0]]]), init, size)
    assert float(clipped[..., 0].max()) == 223  # clipped like STRAT's composite_by_opencv.py
    m = build_metric("disp")
    m.update(pred, gt, size=size)
    assert m.compute()["value"] == pytest.approx(0.05, rel=1e-6)
    alpha = torch.zeros(1, 1, 32, 32)
    alpha[..., 8:16, 8:16] = 1
    moved = warp_mask(torch.tensor([[[1.0, 0, 4], [0, 1.0, 2], [0, 0, 1.0]]]), alpha)
    assert torch.equal(moved[0, 0, 10:18, 12:20] > 0.5, torch.ones(8, 8, dtype=torch.bool))
    assert float(mask_iou(moved, alpha)) == pytest.approx(24 / 104)


def test_registry_refuses_unknown_names_and_parameters():
    assert canonical("mask-SSIM") == "mask_ssim"
    assert {"psnr", "ssim", "lpips", "fid", "kid", "is", "mask_is", "miou", "iou", "disp", "lssim",
            "landmarks"} <= set(available())
    with pytest.raises(UnknownNameError, match="did you mean 'ssim'"):
        canonical("ssmi")
    with pytest.raises(UnknownNameError, match="unknown parameter"):
        build_metric("ssim", windw="gaussian")
    with pytest.raises(UnknownNameError, match="hook"):
        build_metric("landmarks")
    assert landmarks_evaluator().__name__ == "evaluate_files"


def test_presets_are_data_and_fingerprinted():
    assert {"pytorch-fid", "hr-viton", "clean"} <= set(list_presets())
    fid, hr, clean = load_preset("pytorch-fid"), load_preset("hr-viton"), load_preset("clean")
    assert fid["default"] is True and load_preset(None)["name"] == "pytorch-fid"
    assert hr["metrics"]["ssim"]["color"] == "gray-pil" and hr["metrics"]["lpips"]["resize"] == [128, 128]
    assert clean["extractors"]["clean-inception"]["resize"] == "pil-bicubic-float"
    assert len({fingerprint(fid), fingerprint(hr), fingerprint(clean)}) == 3
    with pytest.raises(UnknownNameError, match="pytorch-fid"):
        load_preset("pytorch_fid_typo")
    for name in ("pytorch-fid", "hr-viton", "clean"):
        for metric in available():
            if metric != "landmarks":
                assert build_metric(metric, name, random_weights=True).preset == name


def test_custom_preset_file_is_validated(tmp_path):
    bad = load_preset("pytorch-fid")
    bad["metrics"]["fid"]["extractor"] = "nope"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(VtonDataError, match="undefined extractor"):
        load_preset(str(tmp_path / "bad.json"))


def test_weights_status_lists_every_file_with_its_location(tmp_path, monkeypatch):
    from bench.weights import status

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    rows = {r["key"]: r for r in status()}
    assert rows["fid-inception"]["file"] == "pt_inception-2015-12-05-6726825d.pth"
    assert rows["fid-inception"]["path"].startswith(str(tmp_path / "hub" / "checkpoints"))
    assert rows["fid-inception"]["present"] is False and rows["fid-inception"]["sha256_prefix"] == "6726825d"
    assert rows["lpips-lin-alex"]["verified"] is True  # shipped in the lpips wheel
    assert "github.com/mseitzer/pytorch-fid" in rows["fid-inception"]["url"]


def _folders(tmp_path, n=4):
    if not VITON_IMAGES.is_dir():
        pytest.skip(f"real images not found at {VITON_IMAGES}")
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(parents=True)
    gt.mkdir(parents=True)
    for p in sorted(VITON_IMAGES.glob("*.jpg"))[:n]:
        shutil.copy(p, gt / p.name)
        Image.open(p).filter(ImageFilter.GaussianBlur(1.5)).save(pred / f"{p.stem}.png")
    return pred, gt


def test_score_folders_matches_module_api_and_records_provenance(tmp_path):
    from bench.metrics.ssim import ssim
    from bench.score import score_folders

    pred, gt = _folders(tmp_path)
    rec = score_folders(pred, gt, "hr-viton", ["psnr", "ssim"], batch_size=3, progress=False)
    p = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB"))).permute(2, 0, 1)
                     for f in sorted(pred.iterdir())])
    g = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB"))).permute(2, 0, 1)
                     for f in sorted(gt.iterdir())])
    assert rec["metrics"]["ssim"]["value"] == pytest.approx(float(ssim(p, g, color="gray-pil").mean()), abs=1e-9)
    assert rec["preset"] == "hr-viton" and rec["preset_fingerprint"] == fingerprint(load_preset("hr-viton"))
    assert rec["n_pairs"] == 4 and rec["comparable"] is True and rec["installed_versions"]["lpips"] == "0.1.4"


def test_score_refuses_unmatched_names_listing_them(tmp_path):
    from bench.score import score_folders

    pred, gt = _folders(tmp_path, 3)
    next(iter(sorted(pred.iterdir()))).rename(pred / "stray_name.png")
    with pytest.raises(MetricInputError) as err:
        score_folders(pred, gt, metrics=["ssim"], progress=False)
    assert "stray_name" in str(err.value) and "only in --gt" in str(err.value)


def test_score_resizes_gt_per_preset_and_refuses_otherwise(tmp_path):
    from bench.score import score_folders

    pred, gt = _folders(tmp_path, 2)
    for f in pred.iterdir():
        Image.open(f).resize((96, 128), Image.BILINEAR).save(f)
    rec = score_folders(pred, gt, "hr-viton", ["ssim"], progress=False)
    assert rec["metrics"]["ssim"]["n"] == 2
    with pytest.raises(MetricInputError, match="gt_resize"):
        score_folders(pred, gt, "pytorch-fid", ["ssim"], progress=False)


def test_score_unpaired_distribution_metrics_and_masks(tmp_path):
    from bench.score import score_folders

    pred, gt = _folders(tmp_path, 4)
    (pred / sorted(p.name for p in pred.iterdir())[0]).unlink()  # sets of different sizes: fine unpaired
    cfg = {"network": "pytorch-fid", "resize": "torch-bilinear", "size": 299, "normalize": "2x-1", "dims": 64}
    preset = load_preset("pytorch-fid")
    preset["extractors"]["tf-inception"] = cfg
    path = tmp_path / "small.json"
    path.write_text(json.dumps({**preset, "name": "small-test"}))
    rec = score_folders(pred, gt, str(path), ["fid", "kid"], random_weights=True, progress=False)
    assert rec["paired"] is False and rec["metrics"]["fid"]["n_pred"] == 3 and rec["metrics"]["fid"]["n_target"] == 4
    assert rec["comparable"] is False and all(r["comparable"] is False for r in rec["metrics"].values())
    masks = tmp_path / "masks"
    masks.mkdir()
    for f in gt.iterdir():
        m = np.zeros((256, 192), np.uint8)
        m[40:200, 50:150] = 255
        Image.fromarray(m).save(masks / f"{f.stem}.png")
    with pytest.raises(MetricInputError, match="--mask"):
        score_folders(pred, gt, metrics=["mask_ssim"], progress=False)
    full_pred, gt2 = _folders(tmp_path / "again", 4)
    rec = score_folders(full_pred, gt2, metrics=["mask_ssim", "lssim"], mask_dir=masks, progress=False)
    assert rec["metrics"]["mask_ssim"]["n"] == 4 and rec["metrics"]["lssim"]["n"] == 4


def test_cli_score_and_weights(tmp_path):
    from typer.testing import CliRunner

    import cli

    pred, gt = _folders(tmp_path, 2)
    out = tmp_path / "score.json"
    r = CliRunner().invoke(cli.app, ["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "psnr,ssim",
                                     "--preset", "clean", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rec = json.loads(out.read_text())
    assert rec["preset"] == "clean" and set(rec["metrics"]) == {"psnr", "ssim"}
    r = CliRunner().invoke(cli.app, ["score", "--pred", str(pred), "--gt", str(gt), "--metrics", "fid",
                                     "--preset", "nope"])
    assert r.exit_code == 2 and "unknown preset" in r.output
    r = CliRunner().invoke(cli.app, ["weights", "status", "--json"], env={"TORCH_HOME": str(tmp_path / "th")})
    assert r.exit_code == 0
    rows = json.loads(r.output)
    assert any(row["key"] == "alexnet" and row["present"] is False for row in rows)
