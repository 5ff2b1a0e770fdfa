"""`results.csv` and `summary.json`: correlations of each alignment metric with gain and
convergence, the within-task view, and the paper's claims checked one by one (DESIGN.md §6)."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from taskalign.stats import sign_agreement
from taskalign import io
from taskalign.study.analysis.correlate import saturated_parts
from taskalign.study.analysis.comparisons import cell_statistics, paired_vs_scratch, paired_vs_specialised
from taskalign.study.config import StudyConfig
from taskalign.study.pretrain_stage import foundation_status
from taskalign.study.analysis.results import cell_row, saturation_note, write_results

ALIGNMENT = ("d2p", "d2r", "d2s", "d2p_d2r_ratio", "cka_pretrained", "e2p")
OUTCOMES = ("rpg", "gain_over_scratch", "convergence_epoch")
EARLY_ALIGNMENT = ("d2p_epoch1", "e2p_epoch1", "d2p_10pct", "e2p_10pct")
EARLY_OUTCOMES = ("gain_over_scratch", "rpg", "d2p", "e2p")
RESTORATION = ("distortion_correction", "super_resolution")
SEMANTIC = ("segmentation", "classification")


def correlations(rows: list[dict[str, Any]], seed: int, study_dir: Path | None = None,
                 bootstrap: int = 2000) -> list[dict[str, Any]]:
    """Each alignment metric against each outcome over (encoder, task) cells, seeds as repeats;
    bootstrap over seeds and, when `study_dir` holds the per-case files, test cases too
    (`taskalign.study.analysis.correlate`)."""
    from taskalign.study.analysis.correlate import cell_correlations
    return cell_correlations(Path(study_dir) if study_dir else Path("/nonexistent"), rows, ALIGNMENT, OUTCOMES,
                             seed, bootstrap=bootstrap)


def early_prediction(rows: list[dict[str, Any]], seed: int, study_dir: Path) -> dict[str, Any]:
    """Can a user stop a bad fine-tuning early? D2P and energy distance at the early checkpoints
    (`cell.early_checkpoints`) against the final gain, RPG and the final D2P / E2P, over the
    cells, with the intervals of `correlations`; checkpoints no run saved are left out."""
    from taskalign.study.analysis.correlate import cell_correlations
    present = [a for a in EARLY_ALIGNMENT if any(math.isfinite(float(r.get(a, math.nan))) for r in rows)]
    note = ("early checkpoints: after the first epoch, and at the epoch nearest 10 % of the steps when that is "
            "later (the features of the test cases at that step against the pretrained state)")
    if not present:
        return {"correlations": [], "note": "no run saved early features (runs written before early prediction)"}
    return {"correlations": cell_correlations(study_dir, rows, present, EARLY_OUTCOMES, seed), "note": note}


def _mean_by(rows, key_fn, field):
    groups = defaultdict(list)
    for r in rows:
        if math.isfinite(r[field]):
            groups[key_fn(r)].append(r[field])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def within_task(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task: does the encoder with the smaller mean D2P have the larger mean RPG? A D2P at
    >= 90 % of its kernel ceiling (`d2p_saturated`) measures feature spread, not drift: left out."""
    d2p = _mean_by([r for r in rows if not saturated_parts(r, "d2p")], lambda r: (r["task"], r["encoder"]), "d2p")
    rpg = _mean_by(rows, lambda r: (r["task"], r["encoder"]), "rpg")
    per_task: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    for (task, enc), v in d2p.items():
        if (task, enc) in rpg:
            per_task[task][enc] = (v, rpg[(task, enc)])
    per_task = {t: cells for t, cells in per_task.items() if len(cells) == 2}
    if not per_task:
        return {"tasks": [], "n_agree": 0, "n_tasks": 0, "p_value": float("nan"),
                "note": "needs two encoders with finite D2P and RPG in at least one task"}
    res = sign_agreement(per_task)
    tasks = []
    for task, cells in per_task.items():
        smaller = min(cells, key=lambda e: cells[e][0])
        larger = max(cells, key=lambda e: cells[e][1])
        tasks.append({"task": task, "smaller_d2p": smaller, "larger_gain": larger,
                      "agree": res.per_task[task] == "agree", "verdict": res.per_task[task]})
    return {"tasks": tasks, "n_agree": res.agree, "n_disagree": res.disagree, "n_ties": res.ties,
            "n_tasks": res.n_tasks, "p_value": res.p_value, "test": "exact two-sided sign test"}


def _encoder_claim(rows, encoder: str, other: str, tasks: tuple[str, ...], n_seeds: int) -> dict[str, Any]:
    rpg = _mean_by(rows, lambda r: (r["task"], r["encoder"]), "rpg")
    present = [t for t in tasks if (t, encoder) in rpg and (t, other) in rpg]
    claim = f"{encoder} gains more than {other} on {' and '.join(tasks)}"
    if not present:
        return {"claim": claim, "verdict": "inconclusive at this n", "evidence": "cells missing"}
    diffs = {t: rpg[(t, encoder)] - rpg[(t, other)] for t in present}
    evidence = "; ".join(f"{t}: RPG {rpg[(t, encoder)]:+.1f} % vs {rpg[(t, other)]:+.1f} %" for t in present)
    direction = all(d > 0 for d in diffs.values())
    opposite = all(d < 0 for d in diffs.values())
    # per-seed consistency: with >= 3 seeds the direction must hold in every seed of every task
    per_seed = [r1["rpg"] - r2["rpg"] for t in present for r1 in rows for r2 in rows
                if r1["task"] == r2["task"] == t and r1["seed"] == r2["seed"]
                and r1["encoder"] == encoder and r2["encoder"] == other]
    if n_seeds >= 3 and per_seed and (all(d > 0 for d in per_seed) or all(d < 0 for d in per_seed)):
        verdict = "holds" if direction else "does not hold"
    elif n_seeds >= 3 and opposite:
        verdict = "does not hold"
    else:
        verdict = "inconclusive at this n"
        evidence += f" (direction {'as claimed' if direction else 'opposite' if opposite else 'mixed'}; {n_seeds} seed(s))"
    return {"claim": claim, "verdict": verdict, "evidence": evidence}


def _correlation_claim(corrs, outcome: str, sign: int, text: str) -> dict[str, Any]:
    c = next(c for c in corrs if c["alignment"] == "d2p" and c["outcome"] == outcome)
    evidence = f"Spearman ρ = {c['spearman']:.2f} (p = {c['spearman_p']:.3f}, n = {c['n']})"
    if not math.isfinite(c["spearman"]):
        verdict = "inconclusive at this n"
    elif c["spearman_p"] < 0.05:
        verdict = "holds" if np.sign(c["spearman"]) == sign else "does not hold"
    else:
        verdict = "inconclusive at this n"
    return {"claim": text, "verdict": verdict, "evidence": evidence}


def claims(rows, corrs, n_seeds: int) -> list[dict[str, Any]]:
    out = []
    if {"profound_conv", "provicnet"} <= {r["encoder"] for r in rows}:
        out.append(_encoder_claim(rows, "profound_conv", "provicnet", RESTORATION, n_seeds))
        out.append(_encoder_claim(rows, "provicnet", "profound_conv", SEMANTIC, n_seeds))
    out.append(_correlation_claim(corrs, "rpg", -1, "smaller feature change (D2P) goes with a larger gain (RPG)"))
    out.append(_correlation_claim(corrs, "gain_over_scratch", -1, "smaller feature change (D2P) goes with a "
                                  "larger pretraining gain (fine-tuned − scratch)"))
    out.append(_correlation_claim(corrs, "convergence_epoch", 1,
                                  "smaller feature change (D2P) goes with faster convergence"))
    return out


def by_regime(rows: list[dict[str, Any]], cfg: StudyConfig, out: Path) -> list[dict[str, Any]]:
    """Per labelled-set size: its correlations over the (encoder, task) cells, the within-task
    sign test and the paper's claims, each computed on that regime's cells alone."""
    result = []
    for n in sorted({int(r["n_train"]) for r in rows}):
        sub = [r for r in rows if int(r["n_train"]) == n]
        corrs = correlations(sub, seed=cfg.study_seed, study_dir=out)
        result.append({"n_train": n, "n_cells": len(sub), "correlations": corrs, "within_task": within_task(sub),
                       "claims": claims(sub, corrs, len(cfg.seeds))})
    return result


def by_task(rows: list[dict[str, Any]], cfg: StudyConfig, out: Path) -> list[dict[str, Any]]:
    """Per task: correlations over its (encoder, labelled-set size) cells, where the task is held
    fixed (n is small: 2 encoders × the regimes)."""
    return [{"task": t, "correlations": correlations([r for r in rows if r["task"] == t], seed=cfg.study_seed,
                                                     study_dir=out)}
            for t in dict.fromkeys(r["task"] for r in rows)]


def finish_study(out: Path, cfg: StudyConfig, excluded, skipped, timing, references=None) -> Path:
    rows = [r for t in cfg.tasks for n in _sizes(out, t) for s in cfg.seeds for e in cfg.encoders
            if (r := cell_row(out, e, t, n, s)) is not None]
    path = write_results(out, rows)
    corrs = correlations(rows, seed=cfg.study_seed, study_dir=out)
    regimes = by_regime(rows, cfg, out)
    notes = [f"skipped task {s['task']}: {s['reason']}" if "n_train" not in s else f"{s['task']}: {s['reason']}"
             for s in skipped]
    if (saturated := saturation_note(rows)) is not None:
        notes.append(saturated)
    start_weights = {e: foundation_status(out, e, cfg) for e in cfg.encoders}
    notes += [f"{e}: in-house pretrained weights that failed the foundation gate ({st['reason']}); not a foundation "
              f"model" for e, st in start_weights.items() if st["gate"] is False]
    if cfg.preset in ("smoke", "quick"):
        sizes = ", ".join(str(r["n_train"]) for r in regimes) or "none"
        notes.append(f"preset {cfg.preset}: small models, {len(cfg.seeds)} seed(s), short training, labelled-set size(s) {sizes}; "
                     "the numbers are indicative, use --preset standard for conclusions")
    summary = {"preset": cfg.preset, "seeds": list(cfg.seeds), "regimes": [r["n_train"] for r in regimes],
               "n_cells": len(rows), "cells": cell_statistics(rows),
               "paired_vs_specialised": paired_vs_specialised(out, rows, seed=cfg.study_seed),
               "paired_vs_scratch": paired_vs_scratch(out, rows, seed=cfg.study_seed),
               "correlations": corrs, "by_regime": regimes, "by_task": by_task(rows, cfg, out),
               "early_prediction": early_prediction(rows, cfg.study_seed, out),
               # the headline view: the largest regime's within-task test and claims
               "within_task": regimes[-1]["within_task"] if regimes else within_task([]),
               "claims": [{**c, "n_train": r["n_train"]} for r in regimes for c in r["claims"]],
               "start_weights": start_weights, "timing": timing, "references": references or {},
               "excluded_cases": excluded, "skipped_tasks": skipped, "notes": notes}
    io.write_json(out / "summary.json", summary)
    return path


def _sizes(out: Path, task: str) -> list[int]:
    """The labelled-set sizes that have run folders for `task` (cells/<model>/<task>/n<k>/), ascending."""
    found = {int(d.name[1:]) for d in (Path(out) / "cells").glob(f"*/{task}/n*") if d.name[1:].isdigit()}
    return sorted(found)
