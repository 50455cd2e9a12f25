"""STRAT vertices for a loader batch: ``init_vertex`` / ``final_vertex`` / homography from the manifest's
``strat_params`` table, rescaled to the frame the loader returns.

The loader yields images only; the accessory model needs the four source vertices (input of the homography)
and, for training and scoring, the ground-truth target vertices. :class:`StratVertices` reads the table once
(``open_manifest("strat", manifest_dir)``; ``None`` = the prepared dataset in ``$VTONDATA_HOME``) and maps
``batch["tuple_id"]`` to tensors. ``init_vertex`` lives in the foreground's native frame and ``final_vertex`` in
the background's; both are scaled to ``size = (H, W)`` by ``W / w_native`` and ``H / h_native`` (the loader's
resize of the images). The ground-truth homography in that frame is ``S_bg @ H_native @ S_fg^-1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from vtondata.errors import VtonDataError


class StratVertices:
    def __init__(self, manifest_dir: Optional[Path] = None):
        self.manifest_dir = manifest_dir
        self._rows: Optional[dict] = None

    def _load(self) -> dict:
        if self._rows is None:
            from vtondata.manifest import open_manifest

            m = open_manifest("strat", Path(self.manifest_dir) if self.manifest_dir else None)
            if not m.has_table("strat_params"):
                raise VtonDataError("the STRAT manifest has no strat_params table", file=m.dir,
                                    fix="prepare STRAT again with this version (`vtondata prepare strat --root ...`)")
            p = m.table("strat_params")
            a = m.assets
            hw = {s: (int(h), int(w)) for s, h, w in zip(a["sample_id"], a["height"], a["width"])
                  if h == h and w == w and h and w}
            t = m.tuples.set_index("tuple_id")
            rows = {}
            for tid, init, final, hom in zip(p["tuple_id"], p["init_vertex"], p["final_vertex"], p["homography"]):
                if tid not in t.index:
                    continue
                fg_hw = hw.get(t.at[tid, "foreground"])
                bg_hw = hw.get(t.at[tid, "background"])
                rows[tid] = (np.asarray(init, np.float64).reshape(4, 2), np.asarray(final, np.float64).reshape(4, 2),
                             np.asarray(hom, np.float64).reshape(3, 3), fg_hw, bg_hw or fg_hw)
            self._rows = rows
        return self._rows

    def _get(self, tuple_ids: Sequence[str]):
        rows = self._load()
        missing = [t for t in tuple_ids if t not in rows]
        if missing:
            raise VtonDataError(f"{len(missing)} tuple(s) lack STRAT vertices, e.g. {missing[0]!r}",
                                fix="pass the manifest the loader reads (StratVertices(manifest_dir))")
        return [rows[t] for t in tuple_ids]

    @staticmethod
    def _scale(hw_native, size) -> np.ndarray:
        if hw_native is None:
            return np.ones(2)
        return np.array([size[1] / hw_native[1], size[0] / hw_native[0]], np.float64)

    def vertices(self, batch: Mapping, size, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(init ``N x 4 x 2``, final ``N x 4 x 2``) float32 in pixels of the ``size`` frame."""
        init, final = [], []
        for i, f, _, fg_hw, bg_hw in self._get(list(batch["tuple_id"])):
            init.append(i * self._scale(fg_hw, size))
            final.append(f * self._scale(bg_hw, size))
        return (torch.as_tensor(np.stack(init), dtype=torch.float32, device=device),
                torch.as_tensor(np.stack(final), dtype=torch.float32, device=device))

    def homographies(self, batch: Mapping, size, device=None) -> torch.Tensor:
        """Ground-truth homographies ``N x 3 x 3`` (float64) in the ``size`` frame."""
        out = []
        for _, _, h, fg_hw, bg_hw in self._get(list(batch["tuple_id"])):
            sf, sb = np.diag([*self._scale(fg_hw, size), 1.0]), np.diag([*self._scale(bg_hw, size), 1.0])
            m = sb @ h @ np.linalg.inv(sf)
            out.append(m / m[2, 2])
        return torch.as_tensor(np.stack(out), dtype=torch.float64, device=device)

    def train_mean_final(self, size, split: str = "train", subset: Optional[str] = None) -> torch.Tensor:
        """Mean target vertices ``4 x 2`` over a split (and subset) of the table, in the ``size`` frame."""
        rows = self._load()
        sel = [r for t, r in rows.items() if t.split("/")[0] == split and (subset is None or t.split("/")[1] == subset)]
        if not sel:
            raise VtonDataError(f"no STRAT tuples in split {split!r} subset {subset!r}",
                                fix="prepare the STRAT sub-dataset (`vtondata prepare strat --root DIR`) with that split")
        return torch.as_tensor(np.mean([r[1] * self._scale(r[4], size) for r in sel], 0), dtype=torch.float32)
