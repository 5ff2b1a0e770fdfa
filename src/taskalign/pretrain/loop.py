"""The one pretraining loop: every objective (FCMAE, MAE, DINO, patch contrast) is an `Objective`
that draws its own batch and returns its loss; `run_stages` runs a list of them in order with the
shared schedule, weight-decay rule and non-finite guard (`taskalign.optim`), and checkpoints
everything a step depends on, so a killed run resumes to the same weights as an uninterrupted one.

A checkpoint holds, for the stage in progress: the objective's state_dict (encoder, heads, EMA
teacher, buffers), the optimiser's state, the objective's data generator, torch's global RNG,
the next step and the losses so far. It is written with `torch.save` of tensors and plain
values only and read back with `weights_only=True`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from taskalign.files import atomic_write
from taskalign.optim import check_finite, cosine_schedule, decay_groups

Progress = Callable[[int, float], None]


class Objective(nn.Module):
    """An encoder with its pretraining heads. Subclasses set `self.generator` (the data and mask
    stream) and `self.where` (a name for messages) and implement `loss`."""

    generator: torch.Generator
    where: str = "pretraining"

    def param_groups(self, weight_decay: float) -> list[dict]:
        return decay_groups(self, weight_decay, lr_scale=1.0)

    def loss(self, step: int, total_steps: int) -> torch.Tensor:
        raise NotImplementedError

    def after_backward(self, step: int, total_steps: int) -> None:
        """Between backward and the optimiser step (e.g. drop the prototypes' gradient)."""

    def after_step(self, step: int, total_steps: int) -> None:
        """After the optimiser step (e.g. the EMA teacher)."""

    def finish(self) -> None:
        """When the stage's last step is done (e.g. copy the EMA teacher into the encoder)."""


@dataclass(frozen=True)
class StageSchedule:
    steps: int
    lr: float
    warmup_steps: int
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    clip_grad: float | None = None


@dataclass(frozen=True)
class Stage:
    name: str
    build: Callable[[], Objective]   # called under a fixed seed: the same heads on a resume
    schedule: StageSchedule


class Checkpointer:
    """Writes the loop's state to `path` at most every `every_s` seconds (and at stage ends)."""

    def __init__(self, path: Path | str, every_s: float = 180.0) -> None:
        self.path, self.every_s, self.last = Path(path), every_s, time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_s

    def save(self, state: dict) -> None:
        atomic_write(self.path, lambda tmp: torch.save(state, tmp))
        self.last = time.monotonic()

    def load(self) -> dict | None:
        return torch.load(self.path, map_location="cpu", weights_only=True) if self.path.exists() else None


def _state(stage: int, step: int, losses: list[float], objective: Objective, optimizer) -> dict:
    return {"stage": stage, "step": step, "losses": list(losses), "objective": objective.state_dict(),
            "optimizer": optimizer.state_dict(), "generator": objective.generator.get_state(),
            "torch_rng": torch.get_rng_state()}


def run_stage(objective: Objective, schedule: StageSchedule, stage: int, losses: list[float],
              resume: dict | None, checkpoint: Checkpointer | None, progress: Progress | None,
              stop_after: int | None = None) -> list[float]:
    """Steps of one stage (from `resume`'s step when given); returns the stage's losses. With
    `stop_after`, it stops once that many steps of the whole run are done (a partial re-run)."""
    optimizer = torch.optim.AdamW(objective.param_groups(schedule.weight_decay), lr=schedule.lr, betas=schedule.betas)
    start, own = 0, []
    if resume is not None:
        objective.load_state_dict(resume["objective"])
        optimizer.load_state_dict(resume["optimizer"])
        objective.generator.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        start, own = resume["step"], list(resume["losses"])[len(losses):]
    objective.train()
    for step in range(start, schedule.steps):
        if stop_after is not None and len(losses) + len(own) >= stop_after:
            return own
        lr = cosine_schedule(step, schedule.steps, schedule.lr, schedule.min_lr_ratio * schedule.lr,
                             schedule.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss = objective.loss(step, schedule.steps)
        own.append(check_finite(loss, objective.where, step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if schedule.clip_grad:
            nn.utils.clip_grad_norm_(objective.parameters(), schedule.clip_grad)
        objective.after_backward(step, schedule.steps)
        optimizer.step()
        objective.after_step(step, schedule.steps)
        if progress is not None:
            progress(len(losses) + len(own) - 1, own[-1])
        if checkpoint is not None and checkpoint.due() and step < schedule.steps - 1:
            checkpoint.save(_state(stage, step + 1, losses + own, objective, optimizer))
    optimizer.zero_grad(set_to_none=True)
    objective.finish()
    if checkpoint is not None:
        checkpoint.save(_state(stage, schedule.steps, losses + own, objective, optimizer))
    return own


def run_stages(stages: list[Stage], seed: int, checkpoint: Checkpointer | None = None,
               progress: Progress | None = None, stop_after: int | None = None) -> list[float]:
    """Run `stages` in order; resume from `checkpoint` when it holds a state. Each stage's
    objective is built under torch seed (seed + stage index), so heads are the same on a resume.
    Returns the losses of every step."""
    resume = checkpoint.load() if checkpoint is not None else None
    first, losses = 0, []
    if resume is not None:
        first = resume["stage"]
        losses = list(resume["losses"])[:sum(s.schedule.steps for s in stages[:first])]
    for index in range(first, len(stages)):
        stage = stages[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + index)
            objective = stage.build()
        if resume is not None and resume["step"] >= stage.schedule.steps:  # saved at the stage's end
            objective.load_state_dict(resume["objective"])                # restores the shared encoder
            losses, resume = list(resume["losses"]), None
            continue
        if resume is None:
            torch.manual_seed(seed + 1000 + index)  # the stage's global stream (dropout, drop-path)
        losses += run_stage(objective, stage.schedule, index, losses, resume, checkpoint, progress, stop_after)
        resume = None
        if stop_after is not None and len(losses) >= stop_after:
            break
    return losses
