"""One cell of the grid: (encoder, task, seed).

A cell trains the encoder's architecture twice on the task, from the pretrained weights
(fine-tuned) and from random initialisation (scratch), with the same seeds, batches and steps;
then it measures how far the fine-tuned features moved (D2P, D2R, D2S, CKA) on the task's probe
(test) cases. The task's specialised model is its own run, shared by the encoders' cells.
Each run writes `metrics.json` last: a run with that file is finished and never recomputed.

A fine-tuned run also saves the probe features at its early checkpoints (`early_checkpoints`):
after the first epoch, and at the epoch nearest 10 % of the steps when that is a later epoch, so
that D2P early in fine-tuning can be set against the final gain (can a user stop a bad
fine-tuning early?). Saving them runs the encoder in eval mode under no_grad and draws no random
numbers, so the run's training is the same with or without them.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from taskalign.align.extract import save_probe_features
from taskalign.baselines import build_specialised
from taskalign.heads import build_head
from taskalign.models import SpecialisedModel, TaskModel, specialised_preprocess
from taskalign.residual_start import zero_output_layer
from taskalign import io
from taskalign.study.config import StudyConfig
from taskalign.study.pretrain_stage import load_encoder
from taskalign.tasks.base import Sample, Task
from taskalign.train.loop import FitResult, fit


def derive_seed(*parts: Any) -> int:
    """A stable 31-bit seed from any parts (same on every machine and Python run)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


@dataclass
class TaskData:
    """A task's samples per split (made once per study from the cohort and the data seed)."""
    task: Task
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    reference: list[Sample]


def run_dir(study_dir: Path, model: str, task: str, n_train: int, seed: int) -> Path:
    """cells/<model>/<task>/n<labelled cases>/seed<seed> (docs/study_folder.md)."""
    return Path(study_dir) / "cells" / model / task / f"n{n_train}" / f"seed{seed}"


def is_done(path: Path) -> bool:
    return (path / "metrics.json").exists()


EARLY_FRACTION = 0.1


def early_checkpoints(steps: int, steps_per_epoch: int) -> dict[str, int]:
    """{state name: step count} of the early probe features: "early_epoch1" after the first
    epoch; "early_10pct" at the validation point (epoch end) nearest 10 % of the steps, left out
    when that is the first epoch (quick: 96 steps of 8 per epoch, so only the first)."""
    first = min(steps_per_epoch, steps)
    out = {"early_epoch1": first}
    nearest = max(1, round(EARLY_FRACTION * steps / steps_per_epoch)) * steps_per_epoch
    if first < nearest < steps:
        out["early_10pct"] = nearest
    return out


def _early_saver(out: Path, model: TaskModel, inputs: list[np.ndarray], checkpoints: dict[str, int]):
    """fit's `on_step` hook: at each checkpoint's step, save the encoder's probe features."""
    by_step = {step: name for name, step in checkpoints.items()}

    def on_step(step: int) -> None:
        name = by_step.get(step + 1)
        if name is not None:
            save_probe_features(out, name, model.encoder, inputs)   # eval mode, no_grad (align.extract)
    return on_step


def _prepare(preprocess, samples: list[Sample]) -> list[np.ndarray]:
    return [np.ascontiguousarray(preprocess(s.input, s.input_sequences, s.gland), dtype=np.float32)
            for s in samples]


def prepared_splits(preprocess, data: TaskData):
    return tuple((_prepare(preprocess, split), split) for split in (data.train, data.val, data.test))


def _save_run(out: Path, model_name: str, data: TaskData, seed: int, result: FitResult,
              extra: dict[str, Any]) -> dict[str, Any]:
    task = data.task
    rows = result.per_case
    if rows:
        cols = list(rows[0].keys())
        lines = [",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]
        io.write_text(out / "per_case.csv", "\n".join(lines) + "\n")
    record = {"model": model_name, "task": task.name, "n_train": len(data.train), "seed": seed, "metric": task.metric_name,
              "higher_is_better": task.higher_is_better, "value": result.test_metrics[task.metric_name],
              "metrics": result.test_metrics, "best_epoch": result.best_epoch, "epochs": len(result.curve),
              "steps": result.curve[-1]["step"] if result.curve else 0, "seconds": result.seconds,
              "train_cases": [s.case_id for s in data.train], **extra}
    io.write_json(out / "metrics.json", record)  # last: the completion record
    return record


def run_specialised(study_dir: Path, cfg: StudyConfig, data: TaskData, seed: int) -> dict[str, Any]:
    """The task's specialised model (DESIGN.md §2), trained from scratch."""
    task = data.task
    out = run_dir(study_dir, "specialised", task.name, len(data.train), seed)
    if is_done(out):
        return io.read_json(out / "metrics.json")
    torch.manual_seed(derive_seed(cfg.study_seed, "specialised", task.name, seed))
    net = build_specialised(task.kind, len(task.input_sequences), task.out_channels, tuple(cfg.data.shape),
                            spacing_mm=tuple(cfg.data.spacing_mm))
    if task.kind == "image":
        zero_output_layer(net)  # start at the identity, like every model of an image task
    model = SpecialisedModel(net)
    lr = cfg.train.specialised_lr
    groups = model.parameter_groups(lr, lr, cfg.train.weight_decay)
    for g in groups:
        g["base_lr"] = g["lr"]
    train, val, test = prepared_splits(specialised_preprocess, data)
    result = fit(model, task, train, val, test, cfg.train, derive_seed(cfg.study_seed, task.name, seed),
                 groups, curve_path=_fresh(out) / "curve.jsonl")
    return _save_run(out, "specialised", data, seed, result, {"lr": {"all": lr}})


def _fresh(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    return out


def build_vfm(encoder_name: str, cfg: StudyConfig, data: TaskData, weights: Path | None, init_seed: int):
    task = data.task
    torch.manual_seed(init_seed)
    encoder = load_encoder(encoder_name, cfg, task.input_sequences, weights)
    n_in = len(encoder.preprocess(data.train[0].input, data.train[0].input_sequences, data.train[0].gland))
    torch.manual_seed(init_seed + 1)  # the head's init is the same for fine-tuned and scratch runs
    head = build_head(task.kind, encoder, n_in, task.out_channels)
    if task.kind == "image":
        zero_output_layer(head)  # start at the identity, like every model of an image task
    return TaskModel(encoder, head)


def run_vfm(study_dir: Path, cfg: StudyConfig, data: TaskData, encoder_name: str, seed: int,
            weights: Path | None) -> dict[str, Any]:
    """Fine-tune (weights given) or train from scratch (weights None) one encoder on one task;
    saves the probe features of the start and end states."""
    task = data.task
    model_name = encoder_name if weights is not None else f"{encoder_name}-scratch"
    out = run_dir(study_dir, model_name, task.name, len(data.train), seed)
    if is_done(out):
        return io.read_json(out / "metrics.json")
    init_seed = derive_seed(cfg.study_seed, encoder_name, task.name, seed)
    model = build_vfm(encoder_name, cfg, data, weights, init_seed)
    family = model.encoder.family or encoder_name
    enc_lr, head_lr = cfg.train.lr_for(family, pretrained=weights is not None)
    groups = model.parameter_groups(enc_lr, head_lr, cfg.train.weight_decay)
    for g in groups:
        g["base_lr"] = g["lr"]
    train, val, test = prepared_splits(model.encoder.preprocess, data)
    start_state = "pretrained" if weights is not None else "random"
    save_probe_features(_fresh(out), start_state, model.encoder, test[0])
    model.calibrate(train[0])   # heads that standardise by the start features' statistics
    on_step = None
    if weights is not None:
        on_step = _early_saver(out, model, test[0], early_checkpoints(cfg.train.steps, cfg.train.steps_per_epoch))
    result = fit(model, task, train, val, test, cfg.train, derive_seed(cfg.study_seed, task.name, seed),
                 groups, curve_path=out / "curve.jsonl", on_step=on_step)
    end_state = "finetuned" if weights is not None else "scratch"
    save_probe_features(out, end_state, model.encoder, test[0])
    io.save_weights(out / "best.safetensors", model.state_dict())
    return _save_run(out, model_name, data, seed, result, {"lr": {"encoder": enc_lr, "head": head_lr}})
