"""Heatmaps, SAL-VTON Eq. (9) hard masks, code maps, flips and the side-by-side drawing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from annotate.landmarks import synth
from annotate.landmarks.definition import load_definition
from annotate.landmarks.draw import draw_pair, save_png
from annotate.landmarks.render import (default_radius, gaussian_heatmaps, gaussian_heatmaps_loop, hard_landmark_masks,
                                       landmark_union_mask, square_code_maps, table_points)
from annotate.landmarks.table import flip_horizontal, normalise


def _points(n=3, k=32, seed=0, size=(256, 192)):
    rng = np.random.default_rng(seed)
    xy = rng.uniform([0, 0], [size[1], size[0]], (n, k, 2))
    xy[0, 3] = np.nan
    valid = rng.random((n, k)) > 0.2
    return xy, valid


@pytest.mark.parametrize("stride,truncate", [(1, None), (4, 3.0), (8, None)])
def test_heatmaps_match_the_per_point_loop(stride, truncate):
    xy, valid = _points()
    fast = gaussian_heatmaps(xy, valid, size=(256, 192), stride=stride, sigma=2.0, truncate=truncate)
    slow = gaussian_heatmaps_loop(xy, valid, size=(256, 192), stride=stride, sigma=2.0, truncate=truncate)
    assert fast.shape == (3, 32, 256 // stride, 192 // stride) and fast.dtype == torch.float32
    np.testing.assert_allclose(fast.numpy(), slow, atol=1e-5)  # float32 vs float64
    assert float(fast[0, 3].abs().max()) == 0.0                      # NaN point: empty map
    assert float(fast[~torch.as_tensor(valid)].abs().max()) == 0.0    # invalid points: empty maps


def test_heatmap_peak_is_at_the_landmark():
    xy = np.array([[[40.0, 100.0], [12.0, 8.0]]])
    hm = gaussian_heatmaps(xy, size=(256, 192), stride=4, sigma=2.0)
    for k, (x, y) in enumerate(xy[0]):
        i, j = np.unravel_index(int(hm[0, k].argmax()), hm.shape[2:])
        assert (j, i) == (round(x / 4), round(y / 4)) and float(hm[0, k].max()) == pytest.approx(1.0)


def test_hard_masks_are_discs_and_their_union():
    xy = np.array([[[50.0, 60.0], [52.0, 61.0], [np.nan, np.nan]]])
    m = hard_landmark_masks(xy, size=(128, 96), radius=5)
    assert set(torch.unique(m).tolist()) == {0.0, 1.0}
    yy, xx = np.mgrid[0:128, 0:96]
    disc = ((xx - 50) ** 2 + (yy - 60) ** 2) <= 25
    assert np.array_equal(m[0, 0].numpy().astype(bool), disc)
    assert int(m[0, 0].sum()) == 81 and float(m[0, 2].sum()) == 0.0
    u = landmark_union_mask(xy, size=(128, 96), radius=5)
    assert u.shape == (1, 1, 128, 96) and torch.equal(u[0, 0], torch.maximum(m[0, 0], m[0, 1]))
    # Eq. (9): the masked L1 only sees pixels near the ground-truth person landmarks
    w_l, w_gt = torch.zeros(1, 3, 128, 96), torch.ones(1, 3, 128, 96)
    loss = ((w_l - w_gt).abs() * u).sum()
    assert float(loss) == pytest.approx(3 * float(u.sum()))
    assert default_radius(256) == 5 and default_radius(1024) == 20


def test_square_code_maps_follow_the_modelscope_layout():
    xy = np.array([[[20.0, 30.0], [70.0, 90.0]]])
    codes = np.array([[1.0, 0.0]])
    m = square_code_maps(xy, codes, np.array([[True, True]]), size=(128, 96), half_size=3)
    assert float(m[0, 0, 30, 20]) == 1.0 and float(m[0, 1, 90, 70]) == 0.0
    assert float(m[0, 0, 0, 0]) == -1.0
    assert int((m[0, 0] == 1).sum()) == 49                              # 7 x 7 square


def test_flip_swaps_partners_and_is_an_involution():
    t = normalise(synth.make_table(2, seed=4))
    f = flip_horizontal(t)
    d = load_definition()
    a = t.set_index(["image", "side", "point"])
    b = f.set_index(["image", "side", "point"])
    img = t.image.iloc[0]
    for k in (7, 9, 27, 29, 1):
        pk = int(d.flip[k])
        assert b.loc[(img, "garment", pk), "x"] == pytest.approx(192 - a.loc[(img, "garment", k), "x"], abs=1e-4, nan_ok=True)
        assert b.loc[(img, "garment", pk), "attribute"] == a.loc[(img, "garment", k), "attribute"]
    back = flip_horizontal(f)
    pd.testing.assert_frame_equal(back[["image", "side", "point", "attribute"]], t[["image", "side", "point", "attribute"]])
    np.testing.assert_allclose(back.x.to_numpy(), t.x.to_numpy(), atol=1e-4)


def test_table_points_orders_records():
    t = synth.make_table(3, seed=1)
    imgs, xy, attr = table_points(t, "person", images=["test/image/00002_00.jpg", "test/image/00000_00.jpg"])
    assert xy.shape == (2, 32, 2)
    rec = normalise(t)
    rec = rec[(rec.image == "test/image/00002_00.jpg") & (rec.side == "person")]
    np.testing.assert_allclose(xy[0], rec[["x", "y"]].to_numpy(), equal_nan=True)


def test_draw_pair_writes_a_png(tmp_path):
    d = load_definition()
    gxy = d.template * [150, 220] + [20, 20]
    pxy = d.template * [100, 150] + [40, 60]
    ga = np.ones(32, int)
    pa = np.full(32, 2)
    pa[31], pa[28], pa[30] = 1, 0, 0                                    # 31 occluded, its skeleton neighbours absent
    img = draw_pair(gxy, ga, pxy, pa, garment_size=(192, 256), person_size=(192, 256), gap=16, numbers=False, radius=3)
    assert img.size == (192 + 16 + 192, 256)
    x, y = pxy[29]
    assert img.getpixel((int(round(x + 192 + 16)), int(round(y)))) == tuple(d.colors[29])   # visible: filled dot
    x, y = pxy[31]
    assert img.getpixel((int(round(x + 208)), int(round(y)))) != tuple(d.colors[31])        # occluded: hollow
    assert img.getpixel((int(round(x + 208 + 3)), int(round(y)))) == tuple(d.colors[31])    # ... its ring
    x, y = gxy[0]
    assert img.getpixel((int(round(x)), int(round(y)))) == tuple(d.colors[0])                # garment side
    path = save_png(img, tmp_path / "pair.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == img.size
