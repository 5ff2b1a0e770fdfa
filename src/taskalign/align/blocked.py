"""Kernel sums in tiles, for samples whose kernel matrix does not fit in memory.

The MMD² estimators only need six sums of kernel entries (see `estimators.py`), so the kernel
matrix never has to exist: it is visited in square tiles of at most `max_kernel_entries`
entries, one tile buffer reused throughout, each tile summed in float64 and dropped. The
self-similarity blocks K_xx and K_yy are symmetric, so only tiles on and above the diagonal are
computed (off-diagonal tiles count twice). Time is O((m + n)² d / 2); memory is the inputs plus
one tile (plus row-chunk temporaries of about 2²¹ entries).

At N = 100,000 pooled float32 rows of d = 768 the inputs take 0.3 GB (0.6 GB with their centred
copies) and the default 2²⁸-entry tile 1 GiB: the statistic fits in a few GB (bench/mmd.py
measures it). Lower `max_kernel_entries` to trade speed for memory.
"""
from __future__ import annotations

import math

import torch

from taskalign.align.estimators import KernelSums, sum64
from taskalign.align.kernels import Kernel

DEFAULT_MAX_KERNEL_ENTRIES = 1 << 28  # 268M entries: 1 GiB in float32, 2 GiB in float64


def tile_size(max_kernel_entries: int) -> int:
    """Side of the square tile that holds at most `max_kernel_entries` entries."""
    if max_kernel_entries < 1:
        raise ValueError(f"max_kernel_entries must be >= 1, got {max_kernel_entries}")
    return max(1, math.isqrt(max_kernel_entries))


def _tile(buffer: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    return buffer[: rows * cols].view(rows, cols)


def self_sum_blocked(x: torch.Tensor, kernel: Kernel, tile: int, buffer: torch.Tensor) -> tuple[float, float]:
    """(n, d) -> (Σ_{i,j} k(x_i, x_j), Σ_i k(x_i, x_i)) over upper-triangular tiles, float64."""
    n = x.shape[0]
    total, trace = 0.0, 0.0
    for i in range(0, n, tile):
        a = x[i:i + tile]
        block = kernel(a, None, out=_tile(buffer, a.shape[0], a.shape[0]))
        total += sum64(block)
        trace += sum64(torch.diagonal(block))
        for j in range(i + tile, n, tile):
            b = x[j:j + tile]
            block = kernel(a, b, out=_tile(buffer, a.shape[0], b.shape[0]))
            total += 2.0 * sum64(block)
    return total, trace


def cross_sum_blocked(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, tile: int, buffer: torch.Tensor) -> float:
    """(m, d), (n, d) -> Σ_{i,j} k(x_i, y_j) over tiles, float64."""
    total = 0.0
    for i in range(0, x.shape[0], tile):
        a = x[i:i + tile]
        for j in range(0, y.shape[0], tile):
            b = y[j:j + tile]
            total += sum64(kernel(a, b, out=_tile(buffer, a.shape[0], b.shape[0])))
    return total


def paired_diagonal_sum(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, rows: int = 1 << 14) -> float:
    """(n, d), (n, d) -> Σ_i k(x_i, y_i), in row chunks, float64."""
    return sum(float(kernel.diagonal(x[i:i + rows], y[i:i + rows]).sum(dtype=torch.float64))
               for i in range(0, x.shape[0], rows))


def kernel_sums_blocked(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, *, paired: bool,
                        max_kernel_entries: int = DEFAULT_MAX_KERNEL_ENTRIES) -> KernelSums:
    """(m, d), (n, d) -> KernelSums without ever holding more than `max_kernel_entries` kernel
    entries (one reusable tile). Inputs should already be centred (see features.centred_pool)."""
    tile = min(tile_size(max_kernel_entries), max(x.shape[0], y.shape[0]))
    buffer = torch.empty(tile * tile, dtype=x.dtype, device=x.device)
    s_xx, t_xx = self_sum_blocked(x, kernel, tile, buffer)
    s_yy, t_yy = self_sum_blocked(y, kernel, tile, buffer)
    s_xy = cross_sum_blocked(x, y, kernel, tile, buffer)
    t_xy = paired_diagonal_sum(x, y, kernel) if paired else None
    return KernelSums(s_xx, s_yy, s_xy, t_xx, t_yy, t_xy, x.shape[0], y.shape[0])
