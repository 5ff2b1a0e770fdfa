"""Paired per-case comparison of two models on the same test cases (e.g. a VFM against the
task's specialised model).

    d_i = a_i − b_i                            (one difference per case)
    mean difference, with a bootstrap percentile 95 % interval over cases
    Wilcoxon signed-rank test of the d_i (two-sided; scipy.stats.wilcoxon, zero differences
    dropped as in Wilcoxon's original test, the normal approximation above 50 pairs)

Cases with a non-finite value in either model are left out; `n` is the number of pairs used.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedComparison:
    n: int
    mean_difference: float      # mean of a − b
    ci_low: float
    ci_high: float
    statistic: float            # Wilcoxon W (the smaller signed-rank sum); NaN when undefined
    p_value: float              # two-sided; NaN when every difference is zero or n < 2
    n_nonzero: int
    bootstrap: int
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_mean_interval(d: np.ndarray, resamples: int, seed: int, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of d (n,) over case resamples (NaN for n < 2)."""
    if d.size < 2 or resamples <= 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def paired_comparison(a, b, *, bootstrap: int = 2000, seed: int = 0) -> PairedComparison:
    """Compare paired values a (n,) and b (n,) (module docstring)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need one value per case in each model: got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    nonzero = int(np.count_nonzero(d))
    low, high = bootstrap_mean_interval(d, bootstrap, seed)
    statistic = p_value = math.nan
    if nonzero >= 1 and d.size >= 2:
        res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        statistic, p_value = float(res.statistic), float(res.pvalue)
    mean = float(d.mean()) if d.size else math.nan
    return PairedComparison(int(d.size), mean, low, high, statistic, p_value, nonzero, bootstrap, seed)
