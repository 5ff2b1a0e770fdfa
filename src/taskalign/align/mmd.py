"""MMD² between two samples of features, with its bandwidth, sizes and p-value in one result.

    res = mmd2(x, y)                                   # unbiased U-statistic, RBF, median heuristic
    res = mmd2(x, y, permutations=1000, seed=0)        # + permutation p-value
    res = mmd2(a, b, estimator="paired-u", kernel=k)   # same images, two feature sets
    res.mmd2, res.p_value, res.bandwidths, res.bandwidth_rule, res.p_value_method

x: (m, d), y: (n, d), torch (CPU or GPU, the computation stays on that device) or numpy.
Estimators and equations: `estimators.py`; kernels and the median-heuristic convention:
`kernels.py`; the batched permutation test: `permutation.py`.

Size policy. If the pooled kernel matrix (N² entries, N = m + n; + n² for the paired test's H)
fits in `max_kernel_entries`, everything comes from one dense kernel matrix. Otherwise the
statistic is computed in tiles (`blocked.py`, never more than `max_kernel_entries` entries) on
all rows, and the p-value, if asked for, comes from one of two stated approximations, recorded
in `p_value_method`: a permutation test on a seeded random subsample of rows ("subsample",
the default), or the linear-time statistic's asymptotic normal test on all rows ("linear").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch

from taskalign.align.blocked import DEFAULT_MAX_KERNEL_ENTRIES, kernel_sums_blocked
from taskalign.align.estimators import check_estimator, kernel_sums_from_matrix, linear_time_test, mmd2_from_sums
from taskalign.align.features import as_feature_pair, centred_pool
from taskalign.align.kernels import MEDIAN_MAX_POINTS, Kernel, resolve_kernel, squared_distances
from taskalign.align.permutation import paired_h_matrix, paired_permutation_test, two_sample_permutation_test_
from taskalign.errors import InputError

P_VALUE_METHODS = ("auto", "permutation", "subsample", "linear")
SUBSAMPLE_PER_SIDE = 4096


@dataclass(frozen=True)
class MMDResult:
    """One MMD² measurement and everything needed to read it."""

    mmd2: float
    p_value: float | None
    n_x: int
    n_y: int
    kernel: str
    bandwidths: tuple[float, ...]
    bandwidth_rule: str
    estimator: str
    permutations: int
    seed: int
    p_value_method: str
    path: str   # "dense" or "blocked"
    dtype: str

    @property
    def bandwidth(self) -> float | tuple[float, ...] | None:
        """The single σ, the tuple of σ (kernels averaged), or None for the linear kernel."""
        if not self.bandwidths:
            return None
        return self.bandwidths[0] if len(self.bandwidths) == 1 else self.bandwidths

    def to_dict(self) -> dict:
        out = asdict(self)
        out["bandwidths"] = list(self.bandwidths)
        out["bandwidth"] = list(self.bandwidth) if isinstance(self.bandwidth, tuple) else self.bandwidth
        return out


def _pooled_kernel_matrix(z: torch.Tensor, kernel: "str | Kernel", bandwidth, median_max_points: int,
                          seed: int) -> tuple[torch.Tensor, Kernel]:
    """(N, d) centred pooled sample -> ((N, N) kernel matrix, resolved Kernel), one matmul."""
    if (kernel.name if isinstance(kernel, Kernel) else kernel) == "linear":
        kern = resolve_kernel(kernel, bandwidth)
        return kern(z), kern
    d2 = squared_distances(z)
    kern = resolve_kernel(kernel, bandwidth, z, median_max_points=median_max_points, seed=seed, sq_dists=d2)
    return kern.from_sq_dists_(d2), kern


def _dense_test(z: torch.Tensor, m: int, kernel, bandwidth, estimator: str, permutations: int,
                seed: int, median_max_points: int) -> tuple[float, float | None, Kernel]:
    """Dense path on the centred pooled sample z (N, d), first m rows x: statistic from the
    pooled kernel matrix, then (optionally) its permutations."""
    paired = estimator == "paired-u"
    k, kern = _pooled_kernel_matrix(z, kernel, bandwidth, median_max_points, seed)
    value = mmd2_from_sums(kernel_sums_from_matrix(k, m, paired), estimator)
    if permutations <= 0:
        return value, None, kern
    if paired:
        h = paired_h_matrix(k, m)
        del k
        return value, paired_permutation_test(h, permutations, seed).p_value, kern
    return value, two_sample_permutation_test_(k, m, estimator, permutations, seed).p_value, kern


def _dense_entries(m: int, n: int, estimator: str, permutations: int) -> int:
    extra = n * n if estimator == "paired-u" and permutations > 0 else 0
    return (m + n) ** 2 + extra


def _subsample_p_value(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, estimator: str, per_side: int,
                       permutations: int, seed: int) -> tuple[float, str]:
    """Full permutation test on a seeded random subsample of rows (pairs kept together)."""
    gen = torch.Generator().manual_seed(seed)
    ix = torch.randperm(x.shape[0], generator=gen)[:per_side]
    iy = ix if estimator == "paired-u" else torch.randperm(y.shape[0], generator=gen)[:per_side]
    z = torch.cat([x[ix.to(x.device)], y[iy.to(y.device)]])
    _, p_value, _ = _dense_test(z, len(ix), kernel, None, estimator, permutations, seed, MEDIAN_MAX_POINTS)
    return p_value, (f"permutation test on a seeded random subsample of {len(ix)} x-rows and {len(iy)} y-rows "
                     f"({permutations} permutations, seed {seed}); the statistic uses all rows")


def _linear_time_p_value(x: torch.Tensor, y: torch.Tensor, kernel: Kernel, paired: bool,
                         seed: int) -> tuple[float, str]:
    """Linear-time test on all rows, after a seeded shuffle (pairs kept together when paired)."""
    gen = torch.Generator().manual_seed(seed)
    n = min(x.shape[0], y.shape[0])
    ix = torch.randperm(x.shape[0], generator=gen)[:n]
    iy = ix if paired else torch.randperm(y.shape[0], generator=gen)[:n]
    _, p_value, pairs = linear_time_test(x[ix.to(x.device)], y[iy.to(y.device)], kernel)
    return p_value, (f"linear-time MMD²_l asymptotic normal test (Gretton et al. 2012, Cor. 16) "
                     f"on {pairs} disjoint pairs of rows after a seeded shuffle (seed {seed})")


def _subsample_size(m: int, n: int, estimator: str, max_kernel_entries: int, per_side: int | None) -> int:
    k = per_side or SUBSAMPLE_PER_SIDE
    while k > 2 and _dense_entries(k, k, estimator, 1) > max_kernel_entries:
        k //= 2
    return min(k, max(m, n))


def mmd2(x, y, *, kernel: "str | Kernel" = "rbf", bandwidth: "float | Sequence[float] | None" = None,
         estimator: str = "unbiased-u", permutations: int = 0, seed: int = 0, p_value_method: str = "auto",
         dtype: torch.dtype | None = None, max_kernel_entries: int = DEFAULT_MAX_KERNEL_ENTRIES,
         median_max_points: int = MEDIAN_MAX_POINTS, subsample_per_side: int | None = None) -> MMDResult:
    """MMD² of x (m, d) against y (n, d) with `estimator` in {unbiased-u, biased-v, paired-u}.

    kernel: "rbf", "laplacian", "linear" or a resolved Kernel (e.g. `reference_kernel`).
    bandwidth: σ, several σ (kernels averaged), or None for the median heuristic (kernels.py).
    permutations: B > 0 adds p = (1 + #{T_b >= T_obs}) / (1 + B); seeded by `seed`.
    p_value_method: "auto" (full permutation test when the kernel matrix fits, else "subsample"),
    "permutation" (full, or ValueError if it does not fit), "subsample" (permutation test on a
    seeded random subsample of `subsample_per_side` rows per side, default 4096, halved until it
    fits), "linear" (linear-time asymptotic normal test, O(n d)).
    dtype: kernel entries in float32 or float64 (default from the inputs, features.py); sums in float64.
    """
    if p_value_method not in P_VALUE_METHODS:
        raise InputError(f"unknown p_value_method {p_value_method!r}; choose one of {', '.join(P_VALUE_METHODS)}")
    if permutations < 0:
        raise InputError(f"permutations must be >= 0, got {permutations}")
    paired = estimator == "paired-u"
    x, y = as_feature_pair(x, y, dtype=dtype, paired=paired)
    m, n = x.shape[0], y.shape[0]
    check_estimator(estimator, m, n)
    z = centred_pool(x, y)
    x, y = z[:m], z[m:]
    fits = _dense_entries(m, n, estimator, permutations) <= max_kernel_entries
    if p_value_method == "permutation" and permutations > 0 and not fits:
        raise InputError(f"a full permutation test at m={m}, n={n} needs {_dense_entries(m, n, estimator, 1):,} "
                         f"kernel entries > max_kernel_entries={max_kernel_entries:,}; raise the limit or use "
                         "p_value_method='subsample' or 'linear'")
    want_full = permutations > 0 and p_value_method in ("auto", "permutation")
    if fits:
        value, p_value, kern = _dense_test(z, m, kernel, bandwidth, estimator, permutations if want_full else 0,
                                           seed, median_max_points)
        path = "dense"
        method = ("none" if p_value is None
                  else f"permutation test on all rows ({permutations} permutations, seed {seed})")
    else:
        kern = resolve_kernel(kernel, bandwidth, (x, y), median_max_points=median_max_points, seed=seed)
        sums = kernel_sums_blocked(x, y, kern, paired=paired, max_kernel_entries=max_kernel_entries)
        value, p_value, path, method = mmd2_from_sums(sums, estimator), None, "blocked", "none"
    if permutations > 0 and p_value is None:
        if p_value_method == "linear":
            p_value, method = _linear_time_p_value(x, y, kern, paired, seed)
        else:
            per_side = _subsample_size(m, n, estimator, max_kernel_entries, subsample_per_side)
            p_value, method = _subsample_p_value(x, y, kern, estimator, per_side, permutations, seed)
    return MMDResult(value, p_value, m, n, kern.name, kern.bandwidths, kern.rule, estimator,
                     permutations, seed, method, path, str(x.dtype).replace("torch.", ""))


def mmd2_unbiased(x, y, kernel: "str | Kernel" = "rbf", bandwidth=None, **kwargs) -> float:
    """Two-sample unbiased U-statistic MMD²_u (Gretton et al. 2012, Eq. 3); see `mmd2`."""
    return mmd2(x, y, kernel=kernel, bandwidth=bandwidth, estimator="unbiased-u", **kwargs).mmd2


def mmd2_biased(x, y, kernel: "str | Kernel" = "rbf", bandwidth=None, **kwargs) -> float:
    """Biased V-statistic MMD²_b (Gretton et al. 2012, Eq. 5); see `mmd2`."""
    return mmd2(x, y, kernel=kernel, bandwidth=bandwidth, estimator="biased-v", **kwargs).mmd2


def mmd2_paired(x, y, kernel: "str | Kernel" = "rbf", bandwidth=None, **kwargs) -> float:
    """Paired U-statistic (cross terms only for i ≠ j; Gretton et al. 2012, Lemma 6); see `mmd2`."""
    return mmd2(x, y, kernel=kernel, bandwidth=bandwidth, estimator="paired-u", **kwargs).mmd2
