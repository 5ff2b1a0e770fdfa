"""The `Case`: one patient, the contract every data source yields (DESIGN.md §1).

Axis convention everywhere: arrays are (D, H, W) = (z, y, x) and `spacing_mm` is in the same
order; `image` is channel-first (C, D, H, W) with channels in `SEQUENCES` order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SEQUENCES: tuple[str, ...] = ("t2w", "dwi", "adc")
"""Channel order of `Case.image`: T2-weighted, high-b DWI (b = 1400 s/mm²), ADC (10⁻⁶ mm²/s)."""


@dataclass
class Case:
    case_id: str
    image: np.ndarray                      # (3, D, H, W) float32, T2w / DWI / ADC in their own units
    spacing_mm: tuple[float, float, float]  # (z, y, x)
    gland: np.ndarray | None = None        # (D, H, W) uint8 {0, 1}
    zones: np.ndarray | None = None        # (D, H, W) uint8 {0 bg, 1 PZ, 2 TZ}
    lesion: np.ndarray | None = None       # (D, H, W) uint8 {0, 1-5 ISUP grade} or {0, 1}
    label: int | None = None               # csPCa present (0/1)
    pirads: int | None = None              # PI-RADS-like score 1-5
    body: np.ndarray | None = None         # (D, H, W) bool; `body_mask` computes it when absent
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image.ndim != 4 or self.image.shape[0] != len(SEQUENCES):
            raise ValueError(
                f"case {self.case_id}: image must be (3, D, H, W) in order {SEQUENCES}, got {self.image.shape}"
            )
        for name in ("gland", "zones", "lesion", "body"):
            mask = getattr(self, name)
            if mask is not None and mask.shape != self.image.shape[1:]:
                raise ValueError(
                    f"case {self.case_id}: {name} has shape {mask.shape}, image grid is {self.image.shape[1:]}"
                )

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape[1:])  # type: ignore[return-value]

    def sequence(self, name: str) -> np.ndarray:
        """(D, H, W) view of one sequence by name."""
        return self.image[SEQUENCES.index(name)]


def body_mask(case: Case, percentile: float = 5.0) -> np.ndarray:
    """(D, H, W) bool body mask: the case's own, else T2w above the `percentile`-th percentile of
    its non-zero voxels (the rule the PI-CAI sample's README uses for its statistics)."""
    if case.body is not None:
        return case.body.astype(bool)
    t2w = case.sequence("t2w")
    nonzero = t2w[t2w > 0]
    if nonzero.size == 0:
        raise ValueError(f"case {case.case_id}: T2w is empty (all zero); no body mask can be derived")
    return t2w > np.percentile(nonzero, percentile)
