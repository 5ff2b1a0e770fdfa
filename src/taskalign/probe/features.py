"""Frozen features on a coarse probe grid: what the probes of `taskalign.probe.probes` read.

Every map of `forward_features` is resampled (trilinear) onto one probe grid of (D/2, H/4, W/4)
cells and the maps are concatenated along channels, so each cell carries the multi-scale
feature a UNETR-style head reads at that place. Labels and regression targets are averaged onto
the same grid, so a cell's label is the fraction of its voxels in a class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from taskalign.encoders.base import Encoder


def probe_grid(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(D, H, W) voxels -> (D/2, H/4, W/4) probe cells (at least one per axis)."""
    d, h, w = shape
    return max(1, d // 2), max(1, h // 4), max(1, w // 4)


def pool_to_grid(volume: np.ndarray, grid: tuple[int, int, int]) -> np.ndarray:
    """(C, D, H, W) or (D, H, W) -> the same leading axes on `grid`: the mean over each cell."""
    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
    squeeze = x.ndim == 3
    x = x[None, None] if squeeze else x[None]
    out = F.adaptive_avg_pool3d(x, grid)[0]
    return (out[0] if squeeze else out).numpy()


@dataclass
class DenseFeatures:
    cells: np.ndarray    # (N, gd, gh, gw, F) multi-scale features per probe cell
    pooled: np.ndarray   # (N, D_pooled) the encoder's `pooled` feature
    map_means: list[np.ndarray]  # per map (N, C_i): the mean over positions (what dense heads pool)


@torch.no_grad()
def dense_features(encoder: Encoder, volumes: list[np.ndarray], batch_size: int = 8) -> DenseFeatures:
    """Preprocessed volumes (C_enc, D, H, W), one shape -> features of the frozen encoder (eval mode)."""
    if not volumes:
        raise ValueError("dense_features: no volumes given")
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    grid = probe_grid(tuple(volumes[0].shape[1:]))
    cells, pooled, means = [], [], []
    try:
        for start in range(0, len(volumes), batch_size):
            x = torch.from_numpy(np.stack(volumes[start:start + batch_size])).to(device)  # (B, C, D, H, W)
            out = encoder.forward_features(x)
            maps = [F.interpolate(m.float(), size=grid, mode="trilinear", align_corners=False) for m in out["maps"]]
            cells.append(torch.cat(maps, dim=1).permute(0, 2, 3, 4, 1).cpu().numpy())  # (B, gd, gh, gw, F)
            pooled.append(out["pooled"].float().cpu().numpy())
            means.append([m.float().mean(dim=(2, 3, 4)).cpu().numpy() for m in out["maps"]])
    finally:
        encoder.train(was_training)
    map_means = [np.concatenate([b[i] for b in means]) for i in range(len(means[0]))]
    return DenseFeatures(np.concatenate(cells), np.concatenate(pooled), map_means)


def spread(features: np.ndarray) -> float:
    """Median pairwise distance over mean norm of (n, d) features: ~0 for a collapsed feature."""
    x = torch.from_numpy(np.asarray(features, dtype=np.float64))
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"spread needs an (n >= 2, d) feature matrix, got shape {tuple(x.shape)}")
    dist = torch.cdist(x, x)
    off = dist[~torch.eye(len(x), dtype=torch.bool)]
    norm = float(x.norm(dim=1).mean())
    return float(off.median()) / norm if norm > 0 else 0.0


def effective_rank(features: np.ndarray) -> float:
    """exp(entropy of the normalised singular values) of the centred (n, d) features (Roy & Vetterli 2007)."""
    x = np.asarray(features, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))
