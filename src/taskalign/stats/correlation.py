"""Correlation with its n, a permutation p-value and a bootstrap interval (never a bare coefficient).

    r = pearson(d2p, rpg, units=task_of_cell)      # CorrelationResult
    ρ = spearman(d2p, rpg, units=seed_of_row)

Pearson r = Σ (x_i - x̄)(y_i - ȳ) / sqrt(Σ (x_i - x̄)² Σ (y_i - ȳ)²); Spearman ρ = Pearson r of
the average ranks (ties get the mean of their ranks), as scipy.stats.spearmanr.

Permutation p-value (two-sided): y is permuted against x B times (seeded);
    p = (1 + #{b : |r_b| >= |r_obs|}) / (1 + B)
(|r_b| is compared with |r_obs| less 1e-12, so that permutations giving the same coefficient
count as ties rather than fall to round-off).

Bootstrap percentile interval: the caller's resampling units (e.g. seed, case, or (encoder, task)
cell; default: each row its own unit) are drawn with replacement, U of U, and every row of a drawn
unit comes along as often as the unit was drawn; the coefficient is recomputed on each resample
and the interval is the (1-c)/2 and (1+c)/2 quantiles. Resampling units with multiplicity c_u is
the same as weighting each row by c_u, which is how it is computed (all resamples at once; for
Spearman the average ranks are recomputed under the weights). Resamples where x or y is constant
have no coefficient and are dropped (counted in `bootstrap_valid`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy.stats import rankdata

METHODS = ("pearson", "spearman")
_TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class CorrelationResult:
    method: str
    coefficient: float
    n: int
    p_value: float | None
    permutations: int
    ci_low: float | None
    ci_high: float | None
    confidence: float
    bootstrap: int
    bootstrap_valid: int
    n_units: int
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def _check_pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"x and y need one value per observation: got {a.size} and {b.size} values")
    if a.size < 3:
        raise ValueError(f"a correlation needs at least 3 observations, got {a.size}")
    bad = np.flatnonzero(~(np.isfinite(a) & np.isfinite(b)))
    if bad.size:
        raise ValueError(f"x or y is NaN/Inf at observation(s) {bad[:10].tolist()}; drop those rows first")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        raise ValueError("a correlation is undefined when x or y is constant")
    return a, b


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of (B, n) arrays (or (n,) broadcast against them)."""
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(-1) / np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson r of each row's weighted sample: x, y (n,) or (B, n), weights w (B, n) >= 0."""
    total = w.sum(1, keepdims=True)
    xc = x - (w * x).sum(1, keepdims=True) / total
    yc = y - (w * y).sum(1, keepdims=True) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (w * xc * yc).sum(1) / np.sqrt((w * xc * xc).sum(1) * (w * yc * yc).sum(1))
    return np.where(np.isfinite(r), np.clip(r, -1.0, 1.0), np.nan)


def _weighted_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks of x (n,) in the sample where row i appears w[b, i] times: (B, n).

    rank_i = (weight of values < x_i) + (weight of values == x_i + 1) / 2."""
    values, inverse = np.unique(x, return_inverse=True)
    one_hot = np.zeros((x.size, values.size))
    one_hot[np.arange(x.size), inverse] = 1.0
    group_weight = w @ one_hot                                              # (B, G)
    below = np.cumsum(group_weight, axis=1) - group_weight
    return (below + (group_weight + 1.0) / 2.0)[:, inverse]


def _coefficient(x: np.ndarray, y: np.ndarray, method: str) -> float:
    if method == "spearman":
        x, y = rankdata(x), rankdata(y)
    return float(_pearson_rows(x, y))


def permutation_p_value(x: np.ndarray, y: np.ndarray, method: str, permutations: int, seed: int,
                        batch: int = 1000) -> float:
    """Two-sided permutation p-value of the correlation (module docstring), B = permutations."""
    if method == "spearman":
        x, y = rankdata(x), rankdata(y)
    observed = abs(float(_pearson_rows(x, y)))
    rng = np.random.default_rng(seed)
    count = 0
    for start in range(0, permutations, batch):
        size = min(batch, permutations - start)
        shuffled = rng.permuted(np.broadcast_to(y, (size, y.size)), axis=1)
        count += int((np.abs(_pearson_rows(x, shuffled)) >= observed - _TIE_TOLERANCE).sum())
    return (1.0 + count) / (1.0 + permutations)


def bootstrap_coefficients(x: np.ndarray, y: np.ndarray, method: str, resamples: int, seed: int,
                           units: Sequence | None = None, batch: int = 500) -> np.ndarray:
    """(resamples,) coefficients over unit-level bootstrap resamples (NaN where undefined)."""
    labels = np.arange(x.size) if units is None else np.asarray(units)
    if labels.shape != (x.size,):
        raise ValueError(f"units needs one label per observation ({x.size}), got shape {labels.shape}")
    _, unit_of_row = np.unique(labels, return_inverse=True)
    n_units = int(unit_of_row.max()) + 1
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        counts = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=size)
        w = counts[:, unit_of_row].astype(np.float64)                       # (B', n)
        if method == "spearman":
            out.append(_weighted_pearson(_weighted_ranks(x, w), _weighted_ranks(y, w), w))
        else:
            out.append(_weighted_pearson(x[None, :], y[None, :], w))
    return np.concatenate(out) if out else np.empty(0)


def correlation(x, y, method: str = "spearman", *, permutations: int = 10000, bootstrap: int = 2000,
                units: Sequence | None = None, confidence: float = 0.95, seed: int = 0) -> CorrelationResult:
    """Pearson r or Spearman ρ of x (n,) and y (n,), with permutation p-value and bootstrap
    percentile interval (module docstring). permutations=0 / bootstrap=0 skip either part."""
    if method not in METHODS:
        raise ValueError(f"unknown correlation method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    a, b = _check_pair(x, y)
    value = _coefficient(a, b, method)
    p_value = permutation_p_value(a, b, method, permutations, seed) if permutations > 0 else None
    low = high = None
    boots = bootstrap_coefficients(a, b, method, bootstrap, seed + 1, units) if bootstrap > 0 else np.empty(0)
    valid = boots[np.isfinite(boots)]
    if valid.size:
        low, high = (float(q) for q in np.quantile(valid, [(1 - confidence) / 2, (1 + confidence) / 2]))
    n_units = a.size if units is None else len(np.unique(np.asarray(units)))
    return CorrelationResult(method, value, a.size, p_value, permutations, low, high, confidence,
                             bootstrap, int(valid.size), n_units, seed)


def pearson(x, y, **kwargs) -> CorrelationResult:
    """Pearson r with n, permutation p-value and bootstrap interval; see `correlation`."""
    return correlation(x, y, "pearson", **kwargs)


def spearman(x, y, **kwargs) -> CorrelationResult:
    """Spearman ρ (average ranks for ties) with n, permutation p-value and bootstrap interval."""
    return correlation(x, y, "spearman", **kwargs)
