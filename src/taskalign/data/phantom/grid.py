"""The render grid: voxel centres in patient millimetres, with thick slices split into sub-slices.

Patient frame (mm): x towards the patient's left (image right), y posterior (image down), z
superior; the origin is the nominal gland centre. Arrays are (D, H, W) = (z, y, x), slice 0 the
most inferior (apex side), row 0 anterior, column 0 the patient's right, as in the PI-CAI sample.

A slice of thickness `dz` is rendered as `n_sub` thin sub-slices spread evenly across it and then
averaged (an ideal boxcar slice profile), so structures thinner than a slice are partial-volumed
as on a real thick-slice acquisition.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUBSLICE_MM = 1.0  # sub-slice spacing that the through-plane averaging aims for
MAX_SUBSLICES = 4


@dataclass(frozen=True)
class RenderGrid:
    z_mm: np.ndarray   # (D * n_sub,) sub-slice centres, increasing
    y_mm: np.ndarray   # (H,)
    x_mm: np.ndarray   # (W,)
    n_sub: int
    shape: tuple[int, int, int]          # output (D, H, W)
    spacing_mm: tuple[float, float, float]

    @property
    def render_shape(self) -> tuple[int, int, int]:
        return (self.z_mm.size, self.y_mm.size, self.x_mm.size)

    def window(self, lo_mm: tuple[float, float, float], hi_mm: tuple[float, float, float]):
        """Index slices of the voxels inside the box [lo, hi] (z, y, x mm), or None if it misses the grid."""
        slices = []
        for axis, lo, hi in zip((self.z_mm, self.y_mm, self.x_mm), lo_mm, hi_mm):
            a, b = np.searchsorted(axis, lo, "left"), np.searchsorted(axis, hi, "right")
            if b <= a:
                return None
            slices.append(slice(int(a), int(b)))
        return tuple(slices)

    def coords(self, win) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable (nz,1,1), (1,ny,1), (1,1,nx) float32 coordinates of a window."""
        return (self.z_mm[win[0]].astype(np.float32)[:, None, None],
                self.y_mm[win[1]].astype(np.float32)[None, :, None],
                self.x_mm[win[2]].astype(np.float32)[None, None, :])

    def to_slices(self, volume: np.ndarray) -> np.ndarray:
        """(D * n_sub, H, W) -> (D, H, W): mean over each slice's sub-slices (the slice profile)."""
        d = self.shape[0]
        return volume.reshape(d, self.n_sub, *volume.shape[1:]).mean(axis=1, dtype=np.float32)


def make_grid(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
              center_mm: tuple[float, float, float]) -> RenderGrid:
    """Grid of `shape` voxels at `spacing_mm`, centred on `center_mm` (z, y, x patient mm)."""
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"phantom shape must be three positive sizes (D, H, W), got {shape}")
    if len(spacing_mm) != 3 or min(spacing_mm) <= 0:
        raise ValueError(f"phantom spacing_mm must be three positive values (z, y, x), got {spacing_mm}")
    axes = [c + (np.arange(n) - (n - 1) / 2.0) * s for n, s, c in zip(shape, spacing_mm, center_mm)]
    dz = float(spacing_mm[0])
    n_sub = int(np.clip(np.ceil(dz / SUBSLICE_MM - 1e-6), 1, MAX_SUBSLICES))
    offsets = ((np.arange(n_sub) + 0.5) / n_sub - 0.5) * dz
    z_sub = (axes[0][:, None] + offsets[None, :]).ravel()
    return RenderGrid(z_sub, axes[1], axes[2], n_sub, tuple(int(n) for n in shape),
                      tuple(float(s) for s in spacing_mm))
