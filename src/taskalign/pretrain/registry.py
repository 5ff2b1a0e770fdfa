"""The pretraining-objective registry, one objective per encoder family.

    pretrain(encoder, cases: list[Case], steps: int, batch_size: int, lr: float, seed: int,
             progress: Callable[[int, float], None] | None = None,
             checkpoint: taskalign.pretrain.loop.Checkpointer | None = None) -> list[float]

trains `encoder` in place and returns its loss per step; with a checkpoint it resumes where a
killed run stopped and reaches the same weights.
"""
from __future__ import annotations

from typing import Callable

from taskalign.registry import Registry

PRETRAINERS: Registry[Callable[..., list[float]]] = Registry("pretraining objective")


def register_pretrainer(family: str):
    return PRETRAINERS.register(family)


def create_pretrainer(family: str) -> Callable[..., list[float]]:
    return PRETRAINERS.get(family)


def list_pretrainers() -> list[str]:
    return PRETRAINERS.names()
