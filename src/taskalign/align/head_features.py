"""Which encoder feature a task's head reads: the one rule for the primary D2x feature (DESIGN.md §6).

An encoder's `forward_features` gives {"pooled": (B, P), "maps": [(B, C_k, ...) per stage]}.
Alignment summarises it per probe image as named banks of (B, d) rows:

    "pooled"      the encoder's pooled feature (ProViCNet: the slice mean of the cls token;
                  ProFound: LayerNorm of the last stage's global mean);
    "stage<k>"    the spatial mean of map k (ProViCNet: the slice-and-patch mean of the patch
                  tokens of that block, per sequence; ProFound: the stage map's mean).

The primary feature of a cell is the summary of what its task's head consumes, by task kind:

    segmentation, image (super-resolution, distortion correction, synthesis): the dense head
        (UNETR) decodes all maps, the deepest carries the encoder's last representation, so the
        last map's spatial mean;
    classification: the head reads the last map too (attention-MIL pooling over the last map's
        positions, issue 12; the earlier MLP head read "pooled"), so the last map's spatial mean.

The pooled feature is the secondary one: for ProViCNet's dense heads it is read by no head at all.
"""
from __future__ import annotations

from typing import Mapping

import torch

POOLED = "pooled"
LAST_MAP = "last_map"
HEAD_READS: dict[str, str] = {"classification": LAST_MAP, "segmentation": LAST_MAP, "image": LAST_MAP}


def stage_name(k: int) -> str:
    return f"stage{k}"


def map_mean(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, *spatial) -> (B, C): the mean over every position (slices, patches, voxels)."""
    return feature_map.flatten(2).mean(2)


def feature_banks(features: Mapping) -> dict[str, torch.Tensor]:
    """A `forward_features` dict -> {"pooled": (B, P), "stage0": (B, C_0), ..., "stage<K>": (B, C_K)}."""
    banks = {POOLED: features["pooled"]}
    banks.update({stage_name(k): map_mean(m) for k, m in enumerate(features["maps"])})
    return banks


def head_bank(task_kind: str, bank_names) -> str:
    """The name of the bank the head of `task_kind` reads, among `bank_names` (as `feature_banks`)."""
    if task_kind not in HEAD_READS:
        raise ValueError(f"no head-read rule for task kind {task_kind!r}; known kinds: {sorted(HEAD_READS)}")
    names = list(bank_names)
    if HEAD_READS[task_kind] == POOLED:
        return POOLED
    stages = sorted((n for n in names if n.startswith("stage")), key=lambda n: int(n[len("stage"):]))
    if not stages:
        raise ValueError(f"task kind {task_kind!r} reads the last map, but the banks have no stage: {names}")
    return stages[-1]


def head_feature(task_kind: str, features: Mapping) -> torch.Tensor:
    """(B, d): the summary of what the head of `task_kind` reads from a `forward_features` dict."""
    banks = feature_banks(features)
    return banks[head_bank(task_kind, banks)]
