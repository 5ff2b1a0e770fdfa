"""Correlations across (encoder, task) cells with seeds as repeats (DESIGN.md §6).

Each point is a cell's mean over seeds. Per (alignment metric, outcome): Spearman ρ and Pearson
r with n (cells), the permutation p-value of `taskalign.stats.correlation` on the cell means,
and two bootstrap 95 % percentile intervals:

  `{method}_ci`        seeds and test cases resampled (`taskalign.study.analysis.resample`), the cells
                       held fixed: how well these cells' values are measured;
  `{method}_ci_cells`  the cells resampled too (n of n with replacement, each drawn cell at its
                       own seed-and-case replicate): whether the association would hold for
                       other cells like these, the question the permutation p answers.

A D2x flagged saturated in its row (`{d2x}_saturated`: MMD² at >= align.drift.SATURATED of its
ceiling, so it measures how tight the features are, not how far they moved) is left out of its
metric's correlations, as is a ratio with a saturated part; each record counts the seed values
left out (`saturated_left_out`) and says so in `saturation_note`.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from scipy.stats import rankdata

from taskalign.align.drift import SATURATED
from taskalign.stats import correlation
from taskalign.stats.correlation import _pearson_rows
from taskalign.study.analysis.resample import SeedCell, load_seed_cell

CellKey = tuple[str, str, int]   # (encoder, task, n_train): the task at index 1 (its test cases)


SATURATION_FLAGS = {"d2p_d2r_ratio": ("d2p_saturated", "d2r_saturated")}   # other D2x: "<name>_saturated"


def _cells(study_dir: Path, rows: list[dict[str, Any]]) -> dict[CellKey, dict[int, SeedCell]]:
    cells: dict[CellKey, dict[int, SeedCell]] = {}
    for row in rows:   # a copy: leaving saturated values out must not change the caller's rows
        cells.setdefault((row["encoder"], row["task"], int(row["n_train"])), {})[int(row["seed"])] = load_seed_cell(study_dir, dict(row))
    return cells


def saturated_parts(row: dict[str, Any], name: str) -> list[str]:
    """The D2x behind metric `name` that the row flags saturated ([] for metrics without a flag).
    Flags may be bools or results.csv text ("True")."""
    flags = SATURATION_FLAGS.get(name, (f"{name}_saturated",))
    return [f.removesuffix("_saturated") for f in flags if str(row.get(f, False)).strip().lower() in ("true", "1")]


def leave_out_saturated(cells: dict[CellKey, dict[int, SeedCell]], names: Iterable[str]) -> dict[str, int]:
    """Set each saturated seed value of `names` to NaN, in place, with the resampling matrices of
    its saturated parts (a ratio is not rebuilt from them); returns {name: seed values left out}."""
    counts = {}
    for name in names:
        counts[name] = 0
        for c in (c for by_seed in cells.values() for c in by_seed.values()):
            parts = saturated_parts(c.row, name)
            if parts:
                c.row[name] = math.nan
                for part in (name, *parts):
                    c.h.pop(part, None)
                counts[name] += 1
    return counts


def _seed_mean(by_seed: dict[int, SeedCell], name: str) -> float:
    vals = [float(c.row[name]) for c in by_seed.values() if math.isfinite(float(c.row[name]))]
    return float(np.mean(vals)) if vals else math.nan


def replicate_means(cells: dict[CellKey, dict[int, SeedCell]], names: Iterable[str], resamples: int,
                    seed: int) -> tuple[dict[str, dict[CellKey, np.ndarray]], bool]:
    """{name: {cell: (B,) seed-mean under each replicate}} and whether cases were resampled."""
    seeds = sorted({s for by_seed in cells.values() for s in by_seed})
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(seeds), size=(resamples, len(seeds)))          # (B, K) seed indices
    n_cases = {t: len(c.case_ids) for (_, t, _), by_seed in cells.items() for c in by_seed.values()
               if c.case_ids is not None}
    weights = {t: [rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)
                   for _ in seeds] for t, n in sorted(n_cases.items())}       # per task, per draw k
    out: dict[str, dict[CellKey, np.ndarray]] = {name: {} for name in names}
    rows = np.arange(resamples)
    for key, by_seed in cells.items():
        for name in out:
            per_draw = []
            for k in range(len(seeds)):
                w = weights.get(key[1], [None] * len(seeds))[k]
                table = np.full((len(seeds), resamples), np.nan)
                for i, s in enumerate(seeds):
                    if s in by_seed:
                        table[i] = by_seed[s].value(name, w if by_seed[s].case_ids is not None and
                                                    len(by_seed[s].case_ids) == n_cases.get(key[1]) else None)
                per_draw.append(table[drawn[:, k], rows])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN replicates stay NaN
                out[name][key] = np.nanmean(np.stack(per_draw), axis=0)
    return out, bool(n_cases)


def _interval(x: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float, int]:
    """Percentile 95 % interval of the coefficient over replicate rows x, y (B, C)."""
    ok = np.isfinite(x).all(1) & np.isfinite(y).all(1)
    x, y = x[ok], y[ok]
    if method == "spearman":
        x, y = rankdata(x, axis=1), rankdata(y, axis=1)
    r = _pearson_rows(x, y)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return math.nan, math.nan, 0
    low, high = np.quantile(r, [0.025, 0.975])
    return float(low), float(high), int(r.size)


def cell_interval(x: np.ndarray, y: np.ndarray, method: str, seed: int) -> tuple[float, float, int]:
    """`_interval` with the cells (columns) drawn with replacement in every replicate row:
    x, y (B, C) replicate values; row b uses the same draw of C columns for x and y."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, x.shape[1], size=x.shape)
    rows = np.arange(x.shape[0])[:, None]
    return _interval(x[rows, pick], y[rows, pick], method)


def cell_correlations(study_dir: Path, rows: list[dict[str, Any]], alignment: Iterable[str],
                      outcomes: Iterable[str], seed: int, permutations: int = 10000,
                      bootstrap: int = 2000) -> list[dict[str, Any]]:
    """One record per (alignment, outcome) (module docstring); NaN with a note where fewer than
    three cells have both values or one of them is constant."""
    alignment, outcomes = list(alignment), list(outcomes)
    cells = _cells(Path(study_dir), rows)
    left_out = leave_out_saturated(cells, alignment)
    reps, with_cases = replicate_means(cells, alignment + outcomes, bootstrap, seed + 1) if cells else ({}, False)
    n_seeds = len({int(r["seed"]) for r in rows})
    records = []
    for a in alignment:
        for o in outcomes:
            keys = [k for k in cells
                    if math.isfinite(_seed_mean(cells[k], a)) and math.isfinite(_seed_mean(cells[k], o))]
            x = np.array([_seed_mean(cells[k], a) for k in keys])
            y = np.array([_seed_mean(cells[k], o) for k in keys])
            rec: dict[str, Any] = {"alignment": a, "outcome": o, "n": len(keys), "n_seeds": n_seeds,
                                   "point": "encoder × task × labelled-set cell, mean over seeds",
                                   "bootstrap": bootstrap, "permutations": permutations,
                                   "bootstrap_over": "seeds and test cases" if with_cases else "seeds",
                                   "saturated_left_out": left_out[a]}
            if left_out[a]:
                rec["saturation_note"] = (f"{left_out[a]} seed value(s) of {a} at >= {SATURATED:.0%} of the kernel "
                                          "ceiling left out (they measure feature spread, not drift)")
            for method in ("spearman", "pearson"):
                try:
                    res = correlation(x, y, method, permutations=permutations, bootstrap=0, seed=seed)
                except ValueError as err:
                    rec.update({method: math.nan, f"{method}_p": math.nan, f"{method}_ci": [math.nan, math.nan],
                                f"{method}_note": str(err)})
                    continue
                bx = np.stack([reps[a][k] for k in keys], axis=1)
                by = np.stack([reps[o][k] for k in keys], axis=1)
                low, high, valid = _interval(bx, by, method)
                c_low, c_high, c_valid = cell_interval(bx, by, method, seed + 2)
                rec.update({method: res.coefficient, f"{method}_p": res.p_value, f"{method}_ci": [low, high],
                            f"{method}_bootstrap_valid": valid, f"{method}_ci_cells": [c_low, c_high],
                            f"{method}_bootstrap_cells_valid": c_valid})
            records.append(rec)
    return records
