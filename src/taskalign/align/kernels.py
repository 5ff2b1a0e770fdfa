"""Kernels on feature vectors and the median-heuristic bandwidth.

    rbf        k(a, b) = mean_s exp(-||a - b||² / (2 σ_s²))     (one or several bandwidths σ_s)
    laplacian  k(a, b) = mean_s exp(-||a - b|| / σ_s)
    linear     k(a, b) = a · b

Squared distances come from one matmul, ||a||² + ||b||² - 2 a·b, with negative round-off clamped
to 0 (and exact zeros on the diagonal of a self-distance matrix).

Median heuristic (the convention used throughout): σ = the lower median (the ⌈M/2⌉-th smallest)
of the M = N(N-1)/2 Euclidean distances ||z_i - z_j||, i < j, between the N points of the
pooled sample (both samples together). When N > `max_points`, the median is taken over a
seeded random subsample of `max_points` pooled points instead, and the kernel's `rule` says so.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from taskalign.errors import InputError

KERNEL_NAMES = ("rbf", "laplacian", "linear")
MEDIAN_MAX_POINTS = 4096
_CHUNK_ENTRIES = 1 << 21  # row chunks for elementwise work: temporaries stay small


def squared_distances(a: torch.Tensor, b: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """(m, d), (n, d) -> (m, n) squared Euclidean distances through one matmul, clamped at 0.

    With b=None the matrix is a's self-distances and its diagonal is set to exactly 0."""
    same = b is None
    b = a if same else b
    an = a.pow(2).sum(1)
    bn = an if same else b.pow(2).sum(1)
    out = torch.addmm(bn.unsqueeze(0), a, b.T, beta=1.0, alpha=-2.0, out=out)
    out.add_(an.unsqueeze(1)).clamp_(min=0.0)
    if same:
        out.fill_diagonal_(0.0)
    return out


@dataclass(frozen=True)
class Kernel:
    """A resolved kernel: a name, its bandwidths (empty for linear), and how they were chosen.

    Call it on features: `kernel(a, b)` -> (m, n) kernel matrix in a's dtype."""

    name: str
    bandwidths: tuple[float, ...] = ()
    rule: str = "given"

    def __post_init__(self) -> None:
        if self.name not in KERNEL_NAMES:
            raise InputError(f"unknown kernel {self.name!r}; choose one of {', '.join(KERNEL_NAMES)}")
        if self.name == "linear" and self.bandwidths:
            raise InputError("the linear kernel has no bandwidth; drop `bandwidth` or pick rbf/laplacian")
        if self.name != "linear":
            if not self.bandwidths:
                raise InputError(f"kernel {self.name!r} needs at least one bandwidth; "
                                 "use resolve_kernel() for the median heuristic")
            if not all(math.isfinite(s) and s > 0 for s in self.bandwidths):
                raise InputError(f"bandwidths must be finite and > 0, got {self.bandwidths}")

    @property
    def uses_distances(self) -> bool:
        return self.name != "linear"

    def from_sq_dists_(self, d2: torch.Tensor) -> torch.Tensor:
        """Turn a matrix of squared distances into kernel values in place (row chunks, so the
        only temporaries are small). Returns d2."""
        if not self.uses_distances:
            raise InputError("the linear kernel is not a function of distances; use kernel(a, b)")
        rows = max(1, _CHUNK_ENTRIES // max(1, d2.shape[1]))
        for start in range(0, d2.shape[0], rows):
            block = d2[start:start + rows]
            if self.name == "laplacian":
                block.sqrt_()
            if len(self.bandwidths) == 1:
                block.mul_(-self._scale(self.bandwidths[0])).exp_()
                continue
            acc = torch.zeros_like(block)
            for s in self.bandwidths:
                acc.add_(torch.exp(block * -self._scale(s)))
            block.copy_(acc.div_(len(self.bandwidths)))
        return d2

    def _scale(self, s: float) -> float:
        return 1.0 / (2.0 * s * s) if self.name == "rbf" else 1.0 / s

    def __call__(self, a: torch.Tensor, b: torch.Tensor | None = None,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """(m, d), (n, d) -> (m, n) kernel matrix (b=None: a against itself), into `out` if given."""
        if self.name == "linear":
            return torch.mm(a, (a if b is None else b).T, out=out)
        return self.from_sq_dists_(squared_distances(a, b, out=out))

    def diagonal(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(n, d), (n, d) -> (n,) values k(a_i, b_i), row by row, O(n d)."""
        if self.name == "linear":
            return (a * b).sum(1)
        d2 = (a - b).pow(2).sum(1, keepdim=True)
        return self.from_sq_dists_(d2).squeeze(1)

    def describe(self) -> str:
        if self.name == "linear":
            return "linear"
        bw = ", ".join(f"{s:.6g}" for s in self.bandwidths)
        return f"{self.name} (σ = {bw}; {self.rule})"


def lower_median_offdiagonal(d2: torch.Tensor) -> float:
    """Lower median (the ⌈M/2⌉-th smallest) of the M = N(N-1)/2 entries i < j of a symmetric
    (N, N) squared-distance matrix, returned as a distance (sqrt is monotone, so the median of
    the squared distances is the square of the median distance)."""
    n = d2.shape[0]
    if n < 2:
        raise InputError("the median heuristic needs at least 2 points in the pooled sample")
    k = (n * (n - 1) // 2 + 1) // 2 - 1  # 0-based index of the ⌈M/2⌉-th smallest
    d2 = d2.detach()
    if d2.device.type == "cpu":  # numpy's introselect is several times faster than kthvalue on CPU
        upper = torch.cat([d2[i, i + 1:] for i in range(n - 1)]).numpy()
        value = float(np.partition(upper, k)[k])
    else:
        rows, cols = torch.triu_indices(n, n, 1, device=d2.device)
        value = float(torch.kthvalue(d2[rows, cols], k + 1).values)
    return math.sqrt(max(value, 0.0))


def _check_sigma(sigma: float) -> float:
    if sigma == 0.0:
        raise InputError("median heuristic: the median pairwise distance is 0 (at least half the pairs of "
                         "points coincide); pass an explicit bandwidth")
    return sigma


def pooled_rows(parts: "torch.Tensor | Sequence[torch.Tensor]", max_points: int, seed: int) -> tuple[torch.Tensor, str]:
    """The rows of the pooled sample (parts stacked) that the median heuristic uses: all of them,
    or above `max_points` a seeded random subsample, gathered without stacking all rows first."""
    parts = [parts] if isinstance(parts, torch.Tensor) else list(parts)
    n = sum(p.shape[0] for p in parts)
    if n <= max_points:
        return torch.cat(parts) if len(parts) > 1 else parts[0], f"all {n} pooled points"
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=gen)[:max_points].sort().values
    rows, start = [], 0
    for p in parts:
        mine = idx[(idx >= start) & (idx < start + p.shape[0])] - start
        rows.append(p[mine.to(p.device)])
        start += p.shape[0]
    return torch.cat(rows), f"a random subsample of {max_points} of the {n} pooled points (seed {seed})"


def median_distance(z: "torch.Tensor | Sequence[torch.Tensor]", max_points: int = MEDIAN_MAX_POINTS,
                    seed: int = 0) -> tuple[float, str]:
    """Median heuristic on a pooled sample: z (N, d), or a sequence of samples to pool ->
    (σ, rule text). See the module docstring for the convention; above `max_points` pooled rows
    a seeded random subsample is used."""
    z, used = pooled_rows(z, max_points, seed)
    z = z - z.mean(0, dtype=torch.float64).to(z.dtype)
    sigma = _check_sigma(lower_median_offdiagonal(squared_distances(z)))
    return sigma, f"median heuristic: lower median of off-diagonal pairwise distances over {used}"


def resolve_kernel(kernel: "str | Kernel", bandwidth: "float | Sequence[float] | None" = None,
                   pooled: "torch.Tensor | Sequence[torch.Tensor] | None" = None, *,
                   scales: Sequence[float] = (1.0,), median_max_points: int = MEDIAN_MAX_POINTS,
                   seed: int = 0, sq_dists: torch.Tensor | None = None) -> Kernel:
    """Name + bandwidth spec -> Kernel.

    kernel: a Kernel (returned unchanged; `bandwidth` must then be None) or a name in KERNEL_NAMES.
    bandwidth: σ, or several σ (their kernels averaged), or None for the median heuristic on
    `pooled` ((N, d), or a sequence of samples to pool), multiplied by each of `scales`.
    sq_dists: the pooled (N, N) squared distances if the caller already has them (used when
    N <= median_max_points, to skip one matmul).
    """
    if isinstance(kernel, Kernel):
        if bandwidth is not None:
            raise InputError("pass either a Kernel or a bandwidth, not both (the Kernel carries its bandwidths)")
        return kernel
    if kernel not in KERNEL_NAMES:
        raise InputError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNEL_NAMES)}")
    if kernel == "linear":
        return Kernel("linear", (), "no bandwidth") if bandwidth is None else Kernel("linear", (1.0,))
    if bandwidth is not None:
        values = (float(bandwidth),) if np.isscalar(bandwidth) else tuple(float(s) for s in bandwidth)
        return Kernel(kernel, values, "given")
    if pooled is None:
        raise InputError("the median heuristic needs the pooled sample; pass `pooled` or a bandwidth")
    if sq_dists is not None and sq_dists.shape[0] <= median_max_points:
        sigma = lower_median_offdiagonal(sq_dists)
        _check_sigma(sigma)
        rule = ("median heuristic: lower median of off-diagonal pairwise distances over "
                f"all {sq_dists.shape[0]} pooled points")
    else:
        sigma, rule = median_distance(pooled, median_max_points, seed)
    if tuple(scales) != (1.0,):
        rule = f"{{{', '.join(f'{s:g}' for s in scales)}}} × σ_median, {rule}"
    return Kernel(kernel, tuple(float(s) * sigma for s in scales), rule)
