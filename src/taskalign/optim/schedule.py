"""The one schedule: pure functions of the step, shared by fine-tuning and every pretraining objective."""
from __future__ import annotations

import math


def cosine_schedule(step: int, total_steps: int, start: float, end: float, warmup_steps: int = 0) -> float:
    """Linear warmup 0 -> `start` over `warmup_steps`, then half a cosine from `start` to `end` at
    `total_steps` (held at `end` after it). Used for learning rates and EMA momenta."""
    if step < warmup_steps:
        return start * (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(1, total_steps - warmup_steps), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_ratio: float = 0.01) -> float:
    """Fine-tuning learning rate: warmup to `base_lr`, cosine decay to `min_ratio * base_lr`."""
    return cosine_schedule(step, total_steps, base_lr, min_ratio * base_lr, warmup_steps)
