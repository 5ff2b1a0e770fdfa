"""Writes a small, made-up finished study folder in the layout of docs/study_folder.md.

The numbers are MADE UP. They follow the paper's pattern (each encoder drifts less and gains more
on the tasks that fit its pretraining; every model improves with more labelled cases) so the plots
look like a real study, but nothing here is computed by taskalign, and the summary's statistics
(intervals, p-values, claims) are invented to have the right shape: it is a fixture for the
report stage only.
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
COLUMNS = ("encoder task n_train seed metric higher_is_better value specialised_value scratch_value rpg "
           "gain_over_scratch convergence_epoch convergence_censored scratch_convergence_epoch "
           "specialised_convergence_epoch self_convergence_epoch epochs d2p d2r d2s d2p_d2r_ratio "
           "d2p_p d2r_p d2s_p cka_pretrained cka_random cka_scratch n_probe sigma_ref").split()
EPOCHS = 12


def write_fake_study(root: Path, seeds: tuple[int, ...] = (0, 1), preset: str = "quick",
                     with_nan: bool = False, claim_text: str | None = None,
                     train_cases: tuple[int, ...] = (8, 24)) -> Path:
    """Write the folder under `root` and return it: cells/<model>/<task>/n<k>/seed<s>/ for each
    labelled-set size k in `train_cases`. `with_nan` puts NaN in one cell's D2P, another cell's
    RPG, and one epoch of a validation curve."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    _dump(root / "config.json", _config(preset, seeds, train_cases))
    _dump(root / "splits.json", {"data_seed": 0, "train": [f"ph{i:03d}" for i in range(max(train_cases))],
                                 "val": ["ph100", "ph101"], "test": ["ph200", "ph201", "ph202"],
                                 "excluded": [{"case": "ph999", "reason": "no lesion mask"}]})
    timing = {"data": 1.2, "pretrain": 61.5, "finetune": 420.0, "features": 12.3, "alignment": 3.4,
              "statistics": 0.8}
    _dump(root / "timing.json", timing)
    rows = []
    for n_train in train_cases:
        more = 0.9 + 0.1 * math.log(n_train) / math.log(max(train_cases) + 1)   # more labels, better models
        for seed in seeds:
            for t_idx, task in enumerate(TASKS):
                metric, hib, base = METRIC[task]
                spec = more * base * (1 + 0.02 * rng.standard_normal())
                _write_run(root, "specialised", task, n_train, seed, metric, hib, spec, rng)
                for enc in ENCODERS:
                    fit = FIT[enc][t_idx]
                    value = spec * (1 + 0.25 * (fit - 0.5) + 0.02 * rng.standard_normal())
                    scratch = spec * (0.93 + 0.02 * rng.standard_normal())
                    _write_run(root, enc, task, n_train, seed, metric, hib, value, rng,
                               nan_epoch=with_nan and enc == "provicnet" and task == "synthesis")
                    _write_run(root, f"{enc}-scratch", task, n_train, seed, metric, hib, scratch, rng)
                    rows.append(_row(enc, task, n_train, seed, metric, hib, value, spec, scratch, fit, rng))
    if with_nan:
        rows[0]["d2p"] = math.nan           # profound_conv / classification
        rows[0]["d2p_d2r_ratio"] = math.nan
        rows[3]["rpg"] = math.nan           # provicnet / segmentation
    _write_results(root / "results.csv", rows)
    _dump(root / "summary.json", _summary(rows, preset, seeds, train_cases, timing, claim_text))
    return root


def _config(preset: str, seeds: tuple[int, ...], train_cases: tuple[int, ...]) -> dict:
    """Shaped like a resolved StudyConfig (nested data / pretrain / train sections)."""
    return {"preset": preset, "encoders": list(ENCODERS), "tasks": list(TASKS), "seeds": list(seeds),
            "study_seed": 0, "encoder_size": "micro",
            "data": {"source": "phantom", "shape": [16, 48, 48], "spacing_mm": [3.0, 1.5, 1.5],
                     "n_train": 48, "n_val": 16, "n_test": 32, "data_seed": 0,
                     "train_cases": list(train_cases)},
            "pretrain": {"steps": 150, "batch_size": 4, "lr": 1.5e-3},
            "train": {"steps": 96, "steps_per_epoch": 8, "batch_size": 4, "slices_per_volume": 4,
                      "lr": {"profound_conv": [1e-3, 2e-3], "provicnet": [5e-4, 2e-3]},
                      "specialised_lr": 2e-3}}


def _write_run(root: Path, model: str, task: str, n_train: int, seed: int, metric: str, hib: bool, final: float,
               rng: np.random.Generator, nan_epoch: bool = False) -> None:
    run = root / "cells" / model / task / f"n{n_train}" / f"seed{seed}"
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
    _write_per_case(run / "per_case.csv", metric, final, rng)
    lr = {"encoder": 1e-4, "head": 1e-3} if model in ENCODERS else {"model": 1e-3}
    _dump(run / "metrics.json", {"model": model, "task": task, "seed": seed, "metric": metric,
                                 "higher_is_better": hib, "value": final, "metrics": {metric: final},
                                 "best_epoch": EPOCHS, "epochs": EPOCHS, "steps": EPOCHS * 8,
                                 "lr": lr, "seconds": 2.0 * EPOCHS})


def _write_per_case(path: Path, metric: str, final: float, rng: np.random.Generator, n_cases: int = 6) -> None:
    """Per test case: the metric around `final` (AUROC: a logit and a label per case instead)."""
    ids = [f"ph{200 + i}" for i in range(n_cases)]
    if metric == "auroc":
        labels = [i % 2 for i in range(n_cases)]
        lines = ["case_id,label,logit"] + [f"{c},{y},{(2 * y - 1) * final + rng.standard_normal():.4f}"
                                           for c, y in zip(ids, labels)]
    else:
        lines = [f"case_id,{metric}"] + [f"{c},{final * (1 + 0.05 * rng.standard_normal()):.5f}" for c in ids]
    path.write_text("\n".join(lines) + "\n")


def _row(enc, task, n_train, seed, metric, hib, value, spec, scratch, fit, rng) -> dict:
    d2p = 0.05 + 0.4 * (1 - fit) + 0.02 * abs(rng.standard_normal())
    d2r = 0.9 + 0.1 * rng.random()
    d2s = 0.3 + 0.2 * rng.random()
    conv = int(round(2 + 8 * (1 - fit)))
    censored = conv >= 8
    return {"encoder": enc, "task": task, "n_train": n_train, "seed": seed, "metric": metric, "higher_is_better": hib,
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


def _correlations(rows) -> list[dict]:
    out = []
    for alignment in ("d2p", "d2r", "d2p_d2r_ratio", "cka_pretrained"):
        for outcome in ("rpg", "gain_over_scratch", "convergence_epoch"):
            pairs = [(r[alignment], r[outcome]) for r in rows
                     if np.isfinite(r[alignment]) and np.isfinite(r[outcome])]
            if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
                rho = rho_p = r = r_p = math.nan
            else:
                x, y = np.array(pairs, dtype=float).T
                rho, rho_p = stats.spearmanr(x, y)
                r, r_p = stats.pearsonr(x, y)
            out.append({"alignment": alignment, "outcome": outcome, "n": len(pairs), "n_seeds": 2,
                        "bootstrap": 200, "bootstrap_over": "seeds and test cases",
                        "spearman": float(rho), "spearman_p": float(rho_p),
                        "spearman_ci": _ci(float(rho)), "spearman_ci_cells": _ci(float(rho), 0.5),
                        "pearson": float(r), "pearson_p": float(r_p),
                        "pearson_ci": _ci(float(r)), "pearson_ci_cells": _ci(float(r), 0.5)})
    return out


def _claims(claim_text) -> list[dict]:
    return [{"claim": "profound_conv gains more than provicnet on distortion_correction and super_resolution",
             "verdict": "inconclusive at this n", "evidence": "made up: direction as claimed; 2 seed(s)"},
            {"claim": "smaller feature change (D2P) goes with a larger gain (RPG)", "verdict": "holds",
             "evidence": "made up: Spearman ρ < 0 with p < 0.05"},
            {"claim": claim_text or "smaller feature change (D2P) goes with faster convergence",
             "verdict": "does not hold", "evidence": "made up: p = 0.4 > 0.05"}]


def _cell_stats(rows) -> list[dict]:
    out = []
    for key in dict.fromkeys((r["encoder"], r["task"], r["n_train"]) for r in rows):
        members = [r for r in rows if (r["encoder"], r["task"], r["n_train"]) == key]
        rec = {"encoder": key[0], "task": key[1], "n_train": key[2], "metric": members[0]["metric"],
               "n_seeds": len(members)}
        for f in ("value", "rpg", "convergence_epoch", "gain_over_scratch", "d2p"):
            x = np.array([m[f] for m in members], dtype=float)
            x = x[np.isfinite(x)]
            mean = float(x.mean()) if x.size else math.nan
            half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
            rec[f] = {"mean": mean, "sd": float(x.std(ddof=1)) if x.size > 1 else math.nan, "n": int(x.size),
                      "ci95_low": mean - half, "ci95_high": mean + half}
        out.append(rec)
    return out


def _paired(rows, seeds, column: str, name: str) -> list[dict]:
    out = []
    for key in dict.fromkeys((r["encoder"], r["task"], r["n_train"]) for r in rows):
        members = [r for r in rows if (r["encoder"], r["task"], r["n_train"]) == key]
        diff = float(np.mean([m["value"] - m[column] for m in members]))
        out.append({"encoder": key[0], "task": key[1], "n_train": key[2], "metric": METRIC[key[1]][0],
                    "higher_is_better": True, "n_seeds": len(seeds), "difference": f"{key[0]} − {name}",
                    "n": 6, "mean_difference": diff, "ci_low": diff - 0.3 * abs(diff),
                    "ci_high": diff + 0.3 * abs(diff), "statistic": 1.0, "p_value": 0.5,
                    "test": "Wilcoxon signed-rank, two-sided"})
    return out


def _summary(rows, preset, seeds, train_cases, timing, claim_text) -> dict:
    correlations = _correlations(rows)
    correlations[-1]["spearman_p"] = math.nan  # a statistic the study could not compute
    within = [{"task": t, "smaller_d2p": "profound_conv" if t in TASKS[2:4] else "provicnet",
               "larger_gain": "profound_conv" if t in TASKS[2:] else "provicnet",
               "agree": t != "synthesis"} for t in TASKS]
    within_task = {"tasks": within, "n_agree": 4, "n_tasks": 5, "p_value": 0.1875}
    by_regime = []
    for n in train_cases:
        sub = [r for r in rows if r["n_train"] == n]
        by_regime.append({"n_train": n, "n_cells": len(sub), "correlations": _correlations(sub),
                          "within_task": within_task, "claims": _claims(claim_text)})
    by_task = [{"task": t, "correlations": _correlations([r for r in rows if r["task"] == t])} for t in TASKS]
    return {"preset": preset, "seeds": list(seeds), "regimes": list(train_cases), "n_cells": len(rows),
            "cells": _cell_stats(rows), "correlations": correlations,
            "paired_vs_specialised": _paired(rows, seeds, "specialised_value", "specialised"),
            "paired_vs_scratch": _paired(rows, seeds, "scratch_value", "scratch"),
            "by_regime": by_regime, "by_task": by_task, "within_task": within_task,
            "claims": [{**c, "n_train": r["n_train"]} for r in by_regime for c in r["claims"]],
            "start_weights": {e: {"source": "shipped", "gate": True, "reason": "made up", "sha256": "0" * 64}
                              for e in ENCODERS},
            "timing": timing,
            "excluded_cases": [{"case": "ph999", "reason": "no lesion mask"}],
            "skipped_tasks": [{"task": "zonal_segmentation", "reason": "no zone labels"}],
            "notes": ["Convergence is censored at the last epoch for cells that never reached the target."]}


def _ci(coef: float, half_width: float = 0.3) -> list[float]:
    return [max(-1.0, coef - half_width), min(1.0, coef + half_width)]


def _dump(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=1))
