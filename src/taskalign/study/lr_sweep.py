"""`taskalign sweep-lr`: the learning rates of fine-tuned and scratch runs, chosen on validation cases.

A pretrained encoder is fine-tuned slower than its fresh head (so a few hundred steps do not
overwrite what pretraining gave); a randomly initialised encoder has nothing to keep. The two
starts therefore get their own encoder rate, each chosen by the same small sweep:

    for each encoder family, start (pretrained, scratch) and candidate encoder rate
        train the study's cell on every swept task (the preset's first labelled-set size, seed 0,
        head rate fixed) and read the best *validation* value of its curve (never the test split);
    rank the candidates within each task (1 = best validation value; ties share the mean rank);
    choose, per family and start, the candidate with the smallest mean rank over the tasks
    (ties: the slower rate).

Every run is an ordinary study run in `OUT/<family>/<start>/enc<rate>/cells/...` (its "test"
split is the validation split: no test case is ever read), so a killed sweep resumes; `sweep.json` and `sweep.md` hold the table and the choice. The presets' rates
(`config.FINETUNE_LR`, `config.SCRATCH_LR`) come from this table (docs/fine_tuning.md).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.stats import rankdata

from taskalign import io
from taskalign.study.analysis.results import read_curve
from taskalign.study.cell import run_vfm
from taskalign.study.config import StudyConfig, regimes
from taskalign.study.pretrain_stage import ensure_pretrained
from taskalign.study.units import StudyInputs

PRETRAINED_RATES = (5e-5, 2e-4, 1e-3)    # encoder rates tried for a pretrained start (head at HEAD_RATE)
SCRATCH_RATES = (5e-4, 1e-3, 2e-3)       # and for random init
HEAD_RATE = 2e-3
SWEPT_TASKS = ("segmentation", "super_resolution", "distortion_correction", "synthesis")


@dataclasses.dataclass(frozen=True)
class Trial:
    family: str
    start: str          # "pretrained" | "scratch"
    encoder_lr: float

    @property
    def folder(self) -> str:
        return f"{self.family}/{self.start}/enc{self.encoder_lr:g}"


def trial_config(cfg: StudyConfig, trial: Trial) -> StudyConfig:
    """`cfg` with the trial's (encoder, head) rates for its family and start."""
    key = "lr" if trial.start == "pretrained" else "scratch_lr"
    table = {**getattr(cfg.train, key), trial.family: (trial.encoder_lr, HEAD_RATE)}
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **{key: table}))


def best_validation(curve_path: Path, higher_is_better: bool) -> float:
    values = [v for v in read_curve(curve_path) if math.isfinite(v)]
    if not values:
        return math.nan
    return max(values) if higher_is_better else min(values)


def choose(table: list[dict]) -> dict[tuple[str, str], dict]:
    """{(family, start): {"encoder_lr", "mean_rank", "ranks"}} from rows of (family, start,
    encoder_lr, task, value, higher_is_better) (module docstring's rule)."""
    out = {}
    for family, start in dict.fromkeys((r["family"], r["start"]) for r in table):
        rows = [r for r in table if r["family"] == family and r["start"] == start]
        rates = sorted({r["encoder_lr"] for r in rows})
        ranks: dict[float, list[float]] = {lr: [] for lr in rates}
        for task in dict.fromkeys(r["task"] for r in rows):
            by_rate = {r["encoder_lr"]: r for r in rows if r["task"] == task}
            if set(by_rate) != set(rates) or not all(math.isfinite(r["value"]) for r in by_rate.values()):
                continue            # a task missing a candidate's value ranks nothing
            sign = -1.0 if by_rate[rates[0]]["higher_is_better"] else 1.0
            for lr, rank in zip(rates, rankdata([sign * by_rate[lr]["value"] for lr in rates])):
                ranks[lr].append(float(rank))
        mean = {lr: float(np.mean(v)) if v else math.inf for lr, v in ranks.items()}
        best = min(rates, key=lambda lr: (mean[lr], lr))
        out[(family, start)] = {"encoder_lr": best, "mean_rank": mean, "ranks": ranks}
    return out


def run_sweep(cfg: StudyConfig, out: Path, tasks: tuple[str, ...] = SWEPT_TASKS,
              pretrained_rates: tuple[float, ...] = PRETRAINED_RATES, scratch_rates: tuple[float, ...] = SCRATCH_RATES,
              log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the sweep of the module docstring into `out`; returns what sweep.json holds."""
    out = Path(out)
    n_train = regimes(cfg.data)[0]
    inputs = StudyInputs(cfg, cache_dir=out / "cache")
    weights = {e: ensure_pretrained(out / "weights", e, cfg, log=log) for e in cfg.encoders}
    trials = [Trial(e, "pretrained", lr) for e in cfg.encoders for lr in pretrained_rates] + \
             [Trial(e, "scratch", lr) for e in cfg.encoders for lr in scratch_rates]
    table = []
    for i, trial in enumerate(trials):
        for task in tasks:
            data = dataclasses.replace(inputs.regime_data(task, n_train))
            data.test = data.val      # the sweep never reads a test case: its runs evaluate on validation
            log(f"[{i + 1}/{len(trials)}] {trial.folder} {task}")
            start = weights[trial.family] if trial.start == "pretrained" else None
            record = run_vfm(out / trial.folder, trial_config(cfg, trial), data, trial.family, 0, weights=start)
            model = trial.family if start is not None else f"{trial.family}-scratch"
            curve = out / trial.folder / "cells" / model / task / f"n{n_train}" / "seed0" / "curve.jsonl"
            table.append({**dataclasses.asdict(trial), "task": task, "metric": record["metric"],
                          "higher_is_better": record["higher_is_better"],
                          "value": best_validation(curve, record["higher_is_better"])})
    chosen = choose(table)
    result = {"preset": cfg.preset, "n_train": n_train, "seed": 0, "head_lr": HEAD_RATE, "tasks": list(tasks),
              "table": table, "chosen": [{"family": f, "start": s, **c} for (f, s), c in chosen.items()]}
    io.write_json(out / "sweep.json", result)
    io.write_text(out / "sweep.md", sweep_markdown(result))
    return result


def sweep_markdown(result: dict) -> str:
    """The sweep's table: best validation value per (family, start, encoder rate) and task, the
    mean rank and the choice."""
    tasks = result["tasks"]
    lines = ["| family | start | encoder lr | " + " | ".join(tasks) + " | mean rank | chosen |",
             "|---|---|---|" + "---|" * len(tasks) + "---|---|"]
    chosen = {(c["family"], c["start"]): c for c in result["chosen"]}
    for (family, start), c in chosen.items():
        for lr in sorted(c["mean_rank"], key=float):
            cells = []
            for task in tasks:
                row = next((r for r in result["table"] if (r["family"], r["start"], r["encoder_lr"], r["task"]) ==
                            (family, start, float(lr), task)), None)
                cells.append(f"{row['value']:.4g}" if row and math.isfinite(row["value"]) else "n/a")
            mark = "**yes**" if float(lr) == c["encoder_lr"] else ""
            lines.append(f"| {family} | {start} | {float(lr):g} | " + " | ".join(cells) +
                         f" | {c['mean_rank'][lr]:.2f} | {mark} |")
    return "\n".join(lines) + "\n"
