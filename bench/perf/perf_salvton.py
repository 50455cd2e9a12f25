"""SAL-VTON speed on CPU (and the GPU when one is present).

1. Forward + backward time per batch of 8 at 256x192 for each training stage with the paper's widths
   (HRNet-W48 cascade, FPN 64-256 + global/local flow, LASNL generator ngf 64 + multiscale D), random
   inputs and random landmarks, VGG random-init (speed only). On CUDA also samples/s per stage.
2. The local-flow core (crop 32 patch pairs per sample, correlation, correlation-weighted garment positions,
   sampling, Eq. 4 blend) batched over all patches of all samples, against a naive per-(sample, landmark)
   Python loop doing the same operations, same inputs, in the same run; outputs compared; at 64x48 (13x11
   windows) and 256x192 (51x39 windows). Target: >= 5x. At 256x192 each patch's correlation holds
   1989^2 = 4M entries, so both versions are bound by the same matmul + softmax arithmetic on CPU and the
   ratio there is about 1x; the batching pays where the per-patch Python overhead dominates (small windows)
   and on the GPU (fused attention).

``VTONDATA_PERF_QUICK=1``: batch 2 for the stage timings.
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F


def _batch(n, h, w, k=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, k, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    return {"person": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
            "garment": torch.rand(n, 3, h, w, generator=g) * 2 - 1,
            "garment_mask": torch.ones(n, 1, h, w),
            "xy": xy, "attr": torch.full((n, k), 2, dtype=torch.long)}


def stage_times(n: int, device: torch.device) -> None:
    from bench.harness import registry as reg
    from bench.models.blocks.vgg import VGGLoss

    cfg = reg.resolve_config("salvton", "full", "viton", "full", ["vgg.weights=random"])
    model = reg.get_model("salvton")(cfg)
    torch.manual_seed(0)
    nets = {k: v.to(device).train() for k, v in model.build().items()}
    model.vgg = VGGLoss(weights="random").to(device)
    h, w = model.size
    b = {k: v.to(device) for k, v in _batch(n, h, w).items()}
    lm = {"xy_g": b["xy"], "attr_g": torch.ones_like(b["attr"]), "xy_p": b["xy"] + 3, "attr_p": b["attr"]}

    def landmark():
        hg, ag = nets["lm_garment"](b["garment"])
        hp, ap = nets["lm_person"](torch.cat([b["person"], b["garment"], F.interpolate(torch.sigmoid(hg), size=(h, w))], 1))
        return hg.mean() + hp.mean() + ag.mean() + ap.mean()

    def warp():
        out = model.warp(nets, b["garment"], b["person"], lm)["low"]
        return out["W_f"].mean() + out["W_l"].mean() + model.vgg(out["W_f"], b["person"])

    def gen():
        with torch.no_grad():
            warps = model.warp(nets, b["garment"], b["person"], lm)
        fake = model.generate(nets, b["person"], warps, lm)
        cond = model.code_maps(lm["xy_p"], lm["attr_p"], "person", (h, w))
        return nets["disc"](torch.cat([cond, fake], 1))[0][-1].mean() + model.vgg(fake, b["person"])

    print(f"stage forward+backward, batch {n} at {h}x{w}, paper widths, {device}")
    for name, fn in (("landmark", landmark), ("warp", warp), ("gen", gen)):
        fn().backward()  # warm-up
        reps = 2
        t0 = time.perf_counter()
        for _ in range(reps):
            fn().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / reps
        print(f"  {name:9s} {dt:8.3f} s / batch   {n / dt:8.2f} samples/s")


def naive_local(lf, fp, fg, xy_g, xy_p, valid, garment, mg, mp, logit_l):
    """Per-(sample, landmark) loop of the same computation as :class:`LocalFlow` (given features, boxes and
    attention logits): one crop, one correlation, one sampling and one slice-blend per patch."""
    from bench.models.blocks.sal_flow import pixel_to_norm

    n, _, h, w = garment.shape
    k, wh, ww = lf.k, lf.win_h, lf.win_w
    tau = lf.log_tau.exp()
    member = torch.zeros(n, k, h, w)
    vals_all = {}
    for a in range(n):
        for j in range(k):
            cp = torch.round(xy_p[a, j])
            pos_p = cp + lf.offsets
            pos_g = xy_g[a, j] + lf.offsets
            gp = pixel_to_norm(pos_p, h, w).view(1, wh, ww, 2)
            gg = pixel_to_norm(pos_g, h, w).view(1, wh, ww, 2)
            q = F.grid_sample(fp[a:a + 1], gp, align_corners=False).view(fp.shape[1], -1).t() * mp[a, j, :, None]
            kk = F.grid_sample(fg[a:a + 1], gg, align_corners=False).view(fg.shape[1], -1).t() * mg[a, j, :, None]
            att = (q @ kk.t() * tau + torch.log(mg[a, j] + 1e-6)[None]).softmax(-1)
            coords = att @ pos_g
            v = F.grid_sample(garment[a:a + 1], pixel_to_norm(coords, h, w).view(1, wh, ww, 2),
                              padding_mode="border", align_corners=False)[0]
            x0, y0 = int(cp[0]) - (ww - 1) // 2, int(cp[1]) - (wh - 1) // 2
            ys, xs = slice(max(0, y0), min(h, y0 + wh)), slice(max(0, x0), min(w, x0 + ww))
            cy, cx = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
            if valid[a, j] and ys.stop > ys.start and xs.stop > xs.start:
                member[a, j, ys, xs] = mp[a, j].view(wh, ww)[cy, cx]
                vals_all[a, j] = (ys, xs, v[:, cy, cx])
    wts = torch.softmax(logit_l.view(n, k, h, w) + torch.log(member + 1e-6), 1) * (member > 1e-3)
    covered = member.amax(1, keepdim=True).clamp(max=1)
    out = torch.zeros(n, 3, h, w)
    for (a, j), (ys, xs, v) in vals_all.items():
        out[a, :, ys, xs] += wts[a, j, ys, xs] * v
    return out * covered + (1 - covered)


def local_flow_speed(h: int = 256, w: int = 192) -> None:
    from bench.models.blocks.sal_flow import LocalFlow

    n, k, c = 8, 32, 16
    torch.manual_seed(0)
    lf = LocalFlow((h, w), k, 256, 3, 32, c, chunk=32).eval()
    b = _batch(n, h, w)
    xy_g, xy_p, valid, garment = b["xy"], (b["xy"] + 4).clamp(0, w - 1), torch.ones(n, k, dtype=torch.bool), b["garment"]
    fp, fg = torch.randn(n, c, h, w), torch.randn(n, c, h, w)
    sizes = torch.rand(n, k, 4) * torch.tensor([w / 5, h / 5, w / 5, h / 5])
    mg, mp = lf.box(sizes, 0, n), lf.box(sizes, 1, n)
    logit_l = torch.randn(n, k, h * w)

    def batched():
        cp = torch.round(xy_p)
        pos_p = cp[:, :, None, :] + lf.offsets
        inb = (pos_p[..., 0] >= 0) & (pos_p[..., 0] <= w - 1) & (pos_p[..., 1] >= 0) & (pos_p[..., 1] <= h - 1)
        use = inb & valid[:, :, None]
        qp, kg = lf._crop(fp, cp) * mp[..., None], lf._crop(fg, xy_g) * mg[..., None]
        pos_g = xy_g[:, :, None, :] + lf.offsets
        from bench.models.blocks.sal_flow import correlate, pixel_to_norm

        coords = correlate(qp * lf.log_tau.exp(), kg, pos_g, torch.log(mg + 1e-6)[:, :, None, :])

        vals = F.grid_sample(garment, pixel_to_norm(coords, h, w).view(n, k * lf.win_h, lf.win_w, 2),
                             padding_mode="border", align_corners=False).view(n, 3, k, -1)
        hw = h * w
        idx = torch.where(inb, pos_p[..., 1] * w + pos_p[..., 0], torch.full_like(pos_p[..., 0], hw)).long()
        member = torch.zeros(n, k, hw + 1).scatter(2, idx, mp * use)[..., :hw]
        wts = torch.softmax(logit_l + torch.log(member + 1e-6), 1) * (member > 1e-3)
        covered = member.amax(1, keepdim=True).clamp(max=1).view(n, 1, h, w)
        contrib = torch.gather(F.pad(wts, (0, 1)), 2, idx) * use
        blend = torch.zeros(n, 3, hw + 1).scatter_add(2, idx.view(n, 1, -1).expand(-1, 3, -1),
                                                      (vals * contrib[:, None]).reshape(n, 3, -1))
        return blend[..., :hw].view(n, 3, h, w) * covered + (1 - covered)

    with torch.no_grad():
        batched()
        t0 = time.perf_counter()
        fast = batched()
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        slow = naive_local(lf, fp, fg, xy_g, xy_p, valid, garment, mg, mp, logit_l)
        t_slow = time.perf_counter() - t0
    err = float((fast - slow).abs().max())
    assert float((fast != 1).float().mean()) > 0.1, "degenerate benchmark: W_l is blank"
    print(f"local flow core, batch {n} x {k} patches ({lf.win_h}x{lf.win_w}) at {h}x{w}: batched {t_fast:.3f} s, "
          f"per-landmark loop {t_slow:.3f} s, ratio {t_slow / t_fast:.1f}x (target >= 5x), max |diff| {err:.2e}")


def main() -> None:
    quick = os.environ.get("VTONDATA_PERF_QUICK") == "1"
    local_flow_speed(64, 48)
    local_flow_speed(256, 192)
    stage_times(2 if quick else 8, torch.device("cpu"))
    if torch.cuda.is_available():
        stage_times(8, torch.device("cuda"))


if __name__ == "__main__":
    main()
