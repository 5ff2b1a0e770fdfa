"""Target spaces of the image tasks: per-channel affine maps between units and target space.

An image task's target is `(units − offset) / scale` per output channel, with `offset` and
`scale` computed from the task's *input* (never from the target), so the same map exists at
inference time. `Sample.to_units` stores the inverse, `units = target · scale + offset`, as
    {channel_name: {"scale": float, "offset": float}, ...}   in output-channel order.
"""
from __future__ import annotations

from typing import Any

import numpy as np

ADC_SCALE = 1000.0
"""ADC has absolute units (10⁻⁶ mm²/s); dividing by 1000 puts tissue values near 0.6-2.0."""


def body_mask_of(volume: np.ndarray, percentile: float = 5.0) -> np.ndarray:
    """(D, H, W) bool: voxels above the `percentile`-th percentile of the non-zero voxels (the rule
    of `data.case.body_mask`, applied to any volume, e.g. a degraded input)."""
    nonzero = volume[volume > 0]
    if nonzero.size == 0:
        raise ValueError("volume is all zero (or negative); no body mask can be derived from it")
    return volume > np.percentile(nonzero, percentile)


def body_statistics(volume: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of `volume` (D, H, W) inside `mask`, in float64.
    The std is floored at 1e-6 × max(|mean|, 1) so a flat region never divides by zero."""
    inside = volume[mask.astype(bool)].astype(np.float64)
    if inside.size == 0:
        raise ValueError("mask is empty; body statistics need at least one voxel")
    mean, std = float(inside.mean()), float(inside.std())
    return mean, max(std, 1e-6 * max(abs(mean), 1.0))


def affine(scale: float, offset: float = 0.0) -> dict[str, float]:
    """One channel's entry of `Sample.to_units`: units = target · scale + offset."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return {"scale": float(scale), "offset": float(offset)}


def to_target_space(units: np.ndarray, spec: dict[str, float]) -> np.ndarray:
    """(…) units -> float32 target space for one channel: (units − offset) / scale."""
    return ((units.astype(np.float64) - spec["offset"]) / spec["scale"]).astype(np.float32)


def target_to_units(values: np.ndarray, to_units: dict[str, Any]) -> np.ndarray:
    """(C_out, D, H, W) target space -> float64 units, channel c by the c-th entry of `to_units`."""
    specs = list(to_units.values())
    if values.shape[0] != len(specs):
        raise ValueError(
            f"prediction has {values.shape[0]} channels but to_units names {len(specs)}: {list(to_units)}"
        )
    out = np.empty(values.shape, dtype=np.float64)
    for c, spec in enumerate(specs):
        out[c] = values[c].astype(np.float64) * spec["scale"] + spec["offset"]
    return out


def zscore_spec(reference: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Affine map whose target space is the z-score by `reference`'s mean and std inside `mask`."""
    mean, std = body_statistics(reference, mask)
    return affine(std, mean)
