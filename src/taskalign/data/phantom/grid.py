"""The render grid: voxel centres in patient millimetres, with thick slices split into sub-slices.

Oblique slices (an option): the slice stack is rotated about the left-right axis through the grid
centre; `coords` returns patient coordinates, so every shape is painted in the patient frame,
while the arrays (and the smooth texture fields, which are stationary) stay in the slice frame.

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
    tilt_rad: float = 0.0                # oblique slices: rotation about the x (left-right) axis
    pivot_zy: tuple[float, float] = (0.0, 0.0)  # the rotation's centre (the grid centre), patient mm

    @property
    def render_shape(self) -> tuple[int, int, int]:
        return (self.z_mm.size, self.y_mm.size, self.x_mm.size)

    def to_patient(self, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid-frame (z, y) -> patient (z, y): the slice stack tilted by `tilt_rad` about the pivot."""
        c, s = np.float32(np.cos(self.tilt_rad)), np.float32(np.sin(self.tilt_rad))
        dz, dy = z - np.float32(self.pivot_zy[0]), y - np.float32(self.pivot_zy[1])
        return np.float32(self.pivot_zy[0]) + c * dz - s * dy, np.float32(self.pivot_zy[1]) + s * dz + c * dy

    def window(self, lo_mm: tuple[float, float, float], hi_mm: tuple[float, float, float]):
        """Index slices of the voxels inside the box [lo, hi] (z, y, x patient mm), or None if it
        misses the grid. Oblique grids: the box's bounding box in the grid frame."""
        if self.tilt_rad:
            corners = np.array([(z, y) for z in (lo_mm[0], hi_mm[0]) for y in (lo_mm[1], hi_mm[1])], np.float64)
            corners = np.clip(corners, -1e5, 1e5)
            c, s = np.cos(-self.tilt_rad), np.sin(-self.tilt_rad)
            dz, dy = corners[:, 0] - self.pivot_zy[0], corners[:, 1] - self.pivot_zy[1]
            gz, gy = self.pivot_zy[0] + c * dz - s * dy, self.pivot_zy[1] + s * dz + c * dy
            lo_mm = (float(gz.min()), float(gy.min()), lo_mm[2])
            hi_mm = (float(gz.max()), float(gy.max()), hi_mm[2])
        slices = []
        for axis, lo, hi in zip((self.z_mm, self.y_mm, self.x_mm), lo_mm, hi_mm):
            a, b = np.searchsorted(axis, lo, "left"), np.searchsorted(axis, hi, "right")
            if b <= a:
                return None
            slices.append(slice(int(a), int(b)))
        return tuple(slices)

    def coords(self, win) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable patient coordinates of a window: (nz,1,1), (1,ny,1), (1,1,nx) float32 on an
        axial grid; on an oblique grid z and y are both (nz,ny,1)."""
        z = self.z_mm[win[0]].astype(np.float32)[:, None, None]
        y = self.y_mm[win[1]].astype(np.float32)[None, :, None]
        x = self.x_mm[win[2]].astype(np.float32)[None, None, :]
        if self.tilt_rad:
            z, y = self.to_patient(z, y)
        return z, y, x

    def to_slices(self, volume: np.ndarray) -> np.ndarray:
        """(D * n_sub, H, W) -> (D, H, W): mean over each slice's sub-slices (the slice profile)."""
        d = self.shape[0]
        return volume.reshape(d, self.n_sub, *volume.shape[1:]).mean(axis=1, dtype=np.float32)


def make_grid(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
              center_mm: tuple[float, float, float], tilt_rad: float = 0.0) -> RenderGrid:
    """Grid of `shape` voxels at `spacing_mm`, centred on `center_mm` (z, y, x patient mm), its
    slices tilted by `tilt_rad` about the left-right axis through the centre (0: axial)."""
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
                      tuple(float(s) for s in spacing_mm), float(tilt_rad), (float(center_mm[0]), float(center_mm[1])))
