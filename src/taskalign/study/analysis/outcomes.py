"""The study's outcome measures (DESIGN.md §6): relative performance gain and convergence.

These are definitions, so they live apart from the bookkeeping and are tested on hand examples.
"""
from __future__ import annotations

import math
from typing import Sequence


def relative_gain(value: float, specialised: float, higher_is_better: bool = True) -> float:
    """RPG in percent: 100 · (M_e − M_spec) / |M_spec|, sign flipped for a lower-is-better metric.

    NaN when the specialised value is 0 or not finite (a gain relative to nothing is undefined).
    """
    if not (math.isfinite(value) and math.isfinite(specialised)) or specialised == 0:
        return float("nan")
    gain = 100.0 * (value - specialised) / abs(specialised)
    return gain if higher_is_better else -gain


def _reaches(value: float, target: float, higher_is_better: bool) -> bool:
    return value >= target if higher_is_better else value <= target


def epochs_to_target(curve: Sequence[float], target: float, higher_is_better: bool = True) -> tuple[int, bool]:
    """First 1-based epoch whose value reaches `target`; (last epoch, True) if censored (never reached)."""
    for epoch, value in enumerate(curve, start=1):
        if math.isfinite(value) and _reaches(value, target, higher_is_better):
            return epoch, False
    return len(curve), True


def common_target(best_values: Sequence[float], higher_is_better: bool = True, fraction: float = 0.95) -> float:
    """95 % of the best validation value any model reached on the task and seed (primary
    convergence target). For a lower-is-better metric the target is best / fraction."""
    finite = [v for v in best_values if math.isfinite(v)]
    if not finite:
        return float("nan")
    best = max(finite) if higher_is_better else min(finite)
    if higher_is_better:
        return fraction * best if best >= 0 else best / fraction
    return best / fraction if best >= 0 else fraction * best


def self_convergence_epoch(curve: Sequence[float], higher_is_better: bool = True, fraction: float = 0.95) -> int:
    """First epoch reaching `fraction` of the way from the run's own first value to its own best."""
    finite = [v for v in curve if math.isfinite(v)]
    if not finite:
        return len(curve)
    first = next(v for v in curve if math.isfinite(v))
    best = max(finite) if higher_is_better else min(finite)
    target = first + fraction * (best - first)
    epoch, _ = epochs_to_target(curve, target, higher_is_better)
    return epoch
