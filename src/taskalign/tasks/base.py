"""The task contract (DESIGN.md §1, §2) and the task registry.

A task turns a `Case` into a `Sample` (input in units + target in the task's own space), owns its
loss and its metric, and says whether the metric is higher-is-better.

Prediction shapes the loss and `evaluate` receive (batch first, torch for the loss, numpy for
`evaluate`, one array per case without the batch axis):
    classification  (B, 1) logits                        target (B, 1) float {0, 1}
    segmentation    (B, 2, D, H, W) logits               target (B, 1, D, H, W) float {0, 1}
    image           (B, C_out, D, H, W) in target space  target (B, C_out, D, H, W)
Image tasks may give `base` (same shape as target, in target space): every model of the task
predicts a residual on it (pred = model(x) + base), so VFMs and baselines share the recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from taskalign.data.case import Case
from taskalign.registry import Registry


@dataclass
class Sample:
    case_id: str
    input: np.ndarray                     # (C_in, D, H, W) float32, in the sequences' units
    input_sequences: tuple[str, ...]      # names of the input channels, e.g. ("t2w",)
    target: np.ndarray                    # () / (1, D, H, W) / (C_out, D, H, W), see module doc
    mask: np.ndarray                      # (D, H, W) bool body mask (image metrics are taken inside it)
    gland: np.ndarray | None = None       # (D, H, W) for encoders that normalise inside the gland
    base: np.ndarray | None = None        # residual base in target space (image tasks) or None
    to_units: dict[str, Any] = field(default_factory=dict)  # target space -> units, per output channel


class Task:
    """Subclasses set the class attributes and implement the four methods."""

    name: str = ""
    kind: str = ""                        # "classification" | "segmentation" | "image"
    input_sequences: tuple[str, ...] = ()
    out_channels: int = 1
    metric_name: str = ""                 # primary metric, e.g. "auroc", "dice", "psnr"
    higher_is_better: bool = True
    requires: tuple[str, ...] = ()        # Case fields the task needs, e.g. ("label",), ("lesion",)
    target_sequences: tuple[str, ...] = ()  # sequences the task predicts (image tasks), e.g. ("adc",)

    def make_sample(self, case: Case, seed: int) -> Sample:
        """Deterministic in (case, seed): degradations are drawn from `seed`, never from global state."""
        raise NotImplementedError

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, preds: list[np.ndarray], samples: list[Sample]) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """Aggregate metrics (the primary under `metric_name`, others beside) and one row per case."""
        raise NotImplementedError

    def missing_labels(self, case: Case) -> list[str]:
        return [f for f in self.requires if getattr(case, f) is None]


TASKS: Registry[Callable[[], Task]] = Registry("task")


def register_task(name: str):
    """Decorator: `@register_task("my_task")` on a Task subclass (or a no-argument factory)."""
    return TASKS.register(name)


def create_task(name: str, **kwargs) -> Task:
    return TASKS.get(name)(**kwargs)


def list_tasks() -> list[str]:
    return TASKS.names()
