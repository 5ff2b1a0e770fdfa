"""Per (encoder, task, labelled-set size) cell statistics over seeds: mean, standard deviation and a 95 % interval
(`taskalign.stats.intervals`).

The interval is the t interval of the mean, mean ± t(0.975, n−1) · sd / √n; it needs two seeds
or more, and is NaN otherwise (the plots then draw no error bar). NaN values are left out of
each statistic, and `n` counts only the finite ones.
"""
from __future__ import annotations

from typing import Any, Iterable

from taskalign.stats.intervals import SeedStats, seed_stats

__all__ = ["SeedStats", "seed_stats", "cell_summaries"]


def cell_summaries(rows: list[dict[str, Any]], fields: Iterable[str]) -> list[dict[str, Any]]:
    """One dict per (encoder, task, n_train) in first-seen order: encoder, task, n_train, metric,
    higher_is_better, n_seeds, censored_any, and a `SeedStats` under each name in `fields`."""
    groups: dict[tuple[str, str, Any], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["encoder"], row["task"], row.get("n_train")), []).append(row)
    fields = list(fields)
    cells = []
    for (encoder, task, n_train), members in groups.items():
        cell: dict[str, Any] = {
            "encoder": encoder, "task": task, "n_train": n_train, "metric": members[0]["metric"],
            "higher_is_better": members[0].get("higher_is_better"), "n_seeds": len(members),
            "censored_any": any(bool(m.get("convergence_censored")) for m in members),
        }
        for name in fields:
            cell[name] = seed_stats(m.get(name) for m in members)
        cells.append(cell)
    return cells
