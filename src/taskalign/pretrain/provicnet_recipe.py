"""ProViCNet's registered two-stage pretraining: DINO self-distillation on unlabelled slices
(`dino`), then patch-level contrast with lesion masks (`patch_contrast`) on the cases that carry
one; both stages run in the one pretraining loop, so a killed run resumes where it stopped."""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import torch

from taskalign.data.case import Case
from taskalign.encoders.provicnet import ProViCNetEncoder
from taskalign.pretrain.cohort import labelled_cases
from taskalign.pretrain.dino import DinoConfig, DinoObjective, dino_config, dino_schedule
from taskalign.pretrain.loop import Checkpointer, Progress, Stage, run_stages
from taskalign.pretrain.patch_contrast import (PatchContrastConfig, PatchContrastObjective, labelled_bank,
                                               patch_contrast_config, patch_contrast_schedule)
from taskalign.pretrain.registry import register_pretrainer
from taskalign.pretrain.slices import SliceBank


def _check(encoder, cases: Sequence[Case], steps: int, batch_size: int, lr: float, stage1_fraction: float) -> None:
    if not isinstance(encoder, ProViCNetEncoder):
        raise ValueError(f"provicnet pretraining needs a ProViCNetEncoder, got {type(encoder).__name__}")
    if not cases or steps < 1 or batch_size < 1 or not lr > 0 or not 0.0 <= stage1_fraction <= 1.0:
        raise ValueError(f"provicnet pretraining: need cases, steps >= 1, batch_size >= 1, lr > 0 and "
                         f"stage1_fraction in [0, 1]; got {len(cases)} cases, steps {steps}, batch_size "
                         f"{batch_size}, lr {lr}, stage1_fraction {stage1_fraction}")


def provicnet_stages(encoder: ProViCNetEncoder, cases: Sequence[Case], steps: int, batch_size: int, lr: float,
                     seed: int, stage1_fraction: float = 0.7, dino: DinoConfig | None = None,
                     contrast: PatchContrastConfig | None = None, backbone_lr_scale: float | None = None
                     ) -> list[Stage]:
    """Stage 1 (DINO) for round(stage1_fraction · steps) steps, stage 2 (patch contrast) for the
    rest; `backbone_lr_scale`, when given, replaces stage 2's backbone rate fraction."""
    _check(encoder, cases, steps, batch_size, lr, stage1_fraction)
    dino = dino or dino_config(encoder.cfg.preset)
    contrast = contrast or patch_contrast_config(encoder.cfg.preset)
    if backbone_lr_scale is not None:
        contrast = dataclasses.replace(contrast, backbone_lr_scale=backbone_lr_scale)
    if dino.keep not in ("student", "teacher"):
        raise ValueError(f"DinoConfig.keep must be 'student' or 'teacher', got {dino.keep!r}")
    labelled = labelled_cases(cases)
    steps1 = int(round(stage1_fraction * steps))
    if not labelled and steps1 < steps:
        warnings.warn("provicnet pretraining: no case has a lesion mask; stage 2 is skipped and "
                      "stage 1 (DINO) runs every step", stacklevel=3)
        steps1 = steps
    stages = []
    if steps1:
        bank = SliceBank.from_cases(encoder, cases)
        stages.append(Stage("dino", lambda: DinoObjective(encoder, bank, batch_size, dino,
                                                          torch.Generator().manual_seed(seed)),
                            dino_schedule(dino, steps1, lr)))
    if steps > steps1:
        bank2 = labelled_bank(encoder, labelled)
        stages.append(Stage("patch_contrast", lambda: PatchContrastObjective(encoder, bank2, batch_size, contrast,
                                                                             torch.Generator().manual_seed(seed + 1)),
                            patch_contrast_schedule(contrast, steps - steps1, lr)))
    return stages


@register_pretrainer("provicnet")
def pretrain_provicnet(encoder: ProViCNetEncoder, cases: Sequence[Case], steps: int, batch_size: int, lr: float,
                       seed: int, progress: Progress | None = None, checkpoint: Checkpointer | None = None,
                       stop_after: int | None = None, stage1_fraction: float = 0.7, dino: DinoConfig | None = None,
                       contrast: PatchContrastConfig | None = None, backbone_lr_scale: float | None = None
                       ) -> list[float]:
    """ProViCNet's two stages on `cases`, `batch_size` volumes per step (4 slices each). Trains
    `encoder` in place; returns the loss of every step (stage 1, then stage 2)."""
    was_training = encoder.training
    stages = provicnet_stages(encoder, cases, steps, batch_size, lr, seed, stage1_fraction, dino, contrast,
                              backbone_lr_scale)
    try:
        with torch.random.fork_rng(devices=[]):
            return run_stages(stages, seed, checkpoint, progress, stop_after)
    finally:
        encoder.train(was_training)
