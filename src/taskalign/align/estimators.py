"""MMD² estimators written on a few kernel sums (Gretton et al. 2012, JMLR 13:723).

For samples X = (x_1..x_m), Y = (y_1..y_n) and a kernel k, let

    S_xx = Σ_{i,j} k(x_i, x_j)   T_xx = Σ_i k(x_i, x_i)
    S_yy = Σ_{i,j} k(y_i, y_j)   T_yy = Σ_i k(y_i, y_i)
    S_xy = Σ_{i,j} k(x_i, y_j)   T_xy = Σ_i k(x_i, y_i)      (T_xy only when m = n, paired)

All three estimators below are exact functions of these six numbers, so the dense path (one
kernel matrix) and the blocked path (tiles) share the formulas and agree to round-off. The sums
are accumulated in float64 entry by entry and added up exactly (`rowsum64`, `fsum`), so the
float32 path holds ~1e-5 relative against float64 even when MMD² is 1e-3 of the kernel's mean,
and one input gives one value at any thread count.

- "unbiased-u"  (Eq. 3, Lemma 6)  MMD²_u = (S_xx - T_xx) / (m(m-1)) + (S_yy - T_yy) / (n(n-1))
                                             - 2 S_xy / (mn)
  Unequal m, n allowed; needs m, n >= 2. This is what MONAI's `MMDMetric` computes (linear kernel).
- "biased-v"    (Eq. 5)           MMD²_b = S_xx / m² + S_yy / n² - 2 S_xy / (mn)    (>= 0)
- "paired-u"    (Lemma 6 with its own h)  for pairs z_i = (x_i, y_i), i = 1..n,
      h(z_i, z_j) = k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(x_j, y_i),
      MMD²_u = 1/(n(n-1)) Σ_{i≠j} h(z_i, z_j)
             = [(S_xx - T_xx) + (S_yy - T_yy) - 2 (S_xy - T_xy)] / (n(n-1)):
  the cross terms skip i = j, which is what makes it unbiased when x_i and y_i are dependent
  (two feature sets of the same image). Needs m = n >= 2.

The linear-time estimator (Gretton et al. 2012, Lemma 14 / Corollary 16) lives here as well:
    MMD²_l = (1/p) Σ_{t=1}^{p} h(z_{2t-1}, z_{2t}),  p = ⌊n/2⌋,
with the same h; under H0 √p · MMD²_l / s_h → N(0, 1), s_h the sample standard deviation of the
p values of h, and the one-sided p-value is 1 - Φ(√p · MMD²_l / s_h). O(n d) time and memory.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from taskalign.errors import InputError

ESTIMATORS = ("unbiased-u", "biased-v", "paired-u")
ROW_CHUNK_ENTRIES = 1 << 15   # entries converted to float64 at a time (256 KiB: stays in cache)


@dataclass(frozen=True)
class KernelSums:
    """The sufficient statistics above, accumulated in float64 (t_xy is None unless m = n)."""

    s_xx: float
    s_yy: float
    s_xy: float
    t_xx: float
    t_yy: float
    t_xy: float | None
    m: int
    n: int


def check_estimator(estimator: str, m: int, n: int) -> None:
    """Raise ValueError if `estimator` is unknown or the sample sizes do not allow it."""
    if estimator not in ESTIMATORS:
        raise InputError(f"unknown MMD² estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if estimator == "paired-u" and m != n:
        raise InputError(f"the paired estimator needs one row per pair in each sample; got {m} and {n} rows")
    if estimator != "biased-v" and min(m, n) < 2:
        raise InputError(f"the {estimator} estimator needs at least 2 rows per sample, got {m} and {n}")


def mmd2_from_sums(sums: KernelSums, estimator: str) -> float:
    """The estimator `estimator` (see module docstring) from the kernel sums."""
    m, n = sums.m, sums.n
    check_estimator(estimator, m, n)
    if estimator == "biased-v":
        return sums.s_xx / m**2 + sums.s_yy / n**2 - 2.0 * sums.s_xy / (m * n)
    if estimator == "unbiased-u":
        return ((sums.s_xx - sums.t_xx) / (m * (m - 1)) + (sums.s_yy - sums.t_yy) / (n * (n - 1))
                - 2.0 * sums.s_xy / (m * n))
    if sums.t_xy is None:
        raise ValueError("paired-u needs T_xy = Σ_i k(x_i, y_i); compute the sums with paired=True")
    off = (sums.s_xx - sums.t_xx) + (sums.s_yy - sums.t_yy) - 2.0 * (sums.s_xy - sums.t_xy)
    return off / (n * (n - 1))


def rowsum64(a: torch.Tensor) -> torch.Tensor:
    """(r, c) -> (r,) row sums accumulated in float64, entry by entry.

    MMD² is a small difference of large kernel sums: near the null (two samples 5 % apart in
    scale, d = 768) MMD² is about 5e-4 while each row sums ~2000 entries of ~0.6, so a float32 row
    sum (relative error ~1e-7) already moves MMD² by ~1e-5 of itself. The float32 entries are
    converted in row chunks (`ROW_CHUNK_ENTRIES`), which costs a few % of the kernel matmul.
    Each row is reduced by one thread, so the result does not depend on the thread count."""
    if a.dtype == torch.float64:
        return a.sum(1)
    if a.device.type != "cpu":
        return a.sum(1, dtype=torch.float64)
    rows = max(1, ROW_CHUNK_ENTRIES // max(1, a.shape[1]))
    return torch.cat([a[i:i + rows].double().sum(1) for i in range(0, a.shape[0], rows)])


def rowsum_rounded(a: torch.Tensor) -> torch.Tensor:
    """(r, c) -> (r,) row sums in a's dtype, returned as float64: fast (no conversion), relative
    error ~1e-7 per float32 row. For the permutation test, whose float32 matmul P K sets its
    precision anyway; never for the statistic (see rowsum64)."""
    if a.device.type != "cpu" or a.dtype == torch.float64:
        return a.sum(1, dtype=torch.float64)
    return a.sum(1).to(torch.float64)


def fsum(values: torch.Tensor) -> float:
    """Exactly rounded Σ of a 1-D tensor (math.fsum): independent of order and thread count."""
    return math.fsum(values.detach().to("cpu", torch.float64).tolist())


def sum64(a: torch.Tensor) -> float:
    """Σ of all entries of a 1-D or 2-D tensor: float64 row sums (rowsum64), then `fsum`."""
    return fsum(rowsum64(a) if a.ndim == 2 else a.reshape(-1))


def kernel_sums_from_matrix(k: torch.Tensor, m: int, paired: bool) -> KernelSums:
    """Pooled (m+n, m+n) kernel matrix [[K_xx, K_xy], [K_yx, K_yy]] -> KernelSums (float64 sums)."""
    n = k.shape[0] - m
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]

    t_xy = sum64(torch.diagonal(kxy)) if paired else None
    return KernelSums(sum64(kxx), sum64(kyy), sum64(kxy), sum64(torch.diagonal(kxx)),
                      sum64(torch.diagonal(kyy)), t_xy, m, n)


def linear_time_test(x: torch.Tensor, y: torch.Tensor, kernel) -> tuple[float, float, int]:
    """Linear-time MMD²_l and its asymptotic normal test (module docstring, Lemma 14).

    x, y: (n, d) with rows already in the pairing and order to use (callers shuffle unpaired
    samples first and cut them to a common length). Returns (MMD²_l, one-sided p-value, p)."""
    p = x.shape[0] // 2
    if p < 2:
        raise InputError(f"the linear-time test needs at least 4 rows per sample, got {x.shape[0]}")
    x1, x2, y1, y2 = x[0:2 * p:2], x[1:2 * p:2], y[0:2 * p:2], y[1:2 * p:2]
    h = (kernel.diagonal(x1, x2).double() + kernel.diagonal(y1, y2).double()
         - kernel.diagonal(x1, y2).double() - kernel.diagonal(x2, y1).double())
    mean, sd = float(h.mean()), float(h.std(unbiased=True))
    if sd == 0.0:
        return mean, (1.0 if mean <= 0 else 0.0), p
    z = math.sqrt(p) * mean / sd
    return mean, 0.5 * math.erfc(z / math.sqrt(2.0)), p
