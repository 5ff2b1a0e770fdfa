"""Label efficiency: each model's test metric against the number of labelled training cases.

A point is one (task, model, labelled-set size): the fine-tuned encoder (`value`), the same
architecture from scratch (`scratch_value`) and the task's specialised model
(`specialised_value`, the same run for every encoder, so taken once per task, size and seed),
from results.csv. Its interval is

- with two seeds or more: the 95 % t interval of the mean over seeds (`taskalign.stats`);
- with one seed: the 2.5–97.5 % percentiles of the metric over bootstrap resamples of the test
  cases (the run's per_case.csv; the weighted formulas of `study.analysis.resample`: a per-case
  mean, or AUROC from the logits and labels), or none when the run has no per_case.csv.
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskalign.report.cells import seed_stats
from taskalign.report.load import StudyData, is_number

BOOTSTRAP = 1000
SEEDS_INTERVAL = "95 % t interval over seeds"
CASES_INTERVAL = "95 % percentile interval over {b} bootstrap resamples of the test cases (one seed)"


@dataclass(frozen=True)
class CurvePoint:
    task: str
    model: str          # "<encoder>", "<encoder>-scratch" or "specialised"
    n_train: int
    mean: float
    low: float          # NaN: no interval
    high: float
    n_seeds: int


def label_efficiency(study: StudyData, bootstrap: int = BOOTSTRAP, seed: int = 0) -> tuple[list[CurvePoint], str]:
    """The points of every task's curve and the name of their interval (module docstring)."""
    values: dict[tuple[str, str, int], dict[int, float]] = defaultdict(dict)   # (task, model, n) -> seed -> value
    for r in study.rows:
        if r["n_train"] is None or r["seed"] is None:
            continue
        for model, column in ((r["encoder"], "value"), (f"{r['encoder']}-scratch", "scratch_value"),
                              ("specialised", "specialised_value")):
            values[(r["task"], model, r["n_train"])].setdefault(r["seed"], r[column])
    several = len(study.seeds) > 1
    rng = np.random.default_rng(seed)
    points = []
    for (task, model, n_train), by_seed in values.items():
        s = seed_stats(by_seed.values())
        low, high = s.mean - s.ci95, s.mean + s.ci95
        if not several and s.finite:
            metric = next(r["metric"] for r in study.rows if r["task"] == task)
            run = study.study_dir / "cells" / model / task / f"n{n_train}" / f"seed{next(iter(by_seed))}"
            low, high = case_bootstrap_interval(run / "per_case.csv", metric, bootstrap, rng)
        points.append(CurvePoint(task, model, n_train, s.mean, low, high, s.n))
    kind = SEEDS_INTERVAL if several else CASES_INTERVAL.format(b=bootstrap)
    return sorted(points, key=lambda p: p.n_train), kind   # stable: tasks stay in the study's order


def case_bootstrap_interval(per_case: Path, metric: str, bootstrap: int,
                            rng: np.random.Generator) -> tuple[float, float]:
    """(low, high) of the metric over case resamples of one run; (NaN, NaN) without the file."""
    from taskalign.study.analysis.resample import weighted_auroc, weighted_mean   # torch: import late
    columns = _read_columns(per_case)
    if columns is None:
        return math.nan, math.nan
    if metric == "auroc":
        if not {"logit", "label"} <= columns.keys():
            return math.nan, math.nan
        scores, labels = _floats(columns["logit"]), _floats(columns["label"])
        ok = np.isfinite(scores) & np.isfinite(labels)
        scores, labels = scores[ok], labels[ok].astype(int)
    elif metric in columns:
        scores, labels = _floats(columns[metric]), None
    else:
        return math.nan, math.nan
    if scores.size < 2:
        return math.nan, math.nan
    w = rng.multinomial(scores.size, np.full(scores.size, 1.0 / scores.size), size=bootstrap).astype(float)  # (B, n)
    stats = weighted_auroc(labels, scores, w) if labels is not None else weighted_mean(scores, w)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(stats, [0.025, 0.975])
    return float(low), float(high)


def _read_columns(path: Path) -> dict[str, list[str]] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in rows[0] if k is not None} if rows else None


def _floats(column: list[Any]) -> np.ndarray:
    out = []
    for v in column:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.array(out, dtype=float)


def has_interval(point: CurvePoint) -> bool:
    return is_number(point.low) and is_number(point.high)
