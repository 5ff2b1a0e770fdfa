"""Per (encoder, task) cell statistics over seeds: mean, standard deviation and a 95 % interval.

The interval is the t interval of the mean, mean ± t(0.975, n−1) · sd / √n; it needs two seeds
or more, and is NaN otherwise (the plots then draw no error bar). NaN values are left out of
each statistic, and `n` counts only the finite ones.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from scipy import stats

from taskalign.report.load import is_number


@dataclass(frozen=True)
class SeedStats:
    mean: float
    sd: float          # sample standard deviation (ddof=1); NaN below two values
    n: int             # finite values used
    ci95: float        # half width of the 95 % t interval of the mean; NaN below two values

    @property
    def finite(self) -> bool:
        return math.isfinite(self.mean)


def seed_stats(values: Iterable[Any]) -> SeedStats:
    """Statistics of the finite numbers in `values` (other entries are ignored)."""
    x = np.array([v for v in values if is_number(v)], dtype=float)
    if x.size == 0:
        return SeedStats(math.nan, math.nan, 0, math.nan)
    if x.size == 1:
        return SeedStats(float(x[0]), math.nan, 1, math.nan)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.975, x.size - 1) * sd / math.sqrt(x.size))
    return SeedStats(float(x.mean()), sd, int(x.size), half)


def cell_summaries(rows: list[dict[str, Any]], fields: Iterable[str]) -> list[dict[str, Any]]:
    """One dict per (encoder, task) in first-seen order: encoder, task, metric, higher_is_better,
    n_seeds, censored_any, and a `SeedStats` under each name in `fields`."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["encoder"], row["task"]), []).append(row)
    fields = list(fields)
    cells = []
    for (encoder, task), members in groups.items():
        cell: dict[str, Any] = {
            "encoder": encoder, "task": task, "metric": members[0]["metric"],
            "higher_is_better": members[0].get("higher_is_better"), "n_seeds": len(members),
            "censored_any": any(bool(m.get("convergence_censored")) for m in members),
        }
        for name in fields:
            cell[name] = seed_stats(m.get(name) for m in members)
        cells.append(cell)
    return cells
