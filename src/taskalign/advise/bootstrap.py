"""Percentile intervals over cases: resample the target cases with replacement and recompute a
statistic on the rows of the drawn cases (a case drawn twice contributes its rows twice).

Rows of one case are correlated (cells of one volume), so cases, not rows, are the resampling
unit. A resample on which the statistic is undefined (e.g. a single class drawn) is skipped and
counted; the interval says how many resamples it rests on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    resamples: int      # resamples the interval rests on
    skipped: int        # resamples on which the statistic was undefined


def case_bootstrap(statistic: Callable[[np.ndarray], float], groups: np.ndarray, resamples: int = 200,
                   seed: int = 0, confidence: float = 0.95) -> Interval | None:
    """Percentile interval of statistic(rows) over `resamples` draws of cases with replacement;
    None with fewer than 2 cases or when no resample gives a finite value."""
    groups = np.asarray(groups)
    cases = np.unique(groups)
    if len(cases) < 2 or resamples < 1:
        return None
    rows_of = [np.flatnonzero(groups == c) for c in cases]
    rng = np.random.default_rng(seed)
    values, skipped = [], 0
    for _ in range(resamples):
        rows = np.concatenate([rows_of[i] for i in rng.integers(0, len(cases), len(cases))])
        try:
            value = float(statistic(rows))
        except ValueError:
            value = float("nan")
        if np.isfinite(value):
            values.append(value)
        else:
            skipped += 1
    if not values:
        return None
    tail = (1 - confidence) / 2 * 100
    return Interval(float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)), len(values), skipped)
