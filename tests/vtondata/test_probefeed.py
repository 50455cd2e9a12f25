"""The streamed probe's per-file columns: size groups (any number of them) and the size check built on them."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vtondata.findings import Report
from vtondata.probe import AssetSpec
from vtondata.probefeed import ProbeFeed
from vtondata.validate import _check_sizes


class _Ing:
    native_size = None


def test_hundreds_of_size_groups_and_the_odd_size_out(tmp_path):
    """STRAT declares one size group per accessory tuple: a feed takes thousands of groups (not 255), and each
    group's odd-sized file is named while other groups' own sizes are fine."""
    for w in (16, 24):
        Image.new("RGB", (w, 16)).save(tmp_path / f"w{w}.png")
    specs = []
    for g in range(300):  # two files per group; group g is 24 px wide when g % 3 == 0, and group 7 has one of each
        for k in range(2):
            w = 24 if g % 3 == 0 or (g == 7 and k == 1) else 16
            specs.append(AssetSpec(f"train/fg/{g}_{k}", "train", "foreground", f"train/fg/{g}", f"w{w}.png",
                                   size_group=f"tuple-{g}"))
    feed = ProbeFeed(tmp_path, "strat", tmp_path / "spool.arrow", workers=1)
    feed.extend(specs)
    feed.finish()
    assert len(feed.group_names) == 300 and int(feed.size_groups.max()) == 300
    assert feed.sizes.tolist()[:2] == [[24, 16], [24, 16]]
    report = Report()
    _check_sizes(_Ing(), feed, feed.sizes, report)
    wrong = [f for f in report.fails if f.code == "wrong-size"]
    assert len(wrong) == 1 and wrong[0].file == "w24.png" and "tuple-7 size is 16x16" in wrong[0].message
    assert set(wrong[0].drops) == {"train/fg/7_1", "train/fg/7"}
