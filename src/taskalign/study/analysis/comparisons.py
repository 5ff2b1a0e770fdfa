"""Per (encoder, task) statistics for summary.json: seed means with 95 % t intervals, and the
paired per-case comparison of each fine-tuned VFM against the task's specialised model.

Paired comparison: the test cases are the same for every seed (the split is fixed by the data
seed), so each case's value is first averaged over seeds, per model; then the differences
VFM − specialised go to `taskalign.stats.paired_comparison` (mean difference with a bootstrap
95 % interval over cases, Wilcoxon signed-rank test). AUROC has no per-case value: for it the
difference of the two AUROCs gets a case-bootstrap interval (cases resampled jointly for both
models) and no signed-rank test.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from taskalign.stats import paired_comparison, seed_stats
from taskalign.study.analysis.resample import SeedCell, load_seed_cell, weighted_auroc

CELL_FIELDS = ("value", "rpg", "convergence_epoch", "gain_over_scratch", "d2p")


def cell_statistics(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (encoder, task, n_train): n_seeds and {mean, sd, n, ci95_low, ci95_high} of each field."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["encoder"], r["task"], int(r["n_train"]))].append(r)
    return [{"encoder": e, "task": t, "n_train": n, "metric": members[0]["metric"], "n_seeds": len(members),
             **{f: seed_stats(float(m[f]) for m in members).to_dict() for f in CELL_FIELDS}}
            for (e, t, n), members in groups.items()]


def _seed_averaged(cells: list[SeedCell], model: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # a case without a value in any seed stays NaN
        return np.nanmean(np.stack([c.per_case[model] for c in cells]), axis=0)


def _auroc_difference(cells: list[SeedCell], bootstrap: int, seed: int, reference: str = "spec") -> dict[str, Any]:
    labels = cells[0].labels
    ft, sp = _seed_averaged(cells, "ft"), _seed_averaged(cells, reference)
    ones = np.ones((1, labels.size))
    observed = float(weighted_auroc(labels, ft, ones)[0] - weighted_auroc(labels, sp, ones)[0])
    rng = np.random.default_rng(seed)
    w = rng.multinomial(labels.size, np.full(labels.size, 1.0 / labels.size), size=bootstrap).astype(np.float64)
    diffs = weighted_auroc(labels, ft, w) - weighted_auroc(labels, sp, w)
    diffs = diffs[np.isfinite(diffs)]
    low, high = (np.quantile(diffs, [0.025, 0.975]) if diffs.size else (math.nan, math.nan))
    return {"n": int(labels.size), "mean_difference": observed, "ci_low": float(low), "ci_high": float(high),
            "statistic": math.nan, "p_value": math.nan, "test": "none (AUROC is not a per-case metric)",
            "note": "difference of AUROCs (seed-averaged scores), case-bootstrap interval"}


def paired_vs_specialised(study_dir: Path, rows: list[dict[str, Any]], seed: int,
                          bootstrap: int = 2000) -> list[dict[str, Any]]:
    """Fine-tuned VFM − the task's specialised model, per (encoder, task) (module docstring)."""
    return paired_comparisons(study_dir, rows, seed, "spec", bootstrap)


def paired_vs_scratch(study_dir: Path, rows: list[dict[str, Any]], seed: int,
                      bootstrap: int = 2000) -> list[dict[str, Any]]:
    """Fine-tuned VFM − the same architecture trained from scratch: what pretraining bought."""
    return paired_comparisons(study_dir, rows, seed, "scratch", bootstrap)


def paired_comparisons(study_dir: Path, rows: list[dict[str, Any]], seed: int, reference: str,
                       bootstrap: int = 2000) -> list[dict[str, Any]]:
    """One record per (encoder, task, n_train) whose runs have per-case results: fine-tuned −
    `reference` ("spec" or "scratch")."""
    groups: dict[tuple[str, str, int], list[SeedCell]] = defaultdict(list)
    for r in rows:
        cell = load_seed_cell(Path(study_dir), r)
        if reference in cell.per_case:
            groups[(r["encoder"], r["task"], int(r["n_train"]))].append(cell)
    name = {"spec": "specialised", "scratch": "scratch"}[reference]
    out = []
    for (encoder, task, n_train), cells in groups.items():
        cells = [c for c in cells if c.case_ids == cells[0].case_ids]
        rec: dict[str, Any] = {"encoder": encoder, "task": task, "n_train": n_train, "metric": cells[0].row["metric"],
                               "higher_is_better": bool(cells[0].row["higher_is_better"]), "n_seeds": len(cells),
                               "difference": f"{encoder} − {name}"}
        if cells[0].labels is not None:
            rec.update(_auroc_difference(cells, bootstrap, seed, reference))
        else:
            res = paired_comparison(_seed_averaged(cells, "ft"), _seed_averaged(cells, reference),
                                    bootstrap=bootstrap, seed=seed)
            rec.update({**res.to_dict(), "test": "Wilcoxon signed-rank, two-sided"})
        out.append(rec)
    return out
