"""Seeds as repeats: the mean of a quantity over seeds with its 95 % t interval.

    mean ± t(0.975, n−1) · sd / √n        (sd with ddof = 1)

The interval needs two finite values or more and is NaN otherwise. Non-finite values are left
out, and `n` counts only the finite ones.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SeedStats:
    mean: float
    sd: float          # sample standard deviation (ddof=1); NaN below two values
    n: int             # finite values used
    ci95: float        # half width of the 95 % t interval of the mean; NaN below two values

    @property
    def finite(self) -> bool:
        return math.isfinite(self.mean)

    def to_dict(self) -> dict[str, float]:
        """{"mean", "sd", "n", "ci95_low", "ci95_high"} (the bounds NaN below two values)."""
        return {"mean": self.mean, "sd": self.sd, "n": self.n,
                "ci95_low": self.mean - self.ci95, "ci95_high": self.mean + self.ci95}


def _is_number(x: Any) -> bool:
    """A finite real number (bools and NaN are not)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def seed_stats(values: Iterable[Any]) -> SeedStats:
    """Mean, sd and 95 % t half-width of the finite numbers in `values` (others ignored)."""
    x = np.array([v for v in values if _is_number(v)], dtype=float)
    if x.size == 0:
        return SeedStats(math.nan, math.nan, 0, math.nan)
    if x.size == 1:
        return SeedStats(float(x[0]), math.nan, 1, math.nan)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, x.size - 1) * sd / math.sqrt(x.size))
    return SeedStats(float(x.mean()), sd, int(x.size), half)
