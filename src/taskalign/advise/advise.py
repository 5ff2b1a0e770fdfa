"""`advise`: rank candidate encoders or checkpoints for a task from frozen features of the target
data alone (no fine-tuning), with every estimator of `scoring.py` and its interval.

    from taskalign.advise.advise import advise
    from taskalign.advise.candidates import parse_candidates
    from taskalign.advise.target import phantom_target
    result = advise("segmentation", parse_candidates(["profound_conv", "provicnet=random"], "micro"),
                    phantom_target("quick", n_cases=16), resamples=100)
    result["ranking"]["logme"]          # candidate labels, best first

How far to trust each estimator is its rank correlation with the fine-tuned gain over the
sources of a transfer matrix; `trust.apply_trust` adds it to a result (the CLI does).
"""
from __future__ import annotations

import time
import warnings
from typing import Callable

from taskalign.advise.candidates import Candidate
from taskalign.advise.features import reference_features, task_rows, task_samples
from taskalign.advise.scoring import (CORRELATION_NOT_MEASURED, ESTIMATORS, HIGHER_IS_BETTER, mean_rank, ranking,
                                      score_candidate)
from taskalign.advise.target import TargetData
from taskalign.tasks.base import create_task, list_tasks


def limits(n_cases: int, kind: str) -> list[str]:
    """What `n_cases` target cases cannot support, in words (empty when nothing is missing)."""
    if n_cases == 1:
        what = ("nothing at case level" if kind == "classification" else
                "only LogME and H-score on the cells of that one case; they describe one patient")
        return [f"1 target case: {what}; no interval (needs >= 4 cases), no linear or kNN probe (folds are "
                "grouped by case: >= 2 cases), no drift proxy (unbiased MMD²: >= 2 cases)"]
    if n_cases < 4:
        return [f"{n_cases} target cases: no intervals (half-sampling needs >= 4 cases)"]
    return []


def advise(task_name: str, candidates: list[Candidate], target: TargetData, resamples: int = 200, seed: int = 0,
           log: Callable[[str], None] = lambda msg: None) -> dict:
    """Scores, intervals and rankings of `candidates` for task `task_name` on `target` (JSON-ready)."""
    if task_name not in list_tasks():
        raise ValueError(f"unknown task {task_name!r}; registered: {', '.join(list_tasks())}")
    task = create_task(task_name)
    samples, skipped = task_samples(task, target.cases, target.data_seed)
    if not samples:
        raise ValueError(f"none of the {len(target.cases)} target case(s) carries the labels {task_name} needs "
                         f"({', '.join(task.requires)}): nothing can be estimated")
    scores, described = {}, []
    for cand in candidates:
        start = time.perf_counter()
        encoder, notes = cand.build(task.input_sequences)
        rows = task_rows(task, encoder, samples, seed)
        reference = reference_features(task, encoder, target.reference)
        with warnings.catch_warnings():    # small folds: sklearn's per-fold remarks, not the user's concern
            warnings.filterwarnings("ignore", category=UserWarning, module=r"sklearn\.")
            scores[cand.label] = score_candidate(rows, reference, resamples, seed)
        described.append({"label": cand.label, "encoder": cand.encoder, "size": cand.size, "source": cand.source,
                          "weights": str(cand.weights) if cand.weights else None,
                          "notes": [n for n in [cand.note, *notes] if n], "n_rows": int(len(rows.y)),
                          "unit": rows.unit, "n_features": int(rows.x.shape[1])})
        log(f"  {cand.label}: {len(rows.y)} {rows.unit} rows x {rows.x.shape[1]} features, "
            f"{time.perf_counter() - start:.0f} s")
    order = ranking(scores)
    return {
        "limits": limits(len(samples), task.kind),
        "task": task_name, "target": target.description, "n_cases": len(samples),
        "target_notes": target.notes + skipped, "resamples": resamples, "seed": seed,
        "candidates": described,
        "estimators": {name: {"higher_is_better": HIGHER_IS_BETTER[name],
                              "rank_correlation_with_finetuned_gain": None,
                              "rank_correlation_note": CORRELATION_NOT_MEASURED} for name in ESTIMATORS},
        "scores": {label: {name: s.to_dict() for name, s in per.items()} for label, per in scores.items()},
        "ranking": order, "mean_rank": mean_rank(order, scores) if len(samples) >= 2 else {},
    }
