"""Probe features for alignment: one forward pass per batch gives every bank of `head_features`.

On disk (a cell's run folder, or the reference folder beside an encoder's weights):

    features/<state>.pt               "pooled"   (N, P) float32
    features/stages/<state>_<k>.pt    "stage<k>" (N, C_k) float32, spatial mean of map k

with state one of pretrained, finetuned, random, scratch (docs/study_folder.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from taskalign import io
from taskalign.align.head_features import POOLED, feature_banks, stage_name


@torch.no_grad()
def probe_features(encoder, inputs: list[np.ndarray], batch_size: int = 2) -> dict[str, torch.Tensor]:
    """Preprocessed volumes -> {"pooled": (N, P), "stage0": (N, C_0), ...} float32 on the CPU
    (`head_features.feature_banks`), in eval mode."""
    encoder.eval()
    device = next(encoder.parameters()).device
    batches = []
    for i in range(0, len(inputs), batch_size):
        x = torch.from_numpy(np.stack(inputs[i:i + batch_size])).float().to(device)   # (B, C, D, H, W)
        batches.append({name: f.cpu() for name, f in feature_banks(encoder.forward_features(x)).items()})
    return {name: torch.cat([b[name] for b in batches]).float() for name in batches[0]} if batches else {}


def pooled_features(encoder, inputs: list[np.ndarray], batch_size: int = 2) -> torch.Tensor:
    """(N, pooled_dim) float32 pooled features of preprocessed volumes."""
    return probe_features(encoder, inputs, batch_size)[POOLED]


def _stage_index(name: str) -> int:
    return int(name[len("stage"):])


def save_probe_banks(folder: Path, state: str, banks: dict[str, torch.Tensor]) -> None:
    """Write `banks` of one state under folder/features (module docstring); pooled last."""
    for name, feats in banks.items():
        if name != POOLED:
            io.save_tensor(Path(folder) / "features" / "stages" / f"{state}_{_stage_index(name)}.pt", feats)
    io.save_tensor(Path(folder) / "features" / f"{state}.pt", banks[POOLED])


def save_probe_features(folder: Path, state: str, encoder, inputs: list[np.ndarray]) -> None:
    """features/<state>.pt (pooled) and features/stages/<state>_<k>.pt (stage means) of `inputs`."""
    save_probe_banks(folder, state, probe_features(encoder, inputs))


def load_probe_banks(folder: Path, state: str) -> dict[str, torch.Tensor] | None:
    """{"pooled": ..., "stage0": ..., ...} of one state as `save_probe_banks` wrote them (stages in
    order; none for folders written before stage features), or None without the pooled file."""
    features = Path(folder) / "features"
    pooled = features / f"{state}.pt"
    if not pooled.exists():
        return None
    stages = sorted((features / "stages").glob(f"{state}_*.pt"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    banks = {stage_name(int(p.stem.rsplit("_", 1)[1])): io.load_tensor(p) for p in stages}
    return {POOLED: io.load_tensor(pooled), **banks}
