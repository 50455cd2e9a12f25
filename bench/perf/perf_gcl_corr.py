"""3D-GCL global correspondence (Eq. 1) at 256x192 and 512x384: time and peak memory of the dense N x N matrix
(baseline, ``softmax(θᵀφ/τ)`` then ``o @ G``) against :func:`global_warp_chunked` (target rows in chunks: memory
``N x chunk`` instead of ``N x N``), measured in the same run; plus stage-1 training samples/s of the full-width
correspondence network at 256x192. Memory on CPU: the dominant float32 allocations counted analytically (logits
and softmax, ``2·B·rows·N·4`` bytes; rows = N dense, chunk chunked); on CUDA (when visible) the measured
``torch.cuda.max_memory_allocated`` above the inputs. Both implementations are checked equal first."""

from __future__ import annotations

import time

import torch


def _timed(fn, device, reps: int = 3):
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = None
    return (time.perf_counter() - t0) / reps, peak


def _corr(size, device, batch: int, chunk: int):
    from bench.models.blocks import gcl_corr as C

    h, w = size[0] // 8, size[1] // 8
    g = torch.Generator(device="cpu").manual_seed(0)
    theta = C.pono_c(torch.randn(batch, 32, h, w, generator=g)).to(device)
    phi = C.pono_c(torch.randn(batch, 32, h, w, generator=g)).to(device)
    values = torch.randn(batch, 3, h, w, generator=g).to(device)
    n = h * w

    def dense():
        o = C.correspondence(theta, phi, 0.01)
        return C.apply_correspondence(o, values), o.argmax(-1)

    def chunked():
        return C.global_warp_chunked(theta, phi, values, 0.01, chunk)

    with torch.no_grad():
        (a, ia), (b, ib) = dense(), chunked()
        assert torch.allclose(a, b, atol=1e-4) and torch.equal(ia, ib)
        t_d, m_d = _timed(dense, device)
        t_c, m_c = _timed(chunked, device)
    if m_d is None:  # CPU: the dominant allocations (logits + softmax), by construction
        m_d, m_c = 2 * batch * n * n * 4, 2 * batch * min(chunk, n) * n * 4
    return n, t_d, m_d, t_c, m_c


def _stage1_rate(device, steps: int = 3, batch: int = 2) -> float:
    from bench.models.gcl3d import Correspondence

    torch.manual_seed(0)
    net = Correspondence(6, 3).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    src, tgt = torch.randn(batch, 6, 256, 192, device=device), torch.randn(batch, 3, 256, 192, device=device)
    g, m = torch.rand(batch, 3, 256, 192, device=device), torch.ones(batch, 1, 256, 192, device=device)

    def step():
        out = net(src, tgt, g, m)
        loss = sum(y.mean() for y in out["warped"])
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = 8 if device.type == "cuda" else 1
    print(f"device {device}, batch {batch}, tau 0.01, 32-channel PONO-c features at H/8")
    for size, chunk in (((256, 192), 256), ((512, 384), 512)):
        n, t_d, m_d, t_c, m_c = _corr(size, device, batch, chunk)
        print(f"{size[0]}x{size[1]} (N = {n}): dense {t_d * 1e3:.1f} ms, {m_d / 2**20:.1f} MiB; "
              f"chunked({chunk}) {t_c * 1e3:.1f} ms, {m_c / 2**20:.1f} MiB; "
              f"memory ratio dense/chunked {m_d / max(m_c, 1):.2f}x, time ratio {t_c / t_d:.2f}x")
    rate = _stage1_rate(device)
    print(f"stage-1 correspondence training at 256x192 (paper widths): {rate:.2f} samples/s on {device}")


if __name__ == "__main__":
    main()
