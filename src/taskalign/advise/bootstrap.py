"""Intervals over target cases by half-sampling: a bootstrap that never repeats a case.

Each resample is a random half of the n cases (m = ⌊n/2⌋, drawn without replacement), and the
statistic is recomputed on the rows of those cases. For a statistic θ whose variance scales as
1/n, the half-sample deviation θ_m − θ_n has variance σ²(1/m − 1/n) = σ²/n when m = n/2, the
variance of θ_n itself (McCarthy 1969, half-sampling), so the interval

    [θ_n + q_{a/2}(θ_m − θ̄_m),  θ_n + q_{1−a/2}(θ_m − θ̄_m)]   (a = 1 − confidence, θ̄_m: mean of halves)

needs no rescaling. The halves are centred on their own mean, not on θ_n: LogME and H-score
change with the number of rows when rows and features are of one order, and a half of the
cases shifts them (measured on 6 smoke-phantom cases, 286 cells x 240 features: LogME 1.17 on
all cases, 0.81 on the mean half); that shift, `half_shift` = θ̄_m − θ_n, is reported, not mirrored
into the interval. Why not the ordinary bootstrap: a case drawn twice duplicates its rows, and
LogME, H-score and MMD² read duplicated rows as extra evidence (measured: on the smoke phantom
the ordinary bootstrap's LogME interval lay wholly above its estimate, [0.76, 7.2] around −0.84).
Rows of one case are correlated (cells of one volume), so cases, not rows, are the unit. A
half on which the statistic is undefined (e.g. one class drawn) is skipped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    resamples: int      # halves the interval rests on
    skipped: int        # halves on which the statistic was undefined
    half_shift: float   # mean over halves minus the full-sample value
    method: str = "half-sampling of cases"


def case_bootstrap(statistic: Callable[[np.ndarray], float], groups: np.ndarray, resamples: int = 200,
                   seed: int = 0, confidence: float = 0.95) -> Interval | None:
    """Half-sampling interval (module docstring) of statistic(rows) around statistic(all rows);
    `groups` (n_rows,) names each row's case. None with fewer than 4 cases (halves of 1 case
    say nothing), with `resamples` = 0, or when the statistic is undefined on every half."""
    groups = np.asarray(groups)
    cases = np.unique(groups)
    if len(cases) < 4 or resamples < 1:
        return None
    rows_of = [np.flatnonzero(groups == c) for c in cases]
    full = float(statistic(np.arange(len(groups))))
    rng = np.random.default_rng(seed)
    halves, skipped = [], 0
    for _ in range(resamples):
        half = rng.choice(len(cases), size=len(cases) // 2, replace=False)
        try:
            value = float(statistic(np.concatenate([rows_of[i] for i in np.sort(half)])))
        except ValueError:
            value = float("nan")
        if np.isfinite(value):
            halves.append(value)
        else:
            skipped += 1
    if not halves:
        return None
    tail = (1 - confidence) / 2 * 100
    centred = np.asarray(halves) - np.mean(halves)
    low, high = np.percentile(centred, tail), np.percentile(centred, 100 - tail)
    return Interval(full + float(low), full + float(high), len(halves), skipped, float(np.mean(halves) - full))
