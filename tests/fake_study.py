"""Writes a small, made-up finished study folder in the layout of docs/study_folder.md.

The numbers follow the paper's pattern (each encoder drifts less and gains more on the tasks that
fit its pretraining) so the plots look like a real study, but nothing here is computed by
taskalign: it is a fixture for the report stage.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

ENCODERS = ("profound_conv", "provicnet")
TASKS = ("classification", "segmentation", "super_resolution", "distortion_correction", "synthesis")
METRIC = {"classification": ("auroc", True, 0.70), "segmentation": ("dice", True, 0.40),
          "super_resolution": ("psnr", True, 28.0), "distortion_correction": ("psnr", True, 25.0),
          "synthesis": ("psnr", True, 22.0)}
# how well each encoder's pretraining fits each task (1 = perfectly); drives drift and gain
FIT = {"profound_conv": (0.4, 0.3, 0.8, 0.9, 0.6), "provicnet": (0.7, 0.9, 0.3, 0.2, 0.4)}
COLUMNS = ("encoder task seed metric higher_is_better value specialised_value scratch_value rpg "
           "gain_over_scratch convergence_epoch convergence_censored scratch_convergence_epoch "
           "specialised_convergence_epoch self_convergence_epoch epochs d2p d2r d2s d2p_d2r_ratio "
           "d2p_p d2r_p d2s_p cka_pretrained cka_random cka_scratch n_probe sigma_ref").split()
EPOCHS = 12


def write_fake_study(root: Path, seeds: tuple[int, ...] = (0, 1), preset: str = "quick",
                     with_nan: bool = False, claim_text: str | None = None) -> Path:
    """Write the folder under `root` and return it. `with_nan` puts NaN in one cell's D2P, another
    cell's RPG, and one epoch of a validation curve."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    _dump(root / "config.json", _config(preset, seeds))
    _dump(root / "splits.json", {"data_seed": 0, "train": [f"ph{i:03d}" for i in range(8)],
                                 "val": ["ph100", "ph101"], "test": ["ph200", "ph201", "ph202"],
                                 "pretrain": [f"pt{i:03d}" for i in range(12)],
                                 "excluded": [{"case": "ph999", "reason": "no lesion mask"}]})
    timing = {"data": 1.2, "pretrain": 61.5, "finetune": 420.0, "features": 12.3, "alignment": 3.4,
              "statistics": 0.8}
    _dump(root / "timing.json", timing)
    rows = []
    for seed in seeds:
        for t_idx, task in enumerate(TASKS):
            metric, hib, base = METRIC[task]
            spec = base * (1 + 0.02 * rng.standard_normal())
            _write_run(root, "specialised", task, seed, metric, hib, spec, rng)
            for enc in ENCODERS:
                fit = FIT[enc][t_idx]
                value = spec * (1 + 0.25 * (fit - 0.5) + 0.02 * rng.standard_normal())
                scratch = spec * (0.93 + 0.02 * rng.standard_normal())
                _write_run(root, enc, task, seed, metric, hib, value, rng,
                           nan_epoch=with_nan and enc == "provicnet" and task == "synthesis")
                _write_run(root, f"{enc}-scratch", task, seed, metric, hib, scratch, rng)
                rows.append(_row(enc, task, seed, metric, hib, value, spec, scratch, fit, rng))
    if with_nan:
        rows[0]["d2p"] = math.nan           # profound_conv / classification
        rows[0]["d2p_d2r_ratio"] = math.nan
        rows[3]["rpg"] = math.nan           # provicnet / segmentation
    _write_results(root / "results.csv", rows)
    _dump(root / "summary.json", _summary(rows, preset, seeds, timing, claim_text))
    return root


def _config(preset: str, seeds: tuple[int, ...]) -> dict:
    """Shaped like a resolved StudyConfig (nested data / pretrain / train sections)."""
    return {"preset": preset, "encoders": list(ENCODERS), "tasks": list(TASKS), "seeds": list(seeds),
            "study_seed": 0, "encoder_size": "micro",
            "data": {"source": "phantom", "shape": [16, 48, 48], "spacing_mm": [3.0, 1.5, 1.5],
                     "n_pretrain": 64, "n_train": 48, "n_val": 16, "n_test": 32, "data_seed": 0},
            "pretrain": {"steps": 150, "batch_size": 4, "lr": 1.5e-3},
            "train": {"steps": 96, "steps_per_epoch": 8, "batch_size": 4, "slices_per_volume": 4,
                      "lr": {"profound_conv": [1e-3, 2e-3], "provicnet": [5e-4, 2e-3]},
                      "specialised_lr": 2e-3}}


def _write_run(root: Path, model: str, task: str, seed: int, metric: str, hib: bool, final: float,
               rng: np.random.Generator, nan_epoch: bool = False) -> None:
    run = root / "cells" / model / task / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    speed = 2.5 if "-scratch" not in model and model != "specialised" else 5.0
    lines = []
    for epoch in range(1, EPOCHS + 1):
        val = final * (1 - 0.5 * math.exp(-epoch / speed)) * (1 + 0.01 * rng.standard_normal())
        if nan_epoch and epoch == 4:
            val = math.nan
        lines.append(json.dumps({"epoch": epoch, "step": epoch * 8, "train_loss": 1.0 / epoch,
                                 "val_metric": val, "seconds": 2.0 * epoch}))
    (run / "curve.jsonl").write_text("\n".join(lines) + "\n")
    lr = {"encoder": 1e-4, "head": 1e-3} if model in ENCODERS else {"model": 1e-3}
    _dump(run / "metrics.json", {"model": model, "task": task, "seed": seed, "metric": metric,
                                 "higher_is_better": hib, "value": final, "metrics": {metric: final},
                                 "best_epoch": EPOCHS, "epochs": EPOCHS, "steps": EPOCHS * 8,
                                 "lr": lr, "seconds": 2.0 * EPOCHS})


def _row(enc, task, seed, metric, hib, value, spec, scratch, fit, rng) -> dict:
    d2p = 0.05 + 0.4 * (1 - fit) + 0.02 * abs(rng.standard_normal())
    d2r = 0.9 + 0.1 * rng.random()
    d2s = 0.3 + 0.2 * rng.random()
    conv = int(round(2 + 8 * (1 - fit)))
    censored = conv >= 8
    return {"encoder": enc, "task": task, "seed": seed, "metric": metric, "higher_is_better": hib,
            "value": value, "specialised_value": spec, "scratch_value": scratch,
            "rpg": 100 * (value - spec) / abs(spec), "gain_over_scratch": value - scratch,
            "convergence_epoch": EPOCHS if censored else conv, "convergence_censored": censored,
            "scratch_convergence_epoch": 9, "specialised_convergence_epoch": 8,
            "self_convergence_epoch": max(1, conv - 1), "epochs": EPOCHS, "d2p": d2p, "d2r": d2r,
            "d2s": d2s, "d2p_d2r_ratio": d2p / d2r, "d2p_p": 0.01, "d2r_p": 0.001, "d2s_p": 0.02,
            "cka_pretrained": 1 - d2p, "cka_random": 0.2, "cka_scratch": 0.5, "n_probe": 3,
            "sigma_ref": 4.2}


def _write_results(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
                             for k, v in row.items()})


def _summary(rows, preset, seeds, timing, claim_text) -> dict:
    correlations = []
    for alignment in ("d2p", "d2r", "d2p_d2r_ratio", "cka_pretrained"):
        for outcome in ("rpg", "convergence_epoch"):
            pairs = [(r[alignment], r[outcome]) for r in rows
                     if np.isfinite(r[alignment]) and np.isfinite(r[outcome])]
            x, y = np.array(pairs, dtype=float).T
            rho, rho_p = stats.spearmanr(x, y)
            r, r_p = stats.pearsonr(x, y)
            correlations.append({"alignment": alignment, "outcome": outcome, "n": len(pairs),
                                 "spearman": float(rho), "spearman_p": float(rho_p),
                                 "spearman_ci": _ci(float(rho)), "spearman_ci_cells": _ci(float(rho), 0.5),
                                 "pearson": float(r), "pearson_p": float(r_p),
                                 "pearson_ci": _ci(float(r)), "pearson_ci_cells": _ci(float(r), 0.5)})
    correlations[-1]["spearman_p"] = math.nan  # a statistic the study could not compute
    within = [{"task": t, "smaller_d2p": "profound_conv" if t in TASKS[2:4] else "provicnet",
               "larger_gain": "profound_conv" if t in TASKS[2:] else "provicnet",
               "agree": t != "synthesis"} for t in TASKS]
    claims = [{"claim": "Smaller D2P goes with a larger RPG across cells", "verdict": "holds",
               "evidence": "Spearman ρ < 0 with p < 0.05"},
              {"claim": "ProFound gains most on restoration tasks", "verdict": "inconclusive at this n",
               "evidence": "one seed"},
              {"claim": claim_text or "Smaller D2P converges faster", "verdict": "does not hold",
               "evidence": "p = 0.4 > 0.05 & n = 10"}]
    paired = [{"encoder": e, "task": t, "metric": METRIC[t][0], "n": 3, "n_seeds": len(seeds),
               "mean_difference": 0.01 * (i + 1), "ci_low": 0.0, "ci_high": 0.02 * (i + 1), "statistic": 1.0,
               "p_value": 0.5, "test": "Wilcoxon signed-rank, two-sided"}
              for i, (e, t) in enumerate((e, t) for e in ENCODERS for t in TASKS)]
    return {"preset": preset, "seeds": list(seeds), "n_cells": len(rows), "correlations": correlations,
            "paired_vs_specialised": paired,
            "within_task": {"tasks": within, "n_agree": 4, "n_tasks": 5, "p_value": 0.1875},
            "claims": claims, "timing": timing,
            "excluded_cases": [{"case": "ph999", "reason": "no lesion mask"}],
            "skipped_tasks": [{"task": "zonal_segmentation", "reason": "no zone labels"}],
            "notes": ["Convergence is censored at the last epoch for cells that never reached the target."]}


def _ci(coef: float, half_width: float = 0.3) -> list[float]:
    return [max(-1.0, coef - half_width), min(1.0, coef + half_width)]


def _dump(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=1))
