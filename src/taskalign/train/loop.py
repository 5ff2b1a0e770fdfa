"""The one fine-tuning loop (DESIGN.md §7, STYLE.md habit 7): every model of every task.

Step-based: `steps` optimisation steps of `batch_size` volumes, a validation point every
`steps_per_epoch` steps written to `curve.jsonl`, the best-validation weights kept and used on the
test split. A NaN/Inf loss stops the run with a clear error.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from taskalign import files
from taskalign.study.config import TrainConfig
from taskalign.tasks.base import Sample, Task
from taskalign.train.batches import BatchSampler
from taskalign.train.device import default_device
from taskalign.optim import NonFiniteLossError, check_finite, lr_at  # noqa: F401  (NonFiniteLossError re-exported)


@dataclass
class FitResult:
    curve: list[dict[str, Any]]
    best_epoch: int
    test_metrics: dict[str, float]
    per_case: list[dict[str, Any]]
    test_predictions: list[np.ndarray] = field(repr=False, default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def predict(model: nn.Module, inputs: list[np.ndarray], task: Task, batch_size: int = 2) -> list[np.ndarray]:
    """Predictions in target space, one array per case without the batch axis (full volumes)."""
    model.eval()
    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    for i in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.stack(inputs[i:i + batch_size])).float().to(device)
        pred = model(x).float().cpu()
        if task.kind == "classification":
            pred = pred.reshape(len(x), -1)
        out.extend(p.numpy() for p in pred)
    return out


def _with_base(preds: list[np.ndarray], samples: list[Sample]) -> list[np.ndarray]:
    return [p + s.base if s.base is not None else p for p, s in zip(preds, samples)]


def _is_better(value: float, best: float, higher_is_better: bool) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if higher_is_better else value < best


def _train_step(model: nn.Module, task: Task, batch, optimiser: torch.optim.Optimizer, step: int) -> float:
    pred = model(batch.x, batch.slices) if batch.slices is not None else model(batch.x)
    if batch.base is not None:
        pred = pred + batch.base          # residual on the task's base, for every model alike
    loss = task.loss(pred.float(), batch.target)
    value = check_finite(loss, f"fine-tuning on {task.name}", step)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return value


def fit(model: nn.Module, task: Task, train: tuple[list[np.ndarray], list[Sample]],
        val: tuple[list[np.ndarray], list[Sample]], test: tuple[list[np.ndarray], list[Sample]],
        cfg: TrainConfig, seed: int, param_groups: list[dict[str, Any]], curve_path: Path | None = None,
        on_step: Callable[[int], None] | None = None) -> FitResult:
    """Train `model` on `train`, select the best epoch on `val`, evaluate it on `test`.

    Each split is (preprocessed inputs (C, D, H, W), samples). `param_groups` are torch optimiser
    groups with an extra key "base_lr" that the schedule scales.
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    device = default_device()
    model.to(device)
    slice_wise = getattr(model, "slice_wise", False)
    sampler = BatchSampler(train[0], train[1], cfg.batch_size, seed,
                           slices_per_volume=cfg.slices_per_volume if slice_wise else 0,
                           dense=task.kind != "classification")
    optimiser = torch.optim.AdamW(param_groups, weight_decay=cfg.weight_decay)
    best_value, best_epoch, best_state, stale = float("nan"), 0, None, 0
    curve: list[dict[str, Any]] = []
    losses: list[float] = []
    if curve_path is not None:
        files.write_text(curve_path, "")
    for step in range(cfg.steps):
        model.train()
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup_steps, group["base_lr"])
        losses.append(_train_step(model, task, sampler.next().to(device), optimiser, step))
        if on_step is not None:
            on_step(step)
        if (step + 1) % cfg.steps_per_epoch == 0 or step + 1 == cfg.steps:
            epoch = len(curve) + 1
            metrics, _ = task.evaluate(_with_base(predict(model, val[0], task), val[1]), val[1])
            value = float(metrics[task.metric_name])
            point = {"epoch": epoch, "step": step + 1, "train_loss": float(np.mean(losses)),
                     "val_metric": value, "seconds": time.perf_counter() - start}
            curve.append(point)
            losses = []
            if curve_path is not None:   # rewritten whole and renamed: never a half-written line
                files.write_text(curve_path, "".join(json.dumps(p) + "\n" for p in curve))
            if _is_better(value, best_value, task.higher_is_better) or best_state is None:
                best_value, best_epoch, stale = value, epoch, 0
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if cfg.patience_epochs and stale >= cfg.patience_epochs:
                    break
    model.load_state_dict(best_state)
    test_preds = _with_base(predict(model, test[0], task), test[1])
    metrics, per_case = task.evaluate(test_preds, test[1])
    return FitResult(curve, best_epoch, {k: float(v) for k, v in metrics.items()}, per_case,
                     test_preds, time.perf_counter() - start)
