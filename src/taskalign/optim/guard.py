"""The one non-finite-loss guard of every optimisation loop."""
from __future__ import annotations

import math

import torch


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or Inf; the message names the loop, the step and what to try."""


def check_finite(loss: torch.Tensor, where: str, step: int, hint: str = "") -> float:
    """The loss as a float, or NonFiniteLossError naming `where` and `step`."""
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"{where}: loss is {value} at step {step}; lower the learning rate or check the cases for "
            f"NaN/Inf voxels{'; ' + hint if hint else ''}")
    return value
